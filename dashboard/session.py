"""One browser session of the dashboard: its views, wired to one model client and the feedback store.

Each session talks HTTP to the model server only through `ModelClient`; blocking calls run in worker
threads from async callbacks, so a slow or dead server never freezes the page, and nothing the tester
typed is ever cleared (docs/design.md, "Dashboard input and output").
"""

from __future__ import annotations

from dashboard.client import ModelClient
from dashboard.feedback import FeedbackStore
from dashboard.file_view import FileView
from dashboard.health_view import HealthView
from dashboard.history_view import HistoryView
from dashboard.queue_view import QueueView, labelled_as
from dashboard.review_view import ReviewView
from dashboard.server_status import ServerStatus
from dashboard.signin import Person
from dashboard.tweet_view import TweetView
from dashboard.verdict_saver import VerdictSaver


class Dashboard:
    """One person's session: the server status, the single-tweet view, the file view, the history, the
    reviewer's queue, the label queue and the model's health; every verdict carries the signed-in person
    (one unnamed tester without sign-in)."""

    def __init__(self, client: ModelClient, store: FeedbackStore, person: Person | None = None) -> None:
        self.client = client
        self.store = store
        self.person = person or Person(None)
        self.status = ServerStatus(client)
        self.history = HistoryView()
        self.verdicts = VerdictSaver(store, self.history)
        self.tweet_view = TweetView(client, self.status, self.history, self.verdicts, self.person)
        self.file_view = FileView(client, self.tweet_view.threshold_to_send)
        self.review_view = ReviewView(store, self.person)
        # The queue's verdicts have a saver (and notice) of their own: each tab says where its verdicts are.
        self.queue_verdicts = VerdictSaver(store, self.history, saved_words=labelled_as)
        self.queue_view = QueueView(store, self.queue_verdicts, self.person)
        self.health_view = HealthView(store)
