"""The serving limits' own logic: nesting without recursion, limits from the environment, the deadline."""

from __future__ import annotations

import contextvars
import json

import numpy as np
import pytest

from pyfunc import limits
from pyfunc.limits import LimitExceeded, RequestAbandoned, ServingLimits, nests_too_deep


@pytest.mark.parametrize(
    ("body", "too_deep"),
    [
        (b'{"dataframe_split": {"columns": ["text"], "data": [["late"]]}}', False),
        (b"[" * 32 + b"]" * 32, False),
        (b"[" * 33 + b"]" * 33, True),
        (b"{" * 100_000, True),
        (json.dumps({"inputs": {"text": ["[[[[{{{{" * 100]}}).encode(), False),
        (json.dumps({"inputs": {"text": ['say \\"[[[[' * 100]}}).encode(), False),  # escaped quotes stay inside
        (b'[{"a": [' * 11 + b"]}]" * 11, True),  # 33 levels of mixed brackets
        (b"not json at all", False),
    ],
)
def test_nesting_is_judged_outside_strings_only(body, too_deep):
    assert nests_too_deep(body) is too_deep


def test_limits_come_from_the_environment_with_thousands_separators(monkeypatch):
    monkeypatch.setenv("MAX_ROWS_PER_REQUEST", "20_000")
    monkeypatch.setenv("MAX_REQUEST_BYTES", "1048576")
    monkeypatch.setenv("MAX_EXPLAINED_ROWS_PER_REQUEST", "1_000")
    monkeypatch.setenv("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", "15")
    expected = ServingLimits(max_rows=20_000, max_bytes=1_048_576, max_explained_rows=1_000, timeout_s=15.0)
    assert ServingLimits.from_env() == expected


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1.5"])
def test_a_limit_that_is_not_a_positive_whole_number_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("MAX_REQUEST_BYTES", value)
    with pytest.raises(ValueError, match=f"MAX_REQUEST_BYTES must be a whole number >= 1, got '{value}'"):
        ServingLimits.from_env()


def test_rows_and_bytes_at_the_limit_pass_and_one_more_is_refused():
    bounds = ServingLimits(max_rows=10, max_bytes=100)
    bounds.check_rows(10)
    bounds.check_body_size(100)
    with pytest.raises(LimitExceeded, match="11 rows in one request; this server takes at most 10"):
        bounds.check_rows(11)
    with pytest.raises(LimitExceeded) as refused:
        bounds.check_body_size(101)
    assert refused.value.get_http_status_code() == 413


def test_explained_rows_have_their_own_limit_named_first():
    bounds = ServingLimits(max_rows=10, max_explained_rows=3)
    bounds.check_rows(3, explained=True)
    bounds.check_rows(10)
    with pytest.raises(LimitExceeded, match="4 rows to explain in one request; this server explains at most 3") as e:
        bounds.check_rows(4, explained=True)
    assert "(MAX_EXPLAINED_ROWS_PER_REQUEST)" in e.value.message and e.value.get_http_status_code() == 400
    # Over both limits: the explained one is named, as the one the request must meet.
    with pytest.raises(LimitExceeded, match="5,000 rows to explain"):
        bounds.check_rows(5_000, explained=True)


def test_scoring_in_chunks_keeps_every_score_in_order():
    texts = [str(i) for i in range(1000)]
    calls = []

    def score(chunk: list[str]) -> np.ndarray:
        calls.append(len(chunk))
        return np.array([float(text) for text in chunk])

    proba = ServingLimits(timeout_s=60).score_before_deadline(score, texts)
    assert proba.tolist() == [float(i) for i in range(1000)]
    assert calls == [256, 256, 256, 232]


def test_scoring_stops_at_the_first_chunk_after_the_deadline(monkeypatch):
    clock = iter([0.0, 0.5, 1.5, 99.0])  # start, before chunk 1, before chunk 2 (past 1 s), never reached
    monkeypatch.setattr(limits.time, "monotonic", lambda: next(clock))
    scored = []

    def score(chunk: list[str]) -> np.ndarray:
        scored.append(len(chunk))
        return np.zeros(len(chunk))

    with pytest.raises(RequestAbandoned, match="stopped after 256 of 1,000 rows: the request outlived the 1 s timeout"):
        ServingLimits(timeout_s=1).score_before_deadline(score, [str(i) for i in range(1000)])
    assert scored == [256]


def test_the_deadline_counts_from_arrival_so_a_request_that_waited_out_its_time_scores_nothing(monkeypatch):
    monkeypatch.setattr(limits.time, "monotonic", lambda: 100.0)
    scored = []

    def score(chunk: list[str]) -> np.ndarray:
        scored.append(len(chunk))
        return np.zeros(len(chunk))

    def waited_in_line() -> None:
        limits.REQUEST_ARRIVED.set(100.0 - 61)  # arrived 61 s ago: its client already has the 504
        ServingLimits(timeout_s=60).score_before_deadline(score, ["one tweet"])

    with pytest.raises(RequestAbandoned, match="stopped after 0 of 1 rows"):
        contextvars.copy_context().run(waited_in_line)
    assert scored == []
    fresh = contextvars.copy_context()
    fresh.run(limits.REQUEST_ARRIVED.set, 100.0 - 59)
    assert fresh.run(ServingLimits(timeout_s=60).score_before_deadline, score, ["one tweet"]).tolist() == [0.0]


def test_a_text_over_the_per_text_bound_is_refused_naming_its_row(monkeypatch):
    bound = ServingLimits(max_text_chars=10)
    bound.check_text_length(0, "x" * 10)
    with pytest.raises(
        LimitExceeded, match=r"row 3: text of 11 characters; this server takes at most 10 \(MAX_TEXT_CHARS\)"
    ):
        bound.check_text_length(3, "x" * 11)
    monkeypatch.setenv("MAX_TEXT_CHARS", "20_000")
    assert ServingLimits.from_env().max_text_chars == 20_000
    assert ServingLimits().max_text_chars == limits.DEFAULT_MAX_TEXT_CHARS == 100_000
