"""What one request may ask of the served model, and how long its work may run (docs/design.md, "Serving limits").

MLflow's scoring server answers a request that outlives `MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT` with a
504 but leaves the worker thread scoring on, so one oversized batch slows every client behind it. Two
bounds keep a request's cost known before any work starts (rows per request, bytes per body), and a
deadline stops work whose answer nobody waits for any more. A JSON body nested deeper than any
request form needs is refused as well: Python's parser raises RecursionError on it, which MLflow's
server answers with a 500.

The limits hold only inside `mlflow models serve` (the image runs the same server): Spark and
`mlflow.pyfunc.load_model` callers size their own batches.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
from mlflow.environment_variables import MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_EXHAUSTED

MAX_ROWS_ENV = "MAX_ROWS_PER_REQUEST"
MAX_BYTES_ENV = "MAX_REQUEST_BYTES"
MAX_EXPLAINED_ROWS_ENV = "MAX_EXPLAINED_ROWS_PER_REQUEST"
MAX_TEXT_CHARS_ENV = "MAX_TEXT_CHARS"
DEFAULT_MAX_ROWS = 2_000
# An explained tweet costs one scored tweet per word (pyfunc/explain.py): 100 tweets of 20 words cost
# what a 2,000-row request costs.
DEFAULT_MAX_EXPLAINED_ROWS = 100
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# A tweet is at most 280 characters (25,000 for the longest posts); 100,000 keeps every demanding but real
# text and refuses a body-sized single text, whose normalisation and telemetry scan would run unbounded.
DEFAULT_MAX_TEXT_CHARS = 100_000
# The deepest request form is `{"dataframe_split": {"data": [["text"]]}}` (4 levels); 32 leaves room.
MAX_JSON_DEPTH = 32
# The most items a container of one request row may hold: the columns a request may carry beside `text`
# (a `dataframe_records` row's keys, a `dataframe_split` row's values) and a form's own keys (`dataframe_split`'s
# columns, index and data). The guard counts containers, not rows, so it acts only above this; a lower row limit
# is judged in `predict` alone, and no request within the limit is refused (docs/design.md, "Serving limits").
WIDEST_REQUEST = 64
# Rows scored between two deadline checks: small enough that abandoned work stops within a second or so.
DEADLINE_CHUNK_ROWS = 256

_log = logging.getLogger(__name__)

# When the request guard first saw the request (time.monotonic()): MLflow runs `predict` on a thread that
# inherits the request's context, so the deadline counts from arrival, not from when scoring began.
REQUEST_ARRIVED: ContextVar[float | None] = ContextVar("request_arrived", default=None)


class LimitExceeded(MlflowException):
    """A request over a serving limit; the scoring server answers with `status` and this message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)
        self.status = status

    def get_http_status_code(self) -> int:
        return self.status


class RequestAbandoned(MlflowException):
    """The request's time ran out: the client already has MLflow's 504, so the work stops here."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=RESOURCE_EXHAUSTED)


def positive_int_from_env(name: str, default: int) -> int:
    """A whole number >= 1 from the environment; a wrong value stops the server at start, by name."""
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {os.environ[name]!r}")
    return value


@dataclass(frozen=True)
class ServingLimits:
    """The bounds one request is held to, read from the environment once when the server loads the model."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_explained_rows: int = DEFAULT_MAX_EXPLAINED_ROWS
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    timeout_s: float = 60.0

    @classmethod
    def from_env(cls) -> ServingLimits:
        """The limits `MAX_ROWS_PER_REQUEST`, `MAX_REQUEST_BYTES`, `MAX_EXPLAINED_ROWS_PER_REQUEST` and
        MLflow's request timeout set.

        Raises:
            ValueError: a limit that is not a whole number >= 1 (the server then refuses to start).
        """
        return cls(
            max_rows=positive_int_from_env(MAX_ROWS_ENV, DEFAULT_MAX_ROWS),
            max_bytes=positive_int_from_env(MAX_BYTES_ENV, DEFAULT_MAX_BYTES),
            max_explained_rows=positive_int_from_env(MAX_EXPLAINED_ROWS_ENV, DEFAULT_MAX_EXPLAINED_ROWS),
            max_text_chars=positive_int_from_env(MAX_TEXT_CHARS_ENV, DEFAULT_MAX_TEXT_CHARS),
            timeout_s=float(MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT.get()),
        )

    def rows_refusal(self, rows: int, explained: bool = False) -> str | None:
        """Why a batch of `rows` is refused, or None: the one message `predict`'s exact count and the
        request guard's count before parsing give alike, so a client reads one answer whichever refused.

        An explained batch is held to its own, lower limit first: that is the limit it must meet.

        Args:
            rows: rows in the request.
            explained: whether the request asks for explanations (`params.explain`).
        """
        if explained and rows > self.max_explained_rows:
            return (
                f"{rows:,} rows to explain in one request; this server explains at most {self.max_explained_rows:,} "
                f"({MAX_EXPLAINED_ROWS_ENV}). Ask for explanations of fewer rows, or send without params.explain."
            )
        if rows > self.max_rows:
            return (
                f"{rows:,} rows in one request; this server takes at most {self.max_rows:,} "
                f"({MAX_ROWS_ENV}). Send the batch in smaller requests."
            )
        return None

    def check_rows(self, rows: int, explained: bool = False) -> None:
        """Refuse a batch over the row limit before any of it is scored (`rows_refusal`).

        Raises:
            LimitExceeded: more rows than `max_rows`, or than `max_explained_rows` when explained
                (a 400 naming the limit and how to change it).
        """
        if refusal := self.rows_refusal(rows, explained):
            raise LimitExceeded(refusal)

    def check_text_length(self, row: int, text: str) -> None:
        """Refuse a text longer than the per-text bound before any of it is normalised or scanned.

        Raises:
            LimitExceeded: the text has more than `max_text_chars` characters (a 400 naming the row and the limit).
        """
        if len(text) > self.max_text_chars:
            raise LimitExceeded(
                f"row {row}: text of {len(text):,} characters; this server takes at most {self.max_text_chars:,} "
                f"({MAX_TEXT_CHARS_ENV}). Send the text in parts, or shorten it."
            )

    def deadline(self) -> float:
        """When the request's time runs out (monotonic clock): its arrival (now outside a request) plus the timeout."""
        arrived = REQUEST_ARRIVED.get()
        return (time.monotonic() if arrived is None else arrived) + self.timeout_s

    def check_body_size(self, size: int) -> None:
        """Refuse a body over the byte limit (a 413), from its Content-Length or as it arrives."""
        if size > self.max_bytes:
            raise LimitExceeded(
                f"request body of {size:,} bytes or more; this server takes at most {self.max_bytes:,} "
                f"({MAX_BYTES_ENV}). Send the batch in smaller requests.",
                status=413,
            )

    def score_before_deadline(self, score: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
        """Score in chunks and stop once the request has outlived the server's timeout, counted from its
        arrival: a request that waited its turn behind others, or the second scoring of an explained one,
        spends the same budget, and work nobody waits for stops before it starts.

        The chunks are a multiple of every family's own batch, and each family's score for a tweet is
        independent of the tweets beside it, so chunking changes no score.

        Raises:
            RequestAbandoned: the timeout passed with rows left; MLflow has answered the client with a 504.
        """
        deadline = self.deadline()
        parts = []
        for start in range(0, len(texts), DEADLINE_CHUNK_ROWS):
            if time.monotonic() > deadline:
                message = (
                    f"stopped after {start:,} of {len(texts):,} rows: the request outlived the "
                    f"{self.timeout_s:g} s timeout (MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT), its client has a 504"
                )
                _log.warning(message)
                raise RequestAbandoned(message)
            parts.append(score(texts[start : start + DEADLINE_CHUNK_ROWS]))
        return np.concatenate(parts)


def positions_of(codes: np.ndarray, characters: bytes) -> np.ndarray:
    """The sorted positions of any of `characters` in the body's bytes (int32 below 2 GiB: half the memory)."""
    found = codes == characters[0]
    for character in characters[1:]:
        found |= codes == character
    return np.flatnonzero(found).astype(np.int32 if codes.size < 2**31 else np.int64)


def string_delimiters(codes: np.ndarray) -> np.ndarray:
    """The positions of the quotes that open or close a JSON string: those not escaped by a backslash.

    A quote is escaped when an odd run of backslashes stands right before it; the run's length is
    the quote's position less the start of the last backslash run before it. So the work is linear
    in the body (sorting aside) however its quotes and backslashes are arranged. The regular
    expression this replaces retried every quote as a string's start: quadratic time on a body of
    escaped quotes, 30 s for 100 KB with every client waiting (docs/design.md, "Serving limits").
    """
    quotes = positions_of(codes, b'"')
    backslashes = positions_of(codes, b"\\")
    if backslashes.size == 0 or quotes.size == 0:
        return quotes
    starts_run = np.ones(backslashes.size, dtype=bool)
    starts_run[1:] = np.diff(backslashes) != 1
    run_starts = backslashes[starts_run]
    before = quotes - 1
    escaped_run = (before >= 0) & (codes[np.maximum(before, 0)] == ord("\\"))
    last_run = np.maximum(np.searchsorted(run_starts, before, side="right") - 1, 0)
    run_length = np.where(escaped_run, quotes - run_starts[last_run], 0)
    return quotes[run_length % 2 == 0]


def outside_strings(codes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Which of `positions` lie outside every string: after an even number of string delimiters
    (an unterminated string runs to the end).

    A few positions are each looked up among the delimiters; for many (every comma of millions of
    rows) one running parity over the body is twice as fast as a binary search per position.
    """
    delimiters = string_delimiters(codes)
    if positions.size * 8 < codes.size:
        return np.searchsorted(delimiters, positions) % 2 == 0
    inside = np.zeros(codes.size, dtype=np.uint8)
    inside[delimiters] = 1
    np.bitwise_xor.accumulate(inside, out=inside)  # 1 from an opening quote up to its closing one
    return inside[positions] == 0


def nests_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON body nests deeper than `limit`, judged without parsing it (no recursion, linear, C speed).

    Brackets inside strings do not count. A body that is not JSON at all is judged by its brackets
    too; what passes is left to MLflow's own parser and its 400.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # too few brackets to nest that deep: the common case, decided without a scan
    codes = np.frombuffer(body, dtype=np.uint8)
    brackets = positions_of(codes, b"[{]}")
    opening = (codes[brackets] == ord("[")) | (codes[brackets] == ord("{"))
    steps = np.where(opening, np.int32(1), np.int32(-1))[outside_strings(codes, brackets)]
    return int(np.cumsum(steps).max(initial=0)) > limit


def has_too_long_integer(body: bytes, limit: int | None = None) -> bool:
    """Whether an integer of more than `limit` digits stands outside strings.

    Python reads no longer integer (`sys.get_int_max_str_digits()`, 0 = no limit): MLflow's parser
    raised a ValueError that its server answered with a 500. A float's digits are not limited, so a
    run next to a decimal point or in an exponent counts as a float's; digits inside a tweet are text.
    """
    limit = sys.get_int_max_str_digits() if limit is None else limit
    if limit == 0 or len(body) <= limit:
        return False
    codes = np.frombuffer(body, dtype=np.uint8)
    digit = np.zeros(codes.size + 2, dtype=np.int8)
    digit[1:-1] = (codes >= ord("0")) & (codes <= ord("9"))
    edges = np.diff(digit)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long_runs = (ends - starts) > limit
    starts, ends = starts[long_runs], ends[long_runs]
    if starts.size == 0:
        return False
    padded = np.concatenate([[0, 0], codes, [0]])  # a zero before the body and after it: no index falls off
    before, sign_before, after = padded[starts + 1], padded[starts], padded[ends + 2]
    float_part = np.isin(before, _FLOAT_MARKS) | np.isin(after, _FLOAT_MARKS)
    exponent = np.isin(before, _SIGNS) & np.isin(sign_before, _EXPONENT)
    integers = starts[~(float_part | exponent)]
    return bool(integers.size) and bool(outside_strings(codes, integers.astype(np.int64)).any())


_FLOAT_MARKS = np.frombuffer(b".eE", dtype=np.uint8)
_EXPONENT = np.frombuffer(b"eE", dtype=np.uint8)
_SIGNS = np.frombuffer(b"+-", dtype=np.uint8)


def largest_json_container(body: bytes) -> int:
    """How many items the largest JSON array or object holds, counted without parsing (linear, C speed).

    Every request form holds its rows in one container (`inputs`' text list, `instances`,
    `dataframe_records`, `dataframe_split`'s `data` and `index`) and the model reads one text column,
    so no container of a request within the row limit holds more items than the limit: this count
    lets the guard refuse a body of millions of tiny rows before MLflow spends seconds parsing it
    (docs/design.md, "Serving limits"). An item is a comma outside strings directly inside its
    container, plus one, so an empty container counts one item (no limit is below one).

    Each comma belongs to the last container opened at its depth: a stable sort of the brackets
    and commas by depth (a radix sort, the depths being small) lines up every container with its
    commas, and counting openers along that order names the container of each comma.
    """
    codes = np.frombuffer(body, dtype=np.uint8)
    marks = positions_of(codes, b"[{]},")
    marks = marks[outside_strings(codes, marks)]
    kinds = codes[marks]
    opening = (kinds == ord("[")) | (kinds == ord("{"))
    closing = (kinds == ord("]")) | (kinds == ord("}"))
    depth = np.cumsum(opening.astype(np.int32) - closing)  # after each mark: a comma's is its container's
    inside = (depth > 0) & ~closing
    depth, opening = depth[inside], opening[inside]
    if not opening.any():
        return 0
    by_depth = np.argsort(depth.astype(np.int16 if depth.max() < 2**15 else np.int32), kind="stable")
    opens_in_order = opening[by_depth]
    container = np.cumsum(opens_in_order, dtype=np.int32)[~opens_in_order]
    return int(np.bincount(container).max(initial=0)) + 1


def csv_rows(body: bytes) -> int:
    """How many rows pandas reads from a CSV body, counted without parsing it (linear, C speed).

    A record ends at a line break (line feed, carriage return or both) outside quoted fields; a
    doubled quote inside a field toggles twice, so quote parity tells inside from outside. Lines
    of spaces and tabs only are skipped, as pandas skips them, and the first record is the header.
    Exact for well-formed quoting (`csv_quoting_is_well_formed`: RFC 4180, what pandas and the csv
    module write); a stray quote inside an unquoted field, which pandas reads as text, shifts the
    count either way, so `csv_refusal` trusts it only for well-formed quoting (docs/design.md,
    "Serving limits").

    Spaces and tabs are dropped and carriage returns made line feeds first (C speed, and neither
    changes a quote), so a record is a byte that is not a line break after one that is.
    """
    lines = np.frombuffer(body.translate(None, b" \t").replace(b"\r", b"\n"), dtype=np.uint8)
    if lines.size == 0:
        return 0
    breaks = lines == ord("\n")
    quotes = lines == ord('"')
    if quotes.any():
        breaks &= np.bitwise_xor.accumulate(quotes.view(np.uint8)) == 0  # a break inside quotes is text
    records = int(np.count_nonzero(breaks[:-1] & ~breaks[1:])) + int(not breaks[0])
    return max(records - 1, 0)


def csv_quoting_is_well_formed(body: bytes) -> bool:
    """Whether every quote of a CSV body is where quote parity reads it as pandas does (linear, C speed).

    pandas opens a quoted field only at a field's first byte, so a quote elsewhere (`My 55" tv died`)
    is text, and parity would then take the line breaks after it for text or the reverse. Well formed:
    the quotes pair up; each opening quote (an even number before it) is the body's first byte or
    follows `,`, a line break, or the closing quote before it (the second quote of an escaped `""`);
    each closing quote is the body's last byte or is followed by `,`, a line break or a quote. Judged
    on the raw body: pandas does not skip a space before a quote, so ` "a` is text too.
    """
    codes = np.frombuffer(body, dtype=np.uint8)
    quotes = np.flatnonzero(codes == ord('"'))
    if quotes.size % 2:
        return False  # a quoted field runs to the end: pandas refuses it, and parity proves nothing
    opening, closing = quotes[0::2], quotes[1::2]
    before = codes[opening[opening > 0] - 1]
    after = codes[closing[closing < codes.size - 1] + 1]
    return bool(np.isin(before, _CSV_FIELD_EDGES).all() and np.isin(after, _CSV_FIELD_EDGES).all())


_CSV_FIELD_EDGES = np.frombuffer(b',\n\r"', dtype=np.uint8)


def csv_refusal(body: bytes, limits: ServingLimits) -> str | None:
    """Why a CSV body is refused before pandas parses it, or None: more rows than the row limit.

    5 M one-letter rows fit the byte limit and cost pandas seconds of a scoring thread before
    `predict` could count them; a body with no more line breaks than the limit is passed unscanned.
    A body whose quoting is not well formed (`csv_quoting_is_well_formed`) is passed too: its count
    could refuse a request within the limit, and `predict` counts its rows exactly after pandas.
    A CSV request carries no params, so it asks for no explanations.
    """
    if body.count(b"\n") + body.count(b"\r") <= limits.max_rows or not csv_quoting_is_well_formed(body):
        return None
    return limits.rows_refusal(csv_rows(body))


def parquet_refusal(body: bytes, limits: ServingLimits) -> str | None:
    """Why a Parquet body is refused before pandas reads it, or None: more rows than the row limit.

    A Parquet body is not bounded by its bytes: 56 KB of zstd columns can hold 20 M rows, which
    pandas would decode in full before `predict` could count them. The footer states the row count
    and is read alone (no column is decoded); a body whose footer cannot be read is left to MLflow,
    which answers it as before. A Parquet request carries no params, so it asks for no explanations.
    pyarrow is imported here, as pandas imports it for Parquet: a model that never sees Parquet, or
    that trains in a step, does not pay for it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_metadata(pa.BufferReader(body)).num_rows
    except (pa.ArrowException, OSError, ValueError):
        return None
    return limits.rows_refusal(rows)


def asks_for_explanations(body: bytes) -> bool:
    """Whether a JSON body holds `"explain": true`, so a refusal names the limit `predict` would name.

    Looked for only in a body already over the row limit (a regular expression led by a literal: C
    speed). An escaped quote inside a text never ends in `"explain"` followed by a colon outside
    it; a false match would change only which of the two row limits the 400 names.
    """
    return _EXPLAIN_TRUE.search(body) is not None


_EXPLAIN_TRUE = re.compile(rb'"explain"\s*:\s*true')


def json_refusal(body: bytes, limits: ServingLimits) -> str | None:
    """Why a JSON body is refused before MLflow parses it, or None: the shapes its parser fails on
    with a 500 or a stack overflow, and more rows than the row limit (the largest container's items,
    which MLflow would take seconds to parse for millions of tiny rows). Linear in the body.

    A request that asks for explanations is held to its lower limit in `predict`, which reads its
    params: the guard judges only the row limit, and names the explained one when a body over the
    row limit asks for explanations, as `predict` would.

    The scans read UTF-8 bytes. Python's parser also reads UTF-16 and UTF-32 (told by the first
    bytes), where every quote is followed by a zero byte and the scans would see nothing: such a
    body is refused, as MLflow documents UTF-8 only.
    """
    encoding = json.detect_encoding(body)
    if encoding not in ("utf-8", "utf-8-sig"):
        return f"the JSON body is {encoding.upper()}; send it as UTF-8"
    if nests_too_deep(body):
        return f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels; no request form needs that"
    most = max(limits.max_rows, WIDEST_REQUEST)  # a row's own container may hold its columns (WIDEST_REQUEST)
    if body.count(b",") >= most and (items := largest_json_container(body)) > most:
        return limits.rows_refusal(items, asks_for_explanations(body))
    if has_too_long_integer(body):
        digits = sys.get_int_max_str_digits()
        return f"the JSON body holds an integer of more than {digits:,} digits; send tweets as strings"
    return None


def refusal_body(error: MlflowException) -> bytes:
    """MLflow's own JSON error shape, so clients read `message` the same way for every refusal."""
    return json.dumps({"error_code": error.error_code, "message": error.message}).encode()
