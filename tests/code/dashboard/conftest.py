"""Fixtures for the dashboard's browser tests: a real model server, `panel serve`, and Chromium."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness import servers
from harness.servers import ModelServer, ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


Reply = tuple[int, str, bytes]  # status, content type, body


def prediction_rows(texts: list[str], threshold: float = 0.5) -> list[dict]:
    """What the served pyfunc answers: proba grows with the text length, to tell rows apart."""
    return [
        {
            "label": "negative" if len(text) / 100 >= threshold else "not_negative",
            "proba_negative": len(text) / 100,
            "threshold": threshold,
            "model_version": "baseline:0123456789abcdef0123456789abcdef",
        }
        for text in texts
    ]


def word_contributions(text: str) -> list[dict]:
    """A scripted explanation: each word of the text pushes towards `negative` by its length / 100."""
    return [{"word": word, "contribution": len(word) / 100} for word in text.split()]


def contract_answer(body: dict) -> Reply:
    """A well-behaved `/invocations`: the contract's answer for a `dataframe_split` request, with each
    row's `explanation` when `params.explain` asks for it."""
    texts = [row[0] for row in body["dataframe_split"]["data"]]
    params = body.get("params", {})
    rows = prediction_rows(texts, params.get("threshold", 0.42))
    if params.get("explain"):
        rows = [row | {"explanation": word_contributions(text)} for row, text in zip(rows, texts, strict=True)]
    return 200, "application/json", json.dumps({"predictions": rows}).encode()


def answer_without_explanations(body: dict) -> Reply:
    """A server of a model logged before explanations: MLflow ignores the unknown `explain` param."""
    params = {key: value for key, value in body.get("params", {}).items() if key != "explain"}
    return contract_answer({**body, "params": params})


class FakeServer:
    """A scripted model server: records every request and answers with `self.reply(path, body)`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict | None]] = []
        self.reply: Callable[[str, dict | None], Reply] = lambda path, body: contract_answer(body)
        self.contract_answer = contract_answer
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                fake.requests.append((self.command, self.path, body, self.headers.get("Content-Type")))
                status, content_type, payload = fake.reply(self.path, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """A scripted stand-in for `mlflow models serve` (unit tests; the browser tests use the real one)."""
    fake = FakeServer()
    yield fake
    fake.stop()


class DashboardServer(servers.DashboardServer):
    """The dashboard with a feedback store of the test's own, and no tracking store unless the test gives one."""

    def __init__(
        self, model_server_url: str, feedback_db: Path, log_path: Path, args: tuple[str, ...] = (), **env: str
    ) -> None:
        self.feedback_db = feedback_db
        environment = {**os.environ, "FEEDBACK_DB": str(feedback_db)}
        # The tracking store is optional (the registry line, the Model health tab): only a test that gives one has one.
        environment.pop("MLFLOW_TRACKING_URI", None)
        environment.update(env)
        super().__init__(model_server_url, environment, log_path, extra_args=args)

    def wait_ready(self, timeout: float = 60, poll: float = 0.3) -> DashboardServer:
        return super().wait_ready(timeout, poll)


@pytest.fixture
def start_dashboard(tmp_path) -> Iterator:
    """Factory: a dashboard for a model server URL, stopped after the test."""
    servers: list[DashboardServer] = []

    def start(model_server_url: str, args: tuple[str, ...] = (), **env: str) -> DashboardServer:
        server = DashboardServer(
            model_server_url, tmp_path / "feedback.db", tmp_path / f"panel{len(servers)}.log", args, **env
        )
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def model_server(tracking, baseline_run_id, tmp_path_factory):
    """One real `mlflow models serve` of the tiny baseline for the module's tests (the `serve`
    fixture is per test; the test that stops a server uses it for a server of its own)."""
    log = tmp_path_factory.mktemp("model-server") / "server.log"
    server = ModelServer(f"runs:/{baseline_run_id}/model", tracking.env, log).wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dashboard(model_server, tmp_path_factory) -> Iterator[DashboardServer]:
    """The dashboard on the shared model server; batches go in chunks of 2 rows to exercise chunking."""
    folder = tmp_path_factory.mktemp("dashboard")
    server = DashboardServer(model_server.url, folder / "feedback.db", folder / "panel.log", DASHBOARD_CHUNK_ROWS="2")
    yield server.wait_ready()
    server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]  # every failure was handled in the page


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `bash scripts/install.sh test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context per test; records dialogs (an injected script would open one)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed browser test carries the logs of the servers it started (dashboard, model server).

    A failure that does not reproduce is then still diagnosable from the CI output alone.
    """
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    # The module's shared servers (`dashboard`, `model_server`) and the ones this test started itself.
    logs = {value.log_path for value in funcargs.values() if isinstance(value, ServerProcess)}
    if funcargs.get("tmp_path") is not None:
        logs |= set(Path(funcargs["tmp_path"]).glob("*.log"))
    for log in sorted(logs):
        report.sections.append((f"server log {log}", log.read_text(errors="replace")[-6000:]))
