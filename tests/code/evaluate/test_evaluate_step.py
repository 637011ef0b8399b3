"""`mlflow run . -e evaluate` on the tiny baseline: what lands on the candidate run and on its own run."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from steps.evaluate import FAILING_COLUMNS, candidate_run_id, main, replace_table
from steps.lib.error_analysis import LENGTH_LABELS, RATE_COLUMNS, WORST_COLUMNS
from steps.lib.service_traffic import load_service_traffic
from steps.lib.tracking import StepError
from tests.conftest import mlflow_run, run_id_of
from tests.data.test_evaluation_sets import CAPABILITIES

ERROR_TABLES = ("error_rate_by_length", "error_rate_by_topic", "worst_false_negatives", "worst_false_positives")


def read_table(run_id: str, path: str) -> pd.DataFrame:
    return pd.read_json(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path), orient="split")


@pytest.fixture(scope="module")
def evaluated(tracking, baseline_run_id):
    result = mlflow_run(tracking, "evaluate", model_uri=f"runs:/{baseline_run_id}/model")
    client = MlflowClient()
    return SimpleNamespace(
        run=client.get_run(run_id_of(result)), candidate=client.get_run(baseline_run_id), stdout=result.stdout
    )


@pytest.mark.integration
def test_behaviour_metrics_are_logged_on_the_evaluated_candidate(evaluated):
    metrics, tags = evaluated.candidate.data.metrics, evaluated.candidate.data.tags
    keys = [f"behaviour_{name}_failure_rate" for name in (*sorted(CAPABILITIES), "mft", "inv", "dir")]
    for key in [*keys, "behaviour_failure_rate"]:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["behaviour_cases"] >= 300
    assert tags["evaluated_by"] == evaluated.run.info.run_id
    assert tags["behaviour_suite"].startswith("1:")


@pytest.mark.integration
def test_failing_cases_and_error_analysis_artifacts_are_on_the_candidate(evaluated):
    run_id, metrics = evaluated.candidate.info.run_id, evaluated.candidate.data.metrics
    failing = read_table(run_id, "behaviour/failing_cases.json")
    assert failing.columns.tolist() == FAILING_COLUMNS
    assert len(failing) == round(metrics["behaviour_failure_rate"] * metrics["behaviour_cases"])
    tests = read_table(run_id, "behaviour/tests.json")
    assert tests["cases"].sum() == metrics["behaviour_cases"]

    tables = {name: read_table(run_id, f"error_analysis/{name}.json") for name in ERROR_TABLES}
    test_rows = len(read_table(run_id, "predictions/test.json"))
    assert tables["error_rate_by_length"]["length_words"].tolist() == list(LENGTH_LABELS)
    assert tables["error_rate_by_length"]["rows"].sum() == test_rows
    assert tables["error_rate_by_topic"].columns.tolist() == ["topic", *RATE_COLUMNS]
    complaint_set_sources = {
        "embedded_airline",
        "embedded_other_brands",
        "sentiment140_negative",
        "sentiment140_positive",
    }
    assert "embedded_airline" in set(tables["error_rate_by_topic"]["topic"]) <= complaint_set_sources
    assert tables["error_rate_by_topic"]["rows"].sum() == test_rows
    assert tables["worst_false_negatives"].columns.tolist() == WORST_COLUMNS
    assert "test_error_rate_embedded_airline" in metrics
    plots = {item.path for item in MlflowClient().list_artifacts(run_id, "plots")}
    assert "plots/test_error_rates.png" in plots


@pytest.mark.integration
def test_service_traffic_is_scored_at_the_served_threshold_and_logged_on_the_candidate(evaluated):
    run_id, metrics = evaluated.candidate.info.run_id, evaluated.candidate.data.metrics
    scored = read_table(run_id, "service_traffic/predictions.json")
    frame, digest = load_service_traffic()
    assert scored["text"].tolist() == frame["text"].tolist()
    assert (scored["predicted"] == (scored["proba_negative"] >= metrics["threshold"])).all()
    assert metrics["service_traffic_accuracy"] == pytest.approx(scored["correct"].mean())
    assert metrics["service_traffic_false_alarm_rate"] == pytest.approx(
        scored.loc[scored.label == 0, "predicted"].mean()
    )
    assert metrics["service_traffic_miss_rate"] == pytest.approx(1 - scored.loc[scored.label == 1, "predicted"].mean())
    assert evaluated.candidate.data.tags["service_traffic_set"] == digest
    assert evaluated.run.data.metrics["service_traffic_accuracy"] == metrics["service_traffic_accuracy"]
    by_kind = read_table(run_id, "service_traffic/errors_by_kind.json")
    assert by_kind["rows"].sum() == len(frame) and "question_neutral" in set(by_kind["kind"])


@pytest.mark.integration
def test_evaluate_run_carries_a_summary_with_the_calibration_report(evaluated):
    run, candidate = evaluated.run, evaluated.candidate
    assert run.data.tags["step"] == "evaluate"
    assert run.data.tags["evaluated_run_id"] == candidate.info.run_id
    assert run.data.metrics["behaviour_failure_rate"] == candidate.data.metrics["behaviour_failure_rate"]
    summary = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/evaluation_summary.json")
    assert summary["calibration"]["val_ece_raw"] == candidate.data.metrics["val_ece_raw"]
    assert summary["calibration"]["val_ece"] == candidate.data.metrics["val_ece"]
    assert summary["behaviour"]["suite"]["cases"] == candidate.data.metrics["behaviour_cases"]
    assert len(read_table(run.info.run_id, "behaviour/cases.json")) == candidate.data.metrics["behaviour_cases"]
    assert "val ECE" in evaluated.stdout


def test_model_uris_resolve_to_their_training_run(baseline_run_id):
    model_id = MlflowClient().get_run(baseline_run_id).outputs.model_outputs[-1].model_id
    name = f"evaluate-test-{uuid.uuid4().hex[:8]}"
    version = mlflow.register_model(f"runs:/{baseline_run_id}/model", name)
    MlflowClient().set_registered_model_alias(name, "champion", version.version)
    for uri in (
        f"runs:/{baseline_run_id}/model",
        f"models:/{model_id}",
        f"models:/{name}/{version.version}",
        f"models:/{name}@champion",
    ):
        assert candidate_run_id(uri) == baseline_run_id, uri
    with pytest.raises(StepError, match="cannot load model models:/no-such-model@champion"):
        candidate_run_id("models:/no-such-model@champion")


def test_re_evaluation_replaces_tables_instead_of_appending(tracking):
    client = MlflowClient()
    run_id = client.create_run(tracking.experiment_id).info.run_id
    replace_table(client, run_id, pd.DataFrame({"a": [1, 2]}), "behaviour/tests.json")
    replace_table(client, run_id, pd.DataFrame({"a": [3, 4, 5]}), "behaviour/tests.json")
    assert read_table(run_id, "behaviour/tests.json")["a"].tolist() == [3, 4, 5]


def test_an_unknown_model_stops_with_a_one_line_error(tracking, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", tracking.experiment_id)
    with pytest.raises(SystemExit) as stopped:
        main(["--model-uri", "models:/no-such-model@champion"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("evaluate: error: cannot load model models:/no-such-model@champion")
