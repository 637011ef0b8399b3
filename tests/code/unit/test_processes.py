"""Stopping a server stops every process it started, as `mlflow models serve` starts uvicorn."""

from __future__ import annotations

import os
import socket
import sys
import time

import psutil
import pytest
import requests

from steps.lib.processes import port_accepts, start_server, stop_server, wait_port_closed
from tests.conftest import free_port

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
