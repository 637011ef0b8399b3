"""HTTP client for the model server (`mlflow models serve`): the dashboard's only way to the model.

Every failure a tester can meet (server down, slow, rejecting the input, crashing, or something
else answering on that port) becomes one `ModelServerError` whose message is a plain sentence the
page shows as is; nothing from `requests` leaks into the UI.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import requests

DEFAULT_URL = "http://127.0.0.1:5001"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_BATCH_TIMEOUT_S = 120.0
# Rows per request when scoring a file. Small requests share one model worker fairly between testers
# scoring at once: ten 1,000-row requests together outlived MLflow's 60 s timeout on 2 cores (504s),
# ten 100-row ones finish in seconds, and the progress bar moves every 100 rows (docs/reliability.md).
DEFAULT_CHUNK_ROWS = 100
# File chunks in flight from this dashboard process, all sessions together. The model server answers a
# typed prediction only after the chunks queued before it: with ten testers' chunks in flight at once a
# typed prediction waited past its 10 s timeout. Two keep the model busy; a released slot wakes the
# thread that has waited longest, so the files take turns.
DEFAULT_BATCH_REQUESTS = 2
CONNECT_TIMEOUT_S = 3.0
# The server's limit on explained rows per request, and its default (pyfunc/limits.py; a test keeps them
# equal): the page says it before sending more. Read here, not imported: pyfunc.limits loads MLflow.
MAX_EXPLAINED_ROWS_ENV = "MAX_EXPLAINED_ROWS_PER_REQUEST"
DEFAULT_MAX_EXPLAINED_ROWS = 100
LABELS = ("negative", "not_negative")
SERVE_HINT = "mlflow models serve -m models:/tweet-sentiment@champion -p 5001 --env-manager local"


class ModelServerError(Exception):
    """A failed call, with a message written for the tester and a `kind` for code and tests.

    kinds: `unreachable`, `timeout`, `rejected` (4xx), `server_error` (5xx), `bad_response`.
    """

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


@dataclass(frozen=True)
class WordContribution:
    """One word of the tweet, as sent, and how much it added to P(negative) (docs/design.md, "Explanations")."""

    word: str
    contribution: float


@dataclass(frozen=True)
class Prediction:
    """One response row of the serving contract (docs/design.md)."""

    label: str
    proba_negative: float
    threshold: float
    model_version: str
    # What the threshold in use means on the model's validation split (None: the model ships no figures).
    val_precision: float | None = None
    val_recall: float | None = None
    # Each word's contribution, in text order, when asked for (`predict(..., explain=True)`); else None.
    explanation: tuple[WordContribution, ...] | None = None

    def top_words(self, count: int = 3) -> list[str]:
        """The words that most pushed the served label, strongest first: what a wrong prediction is blamed on.

        For `negative`, the words whose removal lowers P(negative) most; for `not_negative`, those
        whose removal raises it most. Words that pushed the other way are left out.

        Args:
            count: at most this many words.

        Returns:
            The words, none without an explanation.
        """
        sign = 1.0 if self.label == LABELS[0] else -1.0
        pushing = [entry for entry in self.explanation or () if sign * entry.contribution > 0]
        pushing.sort(key=lambda entry: sign * entry.contribution, reverse=True)
        return [entry.word for entry in pushing[:count]]


@dataclass(frozen=True)
class Scored:
    """Predictions in request order and the wall time of the HTTP call(s).

    For a batch that stopped early, `failure` says why and `predictions` holds the rows scored before it.
    """

    predictions: list[Prediction]
    latency_ms: float
    failure: ModelServerError | None = None


def env_float(name: str, default: float) -> float:
    """A positive number from the environment, or the default when unset or unusable."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


# Shared by every client of the process: the bound is the dashboard's, not one session's.
_BATCH_SLOTS = threading.Semaphore(max(1, int(env_float("DASHBOARD_BATCH_REQUESTS", DEFAULT_BATCH_REQUESTS))))


def explained_rows_limit() -> int:
    """The most rows the page asks to explain at once: the server's `MAX_EXPLAINED_ROWS_PER_REQUEST`,
    when the dashboard is given it too, else the server's default."""
    return int(env_float(MAX_EXPLAINED_ROWS_ENV, DEFAULT_MAX_EXPLAINED_ROWS))


def request_body(texts: Sequence[str], threshold: float | None, explain: bool = False) -> dict[str, Any]:
    """MLflow's `dataframe_split` form with a `text` column; the threshold and `explain` travel as `params`,
    each only when asked for, so a plain request stays the plain request."""
    body: dict[str, Any] = {"dataframe_split": {"columns": ["text"], "data": [[text] for text in texts]}}
    params: dict[str, Any] = {}
    if threshold is not None:
        params["threshold"] = float(threshold)
    if explain:
        params["explain"] = True
    if params:
        body["params"] = params
    return body


def server_message(response: requests.Response) -> str:
    """The reason a server gave: MLflow's JSON `message`, else the start of the body."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("message"):
        message = str(payload["message"]).strip()
        # MLflow prefixes the model's own error with a dump of the input frame: keep the reason only.
        return message.rpartition("\nError: ")[2].strip() if "\nError: " in message else message
    text = response.text.strip()
    return text[:300] if text else "no details given"


def _optional_float(value: Any) -> float | None:
    """A number from the answer, or None when it is absent or not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_explanation(value: Any) -> tuple[WordContribution, ...] | None:
    """A row's `explanation` (a list of `{"word", "contribution"}`), or None when the row has none.

    Raises:
        ValueError: an explanation that is not such a list.
    """
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"explanation is {type(value).__name__}, not a list")
    return tuple(WordContribution(str(entry["word"]), float(entry["contribution"])) for entry in value)


def parse_predictions(response: requests.Response, expected: int, explained: bool = False) -> list[Prediction]:
    """Check a 200 answer against the contract (with an explanation per row when `explained`);
    anything else is a `bad_response`."""

    def bad(why: str) -> ModelServerError:
        return ModelServerError(
            "bad_response",
            f"The model server answered, but not with predictions ({why}). "
            "Check that MODEL_SERVER_URL points at an MLflow model server.",
            response.status_code,
        )

    try:
        payload = response.json()
    except ValueError:
        raise bad("the answer is not JSON") from None
    rows = payload.get("predictions") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise bad("no 'predictions' list in the answer")
    if len(rows) != expected:
        raise bad(f"{len(rows)} predictions for {expected} tweets")
    try:
        predictions = [
            Prediction(
                label=str(row["label"]),
                proba_negative=float(row["proba_negative"]),
                threshold=float(row["threshold"]),
                model_version=str(row.get("model_version", "unknown")),
                val_precision=_optional_float(row.get("val_precision")),
                val_recall=_optional_float(row.get("val_recall")),
            )
            for row in rows
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise bad(
            f"a prediction lacks label, proba_negative or threshold, or has a broken explanation: {error}"
        ) from None
    if any(prediction.label not in LABELS for prediction in predictions):
        raise bad("unknown label")
    try:
        explanations = [parse_explanation(row.get("explanation")) for row in rows]
    except (KeyError, TypeError, ValueError) as error:
        raise bad(f"a broken explanation: {error!r}") from None
    if explained and None in explanations:
        raise bad("no explanation, though one was asked for; the served model may predate explanations")
    pairs = zip(predictions, explanations, strict=True)
    return [replace(prediction, explanation=explanation) for prediction, explanation in pairs]


def shift_row_numbers(message: str, offset: int) -> str:
    """The server numbers rows within its request; a chunk's rows start at `offset` in the file."""
    return re.sub(r"\brow (\d+)", lambda match: f"row {int(match.group(1)) + offset}", message) if offset else message


class ModelClient:
    """Talks to `/invocations`, `/ping` and `/version` under `MODEL_SERVER_URL`."""

    def __init__(
        self,
        base_url: str | None = None,
        timeout: float | None = None,
        batch_timeout: float | None = None,
        chunk_rows: int | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("MODEL_SERVER_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout or env_float("MODEL_SERVER_TIMEOUT", DEFAULT_TIMEOUT_S)
        self.batch_timeout = batch_timeout or env_float("MODEL_SERVER_BATCH_TIMEOUT", DEFAULT_BATCH_TIMEOUT_S)
        self.chunk_rows = chunk_rows or int(env_float("DASHBOARD_CHUNK_ROWS", DEFAULT_CHUNK_ROWS))
        self._local = threading.local()  # one keep-alive session per thread: Session is not thread-safe

    @property
    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _request(self, method: str, path: str, timeout: float, **kwargs) -> requests.Response:
        """One HTTP call; transport failures become plain-words `ModelServerError`s."""
        url = f"{self.base_url}{path}"
        try:
            return self._session.request(method, url, timeout=(min(CONNECT_TIMEOUT_S, timeout), timeout), **kwargs)
        except requests.Timeout:  # before ConnectionError: ConnectTimeout is both
            raise ModelServerError(
                "timeout",
                f"The model server at {self.base_url} did not answer within {timeout:g} seconds. "
                "It may be busy or still loading the model; try again in a moment.",
            ) from None
        except requests.ConnectionError:
            raise ModelServerError(
                "unreachable",
                f"Cannot reach the model server at {self.base_url}: nothing answers there. "
                f"Start it ({SERVE_HINT}) or set MODEL_SERVER_URL, then try again.",
            ) from None
        except requests.RequestException as error:
            raise ModelServerError(
                "unreachable", f"Cannot call the model server at {self.base_url}: {error}. Check MODEL_SERVER_URL."
            ) from None

    def predict(
        self, texts: Sequence[str], threshold: float | None = None, timeout: float | None = None, explain: bool = False
    ) -> Scored:
        """Score texts in one request; `threshold=None` uses the model's stored threshold.

        `explain=True` asks for each word's contribution to P(negative) (`Prediction.explanation`); it
        costs a scored tweet per word, and the server explains a limited number of rows per request
        (docs/serving.md, "Explanations").
        """
        started = time.perf_counter()
        body = request_body(texts, threshold, explain)
        response = self._request("POST", "/invocations", timeout or self.timeout, json=body)
        latency_ms = (time.perf_counter() - started) * 1000
        if 400 <= response.status_code < 500:
            raise ModelServerError(
                "rejected",
                f"The model server rejected the request (HTTP {response.status_code}): {server_message(response)}",
                response.status_code,
            )
        if response.status_code >= 500:
            raise ModelServerError(
                "server_error",
                f"The model server failed while scoring (HTTP {response.status_code}): {server_message(response)}",
                response.status_code,
            )
        return Scored(parse_predictions(response, len(texts), explain), latency_ms)

    def explain_rows(self, texts: Sequence[str], threshold: float | None = None) -> Scored:
        """Score and explain a file's chosen rows in one request, as a file's chunk: in a batch slot, under
        the batch timeout (an explained row costs a scored tweet per word, so a hundred weigh like a chunk).

        Raises:
            ModelServerError: as `predict`; over the server's explained-rows limit, its 400 names the limit.
        """
        with _BATCH_SLOTS:
            return self.predict(texts, threshold, timeout=self.batch_timeout, explain=True)

    def predict_in_chunks(
        self,
        texts: Sequence[str],
        threshold: float | None = None,
        chunk_rows: int | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        start: int = 0,
    ) -> Scored:
        """Score `texts[start:]` `chunk_rows` at a time (one request when it fits), reporting rows done.

        A failing chunk stops the batch without losing what was scored: the result keeps the
        predictions of the chunks before it, and `failure` names the rows not scored (numbered in
        the whole batch), so the caller can show them and retry from there (`start`).
        """
        size = max(1, chunk_rows or self.chunk_rows)
        predictions: list[Prediction] = []
        latency_ms = 0.0
        for begin in range(start, len(texts), size):
            chunk = texts[begin : begin + size]
            try:
                with _BATCH_SLOTS:  # the wait for a slot is not the server's time: outside the timeout
                    scored = self.predict(chunk, threshold, timeout=self.batch_timeout)
            except ModelServerError as error:
                where = f" (rows {begin}-{len(texts) - 1} of {len(texts)} not scored; {begin} rows were scored)"
                message = shift_row_numbers(error.message, begin) + (where if len(texts) > size else "")
                return Scored(predictions, latency_ms, ModelServerError(error.kind, message, error.status))
            predictions += scored.predictions
            latency_ms += scored.latency_ms
            if on_progress:
                on_progress(begin + len(chunk), len(texts))
        return Scored(predictions, latency_ms)

    def ping(self) -> bool:
        """Whether the server says it is ready (MLflow's `/ping` answers 200 once the model loaded)."""
        try:
            return self._request("GET", "/ping", self.timeout).status_code == 200
        except ModelServerError:
            return False

    def version(self) -> str:
        """The MLflow version the server runs (`/version`), for the page's status line."""
        response = self._request("GET", "/version", self.timeout)
        if response.status_code != 200:
            raise ModelServerError(
                "bad_response",
                f"The model server's /version answered HTTP {response.status_code}.",
                response.status_code,
            )
        return response.text.strip()
