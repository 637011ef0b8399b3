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
    assert set(metrics) == {f"val_{k}" for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")}
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
