"""The feedback store: the agreed table, concurrent writers, durability, and the wrong-prediction event."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from datetime import datetime

import pytest

from dashboard import feedback as feedback_module
from dashboard.feedback import Feedback, FeedbackStore, record_feedback

MODEL = "baseline:0123456789abcdef0123456789abcdef"


def verdict(text: str = "lost my bag again", true_label: str = "not_negative") -> Feedback:
    return Feedback(
        text=text,
        predicted_label="negative",
        proba_negative=0.81,
        threshold=0.47,
        true_label=true_label,
        model_version=MODEL,
    )


def test_table_is_exactly_the_agreed_schema(tmp_path):
    FeedbackStore(tmp_path / "feedback.db")
    with sqlite3.connect(tmp_path / "feedback.db") as connection:
        columns = [(row[1], row[2], row[3], row[5]) for row in connection.execute("PRAGMA table_info(feedback)")]
    assert columns == [
        ("id", "INTEGER", 0, 1),
        ("created_at", "TEXT", 1, 0),
        ("text", "TEXT", 1, 0),
        ("predicted_label", "TEXT", 1, 0),
        ("proba_negative", "REAL", 1, 0),
        ("threshold", "REAL", 1, 0),
        ("true_label", "TEXT", 1, 0),
        ("is_correct", "INTEGER", 1, 0),
        ("model_version", "TEXT", 1, 0),
        ("user_name", "TEXT", 0, 0),
        ("role", "TEXT", 1, 0),
        ("verdict_id", "TEXT", 0, 0),
    ]


def test_a_stored_row_has_every_field_and_a_utc_timestamp(tmp_path):
    stored = FeedbackStore(tmp_path / "f.db").add(verdict())
    with sqlite3.connect(tmp_path / "f.db") as connection:
        row = connection.execute("SELECT * FROM feedback").fetchone()
    assert row[0] == stored.id == 1
    assert row[2:] == ("lost my bag again", "negative", 0.81, 0.47, "not_negative", 0, MODEL, None, "tester", None)
    assert datetime.fromisoformat(row[1]).utcoffset().total_seconds() == 0


def test_path_comes_from_feedback_db(monkeypatch, tmp_path):
    monkeypatch.setenv("FEEDBACK_DB", str(tmp_path / "sub" / "verdicts.db"))
    FeedbackStore().add(verdict())
    assert (tmp_path / "sub" / "verdicts.db").exists()


def test_concurrent_writes_from_many_threads_lose_nothing(tmp_path):
    path = tmp_path / "feedback.db"
    stores = [FeedbackStore(path) for _ in range(2)]  # two store objects, as two app sessions or workers
    errors: list[Exception] = []
    threads_count, per_thread = 8, 40

    def write(worker: int) -> None:
        try:
            for i in range(per_thread):
                stores[worker % 2].add(verdict(text=f"worker {worker} tweet {i}", true_label="negative"))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with sqlite3.connect(path) as connection:
        texts = {row[0] for row in connection.execute("SELECT text FROM feedback")}
        ids = [row[0] for row in connection.execute("SELECT id FROM feedback ORDER BY id")]
    expected = {f"worker {w} tweet {i}" for w in range(threads_count) for i in range(per_thread)}
    assert texts == expected
    assert ids == list(range(1, threads_count * per_thread + 1))


def test_a_new_store_on_the_same_file_keeps_what_was_stored(tmp_path):
    path = tmp_path / "feedback.db"
    first = FeedbackStore(path)
    first.add(verdict(text="first"))
    first.add(verdict(text="second", true_label="negative"))
    del first

    reopened = FeedbackStore(path)
    assert [item.text for item in reopened.recent()] == ["second", "first"]
    assert reopened.count() == 2
    assert reopened.count(wrong_only=True) == 1
    assert reopened.add(verdict(text="third")).id == 3


@pytest.mark.parametrize("field", ["predicted_label", "true_label"])
def test_unknown_labels_are_refused(tmp_path, field):
    store = FeedbackStore(tmp_path / "f.db")
    with pytest.raises(ValueError, match=field):
        store.add(Feedback(**{**verdict().__dict__, field: "angry"}))
    assert store.count() == 0


def test_wrong_prediction_is_stored_then_emitted(monkeypatch, tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    calls = []

    def emit(**kwargs):
        calls.append((kwargs, store.count()))  # the row must already be stored

    monkeypatch.setattr(feedback_module.telemetry, "emit_wrong_prediction", emit)
    stored = record_feedback(store, replace(verdict(), top_words=("lost", "bag")))

    assert not stored.is_correct
    assert calls == [
        (
            {
                "text": "lost my bag again",
                "predicted_label": "negative",
                "proba_negative": 0.81,
                "true_label": "not_negative",
                "model_version": MODEL,
                "top_words": ("lost", "bag"),  # the page's, not stored in the table
            },
            1,
        )
    ]


def test_right_prediction_is_stored_without_an_event(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(feedback_module.telemetry, "emit_wrong_prediction", lambda **kw: calls.append(kw))
    stored = record_feedback(FeedbackStore(tmp_path / "f.db"), verdict(true_label="negative"))
    assert stored.is_correct and calls == []


def test_a_telemetry_failure_never_loses_the_verdict(monkeypatch, tmp_path):
    def broken(**kwargs):
        raise ConnectionError("collector down")

    monkeypatch.setattr(feedback_module.telemetry, "emit_wrong_prediction", broken)
    store = FeedbackStore(tmp_path / "f.db")
    stored = record_feedback(store, verdict())
    assert stored.id == 1 and store.count(wrong_only=True) == 1


def test_the_branch_telemetry_function_has_the_agreed_signature():
    from pyfunc.telemetry import emit_wrong_prediction

    assert (
        emit_wrong_prediction(
            text="t", predicted_label="negative", proba_negative=0.9, true_label="not_negative", model_version=MODEL
        )
        is None
    )
    with pytest.raises(TypeError):
        emit_wrong_prediction("t", "negative", 0.9, "not_negative", MODEL)


OLD_SCHEMA = """CREATE TABLE feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, text TEXT NOT NULL,
    predicted_label TEXT NOT NULL, proba_negative REAL NOT NULL, threshold REAL NOT NULL,
    true_label TEXT NOT NULL, is_correct INTEGER NOT NULL, model_version TEXT NOT NULL)"""


def by(user: str | None, true_label: str, text: str = "lost my bag again", role: str = "tester") -> Feedback:
    return Feedback(**{**verdict(text, true_label).__dict__, "user_name": user, "role": role})


def agreed(store: FeedbackStore) -> list[tuple[str, str, str]]:
    with sqlite3.connect(store.path) as connection:
        return connection.execute("SELECT text, true_label, agreed_by FROM agreed_verdicts ORDER BY text").fetchall()


def test_a_store_from_before_sign_in_is_migrated_and_its_rows_count_as_one_unnamed_tester(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(OLD_SCHEMA)
        for true_label in ("not_negative", "negative"):  # the same old tester changed their mind
            connection.execute(
                "INSERT INTO feedback (created_at, text, predicted_label, proba_negative, threshold, true_label, "
                "is_correct, model_version) "
                "VALUES ('2026-01-01T00:00:00+00:00', 'old tweet', 'negative', 0.8, 0.5, ?, ?, 'v0')",
                (true_label, int(true_label == "negative")),
            )
    store = FeedbackStore(path)
    old = store.recent()
    assert [(v.text, v.true_label, v.user_name, v.role) for v in old] == [
        ("old tweet", "negative", None, "tester"),
        ("old tweet", "not_negative", None, "tester"),
    ]
    assert agreed(store) == []  # one unnamed tester: not agreed until confirmed
    store.add(by("alice", "negative", text="old tweet"))
    assert agreed(store) == [("old tweet", "negative", "testers")]
    assert store.count() == 3  # nothing of the old store was lost


def test_two_testers_who_agree_make_training_data_and_one_alone_does_not(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    store.add(by("alice", "not_negative"))
    assert agreed(store) == [] and store.conflicts() == []
    store.add(by("alice", "not_negative"))  # the same tester twice is still one tester
    assert agreed(store) == []
    store.add(by("bob", "not_negative"))
    assert agreed(store) == [("lost my bag again", "not_negative", "testers")]


def test_testers_who_disagree_wait_in_the_reviewers_queue_until_a_reviewer_decides(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    store.add(by("alice", "not_negative"))
    store.add(by("bob", "negative"))
    store.add(by("alice", "negative", text="another tweet"))
    [conflict] = store.conflicts()
    assert conflict.text == "lost my bag again"
    assert [(v.user_name, v.true_label) for v in conflict.verdicts] == [("alice", "not_negative"), ("bob", "negative")]
    assert conflict.prediction.proba_negative == 0.81 and conflict.prediction.threshold == 0.47
    assert agreed(store) == [] and store.decision("lost my bag again") is None

    store.add(by("rita", "negative", role="reviewer"))
    assert store.conflicts() == []
    assert agreed(store) == [("lost my bag again", "negative", "reviewer")]
    assert store.decision("lost my bag again").user_name == "rita"


def test_a_verdict_with_an_unknown_role_is_refused(tmp_path):
    with pytest.raises(ValueError, match="role must be one of"):
        FeedbackStore(tmp_path / "f.db").add(by("mallory", "negative", role="admin"))


def test_a_verdict_stored_twice_by_its_id_is_one_row_and_one_wrong_prediction_event(tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(feedback_module.telemetry, "emit_wrong_prediction", lambda **event: events.append(event))
    store = FeedbackStore(tmp_path / "f.db")
    given = Feedback(**{**verdict().__dict__, "verdict_id": "v-1"})  # a wrong prediction
    first = record_feedback(store, given)
    again = record_feedback(store, given)  # a spooled verdict retried after it was stored
    assert (again.id, again.created_at) == (first.id, first.created_at)
    assert store.count() == 1 and len(events) == 1
    record_feedback(store, verdict())  # verdicts without an id are never merged
    record_feedback(store, verdict())
    assert store.count() == 3 and len(events) == 3


def test_a_store_from_before_verdict_ids_gets_the_column_and_its_unique_index(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(OLD_SCHEMA)
        connection.execute(
            "INSERT INTO feedback (created_at, text, predicted_label, proba_negative, threshold, true_label, "
            "is_correct, model_version) VALUES ('2026-01-01T00:00:00+00:00', 'old tweet', 'negative', 0.8, 0.5, "
            "'negative', 1, 'v0')"
        )
    store = FeedbackStore(path)
    given = Feedback(**{**verdict().__dict__, "verdict_id": "v-2"})
    assert store.add(given).id == store.add(given).id == 2
    assert store.count() == 2  # the old row kept, the new verdict once
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT verdict_id FROM feedback ORDER BY id").fetchall() == [(None,), ("v-2",)]
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(
                "INSERT INTO feedback SELECT NULL, created_at, text, predicted_label, proba_negative, "
                "threshold, true_label, is_correct, model_version, user_name, role, verdict_id "
                "FROM feedback WHERE id = 2"
            )
