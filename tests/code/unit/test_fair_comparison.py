"""The gate's data-run rule: the champion is scored only on rows it could not have trained on."""

from __future__ import annotations

import pandas as pd

from steps.lib.fair_comparison import gate_rows, unseen_mask

VAL = pd.DataFrame(
    {
        "text": ["@united lost my bag", "Great crew today!", "worst delay ever", "thanks for the upgrade", "meh"],
        "label": [1, 0, 1, 0, 0],
    }
)


def test_same_data_run_compares_on_every_row():
    rows = gate_rows(VAL, "run-a", "run-a", None)
    assert rows.basis == "same_data_run" and rows.mask.all() and rows.fair


def test_disjoint_training_rows_compare_on_every_row():
    training = pd.DataFrame({"text": ["something else entirely", "another tweet"], "label": [0, 1]})
    rows = gate_rows(VAL, "run-b", "run-a", training, min_rows=2)
    assert rows.basis == "disjoint_training_rows" and rows.mask.all()


def test_rows_the_champion_trained_on_are_left_out_matched_after_cleaning():
    # Same tweets as the champion saw them, with other case, spacing and handle: still "seen".
    training = pd.DataFrame({"text": ["@Delta LOST my bag", "thanks   for the UPGRADE"], "label": [1, 0]})
    assert unseen_mask(VAL["text"], training["text"]).tolist() == [False, True, True, False, True]
    rows = gate_rows(VAL, "run-b", "run-a", training, min_rows=3)
    assert rows.basis == "rows_neither_saw" and rows.mask.tolist() == [False, True, True, False, True]
    assert "2 of 5 rows were in the champion's training split (data run run-a)" in rows.note
    assert rows.fair


def test_too_few_unseen_rows_or_one_class_is_no_fair_comparison():
    training = pd.DataFrame({"text": ["@united lost my bag", "worst delay ever"], "label": [1, 1]})
    too_few = gate_rows(VAL, "run-b", "run-a", training, min_rows=4)
    assert too_few.basis == "no_fair_comparison" and not too_few.fair and "below 4" in too_few.note
    # Enough rows but only non-complaints left: AUC is undefined, no comparison.
    one_class = gate_rows(VAL, "run-b", "run-a", training, min_rows=1)
    assert one_class.basis == "no_fair_comparison"


def test_a_champion_whose_data_run_is_unknown_is_no_fair_comparison():
    rows = gate_rows(VAL, "run-b", None, None)
    assert not rows.fair and rows.note == "the champion's data run is unknown" and not rows.mask.any()
