"""What telemetry costs the served model: p50 latency with telemetry off, and on with the ingestion endpoint
up (a local capture server), down (a closed port), failing (answers 500) and hanging (accepts
connections, never answers).

Starts one `mlflow models serve` per case, all at once, and sends one-tweet requests round-robin across
them at concurrency 1, so drift in a shared machine's load hits every case alike. Exports run at the
production defaults (spans and logs every 5 s, metrics every 60 s) unless `--fast-export` shortens them.

\b
    python bench/telemetry_overhead.py --model-uri runs:/<run_id>/model --requests 300

Run from the repository root with the venv active and MLFLOW_TRACKING_URI pointing at the model's store.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import click
import numpy as np
import requests

from harness.appinsights_capture import OFFLINE_ENV, CaptureServer, HangingServer, connection_string
from harness.provenance import provenance
from harness.servers import ModelServer, free_port
from steps.lib.cli import WHOLE_NUMBER
from steps.lib.registry import CHAMPION_URI

TEXTS = [
    "@united lost my bag again, worst airline ever",
    "Thanks for the smooth flight :)",
    "two hours on the tarmac and no word from the crew",
    "the new app is great, boarding pass in seconds",
    "why is customer service never answering the phone",
]
PRODUCTION_EXPORT = {key: value for key, value in OFFLINE_ENV.items() if not key.startswith("OTEL_")}


@dataclass
class Case:
    name: str
    env: dict[str, str]
    server: ModelServer | None = None
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def url(self) -> str:
        return self.server.url


def start(case: Case, model_uri: str, log_dir: Path) -> None:
    """Serve the model with the case's telemetry settings; `stop` stops it (the servers start all at once)."""
    env = {**os.environ, **case.env}
    case.server = ModelServer(model_uri, env, log_dir / f"{case.name}.log", name=case.name)


def stop(case: Case) -> None:
    if case.server:
        case.server.stop()


def timed_request(session: requests.Session, case: Case, text: str) -> None:
    started = time.perf_counter()
    try:
        response = session.post(f"{case.url}/invocations", json={"dataframe_records": [{"text": text}]}, timeout=60)
        ok = response.status_code == 200
    except requests.RequestException:
        ok = False
    elapsed = (time.perf_counter() - started) * 1000
    case.latencies_ms.append(elapsed if ok else float("nan"))  # NaN keeps rounds aligned across cases
    case.errors += not ok


def run(cases: list[Case], total: int, warmup: int) -> None:
    sessions = {case.name: requests.Session() for case in cases}
    for i in range(warmup + total):
        for case in cases[i % len(cases) :] + cases[: i % len(cases)]:  # rotate who goes first
            timed_request(sessions[case.name], case, TEXTS[i % len(TEXTS)])
        if i + 1 == warmup:
            for case in cases:
                case.latencies_ms.clear()
                case.errors = 0


def report(cases: list[Case], capture: CaptureServer, args: SimpleNamespace) -> None:
    off = np.asarray(cases[0].latencies_ms)
    print(f"\nserved model: {args.model_uri}; {args.requests} one-tweet requests per case, round-robin, concurrency 1")
    print("paired: median over rounds of (this case - telemetry off), the same moment's load for both")
    print(f"{'case':<34} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'p50 diff':>9} {'paired':>8} {'errors':>7}")
    for case in cases:
        latencies = np.asarray(case.latencies_ms)
        p50, p95 = np.nanpercentile(latencies, [50, 95])
        diff, paired = p50 - np.nanpercentile(off, 50), np.nanmedian(latencies - off)
        line = f"{case.name:<34} {p50:8.2f} {p95:8.2f} {np.nanmean(latencies):8.2f} {diff:+9.2f} {paired:+8.2f}"
        print(f"{line} {case.errors:7d}")
    kinds: dict[str, int] = {}
    for envelope in capture.envelopes:
        kind = envelope.get("data", {}).get("baseType", "?")
        kinds[kind] = kinds.get(kind, 0) + 1
    sent = args.warmup + args.requests
    print(f"telemetry received by the capture server (endpoint up; {sent} requests sent): {kinds}")
    for envelope in capture.envelopes:  # traces and exceptions: say what they were
        data = envelope.get("data", {})
        if data.get("baseType") in ("ExceptionData", "MessageData"):
            base = data["baseData"]
            text = base.get("message") or "; ".join(e.get("message", "") for e in base.get("exceptions", []))
            print(f"  {data['baseType']}: {text[:160]}")


@click.command(help=__doc__)
@click.option("--model-uri", default=CHAMPION_URI, show_default=True, help="model served, once per case")
@click.option("--requests", type=WHOLE_NUMBER, default=300, show_default=True, help="timed requests per case")
@click.option("--warmup", type=WHOLE_NUMBER, default=20, show_default=True, help="untimed requests per case first")
@click.option(
    "--fast-export/--no-fast-export",
    default=False,
    show_default=True,
    help="export every 0.2 s/1 s as the tests do",
)
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    # Before the servers start: the load is the machine's, not this benchmark's.
    print("provenance: " + json.dumps(provenance(args.model_uri)), flush=True)
    export = OFFLINE_ENV if args.fast_export else PRODUCTION_EXPORT
    with ExitStack() as stack:
        capture = stack.enter_context(CaptureServer())
        hanging = stack.enter_context(HangingServer())
        failing = stack.enter_context(CaptureServer(status=500))
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="telemetry-bench-")))

        def sending_to(port: int, name: str) -> dict[str, str]:
            # Each case keeps the exporter's offline retry storage in its own folder: the storage path
            # depends only on the instrumentation key, and a shared one would let the "up" server re-send
            # what the "down" server stored.
            storage = log_dir / name
            storage.mkdir()
            return {"APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string(port), "TMPDIR": str(storage), **export}

        cases = [
            Case("telemetry off", {"APPLICATIONINSIGHTS_CONNECTION_STRING": ""}),
            Case("on, endpoint up (capture server)", sending_to(capture.port, "up")),
            Case("on, endpoint down (closed port)", sending_to(free_port(), "down")),
            Case("on, endpoint failing (HTTP 500)", sending_to(failing.port, "failing")),
            Case("on, endpoint hanging (no answer)", sending_to(hanging.port, "hanging")),
        ]
        for case in cases:
            stack.callback(stop, case)
        for case in cases:
            start(case, args.model_uri, log_dir)
        for case in cases:
            case.server.wait_ready(timeout=300)
        print(f"{len(cases)} servers ready; timing {args.requests} requests each", flush=True)
        run(cases, args.requests, args.warmup)
        time.sleep(7)  # spans leave every 5 s by default: let the up case's last batch arrive before counting
        report(cases, capture, args)


if __name__ == "__main__":
    main()
