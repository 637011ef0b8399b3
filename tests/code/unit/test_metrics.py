"""Metric keys and calibration measures (the threshold policies: test_operating_point.py)."""

import numpy as np
import pytest

from steps.lib.metrics import (
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
)


def test_metric_keys_and_values_at_the_threshold():
    y = np.array([1, 0, 1, 0])
    proba = np.array([0.8, 0.6, 0.4, 0.1])
    metrics = classification_metrics(y, proba, threshold=0.5, prefix="val")
    names = ("accuracy", "precision", "recall", "f1", "macro_f1", "roc_auc", "pr_auc", "false_alarm_rate", "miss_rate")
    assert set(metrics) == {f"val_{k}" for k in names}
    assert metrics["val_accuracy"] == 0.5
    assert metrics["val_precision"] == 0.5
    assert metrics["val_recall"] == 0.5
    assert metrics["val_roc_auc"] == 0.75


def test_ece_is_zero_for_calibrated_bins_and_large_for_overconfidence():
    y = np.array([1, 0] * 50)
    assert expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.where(y == 1, 0.99, 0.6)) > 0.3


def test_temperature_fitted_on_overconfident_scores_softens_them():
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.05, 0.95, 20_000)
    y = (rng.uniform(size=true_p.size) < true_p).astype(int)
    logits = np.log(true_p / (1 - true_p)) * 4  # four times too confident
    overconfident = 1 / (1 + np.exp(-logits))
    temperature = fit_temperature(y, overconfident)
    assert temperature == pytest.approx(4.0, rel=0.1)


def test_macro_f1_weighs_both_classes_and_the_error_rates_are_a_support_leads():
    """Six tweets the team need not answer, two it must: flagging everything has a perfect recall and
    a poor macro F1; the rates count the flagged non-complaints and the unflagged complaints."""
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    everything = classification_metrics(y, np.full(8, 0.9), threshold=0.5, prefix="test")
    assert everything["test_recall"] == 1.0 and everything["test_false_alarm_rate"] == 1.0
    assert everything["test_macro_f1"] == pytest.approx((0 + 0.4) / 2)
    proba = np.array([0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.2])  # one false alarm, one miss
    one_of_each = classification_metrics(y, proba, threshold=0.5, prefix="test")
    assert one_of_each["test_false_alarm_rate"] == pytest.approx(1 / 6)
    assert one_of_each["test_miss_rate"] == pytest.approx(1 / 2)
    assert one_of_each["test_macro_f1"] == pytest.approx((10 / 12 + 0.5) / 2)
