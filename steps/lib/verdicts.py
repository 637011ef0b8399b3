"""A team's verdicts for `adapt`: read, checked, and split into what it learns from and what judges it.

A verdict is a tweet and the team's label (1 = the team must answer, 0 = it need not; the contract's
`negative`/`not_negative` are read too). `adapt` learns from part of them and is judged on the rest,
so a file too small to hold out enough of each label is refused before any training starts.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from pyfunc.normalize import normalize_batch
from steps.lib.tracking import StepError
from steps.lib.traffic import read_traffic

HELD_OUT_FRACTION = 0.3
MIN_HELD_OUT_PER_LABEL = 10  # fewer makes the held-out judgement a coin toss
MIN_PER_LABEL = math.ceil(MIN_HELD_OUT_PER_LABEL / HELD_OUT_FRACTION)
FEEDBACK_SUFFIXES = (".db", ".sqlite")


def load_verdicts(path: str) -> pd.DataFrame:
    """The verdicts, one per distinct tweet, with enough of each label to hold some out.

    Args:
        path: a CSV or Parquet file with `text` and `label`, or the dashboard's feedback store, where
            the newest verdict on a tweet wins.

    Returns:
        `text`, `label` (0/1) and `key` (the normalised text verdicts are matched on).

    Raises:
        StepError: a missing, empty or unreadable file; no `text` or `label` column; a label other
            than 0/1; the same text with both labels in a file; one label only, or too few of one.
    """
    traffic = read_traffic(path)
    if traffic.labels is None:
        raise StepError(f"{traffic.source} has no `label` column (1 = the team must answer, 0 = it need not)")
    frame = pd.DataFrame({"text": traffic.texts, "label": traffic.labels.to_numpy()})
    frame["key"] = normalize_batch(frame["text"])
    if Path(traffic.source).suffix.lower() in FEEDBACK_SUFFIXES:
        frame = frame.drop_duplicates("key", keep="last")  # the store is read oldest first
    else:
        both = frame.groupby("key")["label"].nunique()
        if (both > 1).any():
            example = frame.loc[frame["key"] == both[both > 1].index[0], "text"].iloc[0]
            raise StepError(
                f"{traffic.source}: {int((both > 1).sum()):,} texts carry both labels (for example {example[:80]!r}); "
                "keep one verdict per tweet"
            )
        frame = frame.drop_duplicates("key")
    counts = frame["label"].value_counts().reindex([1, 0], fill_value=0)
    if (counts < MIN_PER_LABEL).any():
        raise StepError(
            f"{traffic.source}: {counts[1]:,} verdicts with label 1 and {counts[0]:,} with label 0; adapt needs at "
            f"least {MIN_PER_LABEL} of each to hold {MIN_HELD_OUT_PER_LABEL} of each out"
        )
    return frame.reset_index(drop=True)


def hold_out(verdicts: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What `adapt` learns from and the held-out verdicts it is judged on, stratified by label.

    Args:
        verdicts: as `load_verdicts` returns them.
        seed: the split's seed.

    Returns:
        The learning part and the held-out part (`HELD_OUT_FRACTION` of each label).
    """
    learn, held = train_test_split(verdicts, test_size=HELD_OUT_FRACTION, stratify=verdicts["label"], random_state=seed)
    return learn.reset_index(drop=True), held.reset_index(drop=True)
