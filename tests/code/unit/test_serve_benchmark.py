"""bench/serve_benchmark.py counts only successful requests in throughput and latency; errors fail the goals."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import click
import pytest

from steps.lib.cli import parse
from steps.lib.registry import CHAMPION_URI

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "serve_benchmark.py"
spec = importlib.util.spec_from_file_location("serve_benchmark", SCRIPT)
serve_benchmark = importlib.util.module_from_spec(spec)
sys.modules["serve_benchmark"] = serve_benchmark  # dataclasses resolve their module while it loads
spec.loader.exec_module(serve_benchmark)


@pytest.fixture
def flaky_server():
    """Answers every other request with a 500, the others with one prediction per text."""
    calls = itertools.count()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            texts = [row[0] for row in body["dataframe_split"]["data"]]
            failing = next(calls) % 2 == 1
            payload = b"boom" if failing else json.dumps({"predictions": [{"label": "x"}] * len(texts)}).encode()
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/invocations"
    yield SimpleNamespace(name="champion", predict_url=url, rss_mb=lambda: 0.0)
    httpd.shutdown()
    httpd.server_close()


def test_failed_requests_are_errors_not_throughput_or_latency(flaky_server):
    result = serve_benchmark.drive(flaky_server, serve_benchmark.champion_body, ["a", "b"], 1, 2, 10, 30)
    assert (result.requests, result.errors) == (5, 5)
    assert len(result.latencies_ms) == 5
    assert result.tweets_per_s == pytest.approx(5 * 2 / result.seconds)
    assert result.first_error.startswith("HTTP 500")


def test_a_scenario_with_errors_misses_its_goal(flaky_server):
    single = serve_benchmark.drive(flaky_server, serve_benchmark.champion_body, ["a"], 1, 1, 4, 30)
    lines = serve_benchmark.verdict([single], [])
    assert len(lines) == 1 and "missed, 2 failed requests" in lines[0]


def test_the_command_line_takes_several_scenarios_in_one_value():
    """`--concurrency 1,4,16`: one scenario per number; a fraction or an empty list is refused by name."""
    defaults = parse(serve_benchmark.main)
    assert (defaults["model_uri"], defaults["concurrency"], defaults["batch_sizes"]) == (
        CHAMPION_URI,
        (1, 4, 16),
        (1, 32),
    )
    assert defaults["skip_naive"] is False
    options = parse(serve_benchmark.main, ["--concurrency", "1,4", "--batch-sizes", "32", "--skip-naive"])
    assert (options["concurrency"], options["batch_sizes"], options["skip_naive"]) == ((1, 4), (32,), True)
    assert parse(serve_benchmark.main, ["--concurrency", "2 8.0"])["concurrency"] == (2, 8)
    assert (defaults["rounds"], parse(serve_benchmark.main, ["--rounds", "5.0"])["rounds"]) == (3, 5)
    with pytest.raises(click.BadParameter, match="take at least 1"):
        parse(serve_benchmark.main, ["--rounds", "0"])
    for bad in ("1,4.5", ","):
        with pytest.raises(click.BadParameter, match="whole number"):
            parse(serve_benchmark.main, ["--concurrency", bad])


def scenario(server: str, concurrency: int, batch: int, p50_ms: float, tweets_per_s: float):
    """A finished scenario with every latency at `p50_ms` and the given throughput over 10 s."""
    requests = int(tweets_per_s * 10 / batch)
    return serve_benchmark.Result(server, concurrency, batch, requests, 0, 10.0, 500.0, [p50_ms] * requests)


def test_the_goals_are_the_throughput_ratio_and_a_latency_relative_to_the_naive_reference_on_any_cpu():
    """A slower CPU meets the Xeon's 5 ms as the same ratio to the naive single-tweet p50 (5 / 8.8)."""
    naive = [scenario("naive", 1, 1, 16.0, 60.0), scenario("naive", 1, 32, 200.0, 100.0)]
    champion = [scenario("champion", 1, 1, 8.0, 120.0), scenario("champion", 4, 32, 150.0, 850.0)]
    single, throughput = serve_benchmark.verdict(champion, naive)
    assert "8.0 ms (goal <= 5 ms on the Xeon: missed)" in single
    assert "0.50x the naive reference's 16.0 ms" in single and "(goal <= 0.57x on any CPU: met)" in single
    assert "ratio 8.5x (goal >= 8x: met)" in throughput
    slower = [scenario("champion", 1, 1, 10.0, 100.0), scenario("champion", 4, 32, 150.0, 790.0)]
    single, throughput = serve_benchmark.verdict(slower, naive)
    assert "(goal <= 0.57x on any CPU: missed)" in single and "(goal >= 8x: missed)" in throughput


def test_rounds_pool_into_one_scenario_each_and_the_ratios_are_also_given_round_by_round():
    """Taking turns: each scenario's throughput is all its tweets over all its time, its p50 that of every
    latency of every round; the round-by-round ratios show how far the goals' figures drifted."""
    champion_rounds = [
        [scenario("champion", 1, 1, 8.0, 100.0), scenario("champion", 4, 32, 150.0, 800.0)],
        [scenario("champion", 1, 1, 6.0, 140.0), scenario("champion", 4, 32, 150.0, 400.0)],
    ]
    naive_rounds = [
        [scenario("naive", 1, 1, 16.0, 60.0), scenario("naive", 4, 32, 900.0, 160.0)],
        [scenario("naive", 1, 1, 10.0, 90.0), scenario("naive", 4, 32, 900.0, 160.0)],
    ]
    single, throughput = serve_benchmark.pooled(champion_rounds)
    assert (single.requests, single.seconds) == (2400, 20.0)
    assert single.tweets_per_s == pytest.approx(120.0)
    assert throughput.tweets_per_s == pytest.approx(600.0)
    assert sorted(set(single.latencies_ms)) == [6.0, 8.0]
    spread = serve_benchmark.round_by_round(champion_rounds, naive_rounds)
    assert spread == [
        "- single-tweet p50 ratio round by round: 0.50x, 0.60x",
        "- throughput ratio round by round: 5.0x, 2.5x",
    ]


def test_a_round_with_failed_requests_keeps_its_errors_in_the_pooled_scenario():
    failing = scenario("champion", 1, 1, 8.0, 100.0)
    failing.errors, failing.first_error = 3, "HTTP 500: boom"
    (merged,) = serve_benchmark.pooled([[scenario("champion", 1, 1, 8.0, 100.0)], [failing]])
    assert (merged.errors, merged.first_error) == (3, "HTTP 500: boom")
    assert "missed, 3 failed requests" in serve_benchmark.verdict([merged], [])[0]


def test_explained_requests_are_the_champions_request_with_the_explain_param():
    assert serve_benchmark.explained_body(["a"]) == serve_benchmark.champion_body(["a"]) | {"params": {"explain": True}}
    assert "params" not in serve_benchmark.champion_body(["a"])
    assert parse(serve_benchmark.main)["explain"] is False
    assert parse(serve_benchmark.main, ["--explain"])["explain"] is True


def test_the_cost_of_an_explanation_is_stated_against_the_plain_p50_of_the_same_run():
    plain = [scenario("champion", 1, 1, 5.0, 200.0), scenario("champion", 1, 32, 50.0, 600.0)]
    explained = [scenario("champion", 1, 1, 20.0, 50.0)]
    line = serve_benchmark.explanation_cost(plain, explained)
    assert line == (
        "- single-tweet p50 with explanations at concurrency 1: 20.0 ms, 4.0x the 5.0 ms without (0 failed requests)"
    )
    assert serve_benchmark.words_per_tweet(["lost my bag", "ok", "a b c d"]) == 3.0
