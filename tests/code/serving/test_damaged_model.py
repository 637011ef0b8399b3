"""A model whose files are missing or damaged: `mlflow models serve` refuses to start, naming the file.

Serving errors from a half-loaded model would reach every client; a server that does not start is
what the image's health check and an operator see at once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest

from harness.servers import ModelServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_dir(tracking, baseline_run_id, tmp_path_factory) -> Path:
    """The baseline's logged model, downloaded once for this module's damaged copies."""
    folder = tmp_path_factory.mktemp("model")
    return Path(mlflow.artifacts.download_artifacts(f"runs:/{baseline_run_id}/model", dst_path=str(folder)))


def serve_until_exit(model: Path, env: dict[str, str], log_path: Path) -> tuple[int, str]:
    server = ModelServer(str(model), env, log_path)
    try:
        code = server.process.wait(timeout=180)
    finally:
        server.stop()
    return code, server.log()


CANNOT_LOAD = "model artifact 'pipeline' at {file} cannot be loaded"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda file: file.unlink(), "model artifact 'pipeline' is missing: {file}"),
        (lambda file: file.write_bytes(b"not a joblib file"), CANNOT_LOAD),
        (lambda file: file.write_bytes(file.read_bytes()[:100]), CANNOT_LOAD),
    ],
    ids=["missing", "garbage", "truncated"],
)
def test_a_damaged_artifact_stops_the_server_naming_the_file(model_dir, tracking, tmp_path, damage, message):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    artifact = copy / "artifacts" / "pipeline.joblib"
    damage(artifact)
    code, log = serve_until_exit(copy, tracking.env, tmp_path / "server.log")
    assert code != 0
    assert message.format(file=artifact) in log


def test_damaged_mlflow_files_stop_the_server_too(model_dir, tracking, tmp_path):
    """MLflow reads python_model.pkl before the model's code runs: its own error, but no serving either."""
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / "python_model.pkl").write_bytes(b"\x80\x05garbage")
    code, log = serve_until_exit(copy, tracking.env, tmp_path / "server.log")
    assert code != 0
    assert "UnpicklingError" in log
