"""Saving a tester's verdicts: in order, and kept in the page while the feedback store refuses them.

A refused write (locked, read-only, a full disk) is said in one sentence, the verdict stays in the
page and is retried every few seconds; nothing is dropped (docs/design.md, "Dashboard input and output").
"""

from __future__ import annotations

import asyncio
import logging

import panel as pn

from dashboard.feedback import Feedback, FeedbackNotSaved, FeedbackStore, record_feedback
from dashboard.history_view import HistoryView
from dashboard.page import message_html

# How often verdicts the feedback store refused are tried again.
FEEDBACK_RETRY_MS = 5_000
_log = logging.getLogger(__name__)


def verdict_label(verdict: Feedback) -> str:
    """The history table's `feedback` cell for a verdict."""
    return "right" if verdict.is_correct else f"wrong (true: {verdict.true_label})"


class VerdictSaver:
    """The verdicts waiting for the store, each with its history row, and the notice that says where they are."""

    def __init__(self, store: FeedbackStore, history: HistoryView) -> None:
        self.store = store
        self.history = history
        # Verdicts the store refused, oldest first, each with its history row: kept and retried, never dropped.
        self.unsaved: list[tuple[Feedback, dict]] = []
        self.message = pn.pane.HTML("")
        self._retry_callback = None

    async def submit(self, verdict: Feedback, row: dict) -> bool:
        """Queue a verdict behind any still waiting and try to store them all."""
        row["feedback"] = f"{verdict_label(verdict)}, not saved yet"
        self.unsaved.append((verdict, row))
        return await self.save_unsaved()

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
                self.history.refresh()
                waiting = len(self.unsaved)
                text = (
                    f"The feedback is not saved yet: {error}. {waiting} verdict{'s' if waiting > 1 else ''} "
                    "kept in this page and retried every few seconds; keep the page open until it says saved."
                )
                self.message.object = message_html(text, "error", "feedback-status")
                self._start_retrying()
                return False
            self.unsaved.pop(0)
            row["feedback"] = verdict_label(stored)
            saved.append(stored)
        self._stop_retrying()
        self.history.refresh()
        if len(saved) == 1:
            stored = saved[0]
            text = f"Saved as feedback #{stored.id}: prediction marked {'right' if stored.is_correct else 'wrong'}."
            self.message.object = message_html(text, "ok", "feedback-status")
        elif saved:
            text = f"Saved the {len(saved)} waiting verdicts as feedback #{saved[0].id} to #{saved[-1].id}."
            self.message.object = message_html(text, "ok", "feedback-status")
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
