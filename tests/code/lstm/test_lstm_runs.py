"""`train_lstm` and `compare_lstm` through `mlflow run`, the logged pyfunc served, both Keras backends."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from steps.lib.lstm_arms import lstm_candidates
from tests.conftest import CANDIDATE_METRICS, mlflow_run, run_id_of

pytestmark = pytest.mark.integration

# Forwarded unchanged by compare_lstm, so its stem+word2vec arm is this same configuration.
TINY = {
    "epochs": 2,
    "vocab_size": 600,
    "max_length": 24,
    "embedding_dim": 8,
    "units": 4,
    "batch_size": 64,
    "w2v_epochs": 1,
    "min_count": 1,
}


def artifact_paths(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.fixture(scope="module")
def lstm_run_id(tracking, prepared_run_id) -> str:
    result = mlflow_run(
        tracking, "train_lstm", data_run_id=prepared_run_id, preprocessing="stem", embeddings="word2vec", **TINY
    )
    return run_id_of(result)


@pytest.fixture(scope="module")
def compare_run_id(tracking, prepared_run_id) -> str:
    # By experiment name, as the README runs it: the arms are child processes that inherit the name.
    result = mlflow_run(
        tracking, "compare_lstm", by_name=True, data_run_id=prepared_run_id, learned_control="false", **TINY
    )
    return run_id_of(result)


def test_tiny_run_is_a_candidate_with_params_curves_and_artifacts(lstm_run_id, prepared_run_id):
    client = MlflowClient()
    run = client.get_run(lstm_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["candidate"] == "true" and run.data.tags["model_family"] == "lstm"
    params = run.data.params
    assert params["data_run_id"] == prepared_run_id
    assert (params["preprocessing"], params["embeddings"], params["keras_backend"]) == ("stem", "word2vec", "torch")
    assert {"seed", "units", "vocab_size", "max_length", "learning_rate", "sg", "w2v_epochs"} <= set(params)
    assert set(run.data.metrics) >= CANDIDATE_METRICS
    assert 0.0 <= run.data.metrics["val_roc_auc"] <= 1.0
    for stage in ("sentiment", "complaints"):  # the sentiment corpus, then the complaints: a curve each
        epochs = int(run.data.metrics[f"{stage}_epochs_trained"])
        for curve in ("epoch_train_loss", "epoch_train_auc", "epoch_val_loss", "epoch_val_auc"):
            history = client.get_metric_history(lstm_run_id, f"{stage}_{curve}")
            assert sorted(metric.step for metric in history) == list(range(epochs))
    # Keras' own names would collide with nothing but show as NaN columns beside the other families.
    assert not {"loss", "auc", "val_loss", "val_auc"} & set(run.data.metrics)
    assert run.data.metrics["served_parity_max_abs_diff"] < 1e-5
    artifacts = artifact_paths(client, lstm_run_id)
    assert "embeddings/word2vec/word2vec.model" in artifacts
    assert {"predictions/val.json", "plots/val_roc_curve.png", "model_summary.txt"} <= artifacts


def test_logged_model_holds_keras_file_vocabulary_and_cpu_torch_requirements(lstm_run_id, tmp_path):
    import mlflow

    local = mlflow.artifacts.download_artifacts(f"runs:/{lstm_run_id}/model", dst_path=str(tmp_path))
    requirements = (tmp_path / "model" / "requirements.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert any(line.startswith("torch==") for line in requirements)
    vocabulary = json.loads((tmp_path / "model" / "artifacts" / "vocabulary.json").read_text())
    assert vocabulary["preprocessing"] == "stem" and vocabulary["max_length"] == TINY["max_length"]
    assert (tmp_path / "model" / "artifacts" / "model.keras").stat().st_size > 0
    assert local


def test_served_lstm_answers_the_contract(serve, lstm_run_id):
    server = serve(f"runs:/{lstm_run_id}/model")
    texts = ["@united lost my bag AGAIN 😡", "thanks for the smooth flight :)", "word " * 500, "très bien 👍"]
    response = server.invocations({"dataframe_records": [{"text": text} for text in texts]})
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert len(rows) == len(texts)
    for row in rows:
        assert row["label"] in ("negative", "not_negative")
        assert 0.0 <= row["proba_negative"] <= 1.0
        assert row["model_version"] == f"lstm:{lstm_run_id}"
        assert row["label"] == ("negative" if row["proba_negative"] >= row["threshold"] else "not_negative")
    forced = server.invocations({"inputs": {"text": texts[:1]}, "params": {"threshold": 0.0}}).json()
    assert forced["predictions"][0]["label"] == "negative" and forced["predictions"][0]["threshold"] == 0.0
    refused = server.invocations({"dataframe_records": [{"text": "ok"}, {"text": "  "}]})
    assert refused.status_code == 400 and "row 1: text is empty" in refused.text
    assert server.invocations({"dataframe_records": [{"text": "still serving"}]}).status_code == 200


def test_tensorflow_backend_trains_and_is_recorded(tracking, prepared_run_id, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    result = mlflow_run(tracking, "train_lstm", data_run_id=prepared_run_id, embeddings="learned", **TINY)
    run = MlflowClient().get_run(run_id_of(result))
    assert run.info.status == "FINISHED" and run.data.tags["candidate"] == "true"
    assert run.data.params["keras_backend"] == "tensorflow" and run.data.params["embeddings"] == "learned"
    assert run.data.metrics["served_parity_max_abs_diff"] < 1e-5
    assert "embeddings" not in {item.path for item in MlflowClient().list_artifacts(run.info.run_id)}


# Each validation message is pinned in test_lstm_units; here the run itself: FAILED, one line, nothing logged.
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"data_run_id": "0" * 32}, f"data_run_id '{'0' * 32}' does not exist"),
    ],
)
def test_bad_parameters_fail_the_run_with_one_line(tracking, prepared_run_id, params, message):
    result = mlflow_run(tracking, "train_lstm", check=False, **({"data_run_id": prepared_run_id} | params))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("train_lstm: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.stderr
    run = MlflowClient().get_run(run_id_of(result))
    assert run.info.status == "FAILED"
    assert "candidate" not in run.data.tags and "val_roc_auc" not in run.data.metrics


def test_compare_lstm_logs_both_comparisons_as_children_with_table_chart_and_decisions(compare_run_id):
    client = MlflowClient()
    parent = client.get_run(compare_run_id)
    assert parent.info.status == "FINISHED"
    best = parent.data.tags["decision.preprocessing"]
    assert best in ("stem", "lemma") and parent.data.tags["decision.embeddings"] in ("word2vec", "fasttext")
    children = lstm_candidates(compare_run_id)
    arms = {client.get_run(run_id).data.tags["lstm_arm"] for run_id in children}
    assert arms == {"stem+word2vec", "lemma+word2vec", f"{best}+fasttext"}  # the word2vec winner is reused
    auc = [client.get_run(run_id).data.metrics["val_roc_auc"] for run_id in children]
    assert auc == sorted(auc, reverse=True) and parent.data.tags["best_lstm_run_id"] == children[0]
    data_runs = {client.get_run(run_id).data.params["data_run_id"] for run_id in children}
    assert data_runs == {parent.data.params["data_run_id"]}
    assert {"comparison/table.csv", "comparison/table.json", "comparison/chart.png", "comparison/decisions.md"} <= (
        artifact_paths(client, compare_run_id)
    )
    import mlflow

    decisions = mlflow.artifacts.load_text(f"runs:/{compare_run_id}/comparison/decisions.md")
    assert "## 1. Stemming vs lemmatisation" in decisions and "## 2. Word2Vec vs FastText" in decisions
    assert decisions.count("**Decision:") == 2 and "bootstrap 95% interval" in decisions


def test_two_identical_runs_give_the_same_validation_metrics(lstm_run_id, compare_run_id):
    client = MlflowClient()
    twin = next(
        run_id
        for run_id in lstm_candidates(compare_run_id)
        if client.get_run(run_id).data.tags["lstm_arm"] == "stem+word2vec"
    )
    first, second = client.get_run(lstm_run_id).data.metrics, client.get_run(twin).data.metrics
    for key in ("val_roc_auc", "val_f1", "val_pr_auc", "threshold"):
        assert round(first[key], 3) == round(second[key], 3), key
