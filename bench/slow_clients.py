"""What slow clients cost the served model: connections that send nothing, trickle their headers, or
trickle their body, held open by the hundred while other clients call `/ping` and score one tweet.

Starts `mlflow models serve` on a model URI (default the champion, one worker). For each case it opens
`--connections` sockets, keeps them trickling one byte per `--trickle` seconds for `--hold` seconds,
and meanwhile times `/ping` and a one-tweet request from a fresh client twice a second. It records
how many slow connections the server closed, after how long and with what answer, and what the other
clients waited. Figures go to `--json` with provenance (docs/reliability.md renders them).

\b
    python bench/slow_clients.py
    python bench/slow_clients.py --model-uri runs:/<run_id>/model --connections 200 --hold 30 --json build/slow.json

Run it from the repository root with the project's virtual environment active and
MLFLOW_TRACKING_URI pointing at the store that holds the model.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve_benchmark import busy_warning, champion_body, machine, start_champion
from harness.provenance import provenance
from steps.lib.registry import CHAMPION_URI

ONE_TWEET = json.dumps(champion_body(["could you check on my refund from March?"])).encode()
BODY_BYTES = 100_000  # what a slow body announces: far more than it will send while held

# What each case sends on connecting, before it starts trickling.
OPENINGS = {
    "idle connections (nothing sent)": b"",
    "headers trickled": b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    "body trickled (headers complete)": (
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BODY_BYTES}\r\n\r\n"
    ).encode(),
}
# One byte of each case's trickle: a header line's first byte, or the body's next byte.
TRICKLES = {"idle connections (nothing sent)": b"", "headers trickled": b"X", "body trickled (headers complete)": b" "}


@dataclass
class SlowConnection:
    """One slow client's socket and what became of it."""

    sock: socket.socket
    opened: float
    closed_after_s: float | None = None
    answer: str = ""

    def poll(self, now: float) -> None:
        """Note whether the server answered or closed the connection (non-blocking)."""
        if self.closed_after_s is not None:
            return
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError as error:
            data, self.answer = b"", type(error).__name__
        self.closed_after_s = now - self.opened
        self.answer = self.answer or (data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed, no answer")

    def trickle(self, byte: bytes) -> None:
        if self.closed_after_s is None and byte:
            with contextlib.suppress(OSError):  # a closed socket is noted by `poll`
                self.sock.send(byte)


@dataclass
class Probe:
    """`/ping` and one-tweet times from a fresh client while the slow ones are held."""

    ping_ms: list[float] = field(default_factory=list)
    one_tweet_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def run(self, url: str, stop: threading.Event) -> None:
        while not stop.is_set():
            for name, call, times in (
                ("ping", lambda: requests.get(f"{url}/ping", timeout=30), self.ping_ms),
                ("one tweet", lambda: self._one_tweet(url), self.one_tweet_ms),
            ):
                started = time.perf_counter()
                try:
                    status = call().status_code
                except requests.RequestException as error:
                    self.failures.append(f"{name}: {type(error).__name__}")
                    continue
                if status != 200:
                    self.failures.append(f"{name}: HTTP {status}")
                    continue
                times.append((time.perf_counter() - started) * 1000)
            stop.wait(0.5)

    @staticmethod
    def _one_tweet(url: str) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        return requests.post(f"{url}/invocations", data=ONE_TWEET, headers=headers, timeout=30)


def summary(times: list[float]) -> dict[str, float | None]:
    if not times:
        return {"calls": 0, "p50_ms": None, "max_ms": None}
    return {"calls": len(times), "p50_ms": statistics.median(times), "max_ms": max(times)}


def hold(case: str, port: int, url: str, connections: int, hold_s: float, trickle_s: float) -> dict:
    """Open `connections` slow clients of `case`, keep them trickling for `hold_s`, and time the others."""
    slow: list[SlowConnection] = []
    refused = 0
    for _ in range(connections):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(OPENINGS[case])
            sock.setblocking(False)  # polled and trickled without waiting
        except OSError:
            refused += 1
            continue
        slow.append(SlowConnection(sock, time.monotonic()))
    probe, stop = Probe(), threading.Event()
    prober = threading.Thread(target=probe.run, args=(url, stop), daemon=True)
    prober.start()
    started = time.monotonic()
    while time.monotonic() - started < hold_s:
        for connection in slow:
            connection.poll(time.monotonic())
            connection.trickle(TRICKLES[case])
        time.sleep(trickle_s)
    stop.set()
    prober.join()
    now = time.monotonic()
    for connection in slow:
        connection.poll(now)
        connection.sock.close()
    closed = [c for c in slow if c.closed_after_s is not None]
    answers = sorted({c.answer for c in closed})
    return {
        "case": case,
        "connections": connections,
        "refused_at_connect": refused,
        "held_s": hold_s,
        "closed_by_server": len(closed),
        "closed_after_s_max": max((c.closed_after_s for c in closed), default=None),
        "answers": answers,
        "ping": summary(probe.ping_ms),
        "one_tweet": summary(probe.one_tweet_ms),
        "other_clients_failed": len(probe.failures),
        "failures": sorted(set(probe.failures)),
    }


@click.command(help=__doc__)
@click.option("--model-uri", default=CHAMPION_URI, show_default=True, help="model served by `mlflow models serve`")
@click.option("--connections", default=500, show_default=True, type=click.IntRange(1), help="slow clients per case")
@click.option("--hold", "hold_s", default=90.0, show_default=True, type=click.FloatRange(1), help="seconds held")
@click.option(
    "--trickle", "trickle_s", default=5.0, show_default=True, type=click.FloatRange(0.1), help="seconds a byte"
)
@click.option("--json", "json_path", default="", show_default=True, help="also write the figures to this JSON file")
def main(model_uri: str, connections: int, hold_s: float, trickle_s: float, json_path: str) -> None:
    host, origin = machine(), provenance(model_uri)
    print(f"machine: {host}")
    if warning := busy_warning():
        print(warning, flush=True)
    server = start_champion(model_uri, workers=1)
    results = []
    try:
        idle = Probe()
        stop = threading.Event()
        threading.Timer(10, stop.set).start()
        idle.run(server.url, stop)
        print(
            f"idle server: ping p50 {summary(idle.ping_ms)['p50_ms']:.1f} ms, "
            f"one tweet p50 {summary(idle.one_tweet_ms)['p50_ms']:.1f} ms",
            flush=True,
        )
        for case in OPENINGS:
            result = hold(case, server.port, server.url, connections, hold_s, trickle_s)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        server.stop()
    if json_path:
        record = {"machine": host, "provenance": origin, "warning": warning, "trickle_s": trickle_s}
        record |= {"idle": {"ping": summary(idle.ping_ms), "one_tweet": summary(idle.one_tweet_ms)}}
        Path(json_path).write_text(json.dumps(record | {"cases": results}, indent=2))


if __name__ == "__main__":
    main()
