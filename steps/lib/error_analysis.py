"""Where a candidate is wrong on the test split: worst errors, error rate by tweet length and by topic.

Input is the predictions table every candidate run logs (`predictions/test.json`: text, label, source,
proba_negative, predicted at the run's threshold), so the analysis needs no model and no re-scoring.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

PREDICTION_COLUMNS = ("text", "label", "source", "proba_negative", "predicted")
# Tweet length in whitespace-separated words; the last bin is open-ended.
LENGTH_EDGES = (0, 5, 10, 15, 20, 25, np.inf)
LENGTH_LABELS = ("1-5", "6-10", "11-15", "16-20", "21-25", "26+")
RATE_COLUMNS = [
    "rows",
    "negatives",
    "errors",
    "error_rate",
    "false_negatives",
    "false_negative_rate",
    "false_positives",
    "false_positive_rate",
]
WORST_COLUMNS = ["text", "source", "words", "label", "predicted", "proba_negative"]


def check_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    """The predictions table with a `words` column; names the missing columns of a foreign table.

    Args:
        frame: a candidate run's `predictions/test.json` table.

    Returns:
        A copy with `words`, the count of whitespace-separated words per text.

    Raises:
        ValueError: a column of `PREDICTION_COLUMNS` is missing.
    """
    missing = [column for column in PREDICTION_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"predictions table lacks column(s) {', '.join(missing)}")
    frame = frame.copy()
    frame["words"] = frame["text"].astype(str).str.split().str.len()
    return frame


def error_rates(frame: pd.DataFrame, by: pd.Series) -> pd.DataFrame:
    """Counts and rates per group; false-negative rate over rows labelled negative (missed complaints)."""
    label, predicted = frame["label"].astype(int), frame["predicted"].astype(int)
    parts = pd.DataFrame(
        {
            "rows": 1,
            "negatives": label,
            "errors": (label != predicted).astype(int),
            "false_negatives": ((label == 1) & (predicted == 0)).astype(int),
            "false_positives": ((label == 0) & (predicted == 1)).astype(int),
        }
    )
    table = parts.groupby(by, observed=False, sort=False).sum()  # same index as `frame`; keeps empty bins
    with np.errstate(divide="ignore", invalid="ignore"):
        table["error_rate"] = table["errors"] / table["rows"].replace(0, np.nan)
        table["false_negative_rate"] = table["false_negatives"] / table["negatives"].replace(0, np.nan)
        table["false_positive_rate"] = table["false_positives"] / (table["rows"] - table["negatives"]).replace(
            0, np.nan
        )
    return table.reset_index()[[by.name, *RATE_COLUMNS]]


def by_length(frame: pd.DataFrame) -> pd.DataFrame:
    """Error rates per tweet-length bin; every bin is listed, empty ones with zero rows.

    Args:
        frame: as `check_predictions` returns it.

    Returns:
        `length_words` (the bin's label) and `RATE_COLUMNS`, bins in `LENGTH_LABELS` order; a rate
        with no rows to divide by is NaN.
    """
    bins = pd.cut(frame["words"], bins=list(LENGTH_EDGES), labels=list(LENGTH_LABELS), right=True)
    table = error_rates(frame, bins.rename("length_words"))
    table["length_words"] = table["length_words"].astype(str)
    order = {label: i for i, label in enumerate(LENGTH_LABELS)}
    return table.sort_values("length_words", key=lambda s: s.map(order)).reset_index(drop=True)


def by_topic(frame: pd.DataFrame) -> pd.DataFrame:
    """Error rates per topic: the prepared `source` (airline vs other brands in the embedded corpus).

    Args:
        frame: as `check_predictions` returns it.

    Returns:
        `topic` and `RATE_COLUMNS`, one row per source, sorted by topic.
    """
    return error_rates(frame, frame["source"].astype(str).rename("topic")).sort_values("topic").reset_index(drop=True)


def worst_errors(frame: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The most confident mistakes: missed complaints (lowest proba) and false alarms (highest proba).

    Args:
        frame: as `check_predictions` returns it.
        n: the most rows of each kind.

    Returns:
        False negatives and false positives, each with `WORST_COLUMNS`, most confident first.
    """
    false_negatives = frame[(frame["label"] == 1) & (frame["predicted"] == 0)].nsmallest(n, "proba_negative")
    false_positives = frame[(frame["label"] == 0) & (frame["predicted"] == 1)].nlargest(n, "proba_negative")
    return false_negatives[WORST_COLUMNS].reset_index(drop=True), false_positives[WORST_COLUMNS].reset_index(drop=True)


def error_rate_figure(length_table: pd.DataFrame, topic_table: pd.DataFrame) -> plt.Figure:
    """Two bar charts, error rate by length bin and by topic, with row counts on the bars.

    Args:
        length_table: as `by_length` returns it.
        topic_table: as `by_topic` returns it.

    Returns:
        The figure; the caller logs and closes it.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 2]})
    for ax, table, column, title in (
        (axes[0], length_table, "length_words", "by tweet length (words)"),
        (axes[1], topic_table, "topic", "by topic"),
    ):
        bars = ax.bar(table[column].astype(str), table["error_rate"].fillna(0))
        ax.bar_label(bars, labels=[f"n={rows}" for rows in table["rows"]], fontsize=8)
        ax.set_title(f"test error rate {title}")
        ax.set_ylim(0, max(0.05, float(table["error_rate"].fillna(0).max()) * 1.25))
        ax.tick_params(axis="x", labelrotation=15)
    axes[0].set_ylabel("error rate at the run's threshold")
    fig.tight_layout()
    return fig
