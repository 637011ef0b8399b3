"""Smoke test of a deployed tweet-sentiment server: health, the response contract, and the answer itself.

    python scripts/smoke_test.py http://127.0.0.1:8080 --save expected.json   # a fresh container: record
    python scripts/smoke_test.py https://app.azurewebsites.net --expect expected.json --wait 600

Checks /ping, then POSTs two unambiguous tweets to /invocations and fails (exit 1) unless the answer
follows the serving contract of docs/design.md (labels, probabilities, threshold, model_version), labels the
complaint `negative` and the compliment `not_negative`, and answers an empty text with a 400 naming
the row. With `--expect-run-id` the answer must come from the pinned model version's run (`model_version` names
it), which an old container cannot fake; with `--expect` the labels must equal and the probabilities
be within 1e-3 of those the image gave when it was tested before the push. `--wait` retries until
both hold (a slot takes a few minutes to pull and start a new image).
Standard library only, so it runs on a bare CI runner.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROBE = [
    "@united you lost my luggage again and nobody helps. Worst airline ever, never flying with you again",
    "@united thank you! The crew was wonderful and the flight was perfect",
]
EXPECTED_LABELS = ["negative", "not_negative"]
FIELDS = {"label", "proba_negative", "threshold", "model_version"}
# What the threshold means on validation: answered by models logged with a threshold policy.
OPTIONAL_FIELDS = {"val_precision", "val_recall"}
# The same int8 graph on two CPUs (the build runner, the Web App) differs in the fourth decimal at most.
PROBABILITY_TOLERANCE = 1e-3


class SmokeError(Exception):
    """The server answered, but not what the contract says."""


def call(url: str, body: dict | None, headers: dict[str, str], timeout: float = 30) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def check(base: str, headers: dict[str, str], labels: bool) -> list[dict]:
    """One round of checks; returns the predictions for the probe tweets."""
    status, _ = call(f"{base}/ping", None, headers)
    if status != 200:
        raise SmokeError(f"/ping answered {status}")
    status, text = call(f"{base}/invocations", {"dataframe_records": [{"text": t} for t in PROBE]}, headers)
    if status != 200:
        raise SmokeError(f"/invocations answered {status}: {text[:500]}")
    rows = json.loads(text).get("predictions")
    if not isinstance(rows, list) or len(rows) != len(PROBE):
        raise SmokeError(f"expected {len(PROBE)} predictions, got: {text[:500]}")
    for row in rows:
        if not FIELDS <= set(row) <= FIELDS | OPTIONAL_FIELDS or row["label"] not in ("negative", "not_negative"):
            raise SmokeError(f"response row breaks the contract: {row}")
        if not 0.0 <= row["proba_negative"] <= 1.0 or not 0.0 <= row["threshold"] <= 1.0:
            raise SmokeError(f"probability or threshold outside [0, 1]: {row}")
        if row["label"] != ("negative" if row["proba_negative"] >= row["threshold"] else "not_negative"):
            raise SmokeError(f"label disagrees with proba_negative and threshold: {row}")
    if labels and [row["label"] for row in rows] != EXPECTED_LABELS:
        raise SmokeError(f"wrong labels {[row['label'] for row in rows]} for {PROBE} (expected {EXPECTED_LABELS})")
    status, text = call(f"{base}/invocations", {"dataframe_records": [{"text": "late again"}, {"text": ""}]}, headers)
    if status != 400 or "row 1: text is empty" not in text:
        raise SmokeError(f"an empty text should be a 400 naming row 1, got {status}: {text[:500]}")
    return rows


def same_answer(rows: list[dict], expected: list[dict]) -> bool:
    """Same labels and model, probabilities within PROBABILITY_TOLERANCE (another CPU rounds int8 differently)."""
    return [(r["label"], r["model_version"]) for r in rows] == [
        (e["label"], e["model_version"]) for e in expected
    ] and all(
        abs(r["proba_negative"] - e["proba_negative"]) <= PROBABILITY_TOLERANCE
        for r, e in zip(rows, expected, strict=True)
    )


def served_run_id(rows: list[dict]) -> str:
    """The run id in `model_version` (`<family>:<run id>`): the model a container really loaded."""
    return rows[0]["model_version"].rsplit(":", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="base URL of the server (without /invocations)")
    parser.add_argument("--header", action="append", default=[], help="extra request header 'Name: value'")
    parser.add_argument("--save", help="write the probe predictions to this JSON file")
    parser.add_argument("--expect", help="fail unless the probe predictions equal this JSON file's (within 1e-3)")
    parser.add_argument(
        "--expect-run-id", help="fail unless the served model_version names this run (the pinned version's)"
    )
    parser.add_argument("--wait", type=float, default=0, help="retry for up to this many seconds")
    parser.add_argument("--no-label-check", action="store_true", help="skip the expected-label check (toy models)")
    args = parser.parse_args(argv)
    base = args.url.rstrip("/")
    headers = dict(header.split(":", 1) for header in args.header)
    headers = {name.strip(): value.strip() for name, value in headers.items()}
    expected = json.loads(Path(args.expect).read_text()) if args.expect else None

    deadline = time.monotonic() + args.wait
    while True:
        try:
            rows = check(base, headers, labels=not args.no_label_check)
            if args.expect_run_id and served_run_id(rows) != args.expect_run_id:
                raise SmokeError(f"serves run {served_run_id(rows)}, not the pinned version's run {args.expect_run_id}")
            if expected is not None and not same_answer(rows, expected):
                raise SmokeError(f"the answer differs from the tested image's: {rows} != {expected}")
            break
        except (SmokeError, OSError, ValueError) as error:
            if time.monotonic() >= deadline:
                print(f"smoke test FAILED on {base}: {error}", file=sys.stderr)
                return 1
            print(f"not yet: {error}", file=sys.stderr)
            time.sleep(10)
    if args.save:
        Path(args.save).write_text(json.dumps(rows, indent=2))
    for text, row in zip(PROBE, rows, strict=True):
        print(f"{row['label']:>12}  p={row['proba_negative']:.3f}  t={row['threshold']:.3f}  {text[:60]}")
    print(f"smoke test passed on {base} ({rows[0]['model_version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
