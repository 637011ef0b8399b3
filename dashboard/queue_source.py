"""Where the "Label next" tab's queue comes from: the newest finished `label_queue` run, or an uploaded file.

The tracking store is optional, as for the registry line (dashboard/registry.py): without
`MLFLOW_TRACKING_URI` the team uploads the queue file; a store that is down fails fast (the page sets
MLflow's retries to none) and says so in one sentence. An uploaded file is read with the Batch tab's
limits (dashboard/batch.py), so neither path can hold the page (docs/design.md, "Labelling the queue in
the dashboard").
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dashboard.batch import TEXT_COLUMN, BatchError, read_csv, valid_mask
from dashboard.safe_uri import redacted, shown_uri
from dashboard.step_runs import newest_finished_run

QUEUE_STEP = "label_queue"  # the `step` tag steps.lib.tracking.run_step sets on every run of the step
QUEUE_ARTIFACT = "label_queue.csv"
RUN_IT_FIRST = "run `mlflow run . -e label_queue` first"
SCORE_COLUMNS = ("proba_negative", "threshold")
UNRECORDED_VERSION = "unrecorded"  # a queue file made before the step wrote the champion's version


class QueueError(ValueError):
    """No queue can be shown; the message is the page's one sentence."""


@dataclass(frozen=True)
class QueuedTweet:
    """One tweet of the queue with what the champion said of it when the queue was made."""

    text: str
    proba_negative: float
    threshold: float
    model_version: str

    @property
    def predicted_label(self) -> str:
        """The champion's answer at its threshold: what a verdict on this tweet says was right or wrong."""
        return "negative" if self.proba_negative >= self.threshold else "not_negative"


@dataclass(frozen=True)
class Queue:
    """The tweets to label, best first, and where they came from (named on the page)."""

    tweets: tuple[QueuedTweet, ...]
    source: str


def number(value: str, column: str, row: int) -> float:
    """A score cell as a float in [0, 1]; anything else names its row (the first tweet is row 1), so a
    hand-edited file is fixable."""
    try:
        parsed = float(value)
    except ValueError:
        parsed = math.nan
    if not 0.0 <= parsed <= 1.0:  # NaN fails too
        raise QueueError(f"The queue file's {column} in row {row} is {value!r}; it must be a number from 0 to 1.")
    return parsed


def parse_queue(data: bytes, source: str) -> Queue:
    """The queue in a `label_queue.csv`: its tweets with a text, in the file's order.

    Raises:
        QueueError: an empty, unreadable or oversized file (the Batch tab's limits), no `text`,
            `proba_negative` or `threshold` column, or a score outside [0, 1].
    """
    try:
        frame = read_csv(data)
    except BatchError as error:
        raise QueueError(str(error)) from None
    columns = {str(column).strip().lower(): column for column in frame.columns}
    missing = [column for column in (TEXT_COLUMN, *SCORE_COLUMNS) if column not in columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise QueueError(
            f"The queue file has no {' or '.join(missing)} column (columns found: {found}): upload the "
            f"{QUEUE_ARTIFACT} that `mlflow run . -e label_queue` logs."
        )
    texts = frame[columns[TEXT_COLUMN]]
    version = frame[columns["model_version"]] if "model_version" in columns else pd.Series("", frame.index)
    tweets = tuple(
        QueuedTweet(
            text=texts[index],
            proba_negative=number(frame.at[index, columns["proba_negative"]], "proba_negative", position + 1),
            threshold=number(frame.at[index, columns["threshold"]], "threshold", position + 1),
            model_version=version[index] or UNRECORDED_VERSION,
        )
        for position, (index, usable) in enumerate(valid_mask(texts).items())
        if usable
    )
    return Queue(tweets, source)


def tracking_uri() -> str | None:
    """The tracking store the queue is read from; None: the team uploads the file instead."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def latest_queue_run_id(uri: str) -> str:
    """The newest FINISHED `label_queue` run in any experiment of the store.

    Raises:
        QueueError: the store cannot be read, or holds no finished `label_queue` run yet.
    """
    from mlflow import MlflowClient  # imported only when a tracking store is configured

    client = MlflowClient(tracking_uri=uri)
    try:
        run = newest_finished_run(client, QUEUE_STEP)
    except Exception as error:  # MlflowException, a connection error: the store is optional, say why
        raise QueueError(f"The tracking store {shown_uri(uri)} cannot be read ({first_line(error)}).") from None
    if run is None:
        raise QueueError(f"The tracking store {shown_uri(uri)} holds no finished label_queue run yet: {RUN_IT_FIRST}.")
    return run.info.run_id


def load_latest_queue(uri: str) -> Queue:
    """The queue logged by the newest finished `label_queue` run.

    Raises:
        QueueError: the store cannot be read, holds no such run, or the run's file cannot be used.
    """
    import mlflow  # imported only when a tracking store is configured

    run_id = latest_queue_run_id(uri)
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=QUEUE_ARTIFACT, dst_path=folder, tracking_uri=uri
            )
            data = Path(local).read_bytes()
        except Exception as error:  # MlflowException, OSError: the artifact store is down or the file gone
            raise QueueError(f"The queue of label_queue run {run_id} cannot be read ({first_line(error)}).") from None
    return parse_queue(data, f"label_queue run {run_id}")


def first_line(error: BaseException) -> str:
    """An exception's first line, without credentials: a store's message can run to a stack of retries, and
    MLflow's names the request URL with the URI's `user:password@`."""
    lines = redacted(str(error)).strip().splitlines()
    return lines[0] if lines else type(error).__name__
