"""The History tab: every prediction of this session, newest first, with the verdict given on it."""

from __future__ import annotations

import pandas as pd
import panel as pn

HISTORY_COLUMNS = ["time", "text", "label", "proba_negative", "threshold", "feedback", "latency_ms", "model_version"]
HISTORY_WIDTHS = {"time": 85, "text": 320, "label": 125, "proba_negative": 135, "threshold": 100, "feedback": 190}


class HistoryView:
    """The session's rows (oldest first) and the table that shows them."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=HISTORY_COLUMNS),
            disabled=True,
            show_index=False,
            pagination="local",
            page_size=15,
            layout="fit_data_table",  # fixed widths; model_version and latency scroll into view on the right
            formatters={"text": {"type": "textarea"}},
            widths=HISTORY_WIDTHS,
            selectable=False,
        )

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.refresh()

    def refresh(self) -> None:
        """Show the rows again: a row's `feedback` cell changes in place when its verdict is saved."""
        self.table.value = pd.DataFrame(self.rows[::-1], columns=HISTORY_COLUMNS)
