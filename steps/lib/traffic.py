"""Recent traffic as the monitoring steps read it: a CSV or Parquet file of tweets, or the dashboard's feedback store.

A `label` column (1/0, or `negative`/`not_negative`) is optional: with it, accuracies can be
compared; the feedback store's agreed `true_label` is one. Rows with a missing or blank text are left out
and counted, since the served pyfunc would reject the whole batch for one of them.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pyfunc.contract import LABELS, TEXT_COLUMN
from steps.lib.tracking import StepError

FEEDBACK_TABLE = "feedback"
AGREED_VIEW = "agreed_verdicts"  # written by the dashboard's store (dashboard/feedback.py)
LABEL_IDS = {name: index for index, name in LABELS.items()} | {"1": 1, "0": 0}


@dataclass
class Traffic:
    """The tweets to score, their labels where known, and how many rows were left out."""

    texts: list[str]
    labels: pd.Series | None
    skipped: int
    source: str


def read_feedback_store(path: Path) -> pd.DataFrame:
    """The dashboard's agreed verdicts, oldest first, read-only.

    Only a verdict two testers agree on, or a reviewer's decision, is a label (the store's
    `agreed_verdicts` view; docs/design.md, "Sign-in, roles and agreed verdicts"): one tester's
    verdict alone, or testers who disagree, wait.

    Args:
        path: the SQLite file the dashboard writes (`FEEDBACK_DB`).

    Returns:
        `text`, `label` (the agreed `true_label`: `negative` or `not_negative`) and `created_at`.

    Raises:
        StepError: the file is not SQLite, has no `feedback` table, or predates sign-in (no agreed verdicts yet).
    """
    query = f"SELECT text, true_label AS label, created_at FROM {AGREED_VIEW} ORDER BY created_at, id"
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            if FEEDBACK_TABLE in tables and AGREED_VIEW not in tables:
                raise StepError(
                    f"{path} predates sign-in, so none of its verdicts is agreed yet: start the dashboard on it "
                    "once (FEEDBACK_DB) to migrate it; its old verdicts then count as one unnamed tester's"
                )
            return pd.read_sql_query(query, connection)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as error:
        raise StepError(f"{path} is not a feedback store with a `{FEEDBACK_TABLE}` table ({error})") from None


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise StepError(f"cannot read {path}: {error}") from None


def _labels(frame: pd.DataFrame, path: Path) -> pd.Series | None:
    if "label" not in frame.columns:
        return None
    labels = frame["label"].astype(str).str.strip().str.lower().map(LABEL_IDS)
    if labels.isna().any():
        row = int(labels.isna().to_numpy().argmax())
        raise StepError(f"{path}: label of row {row} is {frame['label'].iloc[row]!r}; use 1/0 or negative/not_negative")
    return labels.astype(int).reset_index(drop=True)


def read_traffic(path: str) -> Traffic:
    """Read recent tweets for shadow scoring or drift monitoring.

    Args:
        path: a `.csv` or `.parquet` file with a `text` column (and optionally `label`), or a
            feedback store (`.db`, `.sqlite`) whose `true_label` is the label.

    Returns:
        The valid texts, their labels (None without a label column), the rows left out.

    Raises:
        StepError: a missing or unreadable file, no `text` column, no valid text, or a bad label.
    """
    file = Path(path).expanduser()
    if not path or not file.is_file():
        raise StepError(f"input must be a CSV, Parquet or feedback-store file, got {path!r} (not found)")
    frame = read_feedback_store(file) if file.suffix.lower() in (".db", ".sqlite") else _read_table(file)
    if TEXT_COLUMN not in frame.columns:
        raise StepError(f"{file} has no `{TEXT_COLUMN}` column (columns: {', '.join(map(str, frame.columns))})")
    valid = frame[TEXT_COLUMN].map(lambda value: isinstance(value, str) and bool(value.strip()))
    if not valid.any():
        raise StepError(f"{file} has no tweet to score ({len(frame)} rows, none with a text)")
    kept = frame[valid].reset_index(drop=True)
    return Traffic(kept[TEXT_COLUMN].tolist(), _labels(kept, file), int((~valid).sum()), str(file))
