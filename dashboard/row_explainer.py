"""A scored file's rows explained on demand: the tester ticks rows in the preview and asks why.

A file is scored without explanations (a row of n words would cost n more scored tweets); a tester who
wants to know why some rows were flagged ticks them and presses "Explain selected rows". At most the
server's explained-rows limit go in one request; more selected is said in one sentence and nothing
is sent (docs/design.md, "Why flagged, on the page").
"""

from __future__ import annotations

import asyncio
import functools
import html
from collections.abc import Callable
from concurrent.futures import Executor

import pandas as pd
import panel as pn

from dashboard import highlight
from dashboard.client import ModelClient, ModelServerError, Prediction, explained_rows_limit
from dashboard.page import message_html


def scored_positions(frame: pd.DataFrame, positions: list[int]) -> list[int]:
    """The chosen rows that have a score to explain: a text, and a label (not skipped, not left unscored)."""
    valid, labels = frame["valid"], frame["label"]
    return [position for position in positions if bool(valid.iloc[position]) and pd.notna(labels.iloc[position])]


def explained_row_html(position: int, text: str, prediction: Prediction) -> str:
    """One row of the file (numbered from 1, as a spreadsheet's data rows), its label, score and shaded words."""
    heading = (
        f"<b>File row {position + 1}</b>: {html.escape(prediction.label)}, "
        f"proba_negative {prediction.proba_negative:.4f}"
    )
    body = highlight.explanation_html(text, prediction, f"explained-row-{position}-text")
    return f'<div class="explained-row" id="explained-row-{position}" style="margin:8px 0">{heading}{body}</div>'


class RowExplainer:
    """The "Explain selected rows" button, its one-line notices, and the explained rows."""

    def __init__(self, client: ModelClient, threshold_to_send: Callable[[], float | None], executor: Executor) -> None:
        self.client = client
        self.threshold_to_send = threshold_to_send
        self.executor = executor  # a file's threads: an explained request can take seconds
        self.limit = explained_rows_limit()
        self.button = pn.widgets.Button(label="Explain selected rows", color="default", visible=False)
        self.message = pn.pane.HTML("", visible=False)
        self.explained = pn.pane.HTML("")
        self._generation = 0  # only the newest request's answer is shown

    def panel(self) -> pn.Column:
        note = pn.pane.HTML(
            "<small>Tick rows in the table and press <b>Explain selected rows</b> to see which words pushed "
            f"each towards <i>negative</i> (at most {self.limit} rows at a time).</small>"
        )
        return pn.Column(pn.Row(self.button, note), self.message, self.explained)

    def reset(self, visible: bool) -> None:
        """A new file or batch: nothing explained from an earlier one stays on screen."""
        self._generation += 1
        self.button.visible = visible
        self.message.visible = False
        self.explained.object = ""

    def _say(self, text: str, kind: str = "info") -> None:
        self.message.param.update(object=message_html(text, kind, "explain-rows-status"), visible=True)

    async def explain(self, frame: pd.DataFrame, column: str, positions: list[int]) -> None:
        """Explain the chosen rows of the preview `frame`, or say in one sentence why not."""
        positions = sorted(positions)
        if not positions:
            self._say("Select rows in the table first (tick their boxes), then press “Explain selected rows”.")
            return
        if len(positions) > self.limit:
            self._say(
                f"{len(positions)} rows are selected; the model server explains at most {self.limit} rows per "
                f"request. Select {self.limit} or fewer and press “Explain selected rows” again.",
                "error",
            )
            return
        chosen = scored_positions(frame, positions)
        if not chosen:
            self._say("None of the selected rows has a score to explain (empty text, or not scored yet).")
            return
        await self._explain_positions(frame, column, chosen, skipped=len(positions) - len(chosen))

    async def _explain_positions(self, frame: pd.DataFrame, column: str, chosen: list[int], skipped: int) -> None:
        """Send the rows in one request off the event loop and show the newest answer."""
        self._generation += 1
        generation = self._generation
        texts = [str(frame[column].iloc[position]) for position in chosen]
        self._say(f"Explaining {len(texts)} rows…")
        self.button.loading = True
        call = functools.partial(self.client.explain_rows, texts, self.threshold_to_send())
        try:
            scored = await asyncio.get_running_loop().run_in_executor(self.executor, call)
        except ModelServerError as error:
            if generation == self._generation:
                self._say(f"No explanation: {error.message}", "error")
            return
        finally:
            self.button.loading = False
        if generation != self._generation:
            return
        rows = [
            explained_row_html(position, text, prediction)
            for position, text, prediction in zip(chosen, texts, scored.predictions, strict=True)
        ]
        self.explained.object = highlight.legend_html() + "".join(rows)
        left_out = f" {skipped} selected rows have no score (empty text) and were left out." if skipped else ""
        self._say(f"Explained {len(rows)} rows.{left_out}", "ok")
