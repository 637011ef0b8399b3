"""The tracking store failing under a step: one line saying what to do, and a rerun that finishes.

The server lost: a real `mlflow server` on 127.0.0.1 (SQLite store, proxied artifacts), stopped as the
step announces its run. The client's retries are turned off here so the test does not wait them out;
with MLflow's defaults the same failure comes after the retries (docs/reliability.md says how long).
The disk full: a SQLite store and its artifacts on a real 3 MiB tmpfs, filled up (mounting needs
root, as the CI machine has; elsewhere that test skips with the reason).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.disks import DiskUnavailable, fill, small_disk
from harness.servers import TrackingServer
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def tracking_server(root: Path, port: int | None = None) -> TrackingServer:
    """`mlflow server` with its own store under `root`, ready to answer (the same port after a restart)."""
    return TrackingServer(root, dict(os.environ), port).wait_ready(timeout=120)


def step_env(server: TrackingServer) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    return env | {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{server.port}",
        "MLFLOW_EXPERIMENT_NAME": "lost",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "PYTHONPATH": str(REPO),
    }


def step(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"steps.{name}", *args]


def test_a_step_that_loses_its_tracking_server_fails_in_one_line_and_a_rerun_finishes(tmp_path):
    server = tracking_server(tmp_path)
    env = step_env(server)
    try:
        prepared = subprocess.run(step("prepare_data", "--max-rows", "600"), cwd=REPO, env=env, capture_output=True)
        assert prepared.returncode == 0, prepared.stderr.decode()[-3000:]
        training = subprocess.Popen(
            step("train_baseline", "--min-df", "1"),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in training.stdout:
            if line.startswith("==> train_baseline: run "):
                lost_run_id = line.split()[3]
                break
        server.stop()  # the server goes away while the step is under way
        _, stderr = training.communicate(timeout=300)
    finally:
        server.stop()
    assert training.returncode == 3, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("train_baseline: error: the tracking server http://127.0.0.1:") and "Rerun" in last

    server = tracking_server(tmp_path, server.port)  # back, on the same store and port
    env = step_env(server)
    try:
        rerun = subprocess.run(step("train_baseline", "--min-df", "1"), cwd=REPO, env=env, capture_output=True)
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        lost = client.get_run(lost_run_id)
        runs = client.search_runs([lost.info.experiment_id], "tags.step = 'train_baseline'")
    finally:
        server.stop()
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
    assert lost.info.status == "RUNNING"  # nobody could tell the lost server; main never reuses it
    assert sorted(run.info.status for run in runs) == ["FINISHED", "RUNNING"]


@pytest.fixture
def disk(tmp_path) -> Iterator[Path]:
    try:
        with small_disk(tmp_path / "disk", "3m") as mount_point:
            yield mount_point
    except DiskUnavailable as reason:
        pytest.skip(str(reason))


def test_a_step_on_a_full_disk_fails_in_one_line_and_a_rerun_finishes_once_there_is_room(disk):
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env |= {"MLFLOW_TRACKING_URI": f"sqlite:///{disk / 'mlflow.db'}", "PYTHONPATH": str(REPO)}
    env["MLFLOW_EXPERIMENT_NAME"] = "full"
    prepared = subprocess.run(step("prepare_data", "--max-rows", "600"), cwd=disk, env=env, capture_output=True)
    assert prepared.returncode == 0, prepared.stderr.decode()[-3000:]
    filler = fill(disk, leave_kib=150)
    training = subprocess.run(step("train_baseline", "--min-df", "1"), cwd=disk, env=env, capture_output=True)
    stderr = training.stderr.decode()
    assert training.returncode == 3, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("train_baseline: error: the disk under the tracking store") and "free space" in last

    filler.unlink()
    rerun = subprocess.run(step("train_baseline", "--min-df", "1"), cwd=disk, env=env, capture_output=True)
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
    runs = MlflowClient(env["MLFLOW_TRACKING_URI"]).search_runs(
        [MlflowClient(env["MLFLOW_TRACKING_URI"]).get_experiment_by_name("full").experiment_id],
        "tags.step = 'train_baseline' and attributes.status = 'FINISHED'",
    )
    assert len(runs) == 1
