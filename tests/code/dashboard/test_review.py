"""Sign-in names, roles and the reviewer's queue, without a browser."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from dashboard.client import ModelClient
from dashboard.feedback import FeedbackStore
from dashboard.review_view import ReviewView
from dashboard.session import Dashboard
from dashboard.signin import Person, RolesError, load_roles, person_for

TWEET = "x" * 60  # the scripted server answers proba 0.6: negative at the model's 0.42


def give_verdict(store: FeedbackStore, fake_server, person: Person, correct: bool) -> None:
    session = Dashboard(ModelClient(fake_server.url, timeout=2), store, person)
    session.tweet_view.tweet.value = TWEET
    asyncio.run(session.tweet_view._on_predict())
    asyncio.run(session.tweet_view._on_right() if correct else session.tweet_view._on_wrong())


def test_a_verdict_is_stored_with_who_when_the_model_the_score_and_the_threshold(tmp_path, fake_server):
    store = FeedbackStore(tmp_path / "f.db")
    give_verdict(store, fake_server, Person("alice", "tester"), correct=False)
    with sqlite3.connect(store.path) as connection:
        row = connection.execute(
            "SELECT user_name, role, created_at, model_version, proba_negative, threshold, true_label FROM feedback"
        ).fetchone()
    assert row[:2] == ("alice", "tester") and row[2].endswith("+00:00")
    assert row[3:] == ("baseline:0123456789abcdef0123456789abcdef", 0.6, 0.42, "not_negative")


def test_conflicting_testers_reach_the_reviewer_who_decides(tmp_path, fake_server):
    store = FeedbackStore(tmp_path / "f.db")
    give_verdict(store, fake_server, Person("alice", "tester"), correct=False)
    give_verdict(store, fake_server, Person("bob", "tester"), correct=True)
    review = ReviewView(store, Person("rita", "reviewer"))
    asyncio.run(review.refresh())
    [card] = review.queue
    assert "1 tweet on which testers disagree waits." in review.waiting.object
    shown = card[0].object
    assert "<b>alice</b>: not_negative <small>(the model said negative at threshold 0.4200;" in shown
    assert "<b>bob</b>: negative" in shown and "proba_negative 0.6000 from baseline:" in shown

    [conflict] = store.conflicts()
    assert asyncio.run(review.decide(conflict, "negative")) is True
    assert "Decided: negative" in review.message.object and len(review.queue) == 0
    assert "0 tweets on which testers disagree wait." in review.waiting.object
    assert store.decision(TWEET).user_name == "rita"

    other_reviewer = ReviewView(store, Person("rudi", "reviewer"))  # decided meanwhile: named, not decided twice
    assert asyncio.run(other_reviewer.decide(conflict, "not_negative")) is False
    assert "This tweet no longer waits: rita decided it negative." in other_reviewer.message.object
    assert store.count() == 3


def test_a_tester_opening_the_queue_reads_a_sentence_and_cannot_decide(tmp_path, fake_server):
    store = FeedbackStore(tmp_path / "f.db")
    give_verdict(store, fake_server, Person("alice", "tester"), correct=False)
    give_verdict(store, fake_server, Person("bob", "tester"), correct=True)
    review = ReviewView(store, Person("alice", "tester"))
    asyncio.run(review.refresh())
    assert "The review queue is for reviewers; you are signed in as alice (tester)." in review.message.object
    assert len(review.queue) == 0
    assert asyncio.run(review.decide(store.conflicts()[0], "negative")) is False
    assert store.decision(TWEET) is None and store.count() == 2


def test_roles_come_from_the_roles_file_and_an_unlisted_name_is_a_tester(tmp_path):
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps({"rita": "reviewer", "alice": "tester"}))
    assert person_for("rita", str(roles)) == (Person("rita", "reviewer"), None)
    assert person_for("zoe", str(roles)) == (Person("zoe", "tester"), None)
    assert person_for(None, str(roles)) == (Person(None, "tester"), None)


@pytest.mark.parametrize(
    ("content", "says"),
    [("{not json", "cannot be read"), ("[]", "must be a JSON object"), ('{"rita": "admin"}', "the role 'admin'")],
)
def test_an_unusable_roles_file_is_one_sentence_and_everyone_is_a_tester(tmp_path, content, says):
    roles = tmp_path / "roles.json"
    roles.write_text(content)
    with pytest.raises(RolesError, match=says):
        load_roles(roles)
    person, problem = person_for("rita", str(roles))
    assert person == Person("rita", "tester") and says in problem and "everyone is a tester" in problem


def test_a_queue_the_store_cannot_give_is_one_sentence(tmp_path):
    folder = tmp_path / "not-a-file.db"
    folder.mkdir()  # SQLite cannot open a folder
    review = ReviewView(FeedbackStore(folder), Person("rita", "reviewer"))
    asyncio.run(review.refresh())
    assert "The queue cannot be read: the feedback store" in review.message.object
