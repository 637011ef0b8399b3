"""`mlflow run . -e train_bert` on a tiny DistilBERT, as a user runs it; the logged model, reloaded and served."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import CANDIDATE_METRICS, RESPONSE_FIELDS, mlflow_run, run_id_of

pytestmark = pytest.mark.integration

EXPORT_METRICS = {"val_roc_auc_torch", "val_roc_auc_onnx", "onnx_parity_max_abs_diff", "onnx_int8_parity_max_abs_diff"}
# The graph each backend serves, and its batch size (int8 must score one tweet per call).
BACKEND_GRAPHS = {"onnx": ("model.onnx", 64), "onnx_int8": ("model_int8.onnx", 1)}


@pytest.fixture(scope="module")
def bert_run_id(tracking, prepared_run_id, tiny_pretrained) -> str:
    result = mlflow_run(
        tracking,
        "train_bert",
        data_run_id=prepared_run_id,
        pretrained=str(tiny_pretrained),
        max_length=32,
        batch_size=16,
        max_train_samples=300,
        learning_rate=0.001,
        seed=5,
    )
    return run_id_of(result)


def test_run_logs_the_candidate_contract_and_the_transformer_extras(prepared_run_id, bert_run_id, tiny_pretrained):
    client = MlflowClient()
    run = client.get_run(bert_run_id)
    assert run.info.status == "FINISHED"
    params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
    assert params["data_run_id"] == prepared_run_id
    assert params["resolved_pretrained_model"] == tags["resolved_pretrained_model"] == str(tiny_pretrained)
    assert tags["pretrained_source"] == "local_dir" and "pretrained_fallback" not in tags
    assert {params[k] for k in ("max_length", "batch_size", "max_train_samples")} == {"32", "16", "300"}
    assert tags["candidate"] == "true" and tags["model_family"] == "transformer"
    assert set(metrics) >= CANDIDATE_METRICS | EXPORT_METRICS
    assert metrics["sentiment_train_samples"] == 300 and metrics["sentiment_train_steps"] == 19  # ceil(300 / 16)
    complaints = len(
        pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{prepared_run_id}/data/train.parquet"))
    )
    assert metrics["complaints_train_samples"] == complaints
    assert metrics["complaints_train_steps"] == 3 * -(-complaints // 16)  # three epochs over the complaint split
    assert metrics["onnx_parity_max_abs_diff"] < 1e-4
    assert metrics["served_parity_max_abs_diff"] < 1e-6  # the logged pyfunc scores exactly as in training
    graph, batch_size = BACKEND_GRAPHS[tags["inference_backend"]]
    assert metrics["inference_batch_size"] == batch_size
    losses = client.get_metric_history(bert_run_id, "sentiment_train_loss")
    assert sorted(m.step for m in losses) == list(range(1, 20))  # one point per optimiser step
    for stage, peak in (("sentiment", 0.001), ("complaints", 3e-5)):
        history = client.get_metric_history(bert_run_id, f"{stage}_learning_rate")
        rates = [m.value for m in sorted(history, key=lambda m: m.step)]
        assert rates[0] < max(rates) <= peak and rates[-1] < max(rates)  # linear warmup, then linear decay
    plots = {f.path for f in client.list_artifacts(bert_run_id, "plots")}
    curves = {"plots/sentiment_train_loss_curve.png", "plots/complaints_train_loss_curve.png"}
    assert curves | {"plots/val_threshold_sweep.png", "plots/val_roc_curve.png"} <= plots
    model_files = {f.path.rsplit("/", 1)[-1] for f in client.list_artifacts(bert_run_id, "model/artifacts")}
    assert model_files == {"hf_model", graph}
    hf_files = {f.path.rsplit("/", 1)[-1] for f in client.list_artifacts(bert_run_id, "model/artifacts/hf_model")}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= hf_files


def test_logged_model_needs_no_training_stack(bert_run_id):
    local = mlflow.artifacts.download_artifacts(f"runs:/{bert_run_id}/model")
    requirements = {line.split("==")[0] for line in (Path(local) / "requirements.txt").read_text().split()}
    assert {"onnxruntime", "tokenizers", "mlflow"} <= requirements
    assert not requirements & {"torch", "transformers", "scikit-learn", "keras", "tensorflow"}
    mlmodel = (Path(local) / "MLmodel").read_text()
    assert "hf_model" in mlmodel and "onnx_model" in mlmodel


def test_fresh_process_reproduces_the_logged_probabilities(tracking, bert_run_id, tmp_path):
    table = mlflow.artifacts.load_dict(f"runs:/{bert_run_id}/predictions/val.json")
    logged = pd.DataFrame(table["data"], columns=table["columns"])
    (tmp_path / "texts.json").write_text(json.dumps(logged["text"].tolist()))
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model('runs:/{bert_run_id}/model')\n"
        f"texts = json.load(open({str(tmp_path / 'texts.json')!r}))\n"
        "out = model.predict(pd.DataFrame({'text': texts}))\n"
        "print(json.dumps(out['proba_negative'].tolist()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=tracking.env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(fresh, logged["proba_negative"].to_numpy(), atol=1e-6)


def test_served_model_answers_the_contract(bert_run_id, serve):
    server = serve(f"runs:/{bert_run_id}/model")
    texts = ["@united lost my bag, worst airline ever 😡", "Thanks for the smooth flight :)", "x" * 100_000]
    answer = server.invocations({"dataframe_records": [{"text": t} for t in texts]})
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert len(rows) == 3
    for row in rows:
        assert set(row) == RESPONSE_FIELDS
        assert row["label"] in {"negative", "not_negative"} and 0.0 <= row["proba_negative"] <= 1.0
        assert row["model_version"] == f"transformer:{bert_run_id}"
    override = server.invocations({"inputs": {"text": texts[:1]}, "params": {"threshold": 0.0}})
    assert override.json()["predictions"][0]["label"] == "negative"
    bad = server.invocations({"dataframe_records": [{"text": "fine"}, {"text": "   "}]})
    assert bad.status_code == 400 and "row 1: text is empty" in bad.text
    assert server.invocations({"dataframe_records": [{"text": "still serving"}]}).status_code == 200


def test_without_onnx_export_the_run_finishes_and_serves_torch(tracking, prepared_run_id, tiny_pretrained, serve):
    """export_onnx=false used to die with "terminate called without an active exception" once the pyfunc
    was logged: the torch models its checks load were freed by a scoring worker while Python finalised."""
    result = mlflow_run(
        tracking,
        "train_bert",
        check=False,
        data_run_id=prepared_run_id,
        pretrained=str(tiny_pretrained),
        max_length=16,
        batch_size=16,
        max_train_samples=200,
        complaint_epochs=1,
        export_onnx="false",
    )
    assert "terminate called" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = run_id_of(result)
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["inference_backend"] == "torch"
    assert "val_roc_auc_onnx" not in run.data.metrics and run.data.metrics["served_parity_max_abs_diff"] < 1e-6
    model_files = {f.path.rsplit("/", 1)[-1] for f in MlflowClient().list_artifacts(run_id, "model/artifacts")}
    assert model_files == {"hf_model"}
    server = serve(f"runs:/{run_id}/model")
    answer = server.invocations({"dataframe_records": [{"text": "@united lost my bag again"}, {"text": "thanks"}]})
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert len(rows) == 2 and all(0.0 <= row["proba_negative"] <= 1.0 for row in rows)
    assert rows[0]["model_version"] == f"transformer:{run_id}"


def test_explicit_pretrained_that_cannot_be_loaded_fails_the_run(tracking, prepared_run_id):
    result = mlflow_run(
        tracking, "train_bert", check=False, data_run_id=prepared_run_id, pretrained="no-such-org/no-such-model"
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("train_bert: error:")]
    assert len(errors) == 1 and "no-such-org/no-such-model" in errors[0] and "never replaced" in errors[0]
    run = MlflowClient().get_run(run_id_of(result))
    assert run.info.status == "FAILED"
    assert "candidate" not in run.data.tags
