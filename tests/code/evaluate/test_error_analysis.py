"""Error analysis tables: columns, every length bin, per-topic counts and the worst mistakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steps.lib.error_analysis import (
    LENGTH_LABELS,
    RATE_COLUMNS,
    WORST_COLUMNS,
    by_length,
    by_topic,
    check_predictions,
    error_rate_figure,
    worst_errors,
)


@pytest.fixture
def predictions() -> pd.DataFrame:
    rows = [
        # text, label, source, proba_negative, predicted
        ("lost my bag", 1, "crowdflower_airline", 0.9, 1),  # 3 words, right
        ("flight late again", 1, "crowdflower_airline", 0.1, 0),  # 3 words, missed complaint (worst FN)
        ("nice crew", 0, "crowdflower_airline", 0.7, 1),  # 2 words, false alarm
        ("love the new phone " * 2, 0, "crowdflower_other_brands", 0.2, 0),  # 8 words, right
        ("this update broke everything and support will not answer me " * 2, 1, "crowdflower_other_brands", 0.4, 0),
        ("great launch " * 7, 0, "crowdflower_other_brands", 0.95, 1),  # 14 words, worst FP
    ]
    return check_predictions(pd.DataFrame(rows, columns=["text", "label", "source", "proba_negative", "predicted"]))


def test_error_rate_by_length_lists_every_bin_in_order(predictions):
    table = by_length(predictions)
    assert table.columns.tolist() == ["length_words", *RATE_COLUMNS]
    assert table["length_words"].tolist() == list(LENGTH_LABELS)
    first = table.iloc[0]  # 1-5 words: 3 rows, 2 negatives, 1 missed, 1 false alarm
    assert (first["rows"], first["errors"], first["false_negatives"], first["false_positives"]) == (3, 2, 1, 1)
    assert first["error_rate"] == pytest.approx(2 / 3)
    assert first["false_negative_rate"] == pytest.approx(1 / 2)
    assert first["false_positive_rate"] == pytest.approx(1.0)
    empty = table.set_index("length_words").loc["21-25"]
    assert empty["rows"] == 0 and np.isnan(empty["error_rate"])
    assert table["rows"].sum() == len(predictions)


def test_error_rate_by_topic(predictions):
    table = by_topic(predictions).set_index("topic")
    assert table.index.tolist() == ["crowdflower_airline", "crowdflower_other_brands"]
    assert table.loc["crowdflower_airline", "error_rate"] == pytest.approx(2 / 3)
    assert table.loc["crowdflower_other_brands", "false_negative_rate"] == 1.0
    assert table.loc["crowdflower_other_brands", "false_positive_rate"] == pytest.approx(1 / 2)


def test_worst_errors_are_the_most_confident_mistakes(predictions):
    false_negatives, false_positives = worst_errors(predictions, n=5)
    assert false_negatives.columns.tolist() == WORST_COLUMNS
    assert false_negatives["proba_negative"].tolist() == [0.1, 0.4]
    assert false_positives["proba_negative"].tolist() == [0.95, 0.7]
    assert (false_negatives["label"] == 1).all() and (false_positives["label"] == 0).all()
    assert len(worst_errors(predictions, n=1)[1]) == 1


def test_a_foreign_predictions_table_is_named(predictions):
    with pytest.raises(ValueError, match="lacks column"):
        check_predictions(predictions.drop(columns=["source"]))


def test_figure_draws_both_breakdowns(predictions):
    figure = error_rate_figure(by_length(predictions), by_topic(predictions))
    assert len(figure.axes) == 2
