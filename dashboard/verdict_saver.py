"""Saving a tester's verdicts: in order, spooled to disk first, and kept while the feedback store refuses them.

Each verdict gets a unique id and is written to the spool (dashboard/verdict_spool.py) before the store is
tried, and leaves the spool once stored: a dashboard killed with verdicts waiting stores them when it next
opens a page. A refused write (locked, read-only, a full disk) is said in one sentence, the verdict stays
in the page too and is retried every few seconds; nothing is dropped, and the store keeps each verdict id
once, so a verdict stored but not yet removed from the spool is never stored twice (docs/design.md,
"Dashboard input and output").
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import panel as pn

from dashboard.feedback import Feedback, FeedbackNotSaved, FeedbackStore, record_feedback, utc_now
from dashboard.history_view import HistoryView
from dashboard.page import message_html
from dashboard.verdict_spool import SpoolNotWritten, VerdictSpool, spool_directory

# How often verdicts the feedback store refused are tried again.
FEEDBACK_RETRY_MS = 5_000
_log = logging.getLogger(__name__)


def prediction_marked(verdict: Feedback) -> str:
    """What a stored Predict-tab verdict said, for the saved notice: the tester judged the prediction."""
    return f"prediction marked {'right' if verdict.is_correct else 'wrong'}"


def verdict_label(verdict: Feedback) -> str:
    """The history table's `feedback` cell for a verdict."""
    return "right" if verdict.is_correct else f"wrong (true: {verdict.true_label})"


def identified(verdict: Feedback) -> Feedback:
    """The verdict with its unique id and the time it was given: a retry hours later keeps both."""
    return dataclasses.replace(
        verdict, verdict_id=verdict.verdict_id or uuid.uuid4().hex, created_at=verdict.created_at or utc_now()
    )


def store_spooled(spool: VerdictSpool, store: FeedbackStore) -> int:
    """Store the spooled verdicts oldest first, removing each once stored; stop at the first refusal.

    Stopping keeps the order: a later verdict never overtakes one the store refused. A file the store
    rejects as no valid verdict (a label outside the known ones) is moved aside like an unreadable one.

    Returns:
        How many were stored.
    """
    stored = 0
    for path, verdict in spool.waiting():
        try:
            record_feedback(store, verdict)
        except FeedbackNotSaved:
            break
        except ValueError as error:
            spool.move_aside(path, error)
            continue
        spool.remove(path)
        stored += 1
    return stored


@dataclasses.dataclass
class WaitingVerdict:
    """A verdict not yet stored, its history row, and its spool file (None: the spool refused it too)."""

    verdict: Feedback
    row: dict
    spooled: Path | None = None


class VerdictSaver:
    """The verdicts waiting for the store, each with its history row, and the notice that says where they are."""

    def __init__(
        self,
        store: FeedbackStore,
        history: HistoryView,
        spool: VerdictSpool | None = None,
        saved_words: Callable[[Feedback], str] = prediction_marked,
    ) -> None:
        self.store = store
        self.saved_words = saved_words  # what the saved notice says the verdict was, in its tab's words
        self.history = history
        self.spool = spool or VerdictSpool(spool_directory(store.path))
        # Verdicts the store refused, oldest first, each with its history row: kept and retried, never dropped.
        self.unsaved: list[WaitingVerdict] = []
        self.spool_problem = ""  # why the spool refused the last verdict it was given, if it did
        self.message = pn.pane.HTML("")
        self._retry_callback = None
        self._restoring: asyncio.Task | None = None
        # One save at a time: the periodic retry and a new click's save run as separate tasks, and two saves
        # of the same oldest verdict would each remove one, dropping a verdict neither stored.
        self._saving = asyncio.Lock()

    async def submit(self, verdict: Feedback, row: dict) -> bool:
        """Spool the verdict, queue it behind any still waiting and try to store them all."""
        waiting = WaitingVerdict(identified(verdict), row)
        row["feedback"] = f"{verdict_label(waiting.verdict)}, not saved yet"
        self.unsaved.append(waiting)
        await self._spool(waiting)
        return await self.save_unsaved()

    async def _spool(self, waiting: WaitingVerdict) -> None:
        """Write the verdict to the spool; a spool that refuses is remembered for the page's notice."""
        try:
            waiting.spooled = await asyncio.to_thread(self.spool.put, waiting.verdict)
        except SpoolNotWritten as error:
            self.spool_problem = str(error)
            _log.error("feedback verdict kept in memory only: %s", error)

    async def save_unsaved(self) -> bool:
        """Store the waiting verdicts in order; on a refusal keep them all, say why, and retry every few seconds.

        Returns:
            Whether nothing is left waiting.
        """
        async with self._saving:
            return await self._save_in_order()

    async def _save_in_order(self) -> bool:
        """`save_unsaved`'s work, run by one task at a time (the caller holds `_saving`)."""
        saved: list[Feedback] = []
        while self.unsaved:
            waiting = self.unsaved[0]
            try:
                stored = await asyncio.to_thread(record_feedback, self.store, waiting.verdict)
            except FeedbackNotSaved as error:
                await self._refused(error)
                return False
            if waiting.spooled is not None:
                await asyncio.to_thread(self.spool.remove, waiting.spooled)
            self.unsaved.pop(0)
            waiting.row["feedback"] = verdict_label(stored)
            saved.append(stored)
        self._stop_retrying()
        self.history.refresh()
        if len(saved) == 1:
            stored = saved[0]
            text = f"Saved as feedback #{stored.id}: {self.saved_words(stored)}."
            self.message.object = message_html(text, "ok", "feedback-status")
        elif saved:
            text = f"Saved the {len(saved)} waiting verdicts as feedback #{saved[0].id} to #{saved[-1].id}."
            self.message.object = message_html(text, "ok", "feedback-status")
        return True

    async def _refused(self, error: FeedbackNotSaved) -> None:
        """Say why the verdicts wait and where they are kept; spool again any the spool refused before."""
        for waiting in self.unsaved:
            if waiting.spooled is None:
                await self._spool(waiting)
        self.history.refresh()
        count = len(self.unsaved)
        text = f"The feedback is not saved yet: {error}. {count} verdict{'s' if count > 1 else ''} kept in this page"
        if all(waiting.spooled is not None for waiting in self.unsaved):
            text += f" and in the spool {self.spool.directory}, retried every few seconds; a restart loses none."
        else:  # the one sentence the spool's refusal gets
            text += (
                " and retried every few seconds; keep the page open until it says saved."
                f" {self.spool_problem[0].upper()}{self.spool_problem[1:]}, so a restart of the dashboard loses them."
            )
        self.message.object = message_html(text, "error", "feedback-status")
        self._start_retrying()

    async def retry(self) -> None:
        """The periodic retry: this page's verdicts first, then any a killed dashboard left in the spool."""
        if await self.save_unsaved():
            await self.restore_spooled()

    async def restore_spooled(self) -> int:
        """Store what the spool holds (a killed or closed dashboard's verdicts), off the event loop."""
        stored = await asyncio.to_thread(store_spooled, self.spool, self.store)
        if stored:
            _log.info("stored %d feedback verdicts from the spool %s", stored, self.spool.directory)
        return stored

    def start_restoring(self) -> None:
        """As a page opens, store in the background what a killed dashboard left in the spool (the page never waits)."""
        self._restoring = asyncio.get_event_loop().create_task(self.restore_spooled())

    def _start_retrying(self) -> None:
        """Retry in the background while verdicts wait; only within a served session (tests call `save_unsaved`)."""
        if self._retry_callback is None and pn.state.curdoc is not None and pn.state.curdoc.session_context:
            self._retry_callback = pn.state.add_periodic_callback(self.retry, period=FEEDBACK_RETRY_MS)

    def _stop_retrying(self) -> None:
        if self._retry_callback is not None:
            self._retry_callback.stop()
            self._retry_callback = None

    def report_unsaved_on_close(self) -> None:
        """A tab closed with verdicts still refused: where they wait is logged, and a loss loudly, never silent."""
        lost = sum(waiting.spooled is None for waiting in self.unsaved)
        if len(self.unsaved) > lost:
            _log.warning(
                "a session closed with %d feedback verdicts the store refused; they wait in the spool %s and are "
                "stored by the next page opened once the store takes writes",
                len(self.unsaved) - lost,
                self.spool.directory,
            )
        if lost:
            _log.error("a session closed with %d feedback verdicts the store and spool refused; they are lost", lost)
