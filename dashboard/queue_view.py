"""The "Label next" tab: the queue `label_queue` ranked, one tweet at a time, one click a verdict.

Each click is a verdict like the Predict tab's (the same `Feedback`, with who gave it and in which
role, the champion's score, threshold and version from the queue), saved through a `VerdictSaver`, so
a write the store refuses is kept in the page and retried. It becomes training data once agreed (two
testers, or a reviewer), and `adapt` reads it from the store (docs/design.md, "Labelling the queue in
the dashboard"). Every problem is one sentence on the page; nothing clicked is lost.
"""

from __future__ import annotations

import asyncio
import html
from datetime import datetime

import panel as pn

from dashboard.feedback import Feedback, FeedbackNotSaved, FeedbackStore
from dashboard.page import field_html, message_html
from dashboard.queue_progress import QueueProgress
from dashboard.queue_source import (
    QUEUE_ARTIFACT,
    RUN_IT_FIRST,
    Queue,
    QueuedTweet,
    QueueError,
    load_latest_queue,
    parse_queue,
    tracking_uri,
)
from dashboard.signin import Person
from dashboard.verdict_saver import VerdictSaver

COMPLAINT, NOT_COMPLAINT = "negative", "not_negative"  # the contract's labels: a complaint must be answered


def labelled_as(verdict: Feedback) -> str:
    """What a stored queue verdict said, for the saved notice: the tester labelled a tweet, not a prediction."""
    return "labelled a complaint" if verdict.true_label == COMPLAINT else "labelled not a complaint"


def tweet_html(text: str) -> str:
    """The queued tweet, escaped: a tweet's markup shows literally."""
    return f'<pre id="queue-tweet" style="white-space:pre-wrap;font-size:1.2em">{html.escape(text)}</pre>'


class QueueView:
    """One person's pass through the queue: where it came from, the progress, the tweet and its buttons."""

    def __init__(self, store: FeedbackStore, verdicts: VerdictSaver, person: Person) -> None:
        self.store = store
        self.verdicts = verdicts
        self.person = person  # who every verdict from this tab is stored under
        self.progress: QueueProgress | None = None
        # The tweet on screen, taken by the first click on it: a second click before the buttons are disabled
        # in the browser must not judge the next tweet, which the tester never saw.
        self._shown: QueuedTweet | None = None
        self._build_widgets()
        self.complaint_button.on_click(self._on_complaint)
        self.not_complaint_button.on_click(self._on_not_complaint)
        self.skip_button.on_click(self._on_skip)
        self.reload_button.on_click(self.load)
        self.file_input.param.watch(self._on_file, "value")

    def _build_widgets(self) -> None:
        self.message = pn.pane.HTML("")
        self.source = pn.pane.HTML("")
        self.progress_line = pn.pane.HTML("")
        self.tweet = pn.pane.HTML("")
        self.complaint_button = pn.widgets.Button(label="Complaint", color="danger", width=180, sizing_mode=None)
        self.not_complaint_button = pn.widgets.Button(
            label="Not a complaint", color="success", width=180, sizing_mode=None
        )
        self.skip_button = pn.widgets.Button(label="Skip", color="light", width=120, sizing_mode=None)
        self.buttons = pn.Row(self.complaint_button, self.not_complaint_button, self.skip_button, visible=False)
        self.reload_button = pn.widgets.Button(label="Reload the queue", width=200, sizing_mode=None)
        # Named apart from the Batch tab's file input: a browser test or a capture picks this one by class.
        self.file_input = pn.widgets.FileInput(accept=".csv,text/csv", multiple=False, css_classes=["queue-file"])

    def panel(self) -> pn.Column:
        return pn.Column(
            self.message,
            self.source,
            self.progress_line,
            self.tweet,
            self.buttons,
            self.verdicts.message,
            pn.layout.Divider(),
            pn.pane.HTML(f"<small>Or upload a queue file (<code>{QUEUE_ARTIFACT}</code>):</small>"),
            self.file_input,
            self.reload_button,
        )

    # ------------------------------------------------------------------------------------- loading
    async def load(self, event=None) -> None:
        """The newest finished `label_queue` run's queue when a tracking store is set, else ask for a file
        (or show the uploaded queue again, its skipped tweets back, when there is one)."""
        uri = tracking_uri()
        if uri is None and self.progress is not None:
            await self.show(self.progress.queue)
            return
        if uri is None:
            self.say(
                f"No tracking store is set (MLFLOW_TRACKING_URI) and no queue file is uploaded: upload the "
                f"{QUEUE_ARTIFACT} that `mlflow run . -e label_queue` logs.",
                "info",
            )
            return
        try:
            queue = await asyncio.to_thread(load_latest_queue, uri)
        except QueueError as error:
            self.say(str(error), "error")
            return
        await self.show(queue)

    async def _on_file(self, event) -> None:
        if not event.new:
            return
        name = self.file_input.filename or QUEUE_ARTIFACT
        try:
            queue = await asyncio.to_thread(parse_queue, event.new, f"the uploaded file {name}")
        except QueueError as error:
            self.say(str(error), "error")  # the queue on screen, if any, stays
            return
        await self.show(queue)

    async def show(self, queue: Queue) -> None:
        """Start (or resume) this person's pass through `queue`: the tweets they judged before are counted."""
        if not queue.tweets:
            self.say(f"The queue from {queue.source} is empty: {RUN_IT_FIRST} on recent traffic.", "info")
            return
        unsaved = [waiting.verdict.text for waiting in self.verdicts.unsaved]  # read on the loop, which changes it
        self.progress, problem = await asyncio.to_thread(self._resumed, queue, unsaved)
        self.message.object = message_html(problem, "error", "queue-status") if problem else ""
        self.source.object = field_html("Queue", queue.source, "queue-source")
        self.render()

    def _resumed(self, queue: Queue, unsaved: list[str]) -> tuple[QueueProgress, str]:
        """This person's progress through `queue`, and why it may miss earlier verdicts ("" when it does not).

        Run in a worker thread: the store read and normalising every judged text take a second on a large
        store (without sign-in, the whole store). Verdicts not stored yet (`unsaved`, kept by this page's saver,
        and those in the spool) count as judged too, or a reload would ask them again; a store that cannot be
        read leaves those counted and is said in one sentence rather than failing the tab.
        """
        judged = unsaved + self.verdicts.spool.texts_waiting_by(self.person.name)
        problem = ""
        try:
            judged += self.store.texts_judged_by(self.person.name)
        except FeedbackNotSaved as error:
            problem = (
                f"Your verdicts from earlier sessions cannot be read ({error}), so only those still waiting to "
                "be saved count as labelled."
            )
        return QueueProgress.resumed(queue, judged), problem

    def say(self, text: str, kind: str) -> None:
        """One sentence above the queue; without a queue, nothing else is shown."""
        self.message.object = message_html(text, kind, "queue-status")
        if self.progress is None:
            self.buttons.visible = False

    # ------------------------------------------------------------------------------------ the queue
    def render(self) -> None:
        """The progress line and the next tweet, or why there is none."""
        progress = self.progress
        if progress is None:
            return
        self.progress_line.object = f'<div><b>Labelled:</b> <span id="queue-progress">{progress.text()}</span></div>'
        tweet = self._shown = progress.current_tweet
        self.buttons.visible = tweet is not None
        self.complaint_button.disabled = self.not_complaint_button.disabled = self.skip_button.disabled = False
        self.tweet.object = tweet_html(tweet.text) if tweet else ""
        if tweet is None and not progress.done:
            left = progress.size - progress.labelled
            self.say(f"You skipped the {left} tweets left; reload the queue to see them again.", "info")

    async def _on_complaint(self, event=None) -> None:
        await self.judge(COMPLAINT)

    async def _on_not_complaint(self, event=None) -> None:
        await self.judge(NOT_COMPLAINT)

    def _on_skip(self, event=None) -> None:
        if self.progress is not None:
            self.progress.skip()
            self.render()

    async def judge(self, true_label: str) -> bool:
        """Store this person's verdict on the tweet on screen and show the next one.

        The tweet is the one `render` showed, taken once: a double click judges it once, never the next one.

        Returns:
            Whether the verdict is saved (False: refused and kept in the page, retried every few seconds; or no
            tweet on screen, or it was judged by an earlier click).
        """
        tweet, self._shown = self._shown, None
        if tweet is None or self.progress is None:
            return False
        self.complaint_button.disabled = self.not_complaint_button.disabled = self.skip_button.disabled = True
        verdict = Feedback(
            text=tweet.text,
            predicted_label=tweet.predicted_label,
            proba_negative=tweet.proba_negative,
            threshold=tweet.threshold,
            true_label=true_label,
            model_version=tweet.model_version,
            user_name=self.person.name,
            role=self.person.role,
        )
        self.progress.mark_judged(tweet.text)  # kept by the saver even if refused: it is not asked again
        row = {"time": datetime.now().strftime("%H:%M:%S"), "text": tweet.text, "feedback": ""}
        saved = await self.verdicts.submit(verdict, row)
        self.render()
        return saved
