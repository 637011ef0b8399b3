"""The verdict spool: verdicts on disk in order, stored once each, and a corrupt file never blocks the rest."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading

import pytest

from dashboard.feedback import Feedback, FeedbackNotSaved, FeedbackStore
from dashboard.history_view import HistoryView
from dashboard.verdict_saver import VerdictSaver, identified, store_spooled
from dashboard.verdict_spool import SpoolNotWritten, VerdictSpool, spool_directory
from tests.code.dashboard.test_feedback_faults import locked_by_another_writer, stored_texts


def given(text: str) -> Feedback:
    """A tester's verdict as the page gives it: with its id and time."""
    return identified(Feedback(text, "negative", 0.8, 0.5, "not_negative", "v1"))


def test_the_spool_sits_beside_the_store_unless_feedback_spool_dir_says_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("FEEDBACK_SPOOL_DIR", raising=False)
    assert spool_directory(tmp_path / "feedback.db") == tmp_path / "feedback.db.spool"
    monkeypatch.setenv("FEEDBACK_SPOOL_DIR", str(tmp_path / "elsewhere"))
    assert spool_directory(tmp_path / "feedback.db") == tmp_path / "elsewhere"


def test_spooled_verdicts_come_back_whole_and_are_stored_in_the_order_given(tmp_path):
    spool = VerdictSpool(tmp_path / "spool")
    verdicts = [given(f"tweet {number}") for number in range(5)]
    for verdict in verdicts:
        spool.put(verdict)
    assert [verdict for _, verdict in spool.waiting()] == verdicts
    assert not list(spool.directory.glob(".*.tmp"))  # nothing half-written left behind

    store = FeedbackStore(tmp_path / "feedback.db")
    assert store_spooled(spool, store) == 5
    assert stored_texts(store.path) == [f"tweet {number}" for number in range(5)]
    assert spool.waiting() == []


def test_a_verdict_stored_but_not_yet_removed_is_not_stored_twice(tmp_path):
    spool = VerdictSpool(tmp_path / "spool")
    store = FeedbackStore(tmp_path / "feedback.db")
    first, second = given("stored before the crash"), given("only spooled")
    spool.put(first)
    spool.put(second)
    store.add(first)  # the process died between storing it and removing its file

    assert store_spooled(spool, store) == 2
    assert stored_texts(store.path) == ["stored before the crash", "only spooled"]
    assert store_spooled(spool, store) == 0  # and again: nothing new
    assert store.count() == 2


def test_a_corrupt_file_is_moved_aside_and_logged_and_the_rest_are_stored(tmp_path, caplog):
    spool = VerdictSpool(tmp_path / "spool")
    spool.put(given("before"))
    (spool.directory / "00000000000000000001-00000000-torn.json").write_text('{"text": "cut off')
    (spool.directory / "00000000000000000002-00000000-bad.json").write_text(json.dumps({"text": "no other fields"}))
    wrong_label = {**given("x").__dict__, "true_label": "maybe"}  # reads back, but the store refuses its label
    (spool.directory / "00000000000000000003-00000000-label.json").write_text(json.dumps(wrong_label))
    spool.put(given("after"))
    store = FeedbackStore(tmp_path / "feedback.db")

    with caplog.at_level(logging.ERROR):
        assert store_spooled(spool, store) == 2
    assert stored_texts(store.path) == ["before", "after"]
    corrupt = sorted(path.name for path in (spool.directory / "corrupt").iterdir())
    assert corrupt == [
        "00000000000000000001-00000000-torn.json",
        "00000000000000000002-00000000-bad.json",
        "00000000000000000003-00000000-label.json",
    ]
    assert caplog.text.count("is not a verdict") == 3
    assert spool.waiting() == []


def test_a_refusing_store_keeps_every_spooled_verdict_in_order(tmp_path):
    spool = VerdictSpool(tmp_path / "spool")
    for text in ("one", "two"):
        spool.put(given(text))
    store = FeedbackStore(tmp_path / "feedback.db", busy_timeout_s=0.1)
    with locked_by_another_writer(store.path):
        assert store_spooled(spool, store) == 0
    assert [verdict.text for _, verdict in spool.waiting()] == ["one", "two"]
    assert store_spooled(spool, store) == 2
    assert stored_texts(store.path) == ["one", "two"]


def test_a_spool_that_cannot_be_written_says_why_naming_the_folder(tmp_path):
    (tmp_path / "a file").write_text("")
    spool = VerdictSpool(tmp_path / "a file" / "spool")
    with pytest.raises(SpoolNotWritten, match=r"the spool .*a file/spool cannot be written either"):
        spool.put(given("lost my bag"))


def test_verdicts_a_killed_page_left_in_the_spool_are_stored_by_the_next_one_exactly_once(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.db", busy_timeout_s=0.1)
    killed = VerdictSaver(store, HistoryView())
    with locked_by_another_writer(store.path):
        for text in ("first", "second"):
            asyncio.run(killed.submit(Feedback(text, "negative", 0.8, 0.5, "not_negative", "v1"), {}))
        assert "2 verdicts kept in this page and in the spool" in killed.message.object
        assert len(list(killed.spool.directory.glob("*.json"))) == 2

    restarted = VerdictSaver(FeedbackStore(store.path), HistoryView())
    assert asyncio.run(restarted.restore_spooled()) == 2
    assert asyncio.run(killed.save_unsaved()) is True  # the old page, had it lived on: stores nothing twice
    with sqlite3.connect(store.path) as connection:
        rows = connection.execute("SELECT text, COUNT(DISTINCT verdict_id) FROM feedback GROUP BY text").fetchall()
    assert sorted(rows) == [("first", 1), ("second", 1)] and store.count() == 2
    assert list(restarted.spool.directory.glob("*.json")) == []


def test_a_retry_overlapping_a_new_verdict_stores_both_in_order_and_drops_none(tmp_path, monkeypatch):
    """The periodic retry and a click's save run as separate tasks: both must not take the same oldest verdict."""
    store = FeedbackStore(tmp_path / "feedback.db")
    saver = VerdictSaver(store, HistoryView(), VerdictSpool(tmp_path / "spool"))
    add_once = store.add_once

    def refuse(feedback: Feedback):
        raise FeedbackNotSaved(f"the feedback store {store.path} is locked by another writer")

    monkeypatch.setattr(store, "add_once", refuse)
    assert not asyncio.run(saver.submit(given("A, refused first"), {}))
    released = threading.Event()

    def slow_store(feedback: Feedback):
        released.wait(timeout=5)  # both saves reach the store before either finishes, if both may run
        return add_once(feedback)

    monkeypatch.setattr(store, "add_once", slow_store)

    async def retry_and_click() -> list[bool]:
        asyncio.get_running_loop().call_later(0.3, released.set)
        return await asyncio.gather(saver.save_unsaved(), saver.submit(given("B, clicked meanwhile"), {}))

    assert asyncio.run(retry_and_click()) == [True, True]
    assert stored_texts(store.path) == ["A, refused first", "B, clicked meanwhile"]
    assert saver.unsaved == [] and saver.spool.waiting() == []


def test_the_spool_says_whose_verdicts_wait_matching_the_unnamed_tester_as_the_store_does(tmp_path):
    spool = VerdictSpool(tmp_path / "spool")
    for text, user_name in (("alice's", "alice"), ("bob's", "bob"), ("unnamed", None), ("empty name", "")):
        spool.put(identified(Feedback(text, "negative", 0.8, 0.5, "not_negative", "v1", user_name=user_name)))
    assert spool.texts_waiting_by("alice") == ["alice's"]
    assert spool.texts_waiting_by(None) == spool.texts_waiting_by("") == ["unnamed", "empty name"]
