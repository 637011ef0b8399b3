"""No log line of the alert or telemetry paths carries a secret: webhook tokens, instrumentation keys."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dashboard.alerts import evaluate, post_webhook
from tests.code.telemetry.test_alert_rule import RULE, add_feedback, minute, wrong_at
from tests.conftest import free_port

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
    command = [sys.executable, "-m", "dashboard.alerts", "--db", str(store), "--now", minute(3).isoformat()]
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
