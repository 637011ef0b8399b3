"""The charts `monitor` and `shadow` log, so a drift or a disagreement is seen, not only read as a number.

`monitor`: per feature, the reference's share of tweets in each bin beside recent traffic's, in the
very bins the PSI is computed on (docs/design.md, "Drift"). `shadow`: how the two models' decisions
cross (both flag, neither, one only) and each tweet's two scores against both thresholds
(docs/design.md, "Champion, challenger and rollback").
"""

from __future__ import annotations

import itertools
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

FEATURE_TITLES = {
    "proba": "score: P(negative)",
    "length": "length (characters)",
    "oov_share": "share of words the training split never had",
    "has_url": "carries a URL",
    "has_mention": "carries a mention",
    "has_emoji": "carries an emoji",
}


def _edge(value: float) -> str:
    return f"{value:.3g}"


def bin_labels(edges: list[float], name: str) -> list[str]:
    """Readable bin names: `no`/`yes` for the 0/1 features, `< a`, `a-b`, `>= b` for the rest."""
    if name.startswith("has_"):
        return ["no", "yes"]
    labels = []
    for low, high in itertools.pairwise(edges):
        if math.isinf(low):
            labels.append(f"< {_edge(high)}")
        elif math.isinf(high):
            labels.append(f">= {_edge(low)}")
        else:
            labels.append(f"{_edge(low)}-{_edge(high)}")
    return labels


def drift_histogram(name: str, bins: dict[str, list[float]], psi: float, reference_rows: int, rows: int) -> Figure:
    """Reference and recent shares per bin of one feature, side by side, titled with its PSI.

    Args:
        name: the feature (`proba` for the score).
        bins: `edges`, `reference` and `recent` shares, as `steps.lib.drift.binned` gives them.
        psi: the feature's PSI.
        reference_rows: validation tweets behind the reference.
        rows: recent tweets.
    """
    labels = bin_labels(bins["edges"], name)
    x = np.arange(len(labels))
    figure, axis = plt.subplots(figsize=(max(5.0, 0.7 * len(labels) + 2), 3.6))
    axis.bar(x - 0.2, bins["reference"], width=0.4, label=f"reference ({reference_rows:,} validation tweets)")
    axis.bar(x + 0.2, bins["recent"], width=0.4, label=f"recent ({rows:,} tweets)")
    axis.set_xticks(x, labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    axis.set_ylabel("share of tweets")
    axis.set_title(f"{FEATURE_TITLES.get(name, name)}: PSI {psi:.3f}")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def agreement_chart(champion_flags: np.ndarray, challenger_flags: np.ndarray) -> Figure:
    """The 2 x 2 table of both models' decisions on the same tweets, counts and shares in each cell."""
    champion_flags, challenger_flags = np.asarray(champion_flags, bool), np.asarray(challenger_flags, bool)
    counts = np.array(
        [
            [np.sum(~champion_flags & ~challenger_flags), np.sum(~champion_flags & challenger_flags)],
            [np.sum(champion_flags & ~challenger_flags), np.sum(champion_flags & challenger_flags)],
        ]
    )
    total = max(1, int(counts.sum()))
    figure, axis = plt.subplots(figsize=(4.6, 4.0))
    axis.imshow(counts, cmap="Blues")
    for row in range(2):
        for column in range(2):
            color = "white" if counts[row, column] > counts.max() / 2 else "black"
            share = counts[row, column] / total
            axis.text(column, row, f"{counts[row, column]:,}\n{share:.1%}", ha="center", va="center", color=color)
    axis.set_xticks([0, 1], ["not flagged", "flagged"])
    axis.set_yticks([0, 1], ["not flagged", "flagged"])
    axis.set_xlabel("challenger")
    axis.set_ylabel("champion")
    agree = (counts[0, 0] + counts[1, 1]) / total
    axis.set_title(f"agreement {agree:.1%} of {total:,} tweets")
    figure.tight_layout()
    return figure


def score_scatter(champion: np.ndarray, challenger: np.ndarray, thresholds: tuple[float, float]) -> Figure:
    """Each tweet's champion score against its challenger score, with both thresholds; disagreements stand out."""
    champion, challenger = np.asarray(champion, float), np.asarray(challenger, float)
    differ = (champion >= thresholds[0]) != (challenger >= thresholds[1])
    figure, axis = plt.subplots(figsize=(4.8, 4.6))
    axis.scatter(champion[~differ], challenger[~differ], s=10, alpha=0.5, label="same decision")
    axis.scatter(champion[differ], challenger[differ], s=14, alpha=0.8, color="tab:red", label="different decision")
    axis.axvline(thresholds[0], color="grey", linestyle="--", linewidth=1)
    axis.axhline(thresholds[1], color="grey", linestyle="--", linewidth=1)
    axis.plot([0, 1], [0, 1], color="lightgrey", linewidth=1)
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="champion P(negative)", ylabel="challenger P(negative)")
    axis.set_title("scores on the same tweets (dashed: thresholds)")
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return figure
