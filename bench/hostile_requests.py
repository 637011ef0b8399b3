"""What the served model does with oversized and hostile requests, and what they cost the next client.

Starts `mlflow models serve` on a model URI (default the champion, one worker) and sends, one after
the other: a batch at the row limit, one over it (100,000 rows), 10 MB of one-letter rows (JSON
`inputs` and CSV: millions of rows within the byte limit), a 50 MB single text, JSON nested 100,000
levels deep, and a body without Content-Type. After each, a one-tweet request from a second
client is timed: an oversized request must not slow the service for everyone. Prints status, time
and the message for each, and writes them to `--json` with provenance.

\b
    python bench/hostile_requests.py
    python bench/hostile_requests.py --model-uri runs:/<run_id>/model --json build/hostile.json

Run it from the repository root with the project's virtual environment active and
MLFLOW_TRACKING_URI pointing at the store that holds the model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import click
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve_benchmark import busy_warning, champion_body, load_texts, machine, start_champion
from harness.provenance import provenance
from pyfunc.limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS
from steps.lib.registry import CHAMPION_URI

JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}


def tiny_json_rows() -> bytes:
    """`inputs` of one-letter texts filling the byte limit: 2.6 M rows that MLflow parses before `predict`."""
    return b'{"inputs": {"text": [' + b",".join([b'"a"'] * ((DEFAULT_MAX_BYTES - 30) // 4)) + b"]}}"


def tiny_csv_rows() -> bytes:
    """A CSV of one-letter rows filling the byte limit: 5.2 M rows that pandas parses before `predict`."""
    return b"text\n" + b"a\n" * ((DEFAULT_MAX_BYTES - 5) // 2)


def cases(texts: list[str]) -> list[tuple[str, bytes, dict[str, str]]]:
    """Name, body and headers of each request, largest work first."""

    def rows(count: int) -> bytes:
        return json.dumps(champion_body([texts[i % len(texts)] for i in range(count)])).encode()

    return [
        (f"{DEFAULT_MAX_ROWS:,} rows (at the limit)", rows(DEFAULT_MAX_ROWS), JSON),
        ("100,000 rows", rows(100_000), JSON),
        ("10 MB of one-letter rows (JSON inputs)", tiny_json_rows(), JSON),
        ("10 MB of one-letter rows (CSV)", tiny_csv_rows(), CSV),
        ("a 50 MB single text", json.dumps(champion_body(["x" * 50_000_000])).encode(), JSON),
        ("JSON nested 100,000 levels", b"[" * 100_000 + b"]" * 100_000, JSON),
        ("no Content-Type", json.dumps(champion_body(["late again"])).encode(), {}),
    ]


def timed(url: str, body: bytes, headers: dict[str, str]) -> dict:
    started = time.perf_counter()
    try:
        response = requests.post(url, data=body, headers=headers, timeout=120)
        status, text = response.status_code, response.text
    except requests.RequestException as error:
        status, text = 0, f"{type(error).__name__}: {error}"
    seconds = time.perf_counter() - started
    try:
        message = (
            json.loads(text).get("message", "") if status != 200 else f"{len(json.loads(text)['predictions'])} rows"
        )
    except (ValueError, AttributeError, KeyError):
        message = text[:200]
    return {"status": status, "seconds": seconds, "message": message.rpartition("Error: ")[2][:200]}


@click.command(help=__doc__)
@click.option("--model-uri", default=CHAMPION_URI, show_default=True, help="model served by `mlflow models serve`")
@click.option("--json", "json_path", default="", show_default=True, help="also write the figures to this JSON file")
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    texts = load_texts("", 4000, 7)
    host, origin = machine(), provenance(args.model_uri)
    print(f"machine: {host}")
    if warning := busy_warning():
        print(warning, flush=True)
    server = start_champion(args.model_uri, workers=1)
    one_tweet = json.dumps(champion_body(["could you check on my refund from March?"])).encode()
    results = []
    try:
        baseline = min(timed(server.predict_url, one_tweet, JSON)["seconds"] for _ in range(20))
        print(f"one tweet on an idle server: {baseline * 1000:.1f} ms (best of 20)\n")
        print("| request | status | seconds | the next one-tweet request | message |\n|---|---:|---:|---:|---|")
        for name, body, headers in cases(texts):
            result = timed(server.predict_url, body, headers)
            result["next_one_tweet_ms"] = timed(server.predict_url, one_tweet, JSON)["seconds"] * 1000
            results.append({"request": name, "bytes": len(body)} | result)
            print(
                f"| {name} | {result['status']} | {result['seconds']:.2f} | {result['next_one_tweet_ms']:.1f} ms | "
                f"{result['message']} |",
                flush=True,
            )
    finally:
        server.stop()
    if args.json_path:
        record = {"machine": host, "provenance": origin, "warning": warning, "one_tweet_idle_ms": baseline * 1000}
        Path(args.json_path).write_text(json.dumps(record | {"requests": results}, indent=2))


if __name__ == "__main__":
    main()
