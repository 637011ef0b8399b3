"""An isolated corner of the session store for the registry tests.

`register` ranks every finished candidate of a data run, so these tests must control exactly
which candidates exist: they use their own experiment, their own copies of the prepared data (the
rows of `prepared_run_id`, under new run ids) and their own registered model name. Other suites'
candidates and their `tweet-sentiment@champion` cannot leak in, nor can ours leak out.
"""

from __future__ import annotations

import tempfile
import uuid

import mlflow
import pytest
from mlflow import MlflowClient

from tests.conftest import Tracking


def copy_data_run(tracking: Tracking, source_run_id: str, name: str) -> str:
    """A finished prepare_data run holding the same `data/` artifacts as `source_run_id`."""
    client = MlflowClient()
    run = client.create_run(tracking.experiment_id, run_name=name, tags={"step": "prepare_data"})
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=source_run_id, artifact_path="data", dst_path=tmp)
        client.log_artifacts(run.info.run_id, local, "data")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture(scope="module")
def registry_tracking(module_tracking: Tracking) -> Tracking:
    """A fresh experiment of the module's: `mlflow run` children land here and search only here."""
    return module_tracking


@pytest.fixture(scope="module")
def model_name() -> str:
    return f"tweet-sentiment-test-{uuid.uuid4().hex[:8]}"
