"""`main`'s reuse through the real step: same inputs reuse, a changed parameter or input file recomputes."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from steps.main import Pipeline


@pytest.mark.integration
def test_pipeline_reuses_prepare_data_until_its_input_file_changes(tracking, tmp_path, monkeypatch):
    """The real step through `mlflow.projects.run` (the commit part of the key: tests/code/unit/test_run_cache.py)."""

    def tweets(opening: str) -> str:  # distinct after normalisation (numbers would all become xxnum)
        return "\n".join(f"{opening} {chr(97 + i % 26)}{chr(97 + i * 7 % 26)}x" for i in range(30)) + "\n"

    folder = tmp_path / "tweets"
    folder.mkdir()
    (folder / "negative.txt").write_text(tweets("awful delay"))
    (folder / "positive.txt").write_text(tweets("lovely crew"))
    experiment_id = MlflowClient().create_experiment(f"reuse-{tmp_path.name}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    params = {"source": "txt_dir", "path": str(folder), "max_rows": 0, "seed": 1}
    with mlflow.start_run(experiment_id=experiment_id):
        steps = Pipeline(total_steps=4, use_cache=True)
        first = steps.step("prepare_data", params)
        assert steps.step("prepare_data", params) == first  # nothing changed: reused
        assert steps.step("prepare_data", {**params, "seed": 2}) != first  # a parameter changed
        (folder / "positive.txt").write_text(tweets("great crew"))
        assert steps.step("prepare_data", params) != first  # same path, other bytes
