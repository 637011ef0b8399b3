"""bench/soak.py judges each request against what it should get, and its goals against their figures."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bench import soak
from bench.soak import INVALID, Mix, Outcome, per_minute, send, verdict


@pytest.fixture
def scripted_server():
    """Answers a good request with one prediction per row, anything without Content-Type with a 500."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.headers.get("Content-Type"):
                status, payload = 500, {"message": "boom"}
            else:
                try:
                    rows = json.loads(body)["dataframe_split"]["data"]
                    status = 200 if all(row[0] for row in rows) else 400
                    payload = {"predictions": [{"label": "negative"}] * len(rows)}
                except (ValueError, KeyError):
                    status, payload = 400, {"message": "bad"}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/invocations"
    server.shutdown()


def test_the_mix_holds_its_shares_and_cycles_every_invalid_kind():
    mix = Mix([f"tweet {i}" for i in range(200)], seed=1)
    kinds = [mix.draw()[0] for _ in range(4000)]
    assert kinds.count("single") / 4000 == pytest.approx(0.70, abs=0.03)
    assert kinds.count("batch") / 4000 == pytest.approx(0.25, abs=0.03)
    assert {kind for kind in kinds if kind.startswith("invalid")} == {f"invalid: {name}" for name in INVALID}


def test_a_4xx_where_one_is_due_is_refused_and_a_wrong_status_is_an_unexpected_error(scripted_server):
    mix = Mix(["late again"], seed=1)
    outcomes = {}
    with requests.Session() as session:
        for _ in range(200):
            outcome = send(session, scripted_server, mix, 0.0, 0.0)
            outcomes.setdefault(outcome.kind, outcome)
    assert not outcomes["single"].error and not outcomes["batch"].error
    assert outcomes["invalid: empty text"].refused and not outcomes["invalid: empty text"].error
    no_type = outcomes["invalid: no Content-Type"]
    assert not no_type.refused and no_type.error == "HTTP 500 for invalid: no Content-Type (expected 415)"


def test_a_closed_port_is_an_unexpected_error_not_a_crash():
    with requests.Session() as session:
        outcome = send(session, "http://127.0.0.1:9/invocations", Mix(["x"], seed=1), 0.0, 0.0)
    assert outcome.error == "connection refused or reset"


def outcome(due_s: float, latency_ms: float, error: str = "") -> Outcome:
    return Outcome(due_s, "single", 1, latency_ms, latency_ms, error, refused=False)


def test_goals_compare_the_last_minute_with_the_first():
    outcomes = [outcome(s, 10.0) for s in range(60)] + [outcome(60 + s, 14.0) for s in range(60)]
    rss = [(30.0, 1000.0), (59.0, 1000.0), (90.0, 1020.0), (119.0, 1040.0)]
    minutes = per_minute(outcomes, rss)
    assert [m["requests"] for m in minutes] == [60, 60]
    assert [m["p99_ms"] for m in minutes] == [pytest.approx(10.0), pytest.approx(14.0)]
    assert [m["rss_mb"] for m in minutes] == [1000.0, 1040.0]
    goals = verdict(minutes, {})
    assert goals["p99_last_over_first"] == pytest.approx(1.4) and goals["p99_ratio_met"]
    assert goals["rss_growth_after_first_minute"] == pytest.approx(0.04) and goals["rss_growth_met"]
    assert goals["unexpected_errors_met"]


def test_growth_past_five_percent_or_any_error_misses_the_goals():
    outcomes = [outcome(s, 10.0) for s in range(60)] + [outcome(60 + s, 20.0) for s in range(60)]
    minutes = per_minute(outcomes, [(59.0, 1000.0), (119.0, 1060.0)])
    goals = verdict(minutes, {"HTTP 500 for single (expected 200)": 1})
    assert not goals["rss_growth_met"] and not goals["p99_ratio_met"] and not goals["unexpected_errors_met"]
    assert soak.GOAL_P99_RATIO == 1.5 and soak.GOAL_RSS_GROWTH == 0.05
