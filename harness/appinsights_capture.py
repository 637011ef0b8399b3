"""A stand-in for the Application Insights ingestion endpoint on 127.0.0.1, and its connection string.

The Azure Monitor exporter POSTs JSON arrays of envelopes (gzip-compressed or not) to `/v2.1/track`;
this server records them and answers the way the service does, so the exporter counts them as delivered.
The telemetry tests and `bench/telemetry_overhead.py` (endpoint up, beside a port that refuses and one
that hangs) use it in-process; `scripts/build_image.sh` runs it as a process, and its container posts to it:

    python -m harness.appinsights_capture --host 172.17.0.1 --port 8765 --record envelopes.jsonl
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click

INSTRUMENTATION_KEY = "00000000-0000-0000-0000-000000000000"
# The request name the FastAPI instrumentation gives MLflow's scoring endpoint (checked by the server test).
INVOCATIONS_REQUEST = "POST /invocations"
# Keep tests and benchmarks offline: no SDK self-telemetry, no OneSettings control plane; fast exports.
OFFLINE_ENV = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
}


def connection_string(port: int) -> str:
    """Ingestion (and live metrics) at a local port, so nothing leaves the machine."""
    endpoint = f"http://127.0.0.1:{port}/"
    return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"


def telemetry_env(port: int) -> dict[str, str]:
    return {**OFFLINE_ENV, "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string(port)}


def base_data(envelope: dict) -> dict:
    return envelope.get("data", {}).get("baseData", {})


class _Handler(BaseHTTPRequestHandler):
    server: CaptureServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        if self.path.rstrip("/").endswith("/v2.1/track"):
            try:
                envelopes = json.loads(body)
            except ValueError:
                envelopes = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            envelopes = envelopes if isinstance(envelopes, list) else [envelopes]
            if self.server.status != 200:  # an ingestion outage: every item refused, nothing recorded
                self.server.refused += len(envelopes)
                answer = {"itemsReceived": len(envelopes), "itemsAccepted": 0, "errors": []}
                self._reply(self.server.status, json.dumps(answer).encode())
                return
            self.server.add(envelopes)
            answer = {"itemsReceived": len(envelopes), "itemsAccepted": len(envelopes), "errors": []}
            self._reply(200, json.dumps(answer).encode())
        else:  # live metrics pings and anything else: accepted, not recorded
            self._reply(200, b"{}")

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # quiet
        pass


class CaptureServer(ThreadingHTTPServer):
    """Records every envelope posted to it; `wait_for` polls until the telemetry a test expects arrived.

    With `status` other than 200 it plays an ingestion outage instead: it answers every post with that
    status, records nothing and counts the refused items in `refused`.
    """

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0, record: Path | None = None, status: int = 200) -> None:
        super().__init__((host, port), _Handler)
        self.port = self.server_address[1]
        self.record = record
        self.status = status
        self.refused = 0
        self.envelopes: list[dict] = []
        self._envelopes_lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()

    def add(self, envelopes: list[dict]) -> None:
        with self._envelopes_lock:
            self.envelopes.extend(envelopes)
            if self.record is not None:
                with self.record.open("a") as out:
                    out.writelines(json.dumps(envelope) + "\n" for envelope in envelopes)

    def of_type(self, base_type: str) -> list[dict]:
        """Envelopes whose `data.baseType` is e.g. `RequestData`, `MetricData`, `EventData`, `MessageData`."""
        with self._envelopes_lock:
            return [e for e in self.envelopes if e.get("data", {}).get("baseType") == base_type]

    def wait_for(self, found: Callable[[], list], timeout: float = 30) -> list:
        """Poll `found()` until it returns a non-empty list (then return it) or the timeout passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = found()
            if result:
                return result
            time.sleep(0.2)
        return found()


class HangingServer:
    """Accepts connections and never answers: the ingestion endpoint at its worst."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(128)
        self.port = self._socket.getsockname()[1]
        self._socket.settimeout(0.2)
        self._accepted: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted.append(connection)

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._thread.join()
        self._socket.close()
        for connection in self._accepted:
            connection.close()


@click.command(help="Serve the capture endpoint until stopped, appending each envelope to --record (JSON lines).")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=int, default=0, show_default=True, help="port (0: any free one, printed)")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSON lines file")
def main(host: str, port: int, record: Path) -> None:
    server = CaptureServer(host, port, record)
    print(f"capturing Application Insights envelopes on {host}:{server.port} into {record}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
