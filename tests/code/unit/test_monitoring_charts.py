"""The charts `monitor` and `shadow` log draw the figures they are given, in the PSI's own bins."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from steps.lib.monitoring_charts import agreement_chart, bin_labels, drift_histogram, score_scatter


def test_bin_labels_name_open_ends_and_yes_no_features():
    assert bin_labels([-math.inf, 40.0, 95.5, math.inf], "length") == ["< 40", "40-95.5", ">= 95.5"]
    assert bin_labels([-0.5, 0.5, 1.5], "has_url") == ["no", "yes"]
    assert bin_labels([0.0, 0.5, 1.0], "proba") == ["0-0.5", "0.5-1"]


def test_the_histogram_draws_both_shares_per_bin_and_names_the_psi():
    bins = {"edges": [0.0, 0.5, 1.0], "reference": [0.7, 0.3], "recent": [0.4, 0.6]}
    figure = drift_histogram("proba", bins, 0.281, 900, 250)
    axis = figure.axes[0]
    heights = [patch.get_height() for patch in axis.patches]
    assert heights == pytest.approx([0.7, 0.3, 0.4, 0.6])
    assert "PSI 0.281" in axis.get_title()
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [
        "reference (900 validation tweets)",
        "recent (250 tweets)",
    ]
    plt.close(figure)


def test_the_agreement_chart_counts_each_crossing_of_the_two_decisions():
    champion = np.array([True, True, False, False, False, True])
    challenger = np.array([True, False, False, False, True, True])
    figure = agreement_chart(champion, challenger)
    axis = figure.axes[0]
    cells = [text.get_text().splitlines()[0] for text in axis.texts]
    assert cells == ["2", "1", "1", "2"]  # neither, challenger only, champion only, both
    assert axis.get_title() == "agreement 66.7% of 6 tweets"
    plt.close(figure)


def test_the_scatter_marks_the_tweets_the_two_thresholds_decide_differently():
    champion = np.array([0.1, 0.4, 0.9, 0.35])
    challenger = np.array([0.2, 0.2, 0.95, 0.6])
    figure = score_scatter(champion, challenger, (0.33, 0.5))
    same, differ = figure.axes[0].collections
    assert differ.get_offsets().tolist() == [[0.4, 0.2]]
    assert len(same.get_offsets()) == 3
    plt.close(figure)
