"""`register` end to end: best of two, first champion, the gate refusing and accepting.

Candidates are real `train_baseline` runs on copies of the session's prepared data. STRONG is the
fixture baseline's setting; WEAK keeps 20 features only, so it loses by construction. Two runs with
the STRONG setting train the same model (liblinear, fixed seed), which pins the gate's ">=" rule.
The first `register` goes through `mlflow run` exactly as a user runs it; training and later rounds
call the entry points' `main` in this process (same code, same store, without two interpreter
start-ups per step; `mlflow run -e train_baseline` itself is covered by the session fixtures).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from steps import evaluate as evaluate_step
from steps import register as register_step
from steps import train_baseline
from steps.lib import model_card as model_card_module
from steps.lib.model_card import CARD_ARTIFACT
from steps.lib.ranking import DECISION_METRIC
from steps.lib.registry import CHALLENGER_ALIAS, PREVIOUS_CHAMPION_TAG, model_version_for
from steps.lib.release import ARTIFACT_DIGEST_TAG, folder_digest
from tests.code.registry.conftest import copy_data_run
from tests.conftest import REPO, mlflow_run, run_id_of

pytestmark = pytest.mark.integration

STRONG = {"min_df": 1}
WEAK = {"min_df": 1, "max_features": 20}
GATE = {"bootstrap_samples": 100}


def register(tracking, data_run_id: str, model_name: str) -> SimpleNamespace:
    result = mlflow_run(tracking, "register", data_run_id=data_run_id, model_name=model_name, **GATE)
    run = MlflowClient().get_run(run_id_of(result))
    return SimpleNamespace(run=run, stdout=result.stdout)


def as_argv(params: dict) -> list[str]:
    return [item for key, value in params.items() for item in (f"--{key.replace('_', '-')}", str(value))]


def in_process(tracking, step_main, params: dict) -> SimpleNamespace:
    """Run an entry point's `main` here, on the module's experiment; its run and what it printed."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("MLFLOW_EXPERIMENT_ID", tracking.experiment_id)
        step_main.main(as_argv(params), standalone_mode=False)
    run = mlflow.last_active_run()
    assert run.info.status == "FINISHED", out.getvalue()[-2000:]
    return SimpleNamespace(run=run, stdout=out.getvalue())


def train_here(tracking, data_run_id: str, params: dict) -> str:
    return in_process(tracking, train_baseline.main, {"data_run_id": data_run_id, **params}).run.info.run_id


def register_here(tracking, data_run_id: str, model_name: str) -> SimpleNamespace:
    return in_process(tracking, register_step.main, {"data_run_id": data_run_id, "model_name": model_name, **GATE})


def unfinished_candidates(experiment_id: str, data_run_id: str) -> list[str]:
    """Candidate-tagged runs with an unbeatable metric and no model: registering one would fail."""
    client, ids = MlflowClient(), []
    for status in ("FAILED", "KILLED", "RUNNING"):
        run = client.create_run(experiment_id, tags={"candidate": "true", "data_run_id": data_run_id})
        client.log_metric(run.info.run_id, DECISION_METRIC, 0.999)
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status)
        ids.append(run.info.run_id)
    return ids


def champion(model_name: str):
    return MlflowClient().get_model_version_by_alias(model_name, "champion")


def version_of(model_name: str, run_id: str):
    versions = MlflowClient().search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    assert len(versions) == 1, versions
    return versions[0]


@pytest.fixture(scope="module")
def first_round(registry_tracking, prepared_run_id, model_name):
    """Two finished candidates plus failed/killed/running ones on one data run, then `register`."""
    data = copy_data_run(registry_tracking, prepared_run_id, "data-1")
    strong, weak = train_here(registry_tracking, data, STRONG), train_here(registry_tracking, data, WEAK)
    ignored = unfinished_candidates(registry_tracking.experiment_id, data)
    return SimpleNamespace(
        data=data, strong=strong, weak=weak, ignored=ignored, **vars(register(registry_tracking, data, model_name))
    )


def test_best_of_two_becomes_the_first_champion(first_round, model_name):
    metrics = {run_id: MlflowClient().get_run(run_id).data.metrics for run_id in (first_round.strong, first_round.weak)}
    assert metrics[first_round.strong][DECISION_METRIC] > metrics[first_round.weak][DECISION_METRIC]
    current = champion(model_name)
    assert current.run_id == first_round.strong
    tags = current.tags
    assert tags["gate.metric"] == DECISION_METRIC == "val_macro_f1"
    assert tags["gate.passed"] == "true"
    assert tags["gate.champion_value"] == "none"
    # The gate re-scores the registered pyfunc on the validation rows: same figure as training logged.
    assert float(tags["gate.candidate_value"]) == pytest.approx(metrics[first_round.strong][DECISION_METRIC], abs=1e-6)
    assert first_round.run.data.tags["outcome"] == "first_champion"
    assert f"mlflow models serve -m models:/{model_name}@champion" in first_round.stdout


def test_ranking_lists_finished_candidates_only_and_declares_the_behaviour_gate(first_round):
    run = first_round.run
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="ranking.json")
    ranking = pd.read_json(local, orient="split")
    assert ranking["run_id"].tolist() == [first_round.strong, first_round.weak]
    assert not set(first_round.ignored) & set(ranking["run_id"])
    assert {DECISION_METRIC, "test_macro_f1", "behaviour_failure_rate", "eligible", "reason"} <= set(ranking.columns)
    assert "max_behaviour_failure_rate" in run.data.params
    assert run.data.tags["behaviour_gate"] == "off"
    assert run.data.tags["data_run_id"] == first_round.data


def test_registering_the_same_run_again_reuses_its_version(first_round, model_name):
    version, created = model_version_for(MlflowClient(), model_name, first_round.strong)
    assert not created
    assert version.version == version_of(model_name, first_round.strong).version


@pytest.fixture(scope="module")
def weaker_round(first_round, registry_tracking, prepared_run_id, model_name):
    """A later data run whose only candidate is weak: it is registered but must not become champion."""
    data = copy_data_run(registry_tracking, prepared_run_id, "data-2")
    weak = train_here(registry_tracking, data, WEAK)
    outcome = register_here(registry_tracking, data, model_name)
    return SimpleNamespace(weak=weak, first_champion_run=first_round.strong, **vars(outcome))


def test_weaker_later_candidate_does_not_displace_the_champion(first_round, weaker_round, model_name):
    assert champion(model_name).run_id == first_round.strong
    tags = version_of(model_name, weaker_round.weak).tags
    assert tags["gate.passed"] == "false"
    candidate, incumbent = float(tags["gate.candidate_value"]), float(tags["gate.champion_value"])
    assert candidate < incumbent
    assert float(tags["gate.diff_ci_low"]) <= candidate - incumbent <= float(tags["gate.diff_ci_high"])
    assert weaker_round.run.data.tags["outcome"] == "kept_champion"
    assert weaker_round.run.data.metrics["gate_passed"] == 0.0
    assert "gate failed" in weaker_round.stdout
    # The best candidate the gate did not promote is the challenger, for evaluate and shadow runs.
    challenger = MlflowClient().get_model_version_by_alias(model_name, CHALLENGER_ALIAS)
    assert challenger.run_id == weaker_round.weak
    assert f"models:/{model_name}@{CHALLENGER_ALIAS}" in weaker_round.stdout


def test_evaluate_takes_the_challenger_alias_as_it_takes_the_champion(weaker_round, registry_tracking, model_name):
    in_process(registry_tracking, evaluate_step.main, {"model_uri": f"models:/{model_name}@{CHALLENGER_ALIAS}"})
    metrics = MlflowClient().get_run(weaker_round.weak).data.metrics  # logged on the challenger's own run
    assert "behaviour_failure_rate" in metrics and "service_traffic_accuracy" in metrics


def pin(tracking, model_uri: str, dest: Path) -> subprocess.CompletedProcess:
    """CD's pin step, as cd.yml runs it, against the module's store."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.uri}
    command = [sys.executable, "-m", "scripts.pin_model", "--model-uri", model_uri, "--dest", str(dest)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def refused(result: subprocess.CompletedProcess, dest: Path) -> str:
    """CD's pin step refused in one line, and left no file of the refused version behind."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and not dest.exists()
    assert [path.name for path in dest.parent.iterdir()] == [], "nothing of the refused version may stay"
    return result.stderr.strip().splitlines()[-1]


def model_files(model_name: str, version: str) -> Path:
    """Where the store keeps a version's files (a local folder in the test store)."""
    source = MlflowClient().get_model_version(model_name, version).source
    return Path(mlflow.get_logged_model(source.removeprefix("models:/")).artifact_location.removeprefix("file://"))


def test_cd_releases_the_champion_with_the_files_the_gate_judged(first_round, registry_tracking, model_name, tmp_path):
    current = champion(model_name)
    result = pin(registry_tracking, f"models:/{model_name}@champion", tmp_path / "build" / "model")
    assert result.returncode == 0, result.stderr
    assert current.tags[ARTIFACT_DIGEST_TAG] == folder_digest(tmp_path / "build" / "model")
    assert f"models:/{model_name}/{current.version}" in result.stdout


def test_cd_refuses_a_version_whose_gate_failed(weaker_round, registry_tracking, model_name, tmp_path):
    failed = version_of(model_name, weaker_round.weak)
    result = pin(registry_tracking, f"models:/{model_name}/{failed.version}", tmp_path / "build" / "model")
    assert "its gate did not pass (gate.passed=false)" in refused(result, tmp_path / "build" / "model")


def test_cd_refuses_a_version_registered_around_the_gate(first_round, registry_tracking, model_name, tmp_path):
    """A version made with `mlflow.register_model` and an alias set by hand carries no verdict."""
    ungated = f"{model_name}-ungated"
    version = mlflow.register_model(f"runs:/{first_round.weak}/model", ungated).version
    MlflowClient().set_registered_model_alias(ungated, "champion", version)
    result = pin(registry_tracking, f"models:/{ungated}@champion", tmp_path / "build" / "model")
    assert "carries no gate verdict" in refused(result, tmp_path / "build" / "model")


def test_cd_refuses_a_version_whose_files_changed_after_registration(
    first_round, registry_tracking, model_name, tmp_path
):
    current = champion(model_name)
    requirements = model_files(model_name, current.version) / "requirements.txt"
    original = requirements.read_bytes()
    requirements.write_bytes(original + b"planted-package==1.0\n")
    try:
        result = pin(registry_tracking, f"models:/{model_name}/{current.version}", tmp_path / "build" / "model")
    finally:
        requirements.write_bytes(original)
    line = refused(result, tmp_path / "build" / "model")
    assert "differs from the" in line and "recorded at registration" in line, line


def test_an_equally_good_candidate_passes_the_gate_and_takes_the_alias(
    weaker_round, registry_tracking, prepared_run_id, model_name
):
    data = copy_data_run(registry_tracking, prepared_run_id, "data-3")
    same_model = train_here(registry_tracking, data, STRONG)
    outcome = register_here(registry_tracking, data, model_name)
    current = champion(model_name)
    assert current.run_id == same_model
    assert current.tags["gate.passed"] == "true"
    assert float(current.tags["gate.candidate_value"]) == pytest.approx(float(current.tags["gate.champion_value"]))
    assert outcome.run.data.tags["outcome"] == "promoted"
    # register records whom the new champion replaced (what rollback reads), and clears the challenger.
    replaced = version_of(model_name, weaker_round.first_champion_run)
    assert current.tags[PREVIOUS_CHAMPION_TAG] == str(replaced.version)
    assert current.tags["champion.reason"] == f"promoted: gate on {DECISION_METRIC} passed"
    assert replaced.tags["champion.replaced_by"] == str(current.version)
    with pytest.raises(MlflowException):
        MlflowClient().get_model_version_by_alias(model_name, CHALLENGER_ALIAS)


def test_every_decided_version_gets_a_model_card_whose_figures_are_the_runs(first_round, model_name, prepared_run_id):
    client = MlflowClient()
    version = version_of(model_name, first_round.strong)
    run = client.get_run(first_round.strong)
    card = mlflow.artifacts.load_text(f"runs:/{first_round.strong}/{CARD_ARTIFACT}")
    assert version.description == card
    for section in (
        "## Intended use",
        "## Data and licences",
        "## Quality",
        "## Calibration",
        "## Operating point",
        "## Behaviour (generated suite)",
        "## Service traffic",
        "## Registry decision",
        "## Known limits",
    ):
        assert section in card
    metrics = run.data.metrics
    for name in ("macro_f1", "false_alarm_rate", "miss_rate", "roc_auc", "pr_auc", "f1"):
        assert f"| {name} | {metrics[f'val_{name}']:.4f} | {metrics[f'test_{name}']:.4f} |" in card
    assert f"Threshold {metrics['threshold']:.3f}: {run.data.params['threshold_rule']}" in card
    assert f"of 100 flagged tweets, about {round(100 * metrics['val_precision'])} are complaints" in card
    assert "licence: see the source" in card and "sarcasm" in card  # this module's data runs are bare copies
    real_data = "\n".join(model_card_module._data_section(client.get_run(prepared_run_id), run))
    assert "the sentiment corpus `embedded`" in real_data and "licence: CrowdFlower" in real_data
    digest = client.get_run(prepared_run_id).data.tags["complaint_set_sha256"]
    assert f"`labels/complaints.csv` (sha256 {digest})" in real_data
    assert "Not evaluated yet" in card  # no evaluate run in this module: said, not invented
    assert f"passed: {version.tags['gate.passed']}" in card


def test_an_artifact_store_failure_after_registering_withdraws_the_version(
    first_round, registry_tracking, prepared_run_id, model_name, capsys
):
    """The card is the last artifact write before the aliases move: failing there leaves no version behind."""
    data = copy_data_run(registry_tracking, prepared_run_id, "data-outage")
    candidate = train_here(registry_tracking, data, STRONG)
    champion_before = champion(model_name).version

    def store_down(*_args, **_kwargs):
        raise MlflowException("API request to .../mlflow-artifacts/artifacts failed: too many 500 error responses")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as stopped:
        patch.setenv("MLFLOW_EXPERIMENT_ID", registry_tracking.experiment_id)
        patch.setattr(register_step, "publish_model_card", store_down)
        register_step.main(as_argv({"data_run_id": data, "model_name": model_name, **GATE}), standalone_mode=False)
    assert stopped.value.code == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("register: error:")]
    assert "registering stopped before any alias moved: API request" in line and "was withdrawn" in line
    assert mlflow.last_active_run().info.status == "FAILED"
    assert MlflowClient().search_model_versions(f"name = '{model_name}' and run_id = '{candidate}'") == []
    assert champion(model_name).version == champion_before
    # The store back, the same register completes and decides: nothing of the failed attempt is in its way.
    register_here(registry_tracking, data, model_name)
    assert version_of(model_name, candidate).tags["gate.passed"] in {"true", "false"}
