"""The Batch tab: a CSV file scored in chunks, with progress, a histogram, a preview and a download.

A batch the model server stops answering keeps its scored rows, and "Score the rest" sends only the
rows not yet scored (docs/design.md, "Batch scoring"; docs/reliability.md). What grows with the file
(parsing, the valid rows, the joined result and its CSV) runs in threads, so one tester's largest upload
never holds up another session's page; the file's name is made safe before the log or the page sees it.
Ticked rows of the preview are explained on demand (dashboard/row_explainer.py).
"""

from __future__ import annotations

import asyncio
import functools
import html
import io
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import panel as pn
from bokeh.plotting import figure as Figure

from dashboard import batch, charts
from dashboard.client import ModelClient, Prediction
from dashboard.file_names import download_name, safe_file_name
from dashboard.page import message_html
from dashboard.row_explainer import RowExplainer

# A file being scored holds its thread for minutes. In the event loop's default pool (cores + 4 threads)
# ten testers' files left no thread for anyone's typed prediction or feedback, so files get threads of
# their own: the model server, not this pool, decides how fast they go (docs/reliability.md).
BATCH_THREADS = 32
_batch_threads = ThreadPoolExecutor(max_workers=BATCH_THREADS, thread_name_prefix="dashboard-batch")
PREVIEW_ROWS = 200
_log = logging.getLogger(__name__)


def scored_outputs(
    frame: pd.DataFrame, valid: pd.Series, predictions: list[Prediction]
) -> tuple[pd.DataFrame, bytes, Figure | None]:
    """The scored table, its download and its histogram (None: nothing scored): one call for a thread.

    Each grows with the file; built on the event loop they held up every session of the process
    (docs/reliability.md, the largest upload's stall). A Bokeh figure joins no document until shown.
    """
    result, csv_bytes = batch.scored_download(frame, valid, predictions)
    scored = result[result["valid"] & result["label"].notna()]
    if not len(scored):
        return result, csv_bytes, None
    threshold = float(scored["threshold"].iloc[0])
    return result, csv_bytes, charts.probability_histogram(scored["proba_negative"].to_numpy(np.float64), threshold)


class FileView:
    """One session's upload, its pending batch (for a resume) and the scored file for the download."""

    def __init__(self, client: ModelClient, threshold_to_send: Callable[[], float | None]) -> None:
        self.client = client
        self.threshold_to_send = threshold_to_send
        self.scored_csv: bytes | None = None
        self.pending_batch: dict | None = None
        self.preview_column = "text"  # the previewed file's tweet column
        self._batch_generation = 0  # only the running batch's progress ticks move the bar
        self._build_widgets()
        self.row_explainer = RowExplainer(client, threshold_to_send, _batch_threads)
        self.row_explainer.button.on_click(self._on_explain_rows)
        self.file_input.param.watch(self._on_file, "value")
        self.score_button.on_click(self._on_score_file)
        self.resume_button.on_click(self._on_resume_batch)

    def _build_widgets(self) -> None:
        self.file_input = pn.widgets.FileInput(accept=".csv,text/csv", multiple=False)
        self.score_button = pn.widgets.Button(label="Score the file", color="primary", disabled=True)
        self.resume_button = pn.widgets.Button(label="Score the rest", color="warning", visible=False)
        self.progress = pn.indicators.Progress(value=0, max=100, bar_color="primary", visible=False)
        self.batch_message = pn.pane.HTML("", visible=False)
        self.histogram = pn.Column()  # holds a fresh Bokeh pane per batch
        self.preview = pn.widgets.Tabulator(
            pd.DataFrame(),
            disabled=True,
            show_index=False,
            pagination="local",
            page_size=10,
            visible=False,
            layout="fit_columns",
            selectable="checkbox",  # ticked rows are explained on demand
            css_classes=["batch-preview"],  # the page has other tables (History): tests find this one by it
        )
        self.download = pn.widgets.FileDownload(
            callback=self._scored_file,
            filename="scored.csv",
            label="Download the scored CSV",
            color="success",
            disabled=True,
        )

    def panel(self) -> pn.Column:
        return pn.Column(
            pn.pane.HTML(
                "Upload a CSV with a <code>text</code> column (one tweet per row). Rows with an empty "
                "text are kept in the output with <code>valid=False</code> and no prediction."
            ),
            self.file_input,
            self.score_button,
            self.resume_button,
            self.progress,
            self.batch_message,
            self.histogram,
            self.download,
            self.preview,
            self.row_explainer.panel(),
        )

    def _on_file(self, event) -> None:
        self.score_button.disabled = not event.new
        self.download.disabled = True
        self.scored_csv = None
        self.pending_batch = None
        self.resume_button.visible = False

    async def _on_score_file(self, event=None) -> None:
        data, name = self.file_input.value, self.file_input.filename or ""
        if not data:
            return
        self.score_button.loading = True
        self.download.disabled = True
        try:
            await self._score_file(data, name)
        finally:
            self.score_button.loading = False

    async def _score_file(self, data: bytes, name: str) -> None:
        name = safe_file_name(name)  # the tester's to choose: one safe line before the log or the page sees it
        self.histogram[:] = []  # nothing from a previous file stays on screen
        self.preview.visible = False
        self.row_explainer.reset(visible=False)
        self.resume_button.visible = False
        try:
            prepared = await asyncio.to_thread(batch.prepare, data)
        except batch.BatchError as error:
            self.batch_message.param.update(object=message_html(str(error), "error", "batch-status"), visible=True)
            return
        self.pending_batch = {"frame": prepared.frame, "valid": prepared.valid, "column": prepared.column, "name": name}
        self.pending_batch |= {"texts": prepared.texts, "predictions": [], "latency_ms": 0.0}
        await self._score_pending()

    async def _on_resume_batch(self, event=None) -> None:
        """Score the rows a failed batch left, without re-sending those already scored."""
        if not self.pending_batch:
            return
        self.resume_button.loading = True
        try:
            await self._score_pending()
        finally:
            self.resume_button.loading = False

    async def _score_pending(self) -> None:
        """Send the pending batch's unscored tweets; show the whole result, or what was scored and what was not."""
        pending = self.pending_batch
        texts, done = pending["texts"], len(pending["predictions"])
        loop = asyncio.get_running_loop()
        self.progress.param.update(value=done, max=max(len(texts), 1), visible=True)
        self.batch_message.param.update(
            object=message_html(f"Scoring {len(texts) - done} tweets from {pending['name']}…", "info", "batch-status"),
            visible=True,
        )

        document = pn.state.curdoc  # a worker thread may change a session's page only through its document
        self._batch_generation += 1
        generation = self._batch_generation

        def progress(scored: int, total: int) -> None:  # called from the worker thread
            update = functools.partial(self._advance_progress, generation, scored)
            if document is not None and document.session_context is not None:
                document.add_next_tick_callback(update)  # Bokeh runs it holding that document's lock
            else:  # no served session (the handlers called directly): the loop applies it
                loop.call_soon_threadsafe(update)

        score = functools.partial(self.client.predict_in_chunks, texts, self.threshold_to_send(), None, progress, done)
        # A batch is the one step that waits on shared slots and on the server for minutes: its start
        # and end in the log tell a stuck request from a page that was not updated.
        _log.info("batch %s: scoring rows %d-%d of %d", pending["name"], done, len(texts) - 1, len(texts))
        scored = await loop.run_in_executor(_batch_threads, score)
        outcome = f"stopped: {scored.failure.message}" if scored.failure else "done"
        _log.info(
            "batch %s: %d rows scored in %.0f ms, %s",
            pending["name"],
            len(scored.predictions),
            scored.latency_ms,
            outcome,
        )
        pending["predictions"] += scored.predictions
        pending["latency_ms"] += scored.latency_ms
        # The bar's last value is set here, before the summary, not left to the worker's ticks: a tick
        # can wait for the document's lock and land after the summary, so the page said "Scored 4
        # tweets" over a bar at 2 of 4. Ticks of this batch that land later are ignored.
        self._batch_generation += 1
        self.progress.value = len(pending["predictions"])
        joined = functools.partial(scored_outputs, pending["frame"], pending["valid"], pending["predictions"])
        result, self.scored_csv, plot = await asyncio.to_thread(joined)
        skipped = int((~pending["valid"]).sum())
        self._show_batch(result, plot, pending["name"], pending["column"], skipped, pending["latency_ms"])
        if scored.failure is None:
            self.pending_batch = None
            self.resume_button.visible = False
            return
        left = len(texts) - len(pending["predictions"])
        message = (
            f"Scored {len(pending['predictions'])} of {len(texts)} tweets; {left} not scored yet "
            f"(empty label in the download): {scored.failure.message} "
            f"Press “Score the rest” once the model server is back."
        )
        self.batch_message.param.update(object=message_html(message, "error", "batch-status"), visible=True)
        self.resume_button.param.update(label=f"Score the remaining {left} tweets", visible=True)

    def _advance_progress(self, generation: int, scored: int) -> None:
        """Move the bar to a worker's count, unless that batch's result is already on the page.

        Ticks come from a worker thread through the event loop and may arrive after the batch has
        ended (and after a newer batch started); a late one must not move the bar back.
        """
        if generation == self._batch_generation and scored > self.progress.value:
            self.progress.value = scored

    def _show_batch(
        self, result: pd.DataFrame, plot: Figure | None, name: str, column: str, skipped: int, latency_ms: float
    ) -> None:
        self.download.param.update(filename=download_name(name), disabled=False)
        scored = result[result["valid"] & result["label"].notna()]
        negatives = int((scored["label"] == "negative").sum())
        took = f"{latency_ms:.0f} ms" if latency_ms < 1000 else f"{latency_ms / 1000:.1f} s"
        summary = f"Scored {len(scored)} tweets from {name} in {took}: {negatives} negative"
        summary += f" ({negatives / max(len(scored), 1):.0%})"
        if skipped:
            summary += f"; {skipped} rows with an empty text were skipped (valid=False)"
        self.batch_message.param.update(object=message_html(summary + ".", "ok", "batch-status"), visible=True)
        if plot is not None:
            self.histogram[:] = [pn.pane.Bokeh(plot)]
        self.preview.selection = []
        self.row_explainer.reset(visible=bool(len(scored)))
        self.preview_column = column
        self.preview.param.update(
            value=result.head(PREVIEW_ROWS),
            # Tabulator writes column titles as HTML: an uploaded file's column names are shown escaped.
            titles={name: html.escape(str(name)) for name in result.columns},
            formatters={column: {"type": "textarea"}},
            widths={column: "40%", "model_version": "18%"},
            visible=True,
        )

    async def _on_explain_rows(self, event=None) -> None:
        """Explain the preview's ticked rows (they index the preview's own rows)."""
        await self.row_explainer.explain(self.preview.value, self.preview_column, list(self.preview.selection))

    def _scored_file(self) -> io.BytesIO:
        return io.BytesIO(self.scored_csv or b"")
