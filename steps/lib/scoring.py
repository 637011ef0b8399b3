"""Scoring many tweets through a pyfunc in chunks, with a progress bar on stderr.

The bars follow `steps.lib.candidate.predict_in_batches`: tqdm on stderr, refreshed at most every
`PROGRESS_INTERVAL` seconds so a step's log stays readable, and off with `TQDM_DISABLE=1`. Every
model family scores a tweet independently of the others in its call, so the chunk size changes how
long a bar takes to move, never a score.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

PROGRESS_INTERVAL = 2.0  # seconds between two refreshes of a bar


def progress(iterable: Iterable | None = None, *, desc: str, unit: str, total: int | None = None) -> tqdm:
    """A progress bar on stderr in the project's style.

    Args:
        iterable: what the bar iterates over, or None to `update` it by hand.
        desc: the bar's label.
        unit: what one step counts (`tweet`, `resample`).
        total: the number of steps, when `iterable` has no length or is None.

    Returns:
        The bar, disabled when `TQDM_DISABLE` is set: read here, when the bar starts, as tqdm reads
        it (any non-empty value); tqdm itself reads it only once, when it is first imported.
    """
    disable = bool(os.environ.get("TQDM_DISABLE"))
    return tqdm(
        iterable, desc=desc, unit=unit, total=total, mininterval=PROGRESS_INTERVAL, file=sys.stderr, disable=disable
    )


def predict_in_chunks(model: Any, texts: list[str], chunk: int, desc: str) -> pd.DataFrame:
    """A pyfunc's `predict` on many texts, `chunk` at a time, with a progress bar counting tweets.

    Args:
        model: a loaded pyfunc (anything whose `predict` takes a `text` frame and returns a frame).
        texts: raw tweets.
        chunk: the most tweets per `predict` call.
        desc: the progress bar's label.

    Returns:
        The rows `predict` returned for every text, in order, indexed from 0: what one call on all of
        them returns.
    """
    frames = []
    with progress(desc=desc, unit="tweet", total=len(texts)) as bar:
        for start in range(0, len(texts), chunk):
            batch = texts[start : start + chunk]
            frames.append(model.predict(pd.DataFrame({"text": batch})))
            bar.update(len(batch))
    return pd.concat(frames, ignore_index=True)
