"""The complaint-labelled set: real tweets labelled under docs/labelling.md in two passes, split once.

`labels/complaints.csv` keeps each tweet's provenance (source file and row), both annotators' labels
and reason codes, and the adjudicated label that training and evaluation use. The split is stored in
the file, never redrawn: a test tweet stays a test tweet whatever seed a run uses.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

LABELS_PATH = Path(__file__).resolve().parents[2] / "labels" / "complaints.csv"
SPLITS = ("train", "validation", "test")
COLUMNS = (
    "id",
    "split",
    "source",
    "row",
    "sentiment",
    "addressed",
    "text",
    "label_a",
    "code_a",
    "label_b",
    "code_b",
    "label",
    "code",
    "adjudicated",
    "adjudication_note",
)


class ComplaintLabelsError(ValueError):
    """The labelled set's file is missing or inconsistent: names the file and the problem."""


def load_complaint_labels(path: str | Path = LABELS_PATH) -> tuple[pd.DataFrame, str]:
    """The labelled set and the first 12 hex digits of its file's SHA-256 (logged with every run that uses it).

    Args:
        path: the set's CSV (default: `labels/complaints.csv`).

    Returns:
        The rows (columns `COLUMNS`) and the digest.

    Raises:
        ComplaintLabelsError: the file is missing, lacks a column, repeats an id, has a label other
            than 0/1 or a split other than train/validation/test, or an adjudicated label where the
            passes agreed (or none where they did not).
    """
    file = Path(path)
    if not file.is_file():
        raise ComplaintLabelsError(f"{file}: the complaint-labelled set is missing")
    frame = pd.read_csv(file, keep_default_na=False)
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ComplaintLabelsError(f"{file}: no column {', '.join(missing)}")
    problems = {
        "repeated ids": int(frame["id"].duplicated().sum()),
        "labels other than 0/1": int((~frame[["label", "label_a", "label_b"]].isin([0, 1])).any(axis=1).sum()),
        "splits other than train/validation/test": int((~frame["split"].isin(SPLITS)).sum()),
        "empty texts": int((frame["text"].str.strip() == "").sum()),
    }
    agreed = frame["label_a"] == frame["label_b"]
    problems["adjudication flags that do not match the passes"] = int((frame["adjudicated"] == agreed).sum())
    problems["agreed labels changed"] = int((agreed & (frame["label"] != frame["label_a"])).sum())
    found = [f"{count:,} {problem}" for problem, count in problems.items() if count]
    if found:
        raise ComplaintLabelsError(f"{file}: {'; '.join(found)}")
    return frame[list(COLUMNS)], hashlib.sha256(file.read_bytes()).hexdigest()[:12]


def split_frames(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The stored split as the training steps take it: `text`, `label` and `source` per split.

    Args:
        frame: as `load_complaint_labels` returns it.

    Returns:
        `train`, `validation` and `test`, each in id order.
    """
    return {
        split: frame.loc[frame["split"] == split, ["text", "label", "source"]].reset_index(drop=True)
        for split in SPLITS
    }
