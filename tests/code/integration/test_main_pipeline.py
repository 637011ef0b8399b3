"""`mlflow run .` (entry point `main`) chains every step on a tiny sample and crowns a champion."""

import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from tests.code.transformer.conftest import build_tiny_distilbert
from tests.conftest import mlflow_run, new_tracking, run_id_of

pytestmark = pytest.mark.integration


def test_main_runs_every_step_nested_and_registers_a_champion(tmp_path_factory):
    tracking = new_tracking(tmp_path_factory.mktemp("main-store"))
    tiny_bert = build_tiny_distilbert(tmp_path_factory.mktemp("tiny-bert"))
    result = mlflow_run(
        tracking,
        "main",
        max_rows=600,
        lstm_epochs=1,
        lstm_learned_control="false",
        transformer_pretrained=str(tiny_bert),
        transformer_max_train_samples=200,
    )
    parent = run_id_of(result)
    assert "==> [1/" in result.stdout and "register" in result.stdout
    client = MlflowClient(tracking.uri)
    children = client.search_runs([tracking.experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'")
    steps = sorted(run.data.tags.get("mlflow.project.entryPoint") for run in children)
    assert steps == sorted(
        ["prepare_data", "train_baseline", "compare_lstm", "train_bert", "register"] + ["evaluate"] * 5
    )
    candidates = client.search_runs([tracking.experiment_id], "tags.candidate = 'true'")
    assert sorted(run.data.tags["model_family"] for run in candidates) == [
        "baseline",
        "lstm",
        "lstm",
        "lstm",
        "transformer",
    ]
    assert all("behaviour_failure_rate" in run.data.metrics for run in candidates)
    assert all(run.info.status == "FINISHED" for run in children)
    champion = client.get_model_version_by_alias("tweet-sentiment", "champion")
    assert champion.run_id in {run.info.run_id for run in candidates}
    assert champion.tags["gate.passed"] == "true"
    assert "champion: tweet-sentiment version 1" in result.stdout
