"""How long one tester's largest allowed upload holds up every other session of the same dashboard.

Starts a stub model server that answers at once (only the dashboard's own work is timed),
`panel serve dashboard/app.py --liveness`, and one Chromium page that uploads a CSV of the largest size
the dashboard takes (`MAX_UPLOAD_BYTES`, `MAX_UPLOAD_ROWS` at their defaults) and scores it. Meanwhile
a probe asks the same server's `/liveness` every 20 ms: Tornado answers it on the one event loop that
runs every session's callbacks and websocket messages, so the probe's latency is how long another
tester's click waits. Reports the probe's p99 and longest wait while idle, while the file travels to the
server and Panel decodes it, and while it is parsed, scored and its download made: per phase the median
over `--repeat` uploads one after another, and the longest wait of all.

\b
    python bench/upload_stall.py --label after --json docs/reliability_upload_stall.json

Run it from the repository root with the project's virtual environment active and Debian's Chromium
installed (`scripts/install.sh test`). `--label` names the run: a result file keeps one run per label,
so the same file holds the figures of two checkouts (docs/design.md, "Dashboard input and output").
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dashboard.batch import DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_ROWS
from harness.provenance import provenance
from harness.servers import DashboardServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PROBE_EVERY_S = 0.02
IDLE_S = 3.0
WAIT_MS = 600_000
WORDS = ("my", "flight", "was", "delayed", "again", "and", "nobody", "at", "the", "gate", "could", "tell", "us", "why")


def largest_upload(path: Path, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, rows: int = DEFAULT_MAX_UPLOAD_ROWS) -> int:
    """Write a CSV of `rows` tweets padded to just under `max_bytes`: the biggest file the page accepts."""
    per_row = (max_bytes - len("id,text\n")) // rows - len(f"{rows},\n")
    lines = ["id,text"]
    for number in range(rows):
        words = " ".join(WORDS[(number + offset) % len(WORDS)] for offset in range(40))
        lines.append(f"{number},{words[:per_row]}")
    path.write_text("\n".join(lines) + "\n")
    return path.stat().st_size


class StubModel(BaseHTTPRequestHandler):
    """`/ping`, `/version` and `/invocations` answered at once, in the served model's contract."""

    def do_GET(self) -> None:
        self._answer(b"2.x" if self.path == "/version" else b"")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rows = [
            {"label": "negative", "proba_negative": 0.7, "threshold": 0.5, "model_version": "stub"}
            for _ in body["dataframe_split"]["data"]
        ]
        self._answer(json.dumps({"predictions": rows}).encode())

    def _answer(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def stub_model_server() -> Iterator[str]:
    """The stub on a free port, for the duration of the block; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubModel)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


class Probe:
    """Asks the dashboard's `/liveness` in a loop from a thread, keeping (start time, latency s) per answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                started = time.perf_counter()
                session.get(self.url, timeout=120).raise_for_status()
                self.samples.append((started, time.perf_counter() - started))
                time.sleep(PROBE_EVERY_S)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> dict[str, float]:
        """p50, p99 and max latency in ms of the probes started in [start, end) (one that started just
        before and waited through it counts too: it is the one that saw the stall)."""
        latencies = [latency for began, latency in self.samples if start <= began + latency and began < end]
        figures = np.array(latencies or [float("nan")]) * 1000
        return {
            "probes": len(latencies),
            "p50_ms": float(np.percentile(figures, 50)),
            "p99_ms": float(np.percentile(figures, 99)),
            "max_ms": float(figures.max()),
            "seconds": end - start,
        }


def run_upload(app_url: str, csv_path: Path, rows: int, probe: Probe) -> dict[str, dict[str, float]]:
    """Upload and score the file in Chromium; the probe's figures per phase."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(app_url)
        expect(page.locator("#server-status")).to_contain_text("is up", timeout=WAIT_MS)
        page.locator(".bk-tab", has_text="Batch").click()
        time.sleep(IDLE_S)
        idle_end = time.perf_counter()
        page.locator("input[type=file]").set_input_files(csv_path)
        score = page.get_by_role("button", name="Score the file")
        expect(score).to_be_enabled(timeout=WAIT_MS)  # the file reached the server and Panel decoded it
        uploaded = time.perf_counter()
        score.click()
        expect(page.locator("#batch-status")).to_contain_text(f"Scored {rows} tweets", timeout=WAIT_MS)
        scored = time.perf_counter()
        browser.close()
    return {
        "idle": probe.between(idle_end - IDLE_S, idle_end),
        "upload and decode": probe.between(idle_end, uploaded),
        "parse, score and download": probe.between(uploaded, scored),
    }


def summary(uploads: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per phase, the median over the uploads of each one's p99 and longest wait, and the longest of all."""
    return {
        phase: {
            "p99_ms": float(np.median([upload[phase]["p99_ms"] for upload in uploads])),
            "max_ms": float(np.median([upload[phase]["max_ms"] for upload in uploads])),
            "worst_ms": float(max(upload[phase]["max_ms"] for upload in uploads)),
            "seconds": float(np.median([upload[phase]["seconds"] for upload in uploads])),
        }
        for phase in uploads[0]
    }


@click.command(help=__doc__)
@click.option(
    "--label", required=True, help="Names this run (e.g. before, after); a run of the same label is replaced."
)
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(min=1), help="Uploads, one after another.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Result file to update.")
def main(label: str, repeat: int, json_path: Path | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "largest.csv"
        size = largest_upload(csv_path)
        with stub_model_server() as model_url:
            env = {**os.environ, "FEEDBACK_DB": str(Path(folder) / "feedback.db")}
            env.pop("MLFLOW_TRACKING_URI", None)  # the registry line is optional; it would add a lookup
            with DashboardServer(model_url, env, Path(folder) / "panel.log", ["--liveness"]) as dashboard:
                dashboard.wait_ready(timeout=120, poll=0.3)
                with Probe(dashboard.url + "/liveness") as probe:
                    uploads = [run_upload(dashboard.app_url, csv_path, DEFAULT_MAX_UPLOAD_ROWS, probe)]
                    for _ in range(repeat - 1):
                        uploads.append(run_upload(dashboard.app_url, csv_path, DEFAULT_MAX_UPLOAD_ROWS, probe))
    run = {"label": label, "upload_bytes": size, "rows": DEFAULT_MAX_UPLOAD_ROWS, "uploads": uploads}
    run |= {"phases": summary(uploads), "provenance": provenance()}
    for phase, figures in run["phases"].items():
        print(f"{label}: {phase}: " + ", ".join(f"{key} {value:.1f}" for key, value in figures.items()))
    if json_path:
        runs = json.loads(json_path.read_text())["runs"] if json_path.exists() else []
        runs = [other for other in runs if other["label"] != label] + [run]
        json_path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
