"""No secret reaches a log line, an error message, a run or a telemetry capture: webhook tokens,
connection strings, tracking credentials."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import pytest
import requests

from harness.appinsights_capture import OFFLINE_ENV, CaptureServer
from harness.servers import free_port
from monitoring.alerts import evaluate, post_webhook
from tests.code.telemetry.test_alert_rule import RULE, add_feedback, minute, wrong_at
from tests.conftest import mlflow_run, run_id_of

pytestmark = pytest.mark.integration  # a real run, a model server and a capture server

REPO = Path(__file__).resolve().parents[3]
TOKEN = "T0SECRET/B0SECRET/XoXoSeCrEtToKeN"  # as in a Slack incoming-webhook URL


class _Failing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def failing_webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/{TOKEN}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("where", ["answers 500", "refuses the connection"])
def test_a_failed_webhook_post_logs_the_host_and_the_reason_never_the_token(failing_webhook, caplog, where):
    url = failing_webhook if where == "answers 500" else f"http://127.0.0.1:{free_port()}/services/{TOKEN}"
    firing = evaluate(RULE, wrong_at(1, 2, 3), minute(4))
    assert firing.fires
    # INFO and above: what the CLI and the dashboard log (urllib3's own DEBUG lines name every path).
    with caplog.at_level(logging.INFO):
        assert post_webhook(url, firing) is False
    assert "alert webhook http://127.0.0.1:" in caplog.text
    assert ("HTTP 500" if where == "answers 500" else "ConnectionError") in caplog.text
    assert "SECRET" not in caplog.text and "services" not in caplog.text


def test_the_alert_cli_that_fires_never_prints_the_webhook_url(failing_webhook, store):
    for m in (0, 1, 2):
        add_feedback(store, minute(m), False)
    command = [sys.executable, "-m", "monitoring.alerts", "--db", str(store), "--now", minute(3).isoformat()]
    result = subprocess.run(
        [*command, "--webhook-url", failing_webhook], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "ALERT wrong_prediction" in result.stderr and "alert webhook http://127.0.0.1:" in result.stderr
    assert "SECRET" not in result.stdout + result.stderr


def test_telemetry_never_logs_the_instrumentation_key():
    key = "00000000-SECRET-KEY-4242"
    env = {**os.environ, "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={key};IngestionEndpoint=::bad::"}
    code = "import logging; logging.basicConfig(level=logging.DEBUG)\n"
    code += "from pyfunc.telemetry import configure_telemetry; print(configure_telemetry('secret-test'))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "telemetry" in result.stderr
    assert key not in result.stdout + result.stderr


IKEY = "5ec7e7aa-5ec7-4e7a-8000-5ec7e75ec7e7"  # the SDK wants a GUID: no "SECRET" fits in one


def secrets_for(capture_port: int) -> dict[str, str]:
    """Every secret a deployment hands the processes, pointing at local stand-ins."""
    endpoint = f"http://127.0.0.1:{capture_port}/"
    return {
        "MLFLOW_TRACKING_USERNAME": "ops-SECRET-user",
        "MLFLOW_TRACKING_PASSWORD": "pw-SECRET-4242",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            f"InstrumentationKey={IKEY};IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"
        ),
        "ALERT_WEBHOOK_URL": f"https://hooks.example.com/services/{TOKEN}",
    }


def text_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and path.suffix not in {".parquet", ".png", ".joblib"}]


def test_no_secret_reaches_a_run_a_server_log_an_error_or_a_capture(
    monkeypatch, tracking, baseline_run_id, serve, tmp_path
):
    with CaptureServer() as capture:
        secrets = secrets_for(capture.port)
        for name, value in {**OFFLINE_ENV, **secrets, "TMPDIR": str(tmp_path)}.items():
            monkeypatch.setenv(name, value)
        needles = ["SECRET", TOKEN, IKEY, secrets["APPLICATIONINSIGHTS_CONNECTION_STRING"]]

        step = mlflow_run(tracking, "prepare_data", max_rows=300, seed=3)
        run = mlflow.get_run(run_id_of(step))
        server = serve(f"runs:/{baseline_run_id}/model", env=tracking.env)
        answers = [
            server.invocations({"dataframe_split": {"columns": ["text"], "data": [["late again"]]}}),
            server.invocations({"dataframe_split": {"columns": ["text"], "data": [[""]]}}),
            server.invocations("{broken"),
            requests.post(f"{server.url}/invocations", data=b"{}", timeout=30),
        ]
        assert [answer.status_code for answer in answers] == [200, 400, 400, 415]
        assert capture.wait_for(lambda: capture.of_type("RequestData")), "telemetry never arrived"
        envelopes = json.dumps(capture.envelopes)

    artifacts = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "run")))
    places = {
        "prepare_data's output": step.stdout + step.stderr,
        "the run's params and tags": json.dumps({**run.data.params, **run.data.tags}),
        "the model server's log": server.log(),
        "the error answers": " ".join(answer.text for answer in answers),
        "the telemetry capture (bar the iKey field the protocol needs)": envelopes.replace(f'"iKey": "{IKEY}"', ""),
        **{f"artifact {path.name}": path.read_text(errors="replace") for path in text_files(artifacts)},
    }
    leaks = [(place, needle) for place, text in places.items() for needle in needles if needle in text]
    assert leaks == []
