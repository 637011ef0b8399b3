"""The complaint-labelled set: real tweets labelled under docs/labelling.md in two passes, split once.

`labels/complaints.csv` keeps each tweet's provenance (source file and row), both annotators' labels
and reason codes, and the adjudicated label that training and evaluation use. The split is stored in
the file, never redrawn: a test tweet stays a test tweet whatever seed a run uses.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from pyfunc.normalize import normalize_batch

LABELS_PATH = Path(__file__).resolve().parents[2] / "labels" / "complaints.csv"
SPLITS = ("train", "validation", "test")
PREPARED_NAMES = {"train": "train", "validation": "val", "test": "test"}  # the stored split -> prepare_data's files
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


def prepared_splits(frame: pd.DataFrame, max_rows: int, seed: int) -> dict[str, pd.DataFrame]:
    """The stored split under prepare_data's names (`train`, `val`, `test`), each optionally sampled.

    `max_rows` keeps the set's proportions: each split is cut to its share of `max_rows`, stratified by
    label, so a quick run scores a smaller test split, never one drawn anew.

    Args:
        frame: as `load_complaint_labels` returns it.
        max_rows: rows to keep in all (0, or at least the set's size: everything).
        seed: the sampling seed.

    Returns:
        `text`, `label` and `source` per split, index reset.
    """
    splits = {PREPARED_NAMES[name]: part for name, part in split_frames(frame).items()}
    if max_rows <= 0 or max_rows >= len(frame):
        return splits
    share = max_rows / len(frame)
    return {name: _stratified_share(part, share, seed) for name, part in splits.items()}


def _stratified_share(part: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    size = max(4, round(len(part) * share))  # two of each label at least, so every metric stays defined
    if size >= len(part):
        return part
    sample, _ = train_test_split(part, train_size=size, stratify=part["label"], random_state=seed)
    return sample.reset_index(drop=True)


def without_texts(frame: pd.DataFrame, texts: pd.Series) -> tuple[pd.DataFrame, int]:
    """`frame` less the rows whose normalised text is one of `texts`: what no model may train on.

    The complaint validation and test tweets come from the same corpora as the sentiment training
    data; a tweet trained on with its sentiment label would be scored on in test with an answer
    the model had seen.

    Args:
        frame: rows with a `text` column.
        texts: the texts to keep out.

    Returns:
        The remaining rows (index reset) and how many were removed.
    """
    kept_out = set(normalize_batch(texts))
    inside = pd.Series(normalize_batch(frame["text"]), index=frame.index).isin(kept_out)
    return frame[~inside].reset_index(drop=True), int(inside.sum())
