"""Slow clients over real HTTP (docs/design.md, "Serving limits"): a body that never finishes arriving
gets MLflow's 504 at the request timeout (its timeout middleware wraps the request guard, so the time
spent reading the body counts), and a crowd of connections that send nothing or trickle their
headers leaves `/ping` and scoring answering. bench/slow_clients.py measures what they cost."""

from __future__ import annotations

import socket
import time

import pytest
import requests

pytestmark = pytest.mark.integration

TIMEOUT_S = 2


def open_slow(port: int, opening: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(opening)
    return sock


def test_a_body_still_arriving_at_the_timeout_gets_a_504_and_the_next_request_is_answered(
    serve, tracking, baseline_run_id
):
    server = serve(
        f"runs:/{baseline_run_id}/model", env={**tracking.env, "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": str(TIMEOUT_S)}
    )
    headers = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    headers += b"Content-Length: 1000\r\n\r\n"
    slow = open_slow(server.port, headers + b'{"inputs": {"text": ["my bag')
    started = time.monotonic()
    answer = slow.recv(4096).decode()  # blocks until the server answers (or the 30 s socket timeout)
    waited = time.monotonic() - started
    slow.close()
    assert answer.startswith("HTTP/1.1 504"), answer
    assert waited < 25, waited  # the deadline, not the socket's own 30 s timeout, ended it
    body = {"inputs": {"text": ["thanks, all sorted"]}}
    assert requests.post(f"{server.url}/invocations", json=body, timeout=30).status_code == 200


@pytest.mark.parametrize(
    "opening",
    [b"", b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "],
    ids=["idle", "headers-trickled"],
)
def test_two_hundred_slow_connections_leave_ping_and_scoring_answering(server, still_serving, opening):
    slow = [open_slow(server.port, opening) for _ in range(200)]
    try:
        assert requests.get(f"{server.url}/ping", timeout=10).status_code == 200
        still_serving()
    finally:
        for sock in slow:
            sock.close()
