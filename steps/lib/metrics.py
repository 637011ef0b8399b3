"""Metrics, threshold choice and plots shared by every candidate, so runs compare like for like."""

from __future__ import annotations

from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

# The metrics every candidate logs where higher is better, by name: f(labels, P(negative), threshold).
# Threshold-dependent ones are taken at the run's threshold; the gate computes the same ones on its
# rows. Macro F1 weighs the two classes alike: what a team sees in its queue, flagged and unflagged.
METRIC_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "accuracy": lambda y, p, t: accuracy_score(y, p >= t),
    "precision": lambda y, p, t: precision_score(y, p >= t, zero_division=0),
    "recall": lambda y, p, t: recall_score(y, p >= t, zero_division=0),
    "f1": lambda y, p, t: f1_score(y, p >= t, zero_division=0),
    "macro_f1": lambda y, p, t: f1_score(y, p >= t, average="macro", zero_division=0),
    "roc_auc": lambda y, p, t: roc_auc_score(y, p),
    "pr_auc": lambda y, p, t: average_precision_score(y, p),
}
# The two error rates a support lead reads (lower is better, so never ranked): the share of tweets
# that need no answer yet are flagged, and the share of complaints left unflagged.
ERROR_RATES: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "false_alarm_rate": lambda y, p, t: float(np.mean(p[y == 0] >= t)) if np.any(y == 0) else float("nan"),
    "miss_rate": lambda y, p, t: float(np.mean(p[y == 1] < t)) if np.any(y == 1) else float("nan"),
}


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float, prefix: str) -> dict[str, float]:
    """The metric keys every candidate logs (docs/design.md, "Candidate runs").

    Args:
        y_true: labels, 1 = negative.
        proba: P(negative) per row.
        threshold: the run's threshold, for the threshold-dependent metrics.
        prefix: the split, `val` or `test`.

    Returns:
        `{prefix}_{name}` for every metric of `METRIC_FUNCTIONS` and `ERROR_RATES`.
    """
    proba, y_true = np.asarray(proba), np.asarray(y_true)
    functions = METRIC_FUNCTIONS | ERROR_RATES
    return {f"{prefix}_{name}": float(metric(y_true, proba, threshold)) for name, metric in functions.items()}


def evaluation_figures(y_true: np.ndarray, proba: np.ndarray, threshold: float, split: str) -> dict[str, plt.Figure]:
    """Confusion matrix, ROC and PR curves, keyed by artifact file name.

    Args:
        y_true: labels, 1 = negative.
        proba: P(negative) per row.
        threshold: the run's threshold, for the confusion matrix.
        split: `val` or `test`, in the names and titles.

    Returns:
        `plots/{split}_confusion_matrix.png`, `plots/{split}_roc_curve.png` and `plots/{split}_pr_curve.png`;
        the caller logs and closes them.
    """
    y_pred = (np.asarray(proba) >= threshold).astype(int)
    figures = {}
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, display_labels=["not_negative", "negative"], ax=ax, colorbar=False
    )
    ax.set_title(f"{split} confusion matrix (threshold {threshold:.3f})")
    figures[f"plots/{split}_confusion_matrix.png"] = fig
    fig, ax = plt.subplots(figsize=(4.5, 4))
    RocCurveDisplay.from_predictions(y_true, proba, ax=ax, name=split)
    figures[f"plots/{split}_roc_curve.png"] = fig
    fig, ax = plt.subplots(figsize=(4.5, 4))
    PrecisionRecallDisplay.from_predictions(y_true, proba, ax=ax, name=split)
    figures[f"plots/{split}_pr_curve.png"] = fig
    return figures


def threshold_sweep_figure(curve: dict[str, list[float]], chosen: float, rule: str) -> plt.Figure:
    """Validation precision, recall and flagged share against the threshold, the chosen cut-off marked.

    Args:
        curve: as `steps.lib.operating_point.operating_curve` returns it.
        chosen: the run's threshold.
        rule: the policy in words, in the title.

    Returns:
        The figure; the caller logs and closes it.
    """
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(curve["thresholds"], curve["precision"], label="precision (flagged that are complaints)")
    ax.plot(curve["thresholds"], curve["recall"], label="recall (complaints flagged)")
    ax.plot(curve["thresholds"], curve["flagged_share"], label="flagged share", linestyle=":")
    ax.axvline(chosen, color="black", linestyle="--", label=f"chosen {chosen:.3f}")
    ax.set_xlabel("threshold on proba_negative")
    ax.set_title(f"validation threshold sweep\n{rule}", fontsize=9)
    ax.legend(fontsize=8)
    return fig


ECE_LIMIT = 0.03
ECE_BINS = 15


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> float:
    """Weighted gap between predicted P(negative) and the observed negative rate, over equal-width bins.

    Args:
        y_true: labels, 1 = negative.
        proba: P(negative) per row.
        bins: equal-width bins over [0, 1].

    Returns:
        The ECE: each bin's gap weighted by its share of rows (0 = perfectly calibrated).
    """
    y_true, proba = np.asarray(y_true), np.asarray(proba)
    which = np.minimum((proba * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(proba[in_bin].mean() - y_true[in_bin].mean())
    return float(error)


def fit_temperature(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Temperature minimising validation log-loss (Guo et al., 2017), searched on a log scale.

    Args:
        y_true: validation labels, 1 = negative.
        proba: uncalibrated validation P(negative).

    Returns:
        The temperature, for `pyfunc.contract.apply_temperature`.
    """
    from scipy.optimize import minimize_scalar

    from pyfunc.contract import apply_temperature

    def log_loss(log_t: float) -> float:
        p = np.clip(apply_temperature(proba, float(np.exp(log_t))), 1e-7, 1 - 1e-7)
        return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))

    return float(np.exp(minimize_scalar(log_loss, bounds=(-3, 3), method="bounded").x))


def reliability_figure(y_true: np.ndarray, curves: dict[str, np.ndarray], bins: int = ECE_BINS) -> plt.Figure:
    """Reliability diagram: observed negative rate against mean predicted probability per bin.

    Args:
        y_true: labels, 1 = negative.
        curves: P(negative) per curve name (`raw`, `calibrated`), each labelled with its ECE.
        bins: equal-width bins over [0, 1]; empty bins are left out.

    Returns:
        The figure; the caller logs and closes it.
    """
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, proba in curves.items():
        which = np.minimum((np.asarray(proba) * bins).astype(int), bins - 1)
        used = [b for b in range(bins) if (which == b).any()]
        ax.plot(
            [proba[which == b].mean() for b in used],
            [np.asarray(y_true)[which == b].mean() for b in used],
            marker="o",
            label=f"{name} (ECE {expected_calibration_error(y_true, proba, bins):.3f})",
        )
    ax.set_xlabel("mean predicted proba_negative")
    ax.set_ylabel("observed negative rate")
    ax.legend(loc="upper left")
    return fig
