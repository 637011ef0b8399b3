"""The scoring server's front door under adversarial bodies (docs/design.md, "Serving limits").

Hypothesis builds bodies of every request form and every hostile shape: escaped quotes, unterminated
strings, deep and shallow nesting, huge numbers, invalid UTF-8, any content type, delivered in any
chunking. For each, the guard answers as the limits say (413, 415, 400 or the app) and within a
bound: the old nesting check took 3 s on 32 KB of escaped quotes and four times more per doubling,
so the bound of each example here, on bodies up to 256 KB, is orders of magnitude from both the old
cost and the new one (milliseconds). Bodies of a known row count, JSON and CSV, get the row limit's
400 exactly when they hold more rows than it, before the app sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
from datetime import timedelta

import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyfunc.limits import (
    WIDEST_REQUEST,
    ServingLimits,
    has_too_long_integer,
    json_refusal,
    nests_too_deep,
)
from pyfunc.request_guard import RequestGuard

MAX_BYTES = 200_000
MAX_ROWS = 2_000
LIMITS = ServingLimits(max_rows=MAX_ROWS, max_bytes=MAX_BYTES)
GUARD_BOUND = settings(
    deadline=timedelta(seconds=2),  # each example: the whole guard, from the first chunk to the answer
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

JSON_TYPES = ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"]
CONTENT_TYPES = [*JSON_TYPES, "text/csv", "text/plain", ""]
# The pieces hostile bodies are made of: escapes, quotes and brackets in every order.
UNITS = [b'\\"', b"\\\\", b'"', b"\\", b"[", b"{", b"]", b"}", b'"[', b'\\"[', b"x", b"\xff\xfe", b"9" * 50]

tweet = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ['say \\"hi\\"', '"[[{{', "\\", '\\"]]', "lost my bag", ""]
)


def form_payload(form: str, texts: list[str]) -> dict:
    """The texts in one of MLflow's request forms: every form holds its rows in one container."""
    return {
        "dataframe_split": {"dataframe_split": {"columns": ["text"], "data": [[text] for text in texts]}},
        "dataframe_records": {"dataframe_records": [{"text": text} for text in texts]},
        "instances": {"instances": [{"text": text} for text in texts]},
        "inputs": {"inputs": {"text": texts}},
    }[form]


@st.composite
def request_form(draw) -> bytes:
    """A body in one of MLflow's request forms, with tweets holding quotes, escapes and brackets."""
    texts = draw(st.lists(tweet, max_size=8))
    form = draw(st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs"]))
    payload = form_payload(form, texts)
    if draw(st.booleans()):
        payload["params"] = {"threshold": draw(st.floats(allow_nan=False, allow_infinity=False))}
    return json.dumps(payload, ensure_ascii=draw(st.booleans())).encode()


@st.composite
def hostile(draw) -> bytes:
    """A prefix, then one piece repeated up to 100,000 times, then maybe a terminator: the shapes that
    make a backtracking scanner retry every position (the reported stall was `[` x 200 and `\\"` pairs)."""
    prefix = draw(st.sampled_from([b"", b"[" * 200, b'{"inputs": "', b'{"dataframe_split": {"data": [["']))
    unit = draw(st.sampled_from(UNITS))
    size = draw(st.sampled_from([0, 100, 10_000, 150_000]))  # bytes: none, small, where it hurt, the most
    repeat = size // len(unit)
    suffix = draw(st.sampled_from([b"", b'"', b'"]]}}', b"]" * 200]))
    return prefix + unit * repeat + suffix


huge_number = st.integers(min_value=1, max_value=150_000).map(
    lambda digits: b'{"inputs": {"text": [' + b"9" * digits + b"]}}"
)


@st.composite
def other_encoding(draw) -> bytes:
    """A request form or a hostile shape in UTF-16 or UTF-32: Python's parser reads those too."""
    text = draw(request_form() | hostile()).decode("utf-8", errors="replace")
    return text.encode(draw(st.sampled_from(["utf-16-le", "utf-16-be", "utf-32-le", "utf-32", "utf-16"])))


body_strategy = request_form() | hostile() | huge_number | other_encoding() | st.binary(max_size=2_000)


def guard_answer(
    body: bytes, content_type: str, chunk_size: int, max_bytes: int = MAX_BYTES, max_rows: int = MAX_ROWS
) -> tuple[int, bytes | None]:
    """Run one request through the guard in front of a stub app: the status sent, and the body the app saw."""
    status, seen, _ = guard_exchange(body, content_type, chunk_size, max_bytes, max_rows)
    return status, seen


def guard_exchange(
    body: bytes, content_type: str, chunk_size: int, max_bytes: int, max_rows: int
) -> tuple[int, bytes | None, bytes]:
    """The status the guard sent, the body the app saw (None when refused) and the answer's body."""
    seen: dict[str, bytes] = {}

    async def app(scope, receive, send) -> None:
        message = await receive()
        seen["body"] = message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    chunks = [body[start : start + chunk_size] for start in range(0, len(body), chunk_size)] or [b""]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-type", content_type.encode())] if content_type else []
    scope = {"type": "http", "path": "/invocations", "method": "POST", "headers": headers}
    guard = RequestGuard(app, ServingLimits(max_rows=max_rows, max_bytes=max_bytes))
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], seen.get("body"), b"".join(message.get("body", b"") for message in sent[1:])


@GUARD_BOUND
@example(  # the depth of a UTF-16 body went unseen and reached Python's parser
    body=('{"inputs": {"text": ["\\"", ' + "[" * 40_000 + "]" * 40_000 + "]}}").encode("utf-16-le"),
    content_type="application/json",
    chunk_size=65_536,
)
@example(body=b"[" * 200 + b'"' + b'\\"' * 50_000, content_type="application/json", chunk_size=65_536)  # the stall
@given(
    body=body_strategy, content_type=st.sampled_from(CONTENT_TYPES), chunk_size=st.sampled_from([1_000, 65_536, 10**9])
)
def test_every_body_gets_the_answer_the_limits_give_within_the_bound(body, content_type, chunk_size):
    status, seen = guard_answer(body, content_type, chunk_size)
    if not content_type:
        assert status == 415 and seen is None
    elif len(body) > MAX_BYTES:
        assert status == 413 and seen is None
    elif content_type.lower() in {t.lower() for t in JSON_TYPES} and json_refusal(body, LIMITS):
        assert status == 400 and seen is None
    else:
        assert status == 200 and seen == body  # the app gets the body exactly as sent
        if content_type.lower() in {t.lower() for t in JSON_TYPES}:
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):  # MLflow's own 400
                json.loads(body)  # anything else (RecursionError, a too-long integer) is MLflow's 500


@st.composite
def counted_rows(draw) -> tuple[bytes, str, int]:
    """A request in any form, JSON or CSV, its content type and the rows MLflow's parser reads from it."""
    texts = draw(st.lists(tweet, max_size=12)) * draw(st.sampled_from([1, 9]))  # up to 108: past WIDEST_REQUEST
    if draw(st.booleans()):
        body = pd.DataFrame({"text": texts}).to_csv(index=False, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
        rows = len(pd.read_csv(io.StringIO(body))) if body.strip() else 0  # pandas skips blank lines
        return body.encode(), "text/csv", rows
    form = draw(st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs"]))
    payload = form_payload(form, texts)
    return json.dumps(payload, ensure_ascii=draw(st.booleans())).encode(), "application/json", len(texts)


@GUARD_BOUND
@given(request=counted_rows(), max_rows=st.integers(min_value=1, max_value=100), chunk_size=st.sampled_from([7, 10**9]))
def test_a_body_over_the_row_limit_is_refused_before_the_app_parses_it(request, max_rows, chunk_size):
    """With predict's message. A JSON row's own container may hold up to `WIDEST_REQUEST` columns, so a
    JSON request of no more rows than that is left to predict's exact count whatever the limit."""
    body, content_type, rows = request
    status, seen, answer = guard_exchange(body, content_type, chunk_size, MAX_BYTES, max_rows)
    if rows > max_rows and (content_type == "text/csv" or rows > WIDEST_REQUEST):
        assert status == 400 and seen is None
        assert json.loads(answer)["message"] == ServingLimits(max_rows=max_rows).rows_refusal(rows)
    else:
        assert status == 200 and seen == body


def depth(value) -> int:
    """How deep a parsed JSON value nests: the oracle for the scan that never parses."""
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tweet,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(tweet, children, max_size=3),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values, ensure_ascii=st.booleans(), limit=st.integers(min_value=0, max_value=8))
def test_the_scan_agrees_with_the_parsed_depth_of_any_json(value, ensure_ascii, limit):
    body = json.dumps(value, ensure_ascii=ensure_ascii).encode()
    assert nests_too_deep(body, limit) is (depth(value) > limit)


def test_the_reported_stall_is_refused_for_its_nesting():
    """`[` x 200 and an unterminated string of escaped quotes, 1 MiB: 200 levels deep, a plain 400."""
    body = b"[" * 200 + b'"' + b'\\"' * (512 * 1024)
    assert guard_answer(body, "application/json", 65_536, max_bytes=2 * len(body)) == (400, None)
    assert nests_too_deep(body) and nests_too_deep(body, limit=199) and not nests_too_deep(body, limit=200)


INT_DIGITS = sys.get_int_max_str_digits()


@settings(max_examples=200, deadline=None)
@example(digits=INT_DIGITS, in_a_tweet=False, shape="{}")
@example(digits=INT_DIGITS + 1, in_a_tweet=False, shape="{}")
@example(digits=INT_DIGITS + 1, in_a_tweet=False, shape="-{}")
@given(
    digits=st.integers(min_value=1, max_value=3 * INT_DIGITS),
    in_a_tweet=st.booleans(),
    shape=st.sampled_from(["{}", "-{}", "0.{}", "{}.5", "1e{}", "1E-{}", "{}e3"]),
)
def test_only_an_integer_too_long_to_read_outside_strings_is_refused(digits, in_a_tweet, shape):
    """Python reads floats of any length; only an integer literal past its limit made MLflow answer 500."""
    number = shape.format("9" * digits).encode()
    body = b'{"inputs": {"text": ["x"]}, "params": {"t": ' + (b'"' + number + b'"' if in_a_tweet else number) + b"}}"
    too_long = digits > INT_DIGITS and not in_a_tweet and shape in ("{}", "-{}")
    assert has_too_long_integer(body) is too_long
    if not in_a_tweet:  # the oracle: Python's own parser on the same body
        try:
            json.loads(body)
            assert not too_long
        except ValueError:
            assert too_long
