"""One session's logic without a browser: the handlers the page calls, against the scripted server."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from types import SimpleNamespace

import pytest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from dashboard.app import quiet_closed_sessions
from dashboard.client import DEFAULT_BATCH_REQUESTS, ModelClient
from dashboard.feedback import FeedbackStore
from dashboard.file_view import BATCH_THREADS
from dashboard.session import Dashboard


@pytest.fixture
def session(fake_server, tmp_path) -> Dashboard:
    return Dashboard(ModelClient(fake_server.url, timeout=2), FeedbackStore(tmp_path / "feedback.db"))


EXPLAIN = {"explain": True}


def sent_params(fake_server) -> list[dict | None]:
    return [body.get("params") for _, path, body, _ in fake_server.requests if path == "/invocations"]


def test_first_prediction_uses_the_model_threshold_and_the_slider_shows_it(session, fake_server):
    session.tweet_view.tweet.value = "x" * 60  # the scripted server answers proba = len / 100 = 0.6
    asyncio.run(session.tweet_view._on_predict())

    assert sent_params(fake_server) == [EXPLAIN]  # a typed tweet is always explained
    assert session.tweet_view.last["prediction"].label == "negative"  # 0.6 >= the model's 0.42
    assert session.tweet_view.threshold.value == pytest.approx(0.42)
    assert session.tweet_view.use_model_threshold.value is True
    assert session.tweet_view.result_area.visible
    assert session.history.rows[-1]["text"] == "x" * 60


def test_moving_the_threshold_sends_it_and_rescored_decision_changes(session, fake_server):
    session.tweet_view.tweet.value = "x" * 60
    asyncio.run(session.tweet_view._on_predict())
    session.tweet_view.threshold.value = 0.7
    asyncio.run(session.tweet_view._on_threshold_moved(SimpleNamespace(new=0.7)))

    assert sent_params(fake_server) == [EXPLAIN, {"threshold": 0.7, **EXPLAIN}]
    assert session.tweet_view.last["prediction"].label == "not_negative"
    assert session.tweet_view.use_model_threshold.value is False
    assert "0.7000 (from the slider)" in session.tweet_view.result.object

    session.tweet_view.use_model_threshold.value = True
    asyncio.run(session.tweet_view._on_use_model_threshold(SimpleNamespace(new=True)))
    assert sent_params(fake_server)[-1] == EXPLAIN
    assert session.tweet_view.last["prediction"].label == "negative"


def test_an_error_keeps_the_text_hides_the_stale_result_and_blocks_stale_feedback(session, fake_server):
    session.tweet_view.tweet.value = "first tweet"
    asyncio.run(session.tweet_view._on_predict())
    fake_server.reply = lambda path, body: (500, "text/plain", b"boom")
    session.tweet_view.tweet.value = "second <b>tweet</b>"
    asyncio.run(session.tweet_view._on_predict())

    assert session.tweet_view.tweet.value == "second <b>tweet</b>"
    assert "failed while scoring (HTTP 500): boom" in session.tweet_view.predict_message.object
    assert session.tweet_view.predict_message.visible and not session.tweet_view.result_area.visible
    assert session.tweet_view.last is None
    asyncio.run(session.tweet_view._on_wrong())
    assert session.store.count() == 0
    assert not session.tweet_view.predict_button.loading


def test_feedback_stores_the_prediction_on_screen(session, fake_server):
    session.tweet_view.tweet.value = "<script>alert(1)</script> late again"
    asyncio.run(session.tweet_view._on_predict())
    asyncio.run(session.tweet_view._on_wrong())

    with sqlite3.connect(session.store.path) as connection:
        rows = connection.execute(
            "SELECT text, predicted_label, true_label, is_correct, threshold FROM feedback"
        ).fetchall()
    assert rows == [("<script>alert(1)</script> late again", "not_negative", "negative", 0, 0.42)]
    assert session.history.rows[-1]["feedback"] == "wrong (true: negative)"
    assert session.tweet_view.right_button.disabled and session.tweet_view.wrong_button.disabled
    # the tweet reaches the page escaped, never as markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in session.tweet_view.result.object
    assert "<script>" not in session.tweet_view.result.object


def test_a_csv_is_scored_with_invalid_rows_kept(session, fake_server):
    data = b"id,text\n1,aaaaaaaaaa\n2,\n3,bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"
    session.client.chunk_rows = 1
    asyncio.run(session.file_view._score_file(data, "tweets.csv"))

    assert len(sent_params(fake_server)) == 2  # one request per valid row at chunk size 1
    assert session.file_view.progress.value == session.file_view.progress.max == 2
    assert "Scored 2 tweets from tweets.csv" in session.file_view.batch_message.object
    assert session.file_view.download.filename == "scored_tweets.csv" and not session.file_view.download.disabled
    csv_text = session.file_view._scored_file().read().decode()
    assert csv_text.splitlines()[2] == "2,,False,,,,"


def test_the_bar_is_full_with_the_summary_and_a_late_progress_tick_does_not_move_it_back(session, monkeypatch):
    """The worker's ticks reach the page through the event loop and may land after the summary: the
    page said "Scored 4 tweets" over a bar at 2 of 4. Here every tick is held until the batch ended."""
    held_ticks = []
    score_for_real = session.client.predict_in_chunks

    def hold_ticks(texts, threshold, chunk_rows, on_progress, start):
        def hold(scored: int, total: int) -> None:
            held_ticks.append((on_progress, scored, total))

        return score_for_real(texts, threshold, chunk_rows, hold, start)

    monkeypatch.setattr(session.client, "predict_in_chunks", hold_ticks)
    session.client.chunk_rows = 2
    data = b"text\n" + b"\n".join(b"tweet %d" % i for i in range(4)) + b"\n"

    async def scenario() -> None:
        await session.file_view._score_file(data, "tweets.csv")
        assert "Scored 4 tweets from tweets.csv" in session.file_view.batch_message.object
        progress = session.file_view.progress
        assert progress.value == progress.max == 4  # set with the summary, no tick yet
        for on_progress, scored, total in held_ticks:  # the held ticks land late, 2 of 4 among them
            on_progress(scored, total)
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert [(scored, total) for _, scored, total in held_ticks] == [(2, 4), (4, 4)]
    assert session.file_view.progress.value == 4


def test_files_being_scored_leave_threads_for_a_typed_prediction(fake_server, tmp_path):
    """More files in flight than any thread pool the event loop has by default (cores + 4, at most 32):
    two chunks held by the server, the other files waiting for a request slot on their own threads."""
    held, release = [], threading.Event()
    healthy = fake_server.reply

    def hold_files(path, body):
        if path == "/invocations" and len(body["dataframe_split"]["data"]) > 1:
            held.append(body)
            release.wait(20)
        return healthy(path, body)

    fake_server.reply = hold_files
    store = FeedbackStore(tmp_path / "feedback.db")
    files = [Dashboard(ModelClient(fake_server.url, timeout=5), store) for _ in range(BATCH_THREADS)]
    typing = Dashboard(ModelClient(fake_server.url, timeout=5), store)
    data = b"text\n" + b"\n".join(b"tweet %d" % i for i in range(4)) + b"\n"

    async def scenario() -> list[bool]:
        scoring = [asyncio.create_task(session.file_view._score_file(data, "tweets.csv")) for session in files]
        for _ in range(600):  # until the server holds a chunk in every request slot
            if len(held) == DEFAULT_BATCH_REQUESTS:
                break
            await asyncio.sleep(0.05)
        typing.tweet_view.tweet.value = "x" * 60
        await typing.tweet_view._on_predict()
        assert len(held) == DEFAULT_BATCH_REQUESTS
        finished_while_files_were_held = [not task.done() for task in scoring]
        release.set()
        await asyncio.gather(*scoring)
        return finished_while_files_were_held

    try:
        still_held = asyncio.run(scenario())
    finally:
        release.set()
    assert len(held) == len(files)
    assert typing.tweet_view.last is not None and typing.tweet_view.last["prediction"].label == "negative"
    assert all(still_held)
    assert all("Scored 4 tweets from tweets.csv" in session.file_view.batch_message.object for session in files)


def test_a_batch_the_server_stops_answering_keeps_its_rows_and_resumes(session, fake_server):
    texts = [f"tweet number {i}" for i in range(6)]
    data = ("text\n" + "\n".join(texts) + "\n").encode()
    session.client.chunk_rows = 2
    healthy = fake_server.reply
    calls = []

    def down_after_first_chunk(path, body):
        calls.append(body)
        return (503, "text/plain", b"restarting") if len(calls) > 1 else healthy(path, body)

    fake_server.reply = down_after_first_chunk
    asyncio.run(session.file_view._score_file(data, "tweets.csv"))
    assert "Scored 2 of 6 tweets; 4 not scored yet" in session.file_view.batch_message.object
    assert "rows 2-5 of 6 not scored" in session.file_view.batch_message.object
    resume = session.file_view.resume_button
    assert resume.visible and resume.label == "Score the remaining 4 tweets"
    partial = session.file_view._scored_file().read().decode().splitlines()
    assert partial[1].startswith("tweet number 0,True,") and partial[3] == "tweet number 2,True,,,,"
    assert not session.file_view.download.disabled  # what was scored can be downloaded already

    fake_server.reply = healthy
    asyncio.run(session.file_view._on_resume_batch())
    resent = [row[0] for _, path, body, _ in fake_server.requests[-2:] for row in body["dataframe_split"]["data"]]
    assert resent == texts[2:]
    assert "Scored 6 tweets from tweets.csv" in session.file_view.batch_message.object
    assert not session.file_view.resume_button.visible
    complete = session.file_view._scored_file().read().decode().splitlines()
    assert all(",True,negative," in line or ",True,not_negative," in line for line in complete[1:])


def test_an_unusable_csv_is_a_plain_message(session):
    asyncio.run(session.file_view._score_file(b"id,tweet\n1,hello\n", "bad.csv"))
    assert "needs a &#x27;text&#x27; column" in session.file_view.batch_message.object
    assert session.file_view.download.disabled


def test_beside_the_slider_the_threshold_is_said_in_a_support_leads_words(session, fake_server):
    assert "Score a tweet to see what this threshold means" in session.tweet_view.threshold_meaning.object

    def with_figures(path, body):
        status, content_type, payload = fake_server.contract_answer(body)
        rows = json.loads(payload)["predictions"]
        for row in rows:  # what a model logged with a threshold policy answers
            row |= {"val_precision": 0.874, "val_recall": 0.912}
        return status, content_type, json.dumps({"predictions": rows}).encode()

    fake_server.reply = with_figures
    session.tweet_view.tweet.value = "x" * 60
    asyncio.run(session.tweet_view._on_predict())
    meaning = session.tweet_view.threshold_meaning.object
    assert "At threshold 0.42" in meaning
    assert "of 100 flagged tweets, about <b>87</b> are complaints" in meaning
    assert "of 100 complaints, about <b>91</b> are flagged" in meaning


def test_a_model_without_validation_figures_says_so_beside_the_slider(session, fake_server):
    session.tweet_view.tweet.value = "x" * 60  # the scripted contract answer carries no val_precision / val_recall
    asyncio.run(session.tweet_view._on_predict())
    assert "ships no validation figures" in session.tweet_view.threshold_meaning.object


@pytest.mark.parametrize("closed", [WebSocketClosedError(), StreamClosedError()])
def test_a_tab_closed_mid_update_is_one_log_line_not_a_traceback(closed, caplog):
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.INFO):
            quiet_closed_sessions(loop, {"message": "Task exception was never retrieved", "exception": closed})
    finally:
        loop.close()
    assert [record.getMessage() for record in caplog.records] == [
        "a browser session closed while an update was being sent to it"
    ]
    assert not any(record.exc_info for record in caplog.records)


def test_any_other_unhandled_error_keeps_its_traceback(caplog):
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.INFO):
            quiet_closed_sessions(loop, {"message": "boom", "exception": ValueError("a real bug")})
    finally:
        loop.close()
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info[1].args == ("a real bug",)
