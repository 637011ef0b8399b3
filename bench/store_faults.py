"""What a step does when its tracking store fails under it: how long it holds, what it says, whether a
rerun finishes. Two faults, each on tiny data with MLflow's default client retries:

- the server lost: a real `mlflow server` on 127.0.0.1, stopped as `train_baseline` announces its run
  (the step alone, then `mlflow run`, whose CLI waits out its own retries to mark the run);
- the disk full: a SQLite store and its artifacts on a 3 MiB tmpfs, filled up before `train_baseline`
  (mounting needs root; without it the case is recorded as skipped, with the reason).

\b
    python bench/store_faults.py --json docs/reliability_store_faults.json

Figures go to `--json` with provenance (docs/reliability.md renders them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.disks import DiskUnavailable, fill, small_disk
from harness.provenance import provenance
from harness.servers import TrackingServer

REPO = Path(__file__).resolve().parent.parent


def step_env(tracking_uri: str) -> dict[str, str]:
    """The user's environment with the store swapped in; MLflow's retry settings left at their defaults."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    path = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env |= {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_EXPERIMENT_NAME": "faults", "PYTHONPATH": str(REPO)}
    return env | {"PATH": path}  # `mlflow run --env-manager local` runs `python` from PATH


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def server_lost(root: Path, through_mlflow_run: bool) -> dict:
    """Stop the server as the step announces its run; time until the command exits, then rerun."""
    server = TrackingServer(root, dict(os.environ)).wait_ready(timeout=300)
    env = step_env(server.url)
    baseline = [sys.executable, "-m", "steps.train_baseline", "--min-df", "1"]
    if through_mlflow_run:
        baseline = ["mlflow", "run", str(REPO), "-e", "train_baseline", "--env-manager", "local", "-P", "min_df=1"]
    try:
        prepared = [sys.executable, "-m", "steps.prepare_data", "--max-rows", "600"]
        subprocess.run(prepared, cwd=REPO, env=env, check=True, capture_output=True)
        with tempfile.TemporaryFile("w+") as errors:
            process = subprocess.Popen(baseline, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
            for line in process.stdout:
                if line.startswith("==> train_baseline: run "):
                    break
            server.stop()
            lost_at = time.monotonic()
            process.stdout.read()
            process.wait()
            held_s = time.monotonic() - lost_at
            errors.seek(0)
            stderr = errors.read()
        server = TrackingServer(root, dict(os.environ), server.port).wait_ready(timeout=300)
        rerun = subprocess.run(baseline, cwd=REPO, env=env, capture_output=True, text=True)
    finally:
        server.stop()
    return {
        "fault": "tracking server lost mid-step" + (" (mlflow run)" if through_mlflow_run else " (the step alone)"),
        "exit_code": process.returncode,
        "held_s": held_s,
        "tracebacks": stderr.count("Traceback"),
        "last_line": last_line(stderr),
        "rerun_exit_code": rerun.returncode,
    }


def disk_full(root: Path) -> dict:
    """A SQLite store on a tmpfs filled to 150 KiB free before training; then room made and a rerun."""
    fault = "disk full under the tracking store"
    try:
        with small_disk(root / "disk", "3m") as disk:
            env = step_env(f"sqlite:///{disk / 'mlflow.db'}")
            prepared = [sys.executable, "-m", "steps.prepare_data", "--max-rows", "600"]
            subprocess.run(prepared, cwd=disk, env=env, check=True, capture_output=True)
            filler = fill(disk, leave_kib=150)
            baseline = [sys.executable, "-m", "steps.train_baseline", "--min-df", "1"]
            started = time.monotonic()
            failed = subprocess.run(baseline, cwd=disk, env=env, capture_output=True, text=True)
            held_s = time.monotonic() - started
            filler.unlink()
            rerun = subprocess.run(baseline, cwd=disk, env=env, capture_output=True, text=True)
    except DiskUnavailable as reason:
        return {"fault": fault, "skipped": str(reason)}
    return {
        "fault": fault,
        "exit_code": failed.returncode,
        "held_s": held_s,
        "tracebacks": failed.stderr.count("Traceback"),
        "last_line": last_line(failed.stderr),
        "rerun_exit_code": rerun.returncode,
    }


@click.command(help=__doc__)
@click.option("--json", "json_path", default="", show_default=True, help="also write the figures to this JSON file")
def main(json_path: str) -> None:
    origin = provenance()
    results = []
    with tempfile.TemporaryDirectory(prefix="store-faults-") as work:
        for name, case in (
            ("alone", lambda root: server_lost(root, through_mlflow_run=False)),
            ("mlflow-run", lambda root: server_lost(root, through_mlflow_run=True)),
            ("disk", disk_full),
        ):
            root = Path(work) / name
            root.mkdir()
            result = case(root)
            results.append(result)
            print(json.dumps(result), flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps({"provenance": origin, "faults": results}, indent=2))


if __name__ == "__main__":
    main()
