"""The serving limits over HTTP (docs/design.md, "Serving limits"): rows, bytes, nesting and the deadline.

Each refusal is a 4xx whose message names the limit, sent before any row is scored, and the same
server answers a good request correctly afterwards.
"""

from __future__ import annotations

import io
import json
import threading
import time

import pandas as pd
import pytest
import requests

from harness.servers import ModelServer
from pyfunc.limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, DEFAULT_MAX_TEXT_CHARS, MAX_JSON_DEPTH, ServingLimits

pytestmark = pytest.mark.integration


def records(texts: list[str]) -> dict:
    return {"dataframe_split": {"columns": ["text"], "data": [[text] for text in texts]}}


def message_of(response: requests.Response) -> str:
    return response.json()["message"]


def test_a_batch_over_the_row_limit_is_refused_naming_the_limit(server, still_serving):
    response = server.invocations(records([f"late flight number {i}" for i in range(DEFAULT_MAX_ROWS + 1)]))
    assert response.status_code == 400
    message = message_of(response)
    assert f"{DEFAULT_MAX_ROWS + 1:,} rows in one request" in message
    assert f"at most {DEFAULT_MAX_ROWS:,} (MAX_ROWS_PER_REQUEST)" in message
    still_serving()


def tiny_rows_body(content_type: str) -> tuple[bytes, int]:
    """A body just under the byte limit of one-letter rows, and its row count: millions of them."""
    if content_type == "text/csv":
        rows = (DEFAULT_MAX_BYTES - 5) // 2
        return b"text\n" + b"a\n" * rows, rows
    rows = (DEFAULT_MAX_BYTES - 30) // 4
    return b'{"inputs": {"text": [' + b",".join([b'"a"'] * rows) + b"]}}", rows


@pytest.mark.parametrize("content_type", ["application/json", "text/csv"])
def test_ten_megabytes_of_tiny_rows_are_refused_before_mlflow_parses_them(server, still_serving, content_type):
    """MLflow parsed such a body for seconds before `predict` counted its rows; the guard counts them in
    the bytes. Its message is bare: `predict`'s would come wrapped in MLflow's "Failed to predict data"."""
    body, rows = tiny_rows_body(content_type)
    assert len(body) <= DEFAULT_MAX_BYTES
    response = server.invocations(body, content_type=content_type)
    assert response.status_code == 400
    assert message_of(response) == ServingLimits().rows_refusal(rows)
    still_serving()


def test_a_small_parquet_body_of_millions_of_rows_is_refused_by_its_footer(server, still_serving):
    """Compressed columns do not bound a Parquet body's rows: the guard reads its footer, not its columns."""
    rows = 2_000_000
    buffer = io.BytesIO()
    pd.DataFrame({"text": ["a"] * rows}).to_parquet(buffer, index=False, compression="zstd")
    assert buffer.getbuffer().nbytes < 100_000
    response = server.invocations(buffer.getvalue(), content_type="application/vnd.apache.parquet")
    assert response.status_code == 400
    assert message_of(response) == ServingLimits().rows_refusal(rows)
    still_serving()


def test_a_body_over_the_byte_limit_gets_a_413_before_it_is_read(server, still_serving):
    body = json.dumps(records(["x" * (DEFAULT_MAX_BYTES + 1)]))
    response = server.invocations(body)
    assert response.status_code == 413
    assert f"at most {DEFAULT_MAX_BYTES:,} (MAX_REQUEST_BYTES)" in message_of(response)
    still_serving()


def test_a_chunked_body_that_declares_no_length_is_cut_off_at_the_limit(server, still_serving):
    piece = b'{"dataframe_split": {"columns": ["text"], "data": [["' + b"y" * (1024 * 1024)

    def chunks():
        yield piece
        for _ in range(DEFAULT_MAX_BYTES // len(piece) + 1):
            yield b"y" * len(piece)
        yield b'"]]}}'

    response = requests.post(
        f"{server.url}/invocations", data=chunks(), headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 413
    assert "(MAX_REQUEST_BYTES)" in message_of(response)
    still_serving()


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"dataframe_split": {"columns": ["text"], "data": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        "{" * 100_000,  # deep and unterminated
    ],
    ids=["bare-list", "inside-a-request", "unterminated"],
)
def test_json_nested_100000_levels_deep_gets_a_400_not_a_500(server, still_serving, body):
    response = server.invocations(body)
    assert response.status_code == 400
    assert f"nests deeper than {MAX_JSON_DEPTH} levels" in message_of(response)
    still_serving()


def send_while_pinging(server: ModelServer, body: bytes) -> tuple[requests.Response, list[float]]:
    """Send `body` and, while it is in flight, time `/ping` from a second client, back to back."""
    answers: dict[str, requests.Response] = {}
    sender = threading.Thread(target=lambda: answers.update(body=server.invocations(body)))
    sender.start()
    ping_seconds = []
    while sender.is_alive() or not ping_seconds:
        started = time.monotonic()
        assert requests.get(f"{server.url}/ping", timeout=30).status_code == 200
        ping_seconds.append(time.monotonic() - started)
    sender.join()
    return answers["body"], ping_seconds


def test_a_megabyte_of_escaped_quotes_holds_no_other_client(server, still_serving):
    """The reported stall: `[` x 200, then an unterminated string of escaped quotes. The nesting check
    backtracked on it (100 KB took 30 s) on the event loop, so `/ping` waited as long; now the body
    gets its 400 and `/ping` answers within a second while the body is in flight."""
    response, ping_seconds = send_while_pinging(server, b"[" * 200 + b'"' + b'\\"' * (512 * 1024))  # 1 MiB
    assert response.status_code == 400
    assert f"nests deeper than {MAX_JSON_DEPTH} levels" in message_of(response)
    assert max(ping_seconds) < 1, ping_seconds
    still_serving()


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": {"text": [' + b"9" * 100_000 + b"]}}",  # longer than Python reads an integer
        ('{"inputs": {"text": ["\\"", ' + "[" * 100_000 + "]" * 100_000 + "]}}").encode("utf-16-le"),  # deep, UTF-16
        b'{"inputs": {"text": [1e999999]}}',  # past the largest double
        b'{"inputs": {"text": ["\xff\xfe late again"]}}',  # not UTF-8
        b'{"inputs": {"text": ["' + b"\\u" * 1000 + b'"]}}',  # broken escapes
        b'{"inputs": {"text": ["' + b"\\" * 500_000 + b'"]}}',  # a megabyte of escaped backslashes
    ],
    ids=["huge-integer", "deep-utf16", "huge-float", "invalid-utf8", "broken-escapes", "escaped-backslashes"],
)
def test_hostile_json_is_answered_without_holding_other_clients(server, still_serving, body):
    """MLflow's signature turns a number in the text column into its text, so numbers may be scored;
    whatever the answer, it is not a server error and `/ping` never waits behind it."""
    response, ping_seconds = send_while_pinging(server, body)
    assert response.status_code < 500, response.text[:500]
    assert max(ping_seconds) < 1, ping_seconds
    still_serving()


def test_brackets_inside_a_tweet_are_text_not_nesting(server, reference):
    text = "[[[[{{{{ " * 200 + "lost my bag"
    response = server.invocations(records([text]))
    assert response.status_code == 200, response.text[:500]
    served = response.json()["predictions"][0]["proba_negative"]
    assert served == pytest.approx(reference([text])["proba_negative"].iloc[0], abs=1e-9)


def test_a_request_that_outlives_the_timeout_stops_scoring(serve, tracking, baseline_run_id):
    """MLflow answers 504 at the timeout; without the deadline its worker thread would score on. The deadline
    counts from arrival, so with MLflow's parsing of 150,000 rows taking most of the 1 s the work may stop
    before the first chunk: what matters is that it stops well short of the last row."""
    env = {
        **tracking.env,
        "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "1",
        "MAX_ROWS_PER_REQUEST": "2000000",
        "MAX_REQUEST_BYTES": str(200 * 1024 * 1024),
    }
    server = serve(f"runs:/{baseline_run_id}/model", env=env)
    rows = 150_000
    response = server.invocations(records([f"my bag was lost on flight {i}, please help" for i in range(rows)]))
    assert response.status_code == 504
    deadline = time.monotonic() + 60
    while "stopped after" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    line = next(line for line in server.log().splitlines() if "stopped after" in line)
    scored = int(line.split("stopped after ")[1].split(" of ")[0].replace(",", ""))
    assert scored < rows and f"of {rows:,} rows" in line
    assert server.invocations(records(["thanks, all sorted"])).status_code == 200


def test_a_wrong_limit_in_the_environment_stops_the_server_at_start(tracking, baseline_run_id, tmp_path):
    env = {**tracking.env, "MAX_ROWS_PER_REQUEST": "lots"}
    server = ModelServer(f"runs:/{baseline_run_id}/model", env, tmp_path / "server.log")
    try:
        assert server.process.wait(timeout=120) != 0
    finally:
        server.stop()
    assert "MAX_ROWS_PER_REQUEST must be a whole number >= 1, got 'lots'" in server.log()


def test_a_text_over_the_per_text_bound_is_refused_naming_its_row(server, still_serving):
    texts = ["late again", "y" * (DEFAULT_MAX_TEXT_CHARS + 1)]
    response = server.invocations(records(texts))
    assert response.status_code == 400
    message = message_of(response)
    assert f"row 1: text of {DEFAULT_MAX_TEXT_CHARS + 1:,} characters" in message
    assert f"at most {DEFAULT_MAX_TEXT_CHARS:,} (MAX_TEXT_CHARS)" in message
    still_serving()
