"""The "Label next" tab without a browser: where the queue comes from, the progress, resuming, the verdicts."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from dashboard.client import ModelClient
from dashboard.feedback import Feedback, FeedbackNotSaved, FeedbackStore
from dashboard.history_view import HistoryView
from dashboard.queue_progress import QueueProgress
from dashboard.queue_source import QueueError, parse_queue
from dashboard.queue_view import QueueView
from dashboard.session import Dashboard
from dashboard.signin import Person
from dashboard.verdict_saver import VerdictSaver, prediction_marked
from steps.lib.label_queue import Candidates, rank_queue
from steps.lib.traffic import read_feedback_store
from tests.conftest import new_tracking

VERSION = "baseline:0123456789abcdef0123456789abcdef"
TWEETS = [
    "@united my bag went to Denver and I did not http://t.co/a",
    "@delta thanks for the upgrade, lovely crew",
    "@jetblue stuck on the tarmac for three hours",
]
ALICE, BOB = Person("alice", "tester"), Person("bob", "tester")


def queue_frame(texts: list[str] = TWEETS) -> pd.DataFrame:
    """A queue as `label_queue` logs it: ranked, scored at the champion's threshold 0.4, with its version."""
    candidates = Candidates(texts, np.linspace(0.3, 0.5, len(texts)), 0.4, model_version=VERSION)
    return rank_queue(candidates, [], len(texts))


def queue_bytes(frame: pd.DataFrame | None = None) -> bytes:
    return (queue_frame() if frame is None else frame).to_csv(index=False).encode()


def view_for(store: FeedbackStore, person: Person) -> QueueView:
    return QueueView(store, VerdictSaver(store, HistoryView()), person)


def uploaded(view: QueueView, data: bytes) -> QueueView:
    view.file_input.filename = "label_queue.csv"
    asyncio.run(view._on_file(type("Event", (), {"new": data})()))
    return view


def shown(view: QueueView) -> tuple[str, str]:
    """The progress line and the tweet on screen, as the page has them."""
    return view.progress_line.object, view.tweet.object


def stored(store: FeedbackStore) -> list[tuple]:
    with sqlite3.connect(store.path) as connection:
        return connection.execute(
            "SELECT text, user_name, role, true_label, predicted_label, proba_negative, threshold, model_version "
            "FROM feedback ORDER BY id"
        ).fetchall()


def test_a_logged_queue_file_is_read_in_its_order_with_the_champions_scores():
    frame = queue_frame()
    queue = parse_queue(queue_bytes(frame), "a file")
    assert [tweet.text for tweet in queue.tweets] == frame["text"].tolist()
    assert [tweet.proba_negative for tweet in queue.tweets] == pytest.approx(frame["proba_negative"].tolist())
    assert {(tweet.threshold, tweet.model_version) for tweet in queue.tweets} == {(0.4, VERSION)}
    first = queue.tweets[0]
    assert first.predicted_label == ("negative" if first.proba_negative >= 0.4 else "not_negative")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"tweet,proba_negative,threshold\nhi,0.5,0.5\n", "no text column (columns found: tweet, proba_negative"),
        (b"text,proba_negative\nhi,0.5\n", "no threshold column"),
        (b"text,proba_negative,threshold\nhi,0.5,0.5\nho,1.5,0.5\n", "proba_negative in row 2 is '1.5'"),
        (b"", "The file is empty."),
    ],
)
def test_a_queue_file_that_cannot_be_used_is_one_sentence(data, message):
    with pytest.raises(QueueError, match=message.replace("(", r"\(")):
        parse_queue(data, "a file")


def test_a_queue_file_over_the_upload_limits_is_refused_like_a_batch(monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_ROWS", "2")
    with pytest.raises(
        QueueError, match=r"The file has 3 rows; the dashboard scores up to 2 per file \(MAX_UPLOAD_ROWS\)"
    ):
        parse_queue(queue_bytes(), "a file")


def test_progress_counts_what_this_person_judged_before_on_the_normalised_text_and_skips_it():
    queue = parse_queue(queue_bytes(), "a file")
    left = [tweet.text for tweet in queue.tweets if tweet.text != TWEETS[0]]
    # The same complaint with another link: the served normalisation makes it the same tweet.
    copy = TWEETS[0].replace("http://t.co/a", "https://t.co/zz")
    progress = QueueProgress.resumed(queue, [copy, "a tweet not in the queue"])
    assert progress.text() == "1 of 3" and progress.current_tweet.text == left[0]
    progress.skip()
    assert progress.text() == "1 of 3" and progress.current_tweet.text == left[1]
    progress.mark_judged(left[1])
    assert progress.text() == "2 of 3" and progress.current is None and not progress.done
    progress.mark_judged(left[0])
    assert progress.text() == "3 of 3 — done" and progress.done


def test_each_click_stores_a_verdict_with_who_the_role_the_queues_score_and_moves_on(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    frame = queue_frame()
    view = uploaded(view_for(store, ALICE), queue_bytes(frame))
    assert 'id="queue-progress">0 of 3<' in view.progress_line.object
    first, second = frame["text"].iloc[0], frame["text"].iloc[1]
    assert "the uploaded file label_queue.csv" in view.source.object

    assert asyncio.run(view.judge("negative"))
    assert 'id="queue-progress">1 of 3<' in view.progress_line.object and view.progress.current_tweet.text == second
    assert asyncio.run(view.judge("not_negative"))
    rows = stored(store)
    assert [row[:4] for row in rows] == [
        (first, "alice", "tester", "negative"),
        (second, "alice", "tester", "not_negative"),
    ]
    for row, (_, tweet) in zip(rows, frame.head(2).iterrows(), strict=True):
        expected = "negative" if tweet["proba_negative"] >= 0.4 else "not_negative"
        assert row[4:] == (expected, pytest.approx(tweet["proba_negative"]), 0.4, VERSION)
    assert 'id="queue-progress">2 of 3<' in view.progress_line.object


def test_reopening_resumes_where_this_person_stopped_and_another_person_starts_at_the_top(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    frame = queue_frame()
    asyncio.run(uploaded(view_for(store, ALICE), queue_bytes(frame)).judge("negative"))

    again = uploaded(view_for(store, ALICE), queue_bytes(frame))
    assert 'id="queue-progress">1 of 3<' in again.progress_line.object
    assert again.progress.current_tweet.text == frame["text"].iloc[1]
    bob = uploaded(view_for(store, BOB), queue_bytes(frame))
    assert 'id="queue-progress">0 of 3<' in bob.progress_line.object
    assert bob.progress.current_tweet.text == frame["text"].iloc[0]


def test_two_testers_agreeing_in_the_queue_make_training_data_adapt_reads(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    for person in (ALICE, BOB):
        asyncio.run(uploaded(view_for(store, person), queue_bytes()).judge("negative"))
    agreed = read_feedback_store(store.path)
    assert agreed[["text", "label"]].values.tolist() == [[queue_frame()["text"].iloc[0], "negative"]]


def test_the_last_click_says_done_and_shows_no_buttons(tmp_path):
    view = uploaded(view_for(FeedbackStore(tmp_path / "f.db"), ALICE), queue_bytes())
    for _ in range(3):
        asyncio.run(view.judge("not_negative"))
    assert 'id="queue-progress">3 of 3 — done<' in view.progress_line.object
    assert not view.buttons.visible and view.tweet.object == ""
    assert not asyncio.run(view.judge("negative")) and len(stored(view.store)) == 3


def test_skipping_every_tweet_left_says_how_to_see_them_again(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    view = uploaded(view_for(FeedbackStore(tmp_path / "f.db"), ALICE), queue_bytes())
    for _ in range(3):
        view._on_skip()
    assert "You skipped the 3 tweets left; reload the queue to see them again." in view.message.object
    assert 'id="queue-progress">0 of 3<' in view.progress_line.object and not view.buttons.visible
    asyncio.run(view.load())  # "Reload the queue" without a tracking store: the uploaded queue again
    assert view.buttons.visible and view.progress.current == 0 and view.message.object == ""


def test_a_refused_write_keeps_the_verdict_in_the_page_and_the_queue_moves_on(tmp_path, monkeypatch):
    store = FeedbackStore(tmp_path / "f.db")
    view = uploaded(view_for(store, ALICE), queue_bytes())

    def refuse(feedback: Feedback) -> Feedback:
        raise FeedbackNotSaved(f"the feedback store {store.path} is locked by another writer")

    monkeypatch.setattr(store, "add_once", refuse)
    assert not asyncio.run(view.judge("negative"))
    [waiting] = view.verdicts.unsaved
    kept = waiting.verdict
    assert (kept.text, kept.user_name, kept.true_label) == (queue_frame()["text"].iloc[0], "alice", "negative")
    assert "The feedback is not saved yet" in view.verdicts.message.object
    assert 'id="queue-progress">1 of 3<' in view.progress_line.object
    monkeypatch.undo()
    assert waiting.spooled is not None and waiting.spooled.exists()  # it would survive a killed dashboard
    assert asyncio.run(view.verdicts.save_unsaved()) and len(stored(store)) == 1
    assert not waiting.spooled.exists()


def test_a_bad_upload_says_why_and_keeps_the_queue_on_screen(tmp_path):
    view = uploaded(view_for(FeedbackStore(tmp_path / "f.db"), ALICE), queue_bytes())
    before = shown(view)
    uploaded(view, b"tweet\nhello\n")
    assert "The queue file has no text" in view.message.object and shown(view) == before
    assert view.buttons.visible


def test_an_empty_queue_is_one_sentence(tmp_path):
    view = uploaded(view_for(FeedbackStore(tmp_path / "f.db"), ALICE), b"text,proba_negative,threshold\n")
    assert "is empty: run `mlflow run . -e label_queue` first" in view.message.object
    assert not view.buttons.visible


# ---------------------------------------------------------------------------------- the tracking store
@pytest.fixture(scope="module")
def queue_store(tmp_path_factory):
    """A tracking store of the module's own: the runs here are the only `label_queue` runs it has."""
    return new_tracking(tmp_path_factory.mktemp("queue-tracking"))


def log_queue_run(tracking, frame: pd.DataFrame, folder: Path, start_time: int, status: str = "FINISHED") -> str:
    """A run as `label_queue` leaves it: tagged `step=label_queue`, the queue logged as `label_queue.csv`."""
    client = MlflowClient(tracking.uri)
    run = client.create_run(tracking.experiment_id, start_time=start_time, tags={"step": "label_queue"})
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "label_queue.csv", index=False)
    client.log_artifact(run.info.run_id, str(folder / "label_queue.csv"))
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_without_a_tracking_store_the_page_asks_for_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    view = view_for(FeedbackStore(tmp_path / "f.db"), ALICE)
    asyncio.run(view.load())
    assert "No tracking store is set (MLFLOW_TRACKING_URI) and no queue file is uploaded" in view.message.object


def test_the_newest_finished_label_queue_run_is_the_queue(tmp_path, monkeypatch, queue_store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", queue_store.uri)
    view = view_for(FeedbackStore(tmp_path / "f.db"), ALICE)
    asyncio.run(view.load())
    assert "holds no finished label_queue run yet: run `mlflow run . -e label_queue` first." in view.message.object

    log_queue_run(queue_store, queue_frame(TWEETS[:1]), tmp_path / "old", start_time=1_000)
    newest = log_queue_run(queue_store, queue_frame(), tmp_path / "new", start_time=2_000)
    log_queue_run(queue_store, queue_frame(TWEETS[:2]), tmp_path / "failed", start_time=3_000, status="FAILED")
    asyncio.run(view.load())
    assert f"label_queue run {newest}" in view.source.object and view.message.object == ""
    assert 'id="queue-progress">0 of 3<' in view.progress_line.object


def test_a_tracking_store_that_is_down_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    view = view_for(FeedbackStore(tmp_path / "f.db"), ALICE)
    asyncio.run(view.load())
    assert "The tracking store http://127.0.0.1:9 cannot be read (" in view.message.object
    assert not view.buttons.visible


def test_a_double_click_stores_one_verdict_on_the_tweet_on_screen_never_on_the_next(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    frame = queue_frame()
    view = uploaded(view_for(store, ALICE), queue_bytes(frame))

    async def double_click() -> list[bool]:
        return await asyncio.gather(view.judge("negative"), view.judge("negative"))

    assert sorted(asyncio.run(double_click())) == [False, True]
    assert [row[0] for row in stored(store)] == [frame["text"].iloc[0]]
    assert 'id="queue-progress">1 of 3<' in view.progress_line.object
    assert view.progress.current_tweet.text == frame["text"].iloc[1] and view._shown == view.progress.current_tweet


def refusing(store: FeedbackStore, monkeypatch) -> None:
    """The store refuses every write, as a locked one does: verdicts wait in the page and the spool."""

    def refuse(feedback: Feedback) -> Feedback:
        raise FeedbackNotSaved(f"the feedback store {store.path} is locked by another writer")

    monkeypatch.setattr(store, "add_once", refuse)


def test_a_reload_counts_verdicts_not_stored_yet_and_never_asks_them_again(tmp_path, monkeypatch):
    store = FeedbackStore(tmp_path / "f.db")
    frame = queue_frame()
    refusing(store, monkeypatch)
    view = uploaded(view_for(store, ALICE), queue_bytes(frame))
    assert not asyncio.run(view.judge("negative"))

    uploaded(view, queue_bytes(frame))  # the same page again: the verdict waits in its saver
    assert 'id="queue-progress">1 of 3<' in view.progress_line.object
    assert view.progress.current_tweet.text == frame["text"].iloc[1]
    another_page = uploaded(view_for(store, ALICE), queue_bytes(frame))  # a new page: it waits in the spool
    assert 'id="queue-progress">1 of 3<' in another_page.progress_line.object
    assert another_page.progress.current_tweet.text == frame["text"].iloc[1]
    bob = uploaded(view_for(store, BOB), queue_bytes(frame))  # another tester's waiting verdict is not his
    assert 'id="queue-progress">0 of 3<' in bob.progress_line.object


def test_a_store_that_cannot_be_read_is_one_sentence_and_the_queue_still_shows(tmp_path, monkeypatch):
    store = FeedbackStore(tmp_path / "f.db")
    refusing(store, monkeypatch)
    view = uploaded(view_for(store, ALICE), queue_bytes())
    assert not asyncio.run(view.judge("negative"))

    def unreadable(user_name: str | None) -> list[str]:
        raise FeedbackNotSaved(f"the feedback store {store.path} is read-only")

    monkeypatch.setattr(store, "texts_judged_by", unreadable)
    again = uploaded(view_for(store, ALICE), queue_bytes())
    assert (
        f"Your verdicts from earlier sessions cannot be read (the feedback store {store.path} is read-only), so "
        "only those still waiting to be saved count as labelled." in again.message.object
    )
    assert 'id="queue-progress">1 of 3<' in again.progress_line.object and again.buttons.visible


def test_the_progress_is_built_off_the_event_loop_store_read_included(tmp_path, monkeypatch):
    store = FeedbackStore(tmp_path / "f.db")
    threads: list[threading.Thread] = []
    read, resumed = store.texts_judged_by, QueueProgress.resumed.__func__

    def judged_by(user_name: str | None) -> list[str]:
        threads.append(threading.current_thread())
        return read(user_name)

    def resumed_in(cls, queue, texts_judged) -> QueueProgress:
        threads.append(threading.current_thread())
        return resumed(cls, queue, texts_judged)

    monkeypatch.setattr(store, "texts_judged_by", judged_by)
    monkeypatch.setattr(QueueProgress, "resumed", classmethod(resumed_in))
    view = uploaded(view_for(store, ALICE), queue_bytes())
    assert 'id="queue-progress">0 of 3<' in view.progress_line.object
    assert len(threads) == 2 and threading.main_thread() not in threads


def test_the_saved_notice_says_what_the_tester_labelled_not_that_a_prediction_was_marked(tmp_path):
    """The queue asks "complaint or not?": its notice answers in those words, the Predict tab's in its own."""
    store = FeedbackStore(tmp_path / "f.db")
    session = Dashboard(ModelClient("http://127.0.0.1:9"), store, ALICE)
    view = uploaded(session.queue_view, queue_bytes())
    assert asyncio.run(view.judge("negative"))
    assert "Saved as feedback #1: labelled a complaint." in session.queue_verdicts.message.object
    assert asyncio.run(view.judge("not_negative"))
    assert "Saved as feedback #2: labelled not a complaint." in session.queue_verdicts.message.object
    assert session.verdicts.saved_words is prediction_marked
