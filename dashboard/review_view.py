"""The reviewer's queue: tweets whose testers disagree, and the reviewer's decision on each.

A decision is a verdict with the reviewer's name and role: it settles the tweet, which then becomes
training data (docs/design.md, "Sign-in, roles and agreed verdicts"). A tester sees a sentence saying
the queue is a reviewer's; a tweet another reviewer decided meanwhile is named, not decided twice.
"""

from __future__ import annotations

import asyncio
import functools
import html

import panel as pn

from dashboard.feedback import LABELS, Conflict, Feedback, FeedbackNotSaved, FeedbackStore, record_feedback
from dashboard.page import message_html
from dashboard.signin import Person


def conflict_html(conflict: Conflict, index: int) -> str:
    """The tweet, its score, and each tester's verdict with what the model said at their threshold; escaped."""
    said = "".join(
        f"<li><b>{html.escape(verdict.given_by)}</b>: {html.escape(verdict.true_label)} "
        f"<small>(the model said {html.escape(verdict.predicted_label)} at threshold {verdict.threshold:.4f}; "
        f"{html.escape(verdict.created_at)})</small></li>"
        for verdict in conflict.verdicts
    )
    prediction = conflict.prediction
    return (
        f'<div id="conflict-{index}" class="conflict">'
        f'<pre style="white-space:pre-wrap;font-size:1em">{html.escape(conflict.text)}</pre>'
        f"<div>proba_negative {prediction.proba_negative:.4f} from {html.escape(prediction.model_version)}.</div>"
        f"<ul>{said}</ul></div>"
    )


class ReviewView:
    """The queue of conflicts, refreshed on opening the page, on request and after each decision."""

    def __init__(self, store: FeedbackStore, person: Person) -> None:
        self.store = store
        self.person = person
        self.message = pn.pane.HTML("")  # what the last action did
        self.waiting = pn.pane.HTML("")  # how many tweets wait
        self.queue = pn.Column()
        self.refresh_button = pn.widgets.Button(label="Refresh the queue", color="default", width=200, sizing_mode=None)
        self.refresh_button.on_click(self.refresh)

    def panel(self) -> pn.Column:
        return pn.Column(self.message, self.waiting, self.refresh_button, self.queue)

    async def refresh(self, event=None) -> None:
        """Show the conflicts waiting now; a tester is told the queue is a reviewer's."""
        if not self.person.is_reviewer:
            text = f"The review queue is for reviewers; you are signed in as {self.person.label}."
            self.message.object = message_html(text, "info", "review-status")
            self.refresh_button.visible = False
            return
        try:
            conflicts = await asyncio.to_thread(self.store.conflicts)
        except FeedbackNotSaved as error:
            self.message.object = message_html(f"The queue cannot be read: {error}.", "error", "review-status")
            return
        self.queue[:] = [self._card(conflict, index) for index, conflict in enumerate(conflicts)]
        count = f"{len(conflicts)} tweet{'s' if len(conflicts) != 1 else ''} on which testers disagree"
        self.waiting.object = f'<div id="review-count">{count} {"wait" if len(conflicts) != 1 else "waits"}.</div>'

    def _card(self, conflict: Conflict, index: int) -> pn.Column:
        buttons = []
        for label in LABELS:
            button = pn.widgets.Button(label=f"Decide: {label}", color="primary", width=200, sizing_mode=None)
            button.on_click(functools.partial(self._on_decide, conflict, label))
            buttons.append(button)
        return pn.Column(pn.pane.HTML(conflict_html(conflict, index)), pn.Row(*buttons), pn.layout.Divider())

    async def _on_decide(self, conflict: Conflict, label: str, event=None) -> None:
        await self.decide(conflict, label)

    async def decide(self, conflict: Conflict, label: str) -> bool:
        """Store the reviewer's decision unless the tweet no longer waits; say what happened in one sentence."""
        if not self.person.is_reviewer:
            self.message.object = message_html(
                f"Only a reviewer decides conflicts; you are signed in as {self.person.label}.",
                "error",
                "review-status",
            )
            return False
        try:
            waiting = {waiting.text for waiting in await asyncio.to_thread(self.store.conflicts)}
            decided = await asyncio.to_thread(self.store.decision, conflict.text)
        except FeedbackNotSaved as error:  # nothing was stored; the conflict stays in the queue
            self.message.object = message_html(f"The decision is not saved: {error}.", "error", "review-status")
            return False
        if conflict.text not in waiting:
            by = f"{decided.given_by} decided it {decided.true_label}" if decided else "it is no longer in conflict"
            self.message.object = message_html(f"This tweet no longer waits: {by}.", "info", "review-status")
            await self.refresh()
            return False
        prediction = conflict.prediction
        decision = Feedback(
            text=conflict.text,
            predicted_label=prediction.predicted_label,
            proba_negative=prediction.proba_negative,
            threshold=prediction.threshold,
            true_label=label,
            model_version=prediction.model_version,
            user_name=self.person.name,
            role=self.person.role,
        )
        try:
            stored = await asyncio.to_thread(record_feedback, self.store, decision)
        except FeedbackNotSaved as error:  # the testers' verdicts stay; the conflict stays in the queue
            self.message.object = message_html(
                f"The decision is not saved: {error}. Try again.", "error", "review-status"
            )
            return False
        text = f"Decided: {label} (feedback #{stored.id}); the tweet becomes training data."
        self.message.object = message_html(text, "ok", "review-status")
        await self.refresh()
        return True
