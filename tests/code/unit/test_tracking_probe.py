"""The one quick call before a step's work: what a user who points MLFLOW_TRACKING_URI at the wrong place reads."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from steps.lib.tracking import StepError, check_tracking_server


def answering(status: int, content_type: str):
    """A local HTTP server that answers every GET the same way, and the paths it was asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(b"{}" if content_type == "application/json" else b"<html>hello</html>")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked


@pytest.fixture
def serve_answer():
    servers = []

    def start(status: int, content_type: str = "application/json"):
        server, asked = answering(status, content_type)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", asked

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_tracking_server_passes_after_one_search_call(serve_answer):
    uri, asked = serve_answer(200)
    check_tracking_server(uri)
    assert [path.split("?")[0] for path in asked] == ["/api/2.0/mlflow/experiments/search"]


def test_a_web_page_that_is_no_tracking_server_is_named(serve_answer):
    uri, _ = serve_answer(200, "text/html")
    with pytest.raises(StepError, match=rf"{uri} does not answer as an MLflow tracking server \(HTTP 200"):
        check_tracking_server(uri)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_name_the_variables_to_check(serve_answer, status):
    uri, _ = serve_answer(status)
    with pytest.raises(StepError, match=rf"refused the credentials \(HTTP {status}\).*MLFLOW_TRACKING_USERNAME"):
        check_tracking_server(uri)


def test_local_stores_are_not_probed(tmp_path):
    check_tracking_server(f"sqlite:///{tmp_path / 'mlflow.db'}")
    check_tracking_server(str(tmp_path))
