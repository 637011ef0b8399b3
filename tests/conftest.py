"""Shared fixtures: a throw-away MLflow store, `mlflow run` on it, and a real model server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from hypothesis import settings as hypothesis_settings
from mlflow.tracking import MlflowClient

from harness.servers import ModelServer

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = str(Path(sys.executable).parent)
# `mlflow run/serve --env-manager local` exec `python`/`uvicorn` from PATH: use this interpreter's.
os.environ["PATH"] = VENV_BIN + os.pathsep + os.environ.get("PATH", "")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
# Property tests explore new examples on a developer's machine and replay a fixed set in CI, so a
# submission is never refused by an example nobody has seen; a failure found locally is kept in .hypothesis/.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# What every candidate run logs (steps/lib/candidate.py), whatever its family.
CANDIDATE_METRICS = {
    f"{split}_{name}"
    for split in ("val", "test")
    for name in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "macro_f1",
        "roc_auc",
        "pr_auc",
        "false_alarm_rate",
        "miss_rate",
    )
} | {"train_seconds", "predict_ms_per_1k", "threshold"}
# What every served row holds (pyfunc.contract.format_predictions): the contract, then what the threshold means.
RESPONSE_FIELDS = {"label", "proba_negative", "threshold", "model_version", "val_precision", "val_recall"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fast lane, `pytest -m "not slow"`: every test that starts real processes or a browser leaves it."""
    for item in items:
        if item.get_closest_marker("integration") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@dataclass
class Tracking:
    uri: str
    experiment_id: str
    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "MLFLOW_TRACKING_URI": self.uri, "MLFLOW_EXPERIMENT_ID": self.experiment_id}


def new_tracking(root: Path) -> Tracking:
    """A SQLite store with its own artifact folder, so tests never touch the repo's mlflow.db."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # A client bound to the new store: the process-wide tracking URI (the session store) stays as it is.
    experiment_id = MlflowClient(uri).create_experiment("tests", artifact_location=str(root / "artifacts"))
    return Tracking(uri, experiment_id, root)


@pytest.fixture(scope="session")
def tracking(tmp_path_factory) -> Tracking:
    tracking = new_tracking(tmp_path_factory.mktemp("mlflow"))
    os.environ["MLFLOW_TRACKING_URI"] = tracking.uri
    mlflow.set_tracking_uri(tracking.uri)
    return tracking


@pytest.fixture(scope="module")
def module_tracking(tracking: Tracking) -> Tracking:
    """Same store, an experiment of the module's own: the runs it makes never become another module's
    "newest prepared data" or candidates."""
    experiment_id = MlflowClient().create_experiment(f"module-{uuid.uuid4().hex[:8]}")
    return Tracking(tracking.uri, experiment_id, tracking.root)


def mlflow_run(
    tracking: Tracking, entry_point: str, check: bool = True, by_name: bool = False, **params
) -> subprocess.CompletedProcess:
    """`mlflow run . -e <entry_point>` exactly as a user runs it, on the test store.

    `by_name=True` chooses the experiment as the README does, with MLFLOW_EXPERIMENT_NAME and no
    --experiment-id (child processes then inherit the name).
    """
    command = ["mlflow", "run", str(REPO), "-e", entry_point, "--env-manager", "local"]
    env = dict(tracking.env)
    if by_name:
        env.pop("MLFLOW_EXPERIMENT_ID")
        env["MLFLOW_EXPERIMENT_NAME"] = MlflowClient(tracking.uri).get_experiment(tracking.experiment_id).name
    else:
        command += ["--experiment-id", tracking.experiment_id]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    if check and result.returncode != 0:
        raise AssertionError(f"{entry_point} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def run_id_of(result: subprocess.CompletedProcess) -> str:
    """The run id `mlflow run` reports for the entry point it ran (the last one it prints)."""
    ids = re.findall(r"=== Run \(ID '([0-9a-f]+)'\)", result.stderr + result.stdout)
    assert ids, result.stderr[-2000:]
    return ids[-1]


@pytest.fixture(scope="session")
def prepared_run_id(tracking: Tracking) -> str:
    return run_id_of(mlflow_run(tracking, "prepare_data", max_rows=900, seed=7))


@pytest.fixture(scope="session")
def baseline_run_id(tracking: Tracking, prepared_run_id: str) -> str:
    return run_id_of(mlflow_run(tracking, "train_baseline", data_run_id=prepared_run_id, min_df=1))


@pytest.fixture
def serve(tmp_path, tracking):
    """Factory fixture: serve a model URI for the test's duration."""
    servers = []

    def start(model_uri: str, env: dict[str, str] | None = None) -> ModelServer:
        server = ModelServer(model_uri, env or tracking.env, tmp_path / f"server{len(servers)}.log")
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()
