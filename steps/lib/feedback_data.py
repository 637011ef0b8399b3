"""Testers' verdicts from the dashboard become training rows, never evaluation rows.

A verdict joins the training split only. One whose normalised text already sits in validation or
test is left out, so comparisons keep running on the same rows; one whose text is already a
training tweet relabels that tweet (the tester has the last word). Several verdicts on one text:
the newest wins (docs/design.md, "Feedback becomes training data").
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pyfunc.contract import LABELS
from pyfunc.normalize import normalize_batch
from steps.lib.datasets import repair_text
from steps.lib.tracking import StepError
from steps.lib.traffic import read_feedback_store

FEEDBACK_SOURCE = "feedback"
LABEL_IDS = {name: index for index, name in LABELS.items()}


def load_feedback(path: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The newest verdict per tweet, as training rows (`text`, `label`, `source`, `sentiment`).

    Args:
        path: the dashboard's feedback SQLite file.

    Returns:
        The rows and the counts `feedback_rows_read`, `feedback_conflicts_resolved`.

    Raises:
        StepError: the file is missing, not a feedback store, or holds a label outside the contract.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise StepError(f"feedback_db {path} not found (the dashboard writes it; FEEDBACK_DB names it)")
    rows = read_feedback_store(file)
    unknown = sorted(set(rows["label"]) - set(LABEL_IDS))
    if unknown:
        raise StepError(f"{file}: true_label {unknown[0]!r} is not one of {', '.join(LABEL_IDS)}")
    rows["text"] = rows["text"].astype(str).map(repair_text)
    rows = rows[rows["text"].str.len() > 0].copy()
    rows["key"] = normalize_batch(rows["text"])
    newest = rows.drop_duplicates("key", keep="last")  # rows are oldest first
    counts = {"feedback_rows_read": len(rows), "feedback_conflicts_resolved": int(len(rows) - len(newest))}
    # The store has only the binary verdict: `sentiment` says so, and three-class training refuses it.
    frame = pd.DataFrame(
        {
            "text": newest["text"].to_numpy(),
            "label": newest["label"].map(LABEL_IDS).to_numpy(),
            "source": FEEDBACK_SOURCE,
            "sentiment": newest["label"].to_numpy(),
            "key": newest["key"].to_numpy(),
        }
    )
    return frame, counts


def add_to_training(splits: dict[str, pd.DataFrame], feedback: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict]:
    """Join the verdicts to the training split only.

    Args:
        splits: `train`, `val`, `test` from the source.
        feedback: `load_feedback`'s rows (with their normalised `key`).

    Returns:
        The splits (validation and test untouched) and the counts `feedback_rows_added` (new
        training tweets), `feedback_rows_relabelled` (training tweets the verdict replaced) and
        `feedback_rows_skipped` (verdicts on validation or test tweets).
    """
    held_out = set(normalize_batch(pd.concat([splits["val"]["text"], splits["test"]["text"]])))
    in_held_out = feedback["key"].isin(held_out)
    usable = feedback[~in_held_out]
    train = splits["train"]
    train_keys = pd.Series(normalize_batch(train["text"]), index=train.index)
    relabelled = train_keys.isin(set(usable["key"]))
    added = usable.drop(columns="key")
    train = pd.concat([train[~relabelled], added[train.columns]], ignore_index=True)
    counts = {
        "feedback_rows_added": int(len(usable) - relabelled.sum()),
        "feedback_rows_relabelled": int(relabelled.sum()),
        "feedback_rows_skipped": int(in_held_out.sum()),
    }
    return splits | {"train": train}, counts
