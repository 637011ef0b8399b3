"""Ranking, eligibility and the gate's statistics, on runs made directly in the store (no training)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from mlflow import MlflowClient

from steps.lib.gate import Scored, bootstrap_difference, metric_value
from steps.lib.metrics import classification_metrics
from steps.lib.ranking import RANKABLE, rank_candidates
from steps.lib.tracking import StepError
from steps.register import main, parse_ceiling


def fake_run(experiment_id: str, data_run_id: str, metrics: dict, status: str = "FINISHED", candidate: bool = True):
    client = MlflowClient()
    tags = {"data_run_id": data_run_id, "model_family": "baseline"} | ({"candidate": "true"} if candidate else {})
    run = client.create_run(experiment_id, tags=tags)
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


@pytest.fixture(scope="module")
def population(registry_tracking):
    """Candidates of one data run in every state `register` must tell apart."""
    experiment, data = registry_tracking.experiment_id, f"data-{uuid.uuid4().hex[:8]}"
    runs = {
        "best_unevaluated": fake_run(experiment, data, {"val_roc_auc": 0.95}),
        "good_but_brittle": fake_run(experiment, data, {"val_roc_auc": 0.90, "behaviour_failure_rate": 0.6}),
        "robust": fake_run(experiment, data, {"val_roc_auc": 0.80, "behaviour_failure_rate": 0.2}),
        "no_metric": fake_run(experiment, data, {"val_f1": 0.7}),
        "failed": fake_run(experiment, data, {"val_roc_auc": 0.99}, status="FAILED"),
        "killed": fake_run(experiment, data, {"val_roc_auc": 0.99}, status="KILLED"),
        "running": fake_run(experiment, data, {"val_roc_auc": 0.99}, status="RUNNING"),
        "not_a_candidate": fake_run(experiment, data, {"val_roc_auc": 0.99}, candidate=False),
        "other_data_run": fake_run(experiment, "another-data-run", {"val_roc_auc": 0.99}),
    }
    return experiment, data, runs


def test_only_finished_candidates_of_the_data_run_are_ranked_best_first(population):
    experiment, data, runs = population
    table = rank_candidates(MlflowClient(), [experiment], data, "val_roc_auc", ceiling=None)
    names = {run_id: name for name, run_id in runs.items()}
    assert [names[run_id] for run_id in table["run_id"]] == [
        "best_unevaluated",
        "good_but_brittle",
        "robust",
        "no_metric",
    ]
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table["eligible"].tolist() == [True, True, True, False]
    assert "no val_roc_auc" in table["reason"].iloc[3]


def test_behaviour_ceiling_excludes_brittle_and_unevaluated_candidates(population):
    experiment, data, runs = population
    table = rank_candidates(MlflowClient(), [experiment], data, "val_roc_auc", ceiling=0.5).set_index("run_id")
    assert not table.loc[runs["best_unevaluated"], "eligible"]
    assert "not evaluated" in table.loc[runs["best_unevaluated"], "reason"]
    assert not table.loc[runs["good_but_brittle"], "eligible"]
    assert "0.600 > ceiling 0.500" in table.loc[runs["good_but_brittle"], "reason"]
    assert table.loc[runs["robust"], "eligible"]
    eligible = table[table["eligible"]]
    assert eligible.index.tolist() == [runs["robust"]]


def test_ceiling_parameter_is_off_by_default_and_validated():
    assert parse_ceiling("") is None
    assert parse_ceiling("0.25") == 0.25
    for bad in ("abc", "1.5", "-0.1"):
        with pytest.raises(StepError):
            parse_ceiling(bad)


def test_gate_metrics_match_the_training_metrics_definitions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    proba = np.clip(labels * 0.4 + rng.random(200) * 0.6, 0, 1)
    reference = classification_metrics(labels, proba, 0.45, "val")
    for metric in RANKABLE:
        assert metric_value(metric, labels, Scored(proba, 0.45)) == pytest.approx(reference[metric])


def test_bootstrap_interval_of_the_difference():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 100)
    good = Scored(np.clip(labels * 0.5 + rng.random(200) * 0.5, 0, 1), 0.5)
    noise = Scored(rng.random(200), 0.5)
    assert bootstrap_difference("val_roc_auc", labels, good, good, 100, seed=3) == (0.0, 0.0)
    low, high = bootstrap_difference("val_roc_auc", labels, good, noise, 100, seed=3)
    assert 0 < low <= high  # a clearly better model: the whole interval is above zero
    assert bootstrap_difference("val_roc_auc", labels, good, noise, 100, seed=3) == (low, high)  # seeded


def test_bad_parameters_stop_with_a_one_line_error(tracking, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", tracking.experiment_id)
    with pytest.raises(SystemExit) as stopped:
        main(["--metric", "val_speed"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    accepted = ", ".join(f"'{name}'" for name in RANKABLE)
    assert error[-1] == f"Error: Invalid value for '--metric': 'val_speed' is not one of {accepted}."
