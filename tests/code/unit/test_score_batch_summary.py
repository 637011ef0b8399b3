"""score_batch's summary: throughput counts the tweets the model scored, not the rows it only marked."""

from __future__ import annotations

import pytest

from steps.lib.spark_scoring import summary_from_counts


def test_invalid_rows_are_counted_apart_and_not_in_the_throughput():
    counts = [(True, "negative", 4), (True, "not_negative", 2), (False, None, 4)]
    summary = summary_from_counts(counts, ["baseline:abc"], seconds=2.0)
    assert (summary["rows"], summary["valid_rows"], summary["invalid_rows"]) == (10, 6, 4)
    assert summary["tweets_per_second"] == pytest.approx(3.0)  # 6 scored tweets in 2 s, not 10 rows
    assert summary["negative_share"] == pytest.approx(4 / 6)


def test_an_all_invalid_input_scores_nothing():
    summary = summary_from_counts([(False, None, 5)], [], seconds=1.0)
    assert summary["tweets_per_second"] == 0.0 and summary["negative_share"] == 0.0
