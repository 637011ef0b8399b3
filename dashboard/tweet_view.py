"""The Predict tab and the sidebar's threshold: one typed tweet, its score, and the tester's verdict.

Only the newest request's answer is shown; after an error the stale result is hidden, the typed text
stays, and a verdict only ever refers to the prediction on screen. The typed tweet is always scored with
its explanation and shown with its words shaded (docs/design.md, "Why flagged, on the page").
"""

from __future__ import annotations

import asyncio
import html
from datetime import datetime

import panel as pn

from dashboard import charts, highlight, registry
from dashboard.client import ModelClient, ModelServerError, Prediction, Scored
from dashboard.feedback import Feedback
from dashboard.history_view import HistoryView
from dashboard.page import field_html, message_html
from dashboard.server_status import ServerStatus
from dashboard.signin import Person
from dashboard.verdict_saver import VerdictSaver

OTHER_LABEL = {"negative": "not_negative", "not_negative": "negative"}


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


def no_explanation_sentence(error: ModelServerError) -> str:
    """Why the page shows a score without highlights, in a tester's words."""
    if error.kind == "bad_response":
        reason = "the served model answered without an explanation; it may predate explanations"
    else:
        reason = error.message
    return f"No word highlights for this tweet, only its score: {reason}"


def score_explained(client: ModelClient, text: str, threshold: float | None) -> tuple[Scored, str | None]:
    """Score the typed tweet with its explanation in one request; a server that will not explain still scores it.

    One tweet of n words costs n more scored tweets, a single small batch: cheap enough to explain every
    typed tweet rather than make the tester ask. A server that ignores or refuses `params.explain` (a
    model logged before explanations) is asked again plainly, so the score is never lost to it.

    Returns:
        The scored tweet, and None or the sentence that says why it carries no explanation.

    Raises:
        ModelServerError: the plain request failed too (or the server is down or slow): the page says why.
    """
    try:
        return client.predict([text], threshold, explain=True), None
    except ModelServerError as error:
        if error.kind not in ("rejected", "bad_response"):
            raise
        why = no_explanation_sentence(error)
    return client.predict([text], threshold), why


def result_html(
    text: str, prediction: Prediction, latency_ms: float, threshold_source: str, registry_line: str | None
) -> str:
    """The scored tweet's label, probability, threshold, model, latency and text, all escaped."""
    color = charts.NEGATIVE_COLOR if prediction.label == "negative" else charts.NOT_NEGATIVE_COLOR
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
    return "".join(lines)


def explanation_block_html(text: str, prediction: Prediction, no_explanation: str | None) -> str:
    """The typed tweet's shaded words, the top words and the legend; or the sentence why there are none."""
    if prediction.explanation is None:
        return message_html(no_explanation or "No word highlights for this tweet.", "info", "explain-status")
    return (
        "<div><b>Why:</b></div>"
        + highlight.explanation_html(text, prediction, "explained-tweet")
        + highlight.legend_html()
    )


class TweetView:
    """The threshold controls, the tweet box, the result with its gauge, and the Right/Wrong buttons."""

    def __init__(
        self, client: ModelClient, status: ServerStatus, history: HistoryView, verdicts: VerdictSaver, person: Person
    ) -> None:
        self.client = client
        self.person = person  # who every verdict from this view is stored under
        self.server_status = status
        self.history = history
        self.verdicts = verdicts
        self.last: dict | None = None  # the prediction feedback refers to (text, Prediction, history row)
        self._generation = 0  # only the newest request's answer is shown
        self._model_threshold: float | None = None
        self._syncing_threshold = False
        self._build_widgets()
        self._wire()

    def _build_widgets(self) -> None:
        self.threshold = pn.widgets.EditableFloatSlider(
            label="Decision threshold", start=0.0, end=1.0, fixed_start=0.0, fixed_end=1.0, step=0.01, value=0.5
        )
        self.use_model_threshold = pn.widgets.Checkbox(
            label="Use the model's own threshold",
            value=True,
            css_classes=["model-threshold"],  # the tests find it
        )
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
        self.explanation = pn.pane.HTML("")  # the tweet's words shaded, or why there are none
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
        # Shown only for a current answer: after an error the stale result is hidden (history keeps it).
        self.result_area = pn.Row(
            self.gauge,
            pn.Column(
                self.result,
                self.explanation,
                pn.pane.HTML("<b>Was this prediction right?</b>"),
                pn.Row(self.right_button, self.wrong_button),
                self.verdicts.message,
            ),
            visible=False,
        )

    def _wire(self) -> None:
        self.predict_button.on_click(self._on_predict)
        self.threshold.param.watch(self._on_threshold_moved, "value_throttled")
        self.use_model_threshold.param.watch(self._on_use_model_threshold, "value")
        self.right_button.on_click(self._on_right)
        self.wrong_button.on_click(self._on_wrong)

    def threshold_widgets(self) -> list:
        return [self.threshold, self.use_model_threshold, self.threshold_meaning, self.threshold_note]

    def panel(self) -> pn.Column:
        return pn.Column(self.tweet, self.predict_button, self.predict_message, self.result_area)

    def threshold_to_send(self) -> float | None:
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
            scored, no_explanation = await asyncio.to_thread(
                score_explained, self.client, text, self.threshold_to_send()
            )
        except ModelServerError as error:
            if generation == self._generation:
                self.predict_message.param.update(object=message_html(error.message), visible=True)
                self.result_area.visible = False
                self.last = None  # feedback only ever refers to a prediction on screen
                if error.kind in ("unreachable", "timeout"):
                    await self.server_status.check()
            return
        finally:
            if generation == self._generation:
                self.predict_button.loading = False
        if generation == self._generation:
            self.predict_message.visible = False
            await self._show_prediction(text, scored, no_explanation)

    async def _show_prediction(self, text: str, scored: Scored, no_explanation: str | None = None) -> None:
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
        self.last = {"text": text, "prediction": prediction, "row": row}
        if self.use_model_threshold.value:
            self._model_threshold = prediction.threshold
            self._show_threshold(prediction.threshold)
        self._render_result(text, prediction, scored.latency_ms, registry_line=None)
        self.explanation.object = explanation_block_html(text, prediction, no_explanation)
        self.threshold_meaning.object = threshold_meaning_html(prediction)
        self.history.add(row)
        self.right_button.param.update(label=f"Right: it is {prediction.label}", disabled=False)
        other = OTHER_LABEL[prediction.label]
        self.wrong_button.param.update(label=f"Wrong: it is {other}", disabled=False)
        self.verdicts.message.object = ""
        # Optional and possibly slow (first call imports mlflow): the result is already on the page.
        label = await asyncio.to_thread(registry.registry_label, prediction.model_version)
        if label and self.last and self.last["prediction"] is prediction:
            self._render_result(text, prediction, scored.latency_ms, registry_line=label)

    def _render_result(self, text: str, prediction: Prediction, latency_ms: float, registry_line: str | None) -> None:
        threshold_source = "model's own" if self.use_model_threshold.value else "from the slider"
        self.result.object = result_html(text, prediction, latency_ms, threshold_source, registry_line)
        self.gauge.param.update(
            value=round(prediction.proba_negative, 3),
            colors=[(prediction.threshold, charts.NOT_NEGATIVE_COLOR), (1, charts.NEGATIVE_COLOR)],
        )
        self.result_area.visible = True

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
            user_name=self.person.name,
            role=self.person.role,
            top_words=tuple(prediction.top_words()),  # the words the page showed as the reason
        )
        self.right_button.disabled = self.wrong_button.disabled = True  # one verdict per prediction
        await self.verdicts.submit(verdict, self.last["row"])
