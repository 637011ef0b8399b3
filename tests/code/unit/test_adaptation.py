"""What `adapt` and its learning-curve bench learn from, and how they score decisions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steps.lib.adaptation import decision_figures, learning_rows


def frame(prefix: str, rows: int, complaints: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"text": [f"{prefix} {i}" for i in range(rows)], "label": [1] * complaints + [0] * (rows - complaints)}
    )


def test_the_verdicts_are_learned_with_a_stratified_replay_sample_shuffled_in():
    verdicts, replay = frame("verdict", 40, 10), frame("replay", 400, 100)
    rows = learning_rows(verdicts, replay, replay_size=80, seed=3)
    assert rows["origin"].value_counts().to_dict() == {"replay": 80, "verdict": 40}
    assert rows.loc[rows["origin"] == "replay", "label"].mean() == pytest.approx(0.25)
    assert set(rows.loc[rows["origin"] == "verdict", "text"]) == set(verdicts["text"])
    assert rows["origin"].head(40).nunique() == 2  # shuffled: not the verdicts first, then the replay
    assert rows.equals(learning_rows(verdicts, replay, replay_size=80, seed=3))  # seeded


def test_no_replay_learns_the_verdicts_alone():
    rows = learning_rows(frame("verdict", 40, 10), frame("replay", 400, 100), replay_size=0, seed=3)
    assert set(rows["origin"]) == {"verdict"} and len(rows) == 40


def test_decision_figures_are_macro_f1_and_the_two_error_rates():
    labels = np.array([0, 0, 0, 0, 1, 1])
    figures = decision_figures(labels, np.array([True, False, False, False, True, False]))
    assert figures["false_alarm_rate"] == pytest.approx(0.25) and figures["miss_rate"] == pytest.approx(0.5)
    assert figures["macro_f1"] == pytest.approx((0.75 + 0.5) / 2)
