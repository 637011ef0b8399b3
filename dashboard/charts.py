"""Bokeh figures for the dashboard (Bokeh ships with Panel and is served locally: works offline)."""

from __future__ import annotations

import numpy as np
from bokeh.models import Span
from bokeh.plotting import figure

NEGATIVE_COLOR = "#c62828"
NOT_NEGATIVE_COLOR = "#2e7d32"


def probability_histogram(proba: np.ndarray, threshold: float, bins: int = 20):
    """Counts of `proba_negative` in equal bins over [0, 1], coloured by the side of the threshold."""
    counts, edges = np.histogram(np.asarray(proba, dtype=float), bins=bins, range=(0.0, 1.0))
    centers = (edges[:-1] + edges[1:]) / 2
    colors = [NEGATIVE_COLOR if center >= threshold else NOT_NEGATIVE_COLOR for center in centers]
    plot = figure(
        height=280,
        x_range=(0, 1),
        title=f"proba_negative of {len(proba)} tweets (dashed line: threshold {threshold:.3f})",
        x_axis_label="proba_negative",
        y_axis_label="tweets",
        toolbar_location=None,
        sizing_mode="stretch_width",
    )
    plot.quad(top=counts, bottom=0, left=edges[:-1], right=edges[1:], fill_color=colors, line_color="white")
    plot.add_layout(Span(location=threshold, dimension="height", line_dash="dashed", line_width=2))
    plot.y_range.start = 0
    return plot
