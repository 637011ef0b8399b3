"""Soak: the served model under a steady realistic load for a bounded time, minute by minute.

Starts `mlflow models serve` on a model URI (default the champion, one worker), measures its capacity
with the request mix below at `--concurrency` client threads sending back to back, then the same
threads send requests at a fixed rate, 80% of that capacity unless `--rate` sets it, for `--seconds`,
and the capacity is measured again at the end: a p99 that grew while the capacity fell is the machine
slowing down (a shared VM), not the server wearing out, and the report says which it was.
The mix: 70% single tweets, 25% batches of 8 to 64 tweets, 5% invalid requests (an empty text, no
`text` column, a threshold of 1.5, broken JSON, no Content-Type), which must get their 4xx and are
counted apart. Latency counts from each request's scheduled send time, so a server that falls behind
shows it (no coordinated omission); the server's own time per request (from the actual send) is reported beside it.

Per minute: requests, tweets, p50/p95/p99 of valid requests, errors, and the server's RSS (its
whole process tree). Goals: 0 unexpected errors, RSS growth under 5% after the first minute, p99 in
the last minute within 1.5x of the first.

\b
    python bench/soak.py                                   # the champion, 10 minutes at 80% capacity
    python bench/soak.py --seconds 120 --json build/soak.json
    python bench/soak.py --model-uri runs:/<run_id>/model --rate 20

Run it from the repository root with the project's virtual environment active and
MLFLOW_TRACKING_URI pointing at the store that holds the model.
"""

from __future__ import annotations

import itertools
import json
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import click
import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve_benchmark import Server, busy_warning, champion_body, load_texts, machine, start_champion
from harness.provenance import provenance
from steps.lib.cli import WHOLE_NUMBER
from steps.lib.registry import CHAMPION_URI

SHARE_SINGLE, SHARE_BATCH = 0.70, 0.25  # the rest are invalid requests
BATCH_SIZES = (8, 64)
CAPACITY_SECONDS = 45.0  # 20 s estimates varied by 1.5x between runs on the same VM
REQUEST_TIMEOUT_S = 30.0
GOAL_RSS_GROWTH = 0.05
GOAL_P99_RATIO = 1.5
JSON_HEADERS = {"Content-Type": "application/json"}
# Invalid requests and the status each must get (docs/serving.md, "Error contract").
INVALID = {
    "empty text": (json.dumps(champion_body([""])), JSON_HEADERS, 400),
    "no text column": (json.dumps({"dataframe_split": {"columns": ["tweet"], "data": [["late"]]}}), JSON_HEADERS, 400),
    "threshold 1.5": (json.dumps(champion_body(["late"]) | {"params": {"threshold": 1.5}}), JSON_HEADERS, 400),
    "broken JSON": ('{"dataframe_split": {"columns": ["text"], "data": [["late"]', JSON_HEADERS, 400),
    "no Content-Type": (json.dumps(champion_body(["late"])), {}, 415),
}


@dataclass(frozen=True)
class Outcome:
    """One request: when it was due, what it was, how it ended."""

    due_s: float  # scheduled send time, seconds since the soak began
    kind: str  # single, batch, or "invalid: <what>"
    tweets: int
    latency_ms: float  # from the scheduled send time to the answer: what a client waits
    service_ms: float  # from the actual send to the answer: what the server took
    error: str  # "" when it got the answer it should; else why not ("unexpected" kinds only)
    refused: bool  # an invalid request that got its 4xx


class Mix:
    """Draws requests in the soak's proportions from real tweets; seeded, so two runs send the same."""

    def __init__(self, texts: list[str], seed: int) -> None:
        self.texts = texts
        self.random = random.Random(seed)
        self.invalid = itertools.cycle(INVALID.items())
        self.lock = threading.Lock()

    def draw(self) -> tuple[str, int, str, dict[str, str], int]:
        """kind, tweets, body, headers, expected status."""
        with self.lock:
            roll = self.random.random()
            if roll < SHARE_SINGLE:
                return "single", 1, json.dumps(champion_body([self.random.choice(self.texts)])), JSON_HEADERS, 200
            if roll < SHARE_SINGLE + SHARE_BATCH:
                size = self.random.randint(*BATCH_SIZES)
                body = json.dumps(champion_body(self.random.choices(self.texts, k=size)))
                return "batch", size, body, JSON_HEADERS, 200
            name, (body, headers, status) = next(self.invalid)
            return f"invalid: {name}", 0, body, headers, status


def send(session: requests.Session, url: str, mix: Mix, started: float, due_s: float) -> Outcome:
    """One request of the mix, judged against what it should get."""
    kind, tweets, body, headers, expected = mix.draw()
    error = ""
    sent = time.perf_counter()
    try:
        response = session.post(url, data=body.encode(), headers=headers, timeout=REQUEST_TIMEOUT_S)
        if response.status_code != expected:
            error = f"HTTP {response.status_code} for {kind} (expected {expected})"
        elif expected == 200 and len(response.json().get("predictions", [])) != tweets:
            error = "200 with the wrong number of predictions"
    except requests.Timeout:
        error = f"no answer within {REQUEST_TIMEOUT_S:.0f} s"
    except requests.ConnectionError:
        error = "connection refused or reset"
    answered = time.perf_counter()
    latency_ms, service_ms = (answered - started - due_s) * 1000, (answered - sent) * 1000
    return Outcome(due_s, kind, tweets, latency_ms, service_ms, error, refused=kind.startswith("invalid") and not error)


def measure_capacity(server: Server, mix: Mix, concurrency: int, seconds: float) -> float:
    """Requests/s of the mix with `concurrency` clients sending back to back (closed loop)."""
    stop_at = time.perf_counter() + seconds
    done: list[Outcome] = []

    def client() -> None:
        with requests.Session() as session:
            while time.perf_counter() < stop_at:
                now = time.perf_counter()
                done.append(send(session, server.predict_url, mix, now, 0.0))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(done) / (time.perf_counter() - started)


def soak(server: Server, mix: Mix, rate: float, seconds: float, senders: int) -> tuple[list[Outcome], list[tuple]]:
    """Send at `rate` requests/s for `seconds` (open loop), sampling the server's RSS every 5 s."""
    schedule: queue.Queue[float | None] = queue.Queue()
    outcomes: list[Outcome] = []
    rss: list[tuple[float, float]] = []
    started = time.perf_counter()

    def sender() -> None:
        with requests.Session() as session:
            while (due_s := schedule.get()) is not None:
                wait = started + due_s - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                outcomes.append(send(session, server.predict_url, mix, started, due_s))

    def sample_rss(stop: threading.Event) -> None:
        while not stop.wait(5.0):
            rss.append((time.perf_counter() - started, server.rss_mb()))

    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(stop,), daemon=True)
    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in [sampler, *threads]:
        thread.start()
    for index in range(int(rate * seconds)):
        schedule.put(index / rate)
    for _ in threads:
        schedule.put(None)
    for thread in threads:
        thread.join()
    stop.set()
    sampler.join()
    return outcomes, rss


def per_minute(outcomes: list[Outcome], rss: list[tuple[float, float]]) -> list[dict]:
    """The soak's figures by the minute in which each request was due."""
    minutes = []
    for minute in range(int(max(o.due_s for o in outcomes) // 60) + 1):
        these = [o for o in outcomes if int(o.due_s // 60) == minute]
        answered = [o for o in these if not o.kind.startswith("invalid") and not o.error]
        valid = np.array([o.latency_ms for o in answered])
        service = np.array([o.service_ms for o in answered])
        memory = [mb for at, mb in rss if int(at // 60) == minute]
        minutes.append(
            {
                "minute": minute + 1,
                "requests": len(these),
                "tweets": sum(o.tweets for o in these if not o.error),
                "p50_ms": float(np.percentile(valid, 50)) if len(valid) else float("nan"),
                "p95_ms": float(np.percentile(valid, 95)) if len(valid) else float("nan"),
                "p99_ms": float(np.percentile(valid, 99)) if len(valid) else float("nan"),
                "service_p99_ms": float(np.percentile(service, 99)) if len(service) else float("nan"),
                "refused_as_expected": sum(o.refused for o in these),
                "unexpected_errors": sum(bool(o.error) for o in these),
                "rss_mb": memory[-1] if memory else float("nan"),
            }
        )
    return minutes


def verdict(minutes: list[dict], errors: dict[str, int]) -> dict[str, object]:
    """The three goals, each with its figure."""
    settled = [m["rss_mb"] for m in minutes if not np.isnan(m["rss_mb"])]
    growth = (settled[-1] - settled[0]) / settled[0] if len(settled) > 1 else float("nan")
    p99_ratio = minutes[-1]["p99_ms"] / minutes[0]["p99_ms"] if len(minutes) > 1 else float("nan")
    return {
        "unexpected_errors": sum(errors.values()),
        "unexpected_errors_met": not errors,
        "rss_growth_after_first_minute": growth,
        "rss_growth_met": bool(growth < GOAL_RSS_GROWTH),
        "p99_last_over_first": p99_ratio,
        "p99_ratio_met": bool(p99_ratio <= GOAL_P99_RATIO),
    }


def report(minutes: list[dict], errors: dict[str, int], refused: dict[str, int], goals: dict) -> str:
    columns = "minute | requests | tweets | p50 ms | p95 ms | p99 ms | server p99 | expected 4xx | unexpected | RSS MB"
    lines = [f"| {columns} |"]
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = ("requests", "tweets", "p50_ms", "p95_ms", "p99_ms", "service_p99_ms", "refused_as_expected")
    for m in minutes:
        cells = [f"{m[key]:.1f}" if isinstance(m[key], float) else str(m[key]) for key in keys]
        lines.append(f"| {m['minute']} | {' | '.join(cells)} | {m['unexpected_errors']} | {m['rss_mb']:.0f} |")
    lines.append("")
    lines.append(f"invalid requests refused as expected: {refused or 'none sent'}")
    lines.append(f"unexpected errors: {errors or 'none'}")

    def met(key: str) -> str:
        return "met" if goals[key] else "MISSED"

    lines.append(
        f"goals: unexpected errors {goals['unexpected_errors']} (goal 0: {met('unexpected_errors_met')}); "
        f"RSS growth after minute 1 {goals['rss_growth_after_first_minute']:+.1%} "
        f"(goal < 5%: {met('rss_growth_met')}); "
        f"p99 last/first minute {goals['p99_last_over_first']:.2f}x (goal <= 1.5x: {met('p99_ratio_met')})"
    )
    return "\n".join(lines)


@click.command(help=__doc__)
@click.option("--model-uri", default=CHAMPION_URI, show_default=True, help="model served by `mlflow models serve`")
@click.option("--seconds", type=float, default=600, show_default=True, help="how long the soak sends requests")
@click.option(
    "--rate", type=float, default=0, show_default=True, help="requests/s to send (0 = 80% of the measured capacity)"
)
@click.option(
    "--concurrency",
    type=WHOLE_NUMBER,
    default=4,
    show_default=True,
    help="client threads: they measure the capacity back to back, then send the soak's requests",
)
@click.option("--texts", default="", show_default=True, help="CSV/Parquet with a text column (empty = embedded tweets)")
@click.option("--json", default="", show_default=True, help="also write every figure to this JSON file")
@click.option("--seed", type=WHOLE_NUMBER, default=7, show_default=True, help="seed of the tweets and the mix")
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    if args.seconds <= 0 or args.rate < 0:
        raise click.BadParameter("--seconds must be > 0 and --rate >= 0")
    texts = load_texts(args.texts, 4000, args.seed)
    host, origin = machine(), provenance(args.model_uri)  # at start: the load before the soak's own
    print(f"machine: {host}")
    if warning := busy_warning():
        print(warning, flush=True)
    server = start_champion(args.model_uri, workers=1)
    try:
        idle_rss = server.rss_mb()
        print(f"served: {args.model_uri} (mlflow models serve, 1 worker), idle RSS {idle_rss:.0f} MB", flush=True)
        mix = Mix(texts, args.seed)
        capacity = measure_capacity(server, mix, args.concurrency, CAPACITY_SECONDS)
        rate = args.rate or 0.8 * capacity
        print(
            f"capacity with the mix at concurrency {args.concurrency}: {capacity:.1f} requests/s; "
            f"soaking at {rate:.1f} requests/s for {args.seconds:.0f} s",
            flush=True,
        )
        outcomes, rss = soak(server, mix, rate, args.seconds, senders=args.concurrency)
        capacity_after = measure_capacity(server, mix, args.concurrency, CAPACITY_SECONDS)
        print(
            f"capacity after the soak: {capacity_after:.1f} requests/s ({capacity_after / capacity - 1:+.0%}); "
            f"the soak's rate was {rate / capacity_after:.0%} of it",
            flush=True,
        )
    finally:
        server.stop()
    errors: dict[str, int] = {}
    refused: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.error:
            errors[outcome.error] = errors.get(outcome.error, 0) + 1
    for name, (_, _, status) in INVALID.items():
        refused[f"{name} -> {status}"] = sum(o.refused for o in outcomes if o.kind == f"invalid: {name}")
    minutes = per_minute(outcomes, rss)
    goals = verdict(minutes, errors)
    print("\n" + report(minutes, errors, refused, goals))
    if args.json:
        record = {
            "machine": host,
            "provenance": origin,
            "warning": warning,
            "capacity_requests_per_s": capacity,
            "capacity_after_requests_per_s": capacity_after,
            "rate_requests_per_s": rate,
            "seconds": args.seconds,
            "idle_rss_mb": idle_rss,
            "minutes": minutes,
            "unexpected_errors": errors,
            "refused_as_expected": refused,
            "goals": goals,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
