"""`mlflow run` of prepare_data and train_baseline on a small sample, as a user runs them."""

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from steps.lib.complaint_labels import load_complaint_labels, prepared_splits
from tests.conftest import CANDIDATE_METRICS, RESPONSE_FIELDS, mlflow_run, run_id_of
from tests.data.test_complaint_labels import DIGEST as COMPLAINT_SET_DIGEST

pytestmark = pytest.mark.integration


def test_prepare_data_logs_splits_report_and_dataset_inputs(tracking, prepared_run_id):
    client = MlflowClient()
    run = client.get_run(prepared_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["step"] == "prepare_data"
    assert run.data.params["max_rows"] == "900"
    files = {f.path for f in client.list_artifacts(prepared_run_id, "data")}
    assert files == {f"data/{name}.parquet" for name in ("train", "val", "test", "sentiment")}
    frames = {
        name: pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{prepared_run_id}/data/{name}.parquet"))
        for name in ("train", "val", "test", "sentiment")
    }
    stored = prepared_splits(load_complaint_labels()[0], max_rows=900, seed=7)
    for name in ("train", "val", "test"):  # the complaint set's stored split, each cut to its share of max_rows
        assert list(frames[name].columns) == ["text", "label", "source"] and set(frames[name]["label"]) == {0, 1}
        assert frames[name]["text"].tolist() == stored[name]["text"].tolist()
    assert sum(len(frames[name]) for name in ("train", "val", "test")) == pytest.approx(900, abs=2)  # rounding
    sentiment = frames["sentiment"]
    assert list(sentiment.columns) == ["text", "label", "source", "sentiment"]
    assert set(sentiment["sentiment"]) == {"negative", "neutral", "positive"}
    assert (sentiment["label"] == (sentiment["sentiment"] == "negative")).all()
    assert not set(sentiment["text"]) & (set(frames["val"]["text"]) | set(frames["test"]["text"]))
    report = mlflow.artifacts.load_dict(f"runs:/{prepared_run_id}/data_report.json")
    assert report["complaint_set"]["sha256_12"] == run.data.tags["complaint_set_sha256"] == COMPLAINT_SET_DIGEST
    contexts = {
        i.dataset.name: ({t.key: t.value for t in i.tags}["mlflow.data.context"], i.dataset.digest)
        for i in run.inputs.dataset_inputs
    }
    assert {name: ctx for name, (ctx, _) in contexts.items()} == {
        "complaints": "labelling",
        "train": "training",
        "val": "validation",
        "test": "testing",
        "sentiment": "pretraining",
    }
    assert all(digest for _, digest in contexts.values())


def test_baseline_run_logs_the_candidate_contract(tracking, prepared_run_id, baseline_run_id):
    client = MlflowClient()
    run = client.get_run(baseline_run_id)
    assert run.info.status == "FINISHED"
    assert set(run.data.metrics) >= CANDIDATE_METRICS
    assert run.data.tags["candidate"] == "true" and run.data.tags["model_family"] == "baseline"
    assert run.data.params["data_run_id"] == prepared_run_id
    assert run.data.params["threshold_policy"] == "cost" and run.data.params["cost_ratio"] == "2"
    assert "missed complaint costing 2 false alarms" in run.data.params["threshold_rule"]
    assert 0.0 < run.data.metrics["val_flagged_share"] < 1.0
    assert run.data.metrics["threshold"] == pytest.approx(1 / 3)
    assert 0.0 <= run.data.metrics["threshold_empirical_min_cost"] <= 1.0
    assert 0.5 < run.data.metrics["val_roc_auc"] <= 1.0
    plots = {f.path for f in client.list_artifacts(baseline_run_id, "plots")}
    assert {"plots/val_confusion_matrix.png", "plots/val_roc_curve.png", "plots/test_pr_curve.png"} <= plots
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["train", "val", "test", "sentiment"]
    # The Models tab: the logged model carries the run's metrics, val_/test_ ones on the split's dataset input.
    digests = {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs}
    linked = {m.key: m for m in mlflow.get_logged_model(run.outputs.model_outputs[-1].model_id).metrics}
    for key in CANDIDATE_METRICS:
        assert linked[key].value == pytest.approx(run.data.metrics[key]), key
        split = key.split("_")[0] if key.startswith(("val_", "test_")) else None
        assert (linked[key].dataset_name, linked[key].dataset_digest) == (split, digests.get(split)), key
    info = mlflow.models.get_model_info(f"runs:/{baseline_run_id}/model")
    assert info.signature.inputs.input_names() == ["text"]
    assert info.signature.params.params[0].default == pytest.approx(run.data.metrics["threshold"])
    assert info.saved_input_example_info is not None
    model = mlflow.pyfunc.load_model(f"runs:/{baseline_run_id}/model")
    predictions = model.predict(pd.DataFrame({"text": ["worst airline ever, lost my bag"]}))
    assert predictions.loc[0, "model_version"] == f"baseline:{baseline_run_id}"
    assert predictions.loc[0, "label"] in ("negative", "not_negative")


def test_training_reuses_the_newest_prepared_data_when_none_is_given(tracking, prepared_run_id):
    result = mlflow_run(tracking, "train_baseline", min_df=1, word_ngram_max=1)
    run = MlflowClient().get_run(run_id_of(result))
    assert run.data.tags["data_run_id"] == prepared_run_id


@pytest.mark.parametrize(
    ("entry_point", "params", "message"),
    [
        ("prepare_data", {"source": "sentiment140", "path": "/nonexistent/tweets.csv"}, "file not found"),
        ("train_baseline", {"data_run_id": "0" * 32}, "does not exist"),
    ],
)
def test_bad_parameters_fail_the_run_with_one_line(tracking, prepared_run_id, entry_point, params, message):
    result = mlflow_run(tracking, entry_point, check=False, **params)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if f"{entry_point}: error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0]
    run = MlflowClient().get_run(run_id_of(result))
    assert run.info.status == "FAILED"
    assert not MlflowClient().list_artifacts(run.info.run_id, "data")
    assert "candidate" not in run.data.tags


@pytest.mark.parametrize(
    ("entry_point", "params", "message"),
    [
        ("prepare_data", {"source": "reddit"}, "'--source': 'reddit' is not one of 'embedded', 'sentiment140',"),
        ("train_baseline", {"preprocessing": "porter"}, "'porter' is not one of 'none', 'stem', 'lemma'"),
    ],
)
def test_an_unknown_choice_fails_the_run_with_one_line_naming_the_accepted_values(
    tracking, prepared_run_id, entry_point, params, message
):
    result = mlflow_run(tracking, entry_point, check=False, **params)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error: Invalid value for")]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert "Traceback" not in result.stderr
    run = MlflowClient().get_run(run_id_of(result))
    assert run.info.status == "FAILED"
    assert not MlflowClient().list_artifacts(run.info.run_id)


def test_served_baseline_answers_the_contract(serve, baseline_run_id):
    server = serve(f"runs:/{baseline_run_id}/model")
    records = server.invocations({"dataframe_records": [{"text": "I hate this airline"}, {"text": "lovely crew :)"}]})
    assert records.status_code == 200
    rows = records.json()["predictions"]
    assert [set(row) for row in rows] == [RESPONSE_FIELDS] * 2
    assert rows[0]["proba_negative"] > rows[1]["proba_negative"]
    columns = server.invocations({"inputs": {"text": ["I hate this airline"]}, "params": {"threshold": 0.0}})
    assert columns.json()["predictions"][0]["label"] == "negative"
    assert columns.json()["predictions"][0]["proba_negative"] == pytest.approx(rows[0]["proba_negative"])
    bad = server.invocations({"dataframe_records": [{"text": "fine"}, {"text": ""}]})
    assert bad.status_code == 400 and "row 1: text is empty" in bad.json()["message"]
    assert server.invocations({"dataframe_records": [{"text": "still up"}]}).status_code == 200
