"""Panel dashboard for testers: `panel serve dashboard/app.py` (model server URL: `MODEL_SERVER_URL`).

Each browser session gets its own `Dashboard`. It only talks HTTP to the model server through
`ModelClient`; blocking calls run in a worker thread from async callbacks, so a slow or dead server
never freezes the page, and nothing the tester typed is ever cleared. Tweets are user content:
everything they reach on the page is HTML-escaped or shown by widgets that render plain text.
"""

from __future__ import annotations

import asyncio
import functools
import html
import io
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import panel as pn
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

# `panel serve dashboard/app.py` puts dashboard/ on sys.path, not the project root: add the root so
# `dashboard` and `pyfunc` resolve to this checkout even where the project is not pip-installed.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dashboard import batch, charts, panel_fixes, registry  # noqa: E402
from dashboard.client import ModelClient, ModelServerError, Prediction, Scored  # noqa: E402
from dashboard.feedback import Feedback, FeedbackNotSaved, FeedbackStore, record_feedback  # noqa: E402
from pyfunc import telemetry  # noqa: E402

pn.extension("echarts", "tabulator", sizing_mode="stretch_width")
panel_fixes.send_queued_messages()  # or a page can keep a stale state: see dashboard/panel_fixes.py

OTHER_LABEL = {"negative": "not_negative", "not_negative": "negative"}
HISTORY_COLUMNS = ["time", "text", "label", "proba_negative", "threshold", "feedback", "latency_ms", "model_version"]
HISTORY_WIDTHS = {"time": 85, "text": 320, "label": 125, "proba_negative": 135, "threshold": 100, "feedback": 190}
# How often verdicts the feedback store refused are tried again.
FEEDBACK_RETRY_MS = 5_000
# A file being scored holds its thread for minutes. In the event loop's default pool (cores + 4 threads)
# ten testers' files left no thread for anyone's typed prediction or feedback, so files get threads of
# their own: the model server, not this pool, decides how fast they go (docs/reliability.md).
BATCH_THREADS = 32
_batch_threads = ThreadPoolExecutor(max_workers=BATCH_THREADS, thread_name_prefix="dashboard-batch")
PREVIEW_ROWS = 200
# `panel serve` runs this file as a module of its own name per session: the log name is fixed here.
_log = logging.getLogger("dashboard.app")
# `panel serve --log-level` sets Bokeh's logger only; the dashboard's own INFO lines (a file's batch, a
# closed tab) reach its log through the root handler Bokeh installs, unless a level was set already.
if logging.getLogger("dashboard").level == logging.NOTSET:
    logging.getLogger("dashboard").setLevel(logging.INFO)
STYLES = {
    "error": "background:#fdecea;color:#611a15;border:1px solid #f5c6cb;",
    "info": "background:#e8f4fd;color:#0c3c60;border:1px solid #b8daff;",
    "ok": "background:#edf7ed;color:#1e4620;border:1px solid #c3e6cb;",
}


def message_html(text: str, kind: str = "error", element_id: str = "message") -> str:
    """A notice box; the text is escaped, so server messages and tweets show literally."""
    style = STYLES[kind] + "padding:8px 12px;border-radius:4px;white-space:pre-wrap;"
    role = "alert" if kind == "error" else "status"
    return f'<div id="{element_id}" role="{role}" style="{style}">{html.escape(text)}</div>'


def threshold_meaning_html(prediction: Prediction | None) -> str:
    """The threshold in use in a support lead's words, from the model's own validation figures."""
    if prediction is None:
        text = "Score a tweet to see what this threshold means on the model's validation tweets."
    elif prediction.val_precision is None or prediction.val_recall is None:
        text = "This model ships no validation figures for its threshold (logged before they existed)."
    else:
        text = (
            f"At threshold {prediction.threshold:.2f}, on the model's validation tweets: of 100 flagged tweets, "
            f"about <b>{round(100 * prediction.val_precision)}</b> are complaints; of 100 complaints, about "
            f"<b>{round(100 * prediction.val_recall)}</b> are flagged."
        )
    return f'<div id="threshold-meaning" style="font-size:0.9em">{text}</div>'


def verdict_label(verdict: Feedback) -> str:
    """The history table's `feedback` cell for a verdict."""
    return "right" if verdict.is_correct else f"wrong (true: {verdict.true_label})"


def field_html(name: str, value: str, element_id: str) -> str:
    """One `name: value` line with an id the browser tests read; the value is escaped."""
    return f'<div><b>{html.escape(name)}:</b> <span id="{element_id}">{html.escape(value)}</span></div>'


class Dashboard:
    """One tester's session: widgets, the last prediction, the history and the batch result."""

    def __init__(self, client: ModelClient, store: FeedbackStore) -> None:
        self.client = client
        self.store = store
        self.history: list[dict] = []
        self.last: dict | None = None  # the prediction feedback refers to (text, Prediction, history row)
        self.scored_csv: bytes | None = None
        self._generation = 0  # only the newest request's answer is shown
        self._batch_generation = 0  # only the running batch's progress ticks move the bar
        self._model_threshold: float | None = None
        self._syncing_threshold = False
        # Verdicts the store refused, oldest first, each with its history row: kept and retried, never dropped.
        self.unsaved: list[tuple[Feedback, dict]] = []
        self._retry_callback = None
        self._build_widgets()
        self._wire()

    # ----------------------------------------------------------------------------------- layout
    def _build_widgets(self) -> None:
        self.status = pn.pane.HTML(message_html(f"Model server: {self.client.base_url}", "info", "server-status"))
        self.check_button = pn.widgets.Button(label="Check the model server", color="default")
        self.threshold = pn.widgets.EditableFloatSlider(
            label="Decision threshold", start=0.0, end=1.0, fixed_start=0.0, fixed_end=1.0, step=0.01, value=0.5
        )
        self.use_model_threshold = pn.widgets.Checkbox(label="Use the model's own threshold", value=True)
        self.threshold_note = pn.pane.HTML(
            "<small>A tweet is flagged <b>negative</b> when proba_negative ≥ threshold. Moving the slider "
            "sends it as <code>params.threshold</code> and re-scores the current tweet.</small>"
        )
        self.threshold_meaning = pn.pane.HTML(threshold_meaning_html(None))

        self.tweet = pn.widgets.TextAreaInput(
            label="Tweet", placeholder="Type or paste a tweet…", max_length=5000, height=110
        )
        self.predict_button = pn.widgets.Button(label="Predict", color="primary", width=160, sizing_mode=None)
        self.predict_message = pn.pane.HTML("", visible=False)
        self.result = pn.pane.HTML("")
        self.gauge = pn.indicators.Gauge(
            label="proba_negative",
            value=0.0,
            bounds=(0, 1),
            format="{value}",
            height=260,
            width=300,
            title_size=14,
            sizing_mode="fixed",
        )
        self.right_button = pn.widgets.Button(label="Right", color="success", disabled=True)
        self.wrong_button = pn.widgets.Button(label="Wrong", color="danger", disabled=True)
        self.feedback_message = pn.pane.HTML("")
        # Shown only for a current answer: after an error the stale result is hidden (history keeps it).
        self.result_area = pn.Row(
            self.gauge,
            pn.Column(
                self.result,
                pn.pane.HTML("<b>Was this prediction right?</b>"),
                pn.Row(self.right_button, self.wrong_button),
                self.feedback_message,
            ),
            visible=False,
        )

        self.history_table = pn.widgets.Tabulator(
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
            selectable=False,
        )
        self.download = pn.widgets.FileDownload(
            callback=self._scored_file,
            filename="scored.csv",
            label="Download the scored CSV",
            color="success",
            disabled=True,
        )

    def _wire(self) -> None:
        self.check_button.on_click(self._check_server)
        self.predict_button.on_click(self._on_predict)
        self.threshold.param.watch(self._on_threshold_moved, "value_throttled")
        self.use_model_threshold.param.watch(self._on_use_model_threshold, "value")
        self.right_button.on_click(self._on_right)
        self.wrong_button.on_click(self._on_wrong)
        self.file_input.param.watch(self._on_file, "value")
        self.score_button.on_click(self._on_score_file)
        self.resume_button.on_click(self._on_resume_batch)

    def sidebar(self) -> list:
        return [
            self.status,
            self.check_button,
            pn.layout.Divider(),
            self.threshold,
            self.use_model_threshold,
            self.threshold_meaning,
            self.threshold_note,
        ]

    def main(self) -> pn.Tabs:
        predict = pn.Column(
            self.tweet,
            self.predict_button,
            self.predict_message,
            self.result_area,
        )
        batch_tab = pn.Column(
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
        )
        return pn.Tabs(("Predict", predict), ("Batch (CSV)", batch_tab), ("History", self.history_table), dynamic=False)

    # ------------------------------------------------------------------------------- server state
    async def _check_server(self, event=None) -> None:
        ready = await asyncio.to_thread(self.client.ping)
        if not ready:
            text = f"Model server {self.client.base_url} is not answering. Predictions will fail until it is up."
            self.status.object = message_html(text, "error", "server-status")
            return
        try:
            version = await asyncio.to_thread(self.client.version)
        except ModelServerError:
            version = "unknown"
        text = f"Model server {self.client.base_url} is up (MLflow {version})."
        self.status.object = message_html(text, "ok", "server-status")

    def _threshold_to_send(self) -> float | None:
        """None lets the model apply the threshold it was logged with."""
        return None if self.use_model_threshold.value else round(float(self.threshold.value), 4)

    def _show_threshold(self, value: float) -> None:
        """Reflect the threshold a response used on the slider without counting it as a user move."""
        self._syncing_threshold = True
        try:
            self.threshold.value = round(value, 4)
        finally:
            self._syncing_threshold = False

    # -------------------------------------------------------------------------------- prediction
    async def _on_predict(self, event=None) -> None:
        text = self.tweet.value_input or self.tweet.value or ""
        if not text.strip():
            self.predict_message.param.update(object=message_html("Type a tweet first."), visible=True)
            return
        await self._score_text(text)

    async def _score_text(self, text: str) -> None:
        self._generation += 1
        generation = self._generation
        self.predict_button.loading = True
        try:
            scored = await asyncio.to_thread(self.client.predict, [text], self._threshold_to_send())
        except ModelServerError as error:
            if generation == self._generation:
                self.predict_message.param.update(object=message_html(error.message), visible=True)
                self.result_area.visible = False
                self.last = None  # feedback only ever refers to a prediction on screen
                if error.kind in ("unreachable", "timeout"):
                    await self._check_server()
            return
        finally:
            if generation == self._generation:
                self.predict_button.loading = False
        if generation == self._generation:
            self.predict_message.visible = False
            await self._show_prediction(text, scored)

    async def _show_prediction(self, text: str, scored: Scored) -> None:
        prediction = scored.predictions[0]
        row = {
            "time": datetime.now().strftime("%H:%M:%S"),
            "text": text,
            "label": prediction.label,
            "proba_negative": round(prediction.proba_negative, 4),
            "threshold": round(prediction.threshold, 4),
            "model_version": prediction.model_version,
            "latency_ms": round(scored.latency_ms, 1),
            "feedback": "",
        }
        self.history.append(row)
        self.last = {"text": text, "prediction": prediction, "row": row}
        if self.use_model_threshold.value:
            self._model_threshold = prediction.threshold
            self._show_threshold(prediction.threshold)
        self._render_result(text, prediction, scored.latency_ms, registry_line=None)
        self.threshold_meaning.object = threshold_meaning_html(prediction)
        self._refresh_history()
        self.right_button.param.update(label=f"Right: it is {prediction.label}", disabled=False)
        other = OTHER_LABEL[prediction.label]
        self.wrong_button.param.update(label=f"Wrong: it is {other}", disabled=False)
        self.feedback_message.object = ""
        # Optional and possibly slow (first call imports mlflow): the result is already on the page.
        label = await asyncio.to_thread(registry.registry_label, prediction.model_version)
        if label and self.last and self.last["prediction"] is prediction:
            self._render_result(text, prediction, scored.latency_ms, registry_line=label)

    def _render_result(self, text: str, prediction: Prediction, latency_ms: float, registry_line: str | None) -> None:
        color = charts.NEGATIVE_COLOR if prediction.label == "negative" else charts.NOT_NEGATIVE_COLOR
        threshold_source = "model's own" if self.use_model_threshold.value else "from the slider"
        lines = [
            f'<div style="font-size:1.4em;color:{color}"><b>Label:</b> '
            f'<span id="result-label">{html.escape(prediction.label)}</span></div>',
            field_html("proba_negative", f"{prediction.proba_negative:.4f}", "result-proba"),
            field_html("Threshold in use", f"{prediction.threshold:.4f} ({threshold_source})", "result-threshold"),
            field_html("Model version", prediction.model_version, "result-model"),
        ]
        if registry_line:
            lines.append(field_html("Registry", registry_line, "result-registry"))
        lines += [
            field_html("Latency", f"{latency_ms:.0f} ms", "result-latency"),
            "<div><b>Tweet:</b></div>",
            f'<pre id="result-text" style="white-space:pre-wrap;font-size:1em">{html.escape(text)}</pre>',
        ]
        self.result.object = "".join(lines)
        self.gauge.param.update(
            value=round(prediction.proba_negative, 3),
            colors=[(prediction.threshold, charts.NOT_NEGATIVE_COLOR), (1, charts.NEGATIVE_COLOR)],
        )
        self.result_area.visible = True

    def _refresh_history(self) -> None:
        self.history_table.value = pd.DataFrame(self.history[::-1], columns=HISTORY_COLUMNS)

    # --------------------------------------------------------------------------------- threshold
    async def _on_threshold_moved(self, event) -> None:
        if self._syncing_threshold:
            return
        if self.use_model_threshold.value:
            self._syncing_threshold = True  # the box unticks; that must not re-score a second time
            try:
                self.use_model_threshold.value = False
            finally:
                self._syncing_threshold = False
        if self.last:
            await self._score_text(self.last["text"])

    async def _on_use_model_threshold(self, event) -> None:
        if self._syncing_threshold or not event.new:
            return
        if self.last:
            await self._score_text(self.last["text"])
        elif self._model_threshold is not None:
            self._show_threshold(self._model_threshold)

    # ---------------------------------------------------------------------------------- feedback
    async def _on_right(self, event=None) -> None:
        await self._save_feedback(correct=True)

    async def _on_wrong(self, event=None) -> None:
        await self._save_feedback(correct=False)

    async def _save_feedback(self, correct: bool) -> None:
        if not self.last:
            return
        prediction: Prediction = self.last["prediction"]
        verdict = Feedback(
            text=self.last["text"],
            predicted_label=prediction.label,
            proba_negative=prediction.proba_negative,
            threshold=prediction.threshold,
            true_label=prediction.label if correct else OTHER_LABEL[prediction.label],
            model_version=prediction.model_version,
        )
        self.right_button.disabled = self.wrong_button.disabled = True  # one verdict per prediction
        self.last["row"]["feedback"] = f"{verdict_label(verdict)}, not saved yet"
        self.unsaved.append((verdict, self.last["row"]))
        await self.save_unsaved()

    async def save_unsaved(self) -> bool:
        """Store the waiting verdicts in order; on a refusal keep them all, say why, and retry every few seconds.

        Returns:
            Whether nothing is left waiting.
        """
        saved: list[Feedback] = []
        while self.unsaved:
            verdict, row = self.unsaved[0]
            try:
                stored = await asyncio.to_thread(record_feedback, self.store, verdict)
            except FeedbackNotSaved as error:
                self._refresh_history()
                waiting = len(self.unsaved)
                text = (
                    f"The feedback is not saved yet: {error}. {waiting} verdict{'s' if waiting > 1 else ''} "
                    "kept in this page and retried every few seconds; keep the page open until it says saved."
                )
                self.feedback_message.object = message_html(text, "error", "feedback-status")
                self._start_retrying()
                return False
            self.unsaved.pop(0)
            row["feedback"] = verdict_label(stored)
            saved.append(stored)
        self._stop_retrying()
        self._refresh_history()
        if len(saved) == 1:
            stored = saved[0]
            text = f"Saved as feedback #{stored.id}: prediction marked {'right' if stored.is_correct else 'wrong'}."
            self.feedback_message.object = message_html(text, "ok", "feedback-status")
        elif saved:
            text = f"Saved the {len(saved)} waiting verdicts as feedback #{saved[0].id} to #{saved[-1].id}."
            self.feedback_message.object = message_html(text, "ok", "feedback-status")
        return True

    def _start_retrying(self) -> None:
        """Retry in the background while verdicts wait; only within a served session (tests call `save_unsaved`)."""
        if self._retry_callback is None and pn.state.curdoc is not None and pn.state.curdoc.session_context:
            self._retry_callback = pn.state.add_periodic_callback(self.save_unsaved, period=FEEDBACK_RETRY_MS)

    def _stop_retrying(self) -> None:
        if self._retry_callback is not None:
            self._retry_callback.stop()
            self._retry_callback = None

    def report_unsaved_on_close(self) -> None:
        """A tab closed with verdicts still refused: the loss is logged loudly, never silent."""
        if self.unsaved:
            _log.error("a session closed with %d feedback verdicts the store refused; they are lost", len(self.unsaved))

    # ------------------------------------------------------------------------------------- batch
    def _on_file(self, event) -> None:
        self.score_button.disabled = not event.new
        self.download.disabled = True
        self.scored_csv = None
        self.pending_batch = None
        self.resume_button.visible = False

    async def _on_score_file(self, event=None) -> None:
        data, name = self.file_input.value, self.file_input.filename or "tweets.csv"
        if not data:
            return
        self.score_button.loading = True
        self.download.disabled = True
        try:
            await self._score_file(data, name)
        finally:
            self.score_button.loading = False

    async def _score_file(self, data: bytes, name: str) -> None:
        self.histogram[:] = []  # nothing from a previous file stays on screen
        self.preview.visible = False
        self.resume_button.visible = False
        try:
            frame = await asyncio.to_thread(batch.read_csv, data)
            column = batch.text_column(frame)
        except batch.BatchError as error:
            self.batch_message.param.update(object=message_html(str(error), "error", "batch-status"), visible=True)
            return
        valid = batch.valid_mask(frame[column])
        self.pending_batch = {"frame": frame, "valid": valid, "column": column, "name": name}
        self.pending_batch |= {"texts": frame.loc[valid, column].tolist(), "predictions": [], "latency_ms": 0.0}
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

        score = functools.partial(self.client.predict_in_chunks, texts, self._threshold_to_send(), None, progress, done)
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
        result = batch.join_predictions(pending["frame"], pending["valid"], pending["predictions"])
        skipped = int((~pending["valid"]).sum())
        self._show_batch(result, pending["name"], pending["column"], skipped, pending["latency_ms"])
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

    def _show_batch(self, result: pd.DataFrame, name: str, column: str, skipped: int, latency_ms: float) -> None:
        self.scored_csv = batch.to_csv_bytes(result)
        self.download.param.update(filename=f"scored_{name.rsplit('.', 1)[0]}.csv", disabled=False)
        scored = result[result["valid"] & result["label"].notna()]
        negatives = int((scored["label"] == "negative").sum())
        took = f"{latency_ms:.0f} ms" if latency_ms < 1000 else f"{latency_ms / 1000:.1f} s"
        summary = f"Scored {len(scored)} tweets from {name} in {took}: {negatives} negative"
        summary += f" ({negatives / max(len(scored), 1):.0%})"
        if skipped:
            summary += f"; {skipped} rows with an empty text were skipped (valid=False)"
        self.batch_message.param.update(object=message_html(summary + ".", "ok", "batch-status"), visible=True)
        if len(scored):
            threshold = float(scored["threshold"].iloc[0])
            plot = charts.probability_histogram(scored["proba_negative"].to_numpy(dtype=np.float64), threshold)
            self.histogram[:] = [pn.pane.Bokeh(plot)]
        self.preview.param.update(
            value=result.head(PREVIEW_ROWS),
            # Tabulator writes column titles as HTML: an uploaded file's column names are shown escaped.
            titles={name: html.escape(str(name)) for name in result.columns},
            formatters={column: {"type": "textarea"}},
            widths={column: "40%", "model_version": "18%"},
            visible=True,
        )

    def _scored_file(self) -> io.BytesIO:
        return io.BytesIO(self.scored_csv or b"")


def quiet_closed_sessions(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """A tab closed while an update was on its way to it: one log line, not a traceback.

    Tornado reports such a write as an unretrieved task exception; it is no failure of the page, and
    a log where every traceback is a real error stays worth reading. Anything else keeps asyncio's
    default handling.

    Args:
        loop: the server's event loop.
        context: asyncio's description of the unhandled exception.
    """
    if isinstance(context.get("exception"), (WebSocketClosedError, StreamClosedError)):
        _log.info("a browser session closed while an update was being sent to it")
        return
    loop.default_exception_handler(context)


def create_app() -> pn.template.BootstrapTemplate:
    """The page for one browser session."""
    asyncio.get_event_loop().set_exception_handler(quiet_closed_sessions)
    # The optional registry lookup must fail fast when a tracking server is down, not retry for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    # Wrong-prediction events go to Application Insights when its connection string is set (once per process).
    telemetry.configure_telemetry(telemetry.DASHBOARD_SERVICE)
    dashboard = Dashboard(ModelClient(), FeedbackStore())
    # Bootstrap's assets ship with Panel: the page loads nothing from the internet (Fast pulls a web font).
    template = pn.template.BootstrapTemplate(
        title="Tweet Reaction Prediction — tester dashboard",
        sidebar=dashboard.sidebar(),
        main=[dashboard.main()],
        header_background="#1565c0",
    )
    pn.state.onload(dashboard._check_server)
    pn.state.on_session_destroyed(lambda session_context: dashboard.report_unsaved_on_close())
    return template


if pn.state.served:
    create_app().servable()
