"""The server harness: stopping a server stops every process it started (as `mlflow models serve` starts
uvicorn), and waiting for one fails early, with its log, when it exits."""

from __future__ import annotations

import os
import socket
import sys
import time

import psutil
import pytest
import requests

from harness.servers import (
    ServerFailed,
    ServerProcess,
    free_port,
    port_accepts,
    start_server,
    stop_server,
    wait_port_closed,
)

# A parent that starts a child HTTP server and waits for it, as the mlflow CLI does with uvicorn.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", sys.argv[1]])
child.wait()
"""
# A child that ignores SIGTERM: only SIGKILL of the group stops it.
STUBBORN_PARENT = """
import subprocess, sys
code = "import signal, http.server as h; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
code += "import sys; h.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), h.SimpleHTTPRequestHandler)"
code += ".serve_forever()"
subprocess.Popen([sys.executable, "-c", code, sys.argv[1]]).wait()
"""


def _serving_tree(source: str, tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (closed by the test)
    process = start_server([sys.executable, "-c", source, str(port)], dict(os.environ), log, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not port_accepts(port):
        assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.1)
    children = psutil.Process(process.pid).children(recursive=True)
    assert children, "the parent should have started a child server"
    return process, port, children, log


@pytest.mark.parametrize("source", [PARENT, STUBBORN_PARENT], ids=["child-serves", "child-ignores-sigterm"])
def test_stop_server_stops_the_child_that_serves_and_the_port_refuses(tmp_path, source):
    process, port, children, log = _serving_tree(source, tmp_path)
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200

    stop_server(process, port, timeout=3)
    log.close()

    assert process.poll() is not None
    assert not port_accepts(port)
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_terminating_only_the_cli_leaves_the_child_serving(tmp_path):
    """The failure the group stop exists for: terminate() of the parent alone keeps the port answering."""
    process, port, _, log = _serving_tree(PARENT, tmp_path)
    process.terminate()
    process.wait(timeout=10)
    try:
        assert port_accepts(port), "the child server should outlive its parent"
    finally:
        stop_server(process, port, timeout=3)  # the group still holds the child: this cleans it up
        log.close()
    assert not port_accepts(port)


def test_wait_port_closed_names_the_port_still_open():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(TimeoutError, match=f"127.0.0.1:{port} still accepts connections"):
            wait_port_closed(port, timeout=0.3)


def test_waiting_fails_at_once_with_the_log_tail_when_the_server_exits(tmp_path):
    command = [sys.executable, "-c", "import sys; print('no model at that URI'); sys.exit(3)"]
    server = ServerProcess(command, dict(os.environ), None, free_port(), name="doomed server")
    started = time.monotonic()
    with pytest.raises(ServerFailed, match="doomed server exited with code 3") as failure:
        server.wait_ready(timeout=60)
    assert time.monotonic() - started < 30, "an exited server must not be waited for until the timeout"
    assert "no model at that URI" in str(failure.value)
    assert server.log_path.exists(), "the log of a failed server is kept for whoever reads the error"
    server.stop()  # stopped already: a second stop does nothing


def test_a_server_that_never_answers_200_fails_after_the_timeout_and_is_stopped(tmp_path):
    port = free_port()
    code = "import http.server as h, sys; h.HTTPServer(('127.0.0.1', int(sys.argv[1])), h.BaseHTTPRequestHandler)"
    command = [sys.executable, "-c", code + ".serve_forever()", str(port)]  # answers 501 to every GET
    server = ServerProcess(command, dict(os.environ), tmp_path / "server.log", port)
    with pytest.raises(ServerFailed, match=f"http://127.0.0.1:{port}/ did not answer 200 within 2 s"):
        server.wait_ready(timeout=2, poll=0.1)
    assert server.process.poll() is not None and not port_accepts(port)


def test_a_ready_server_in_a_with_block_is_stopped_and_its_temporary_log_removed(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with ServerProcess(command, dict(os.environ), None, port, cwd=tmp_path) as server:
        assert server.wait_ready(timeout=30, poll=0.1) is server
        assert requests.get(server.url, timeout=5).status_code == 200
        log = server.log_path
        assert log.exists() and server.rss_mb() > 0
    assert not port_accepts(port)
    assert not log.exists(), "a clean run leaves no temporary log behind"
