"""The testers' verdicts become training data through the real prepare_data step, and main's reuse sees them."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from dashboard.feedback import Feedback, FeedbackStore
from steps.main import Pipeline
from tests.conftest import mlflow_run, run_id_of

pytestmark = pytest.mark.integration


def tweets(opening: str) -> str:
    """Thirty tweets distinct after normalisation (numbers would all become xxnum)."""
    return "\n".join(f"{opening} {chr(97 + i % 26)}{chr(97 + i * 7 % 26)}x" for i in range(30)) + "\n"


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "tweets"
    folder.mkdir()
    (folder / "negative.txt").write_text(tweets("awful delay"))
    (folder / "positive.txt").write_text(tweets("lovely crew"))
    return folder


def splits_of(run_id: str) -> dict[str, pd.DataFrame]:
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="data")
    return {name: pd.read_parquet(f"{local}/{name}.parquet") for name in ("train", "val", "test")}


def test_prepare_data_adds_verdicts_to_training_and_records_the_feedback_input(module_tracking, source, tmp_path):
    plain = splits_of(run_id_of(mlflow_run(module_tracking, "prepare_data", source="txt_dir", path=source, seed=3)))
    store = FeedbackStore(tmp_path / "feedback.db")
    held_out = plain["val"]["text"].iloc[0]
    for text, truth in (
        ("@united could you check on my refund from March?", "negative"),
        (held_out, "negative" if plain["val"]["label"].iloc[0] == 0 else "not_negative"),
    ):
        store.add(
            Feedback(text, "not_negative", 0.3, 0.33, truth, "transformer:abc", user_name="rita", role="reviewer")
        )  # agreed
    result = mlflow_run(module_tracking, "prepare_data", source="txt_dir", path=source, seed=3, feedback_db=store.path)
    run_id = run_id_of(result)
    fed = splits_of(run_id)
    pd.testing.assert_frame_equal(fed["val"], plain["val"])  # comparisons stay on the same rows
    pd.testing.assert_frame_equal(fed["test"], plain["test"])
    added = fed["train"][fed["train"]["source"] == "feedback"]
    assert added["text"].tolist() == ["@united could you check on my refund from March?"]
    assert added["label"].tolist() == [1] and len(fed["train"]) == len(plain["train"]) + 1
    run = MlflowClient().get_run(run_id)
    assert run.data.metrics["feedback_rows_added"] == 1 and run.data.metrics["feedback_rows_skipped"] == 1
    inputs = {entry.dataset.name: entry.dataset for entry in run.inputs.dataset_inputs}
    assert "feedback" in inputs and str(store.path) in inputs["feedback"].source and inputs["feedback"].digest
    assert "1 tweets added to training" in result.stdout


def test_a_bad_feedback_db_fails_the_run_with_one_line(module_tracking, source, tmp_path):
    broken = tmp_path / "feedback.db"
    broken.write_text("not sqlite")
    result = mlflow_run(module_tracking, "prepare_data", check=False, source="txt_dir", path=source, feedback_db=broken)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("prepare_data: error:")]
    assert len(errors) == 1 and "is not a feedback store with a `feedback` table" in errors[0]


def test_main_recomputes_prepare_data_when_the_feedback_file_changes(module_tracking, source, tmp_path, monkeypatch):
    store = FeedbackStore(tmp_path / "feedback.db")
    store.add(
        Feedback(
            "@delta lost my bag",
            "not_negative",
            0.3,
            0.33,
            "negative",
            "transformer:abc",
            user_name="rita",
            role="reviewer",
        )
    )
    experiment_id = MlflowClient().create_experiment(f"feedback-reuse-{tmp_path.name}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    params = {"source": "txt_dir", "path": str(source), "max_rows": 0, "seed": 1, "feedback_db": str(store.path)}
    with mlflow.start_run(experiment_id=experiment_id):
        steps = Pipeline(total_steps=3, use_cache=True)
        first = steps.step("prepare_data", params)
        assert steps.step("prepare_data", params) == first  # same verdicts: reused
        store.add(
            Feedback(
                "@delta thanks, found it",
                "negative",
                0.6,
                0.33,
                "not_negative",
                "transformer:abc",
                user_name="rita",
                role="reviewer",
            )
        )
        assert steps.step("prepare_data", params) != first  # a new verdict: recomputed
