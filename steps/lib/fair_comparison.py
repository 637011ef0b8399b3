"""Which rows the gate may score the champion on: only rows the champion could not have trained on.

A champion trained on another data run may have seen some of the candidate's validation rows in its
training split (a re-split of the same corpus, or added feedback): scored on them it looks better
than it is. The rule (docs/design.md, "The gate"):
- same data run: every validation row (the split guarantees the champion never trained on them);
- another data run: the candidate's validation rows whose normalised text is absent from the
  champion's training split ("rows neither saw"), every one of them when the two are disjoint;
- fewer than `min_rows` such rows, or one class missing among them, or a champion whose data run is
  unknown: no fair comparison exists, the gate does not pass and the champion stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pyfunc.normalize import normalize_batch

MIN_GATE_ROWS = 200


@dataclass(frozen=True)
class GateRows:
    """The rows both models are scored on, and why these."""

    mask: np.ndarray  # over the candidate's split, True = compared on
    basis: str  # same_data_run | disjoint_training_rows | rows_neither_saw | no_fair_comparison
    note: str

    @property
    def fair(self) -> bool:
        """Whether a fair comparison exists on these rows; when not, the gate fails and the champion stays."""
        return self.basis != "no_fair_comparison"


def unseen_mask(texts: pd.Series, training_texts: pd.Series) -> np.ndarray:
    """True for each text whose normalised form is not among the training texts.

    The key is the one `prepare_data` de-duplicates on (`normalize_batch`), so "the same tweet" means
    the same thing when splitting and when gating.

    Args:
        texts: the rows to check (the candidate's split).
        training_texts: the champion's training texts.

    Returns:
        A boolean mask over `texts`, True = the champion never trained on it.
    """
    seen = set(normalize_batch(training_texts.astype(str)))
    return np.array([key not in seen for key in normalize_batch(texts.astype(str))], dtype=bool)


def gate_rows(
    split: pd.DataFrame,
    candidate_data_run: str,
    champion_data_run: str | None,
    champion_training: pd.DataFrame | None,
    min_rows: int = MIN_GATE_ROWS,
) -> GateRows:
    """The candidate's rows the champion may be scored on (see the module docstring for the rule).

    Args:
        split: the candidate's validation (or test) split, columns `text` and `label`.
        candidate_data_run: the candidate's prepare_data run id.
        champion_data_run: the champion's prepare_data run id, None when unknown.
        champion_training: the champion's training split (None when its data run is the same or unknown).
        min_rows: the fewest rows a comparison on rows neither saw may use.

    Returns:
        The mask over `split`, its basis and a note for the gate's tags; the basis is
        `no_fair_comparison` when the champion's data run is unknown, or too few rows neither saw
        (or one class among them) are left.
    """
    everything = np.ones(len(split), dtype=bool)
    if champion_data_run == candidate_data_run:
        return GateRows(everything, "same_data_run", "champion and candidate share the data run")
    if champion_data_run is None or champion_training is None:
        return GateRows(~everything, "no_fair_comparison", "the champion's data run is unknown")
    mask = unseen_mask(split["text"], champion_training["text"])
    seen = int((~mask).sum())
    if seen == 0:
        return GateRows(mask, "disjoint_training_rows", f"no row was in the champion's data run {champion_data_run}")
    labels = split["label"].to_numpy()[mask]
    note = f"{seen} of {len(split)} rows were in the champion's training split (data run {champion_data_run})"
    if mask.sum() < min_rows or len(np.unique(labels)) < 2:
        return GateRows(mask, "no_fair_comparison", f"{note}; {int(mask.sum())} left, below {min_rows} or one class")
    return GateRows(mask, "rows_neither_saw", f"{note}; compared on the other {int(mask.sum())}")
