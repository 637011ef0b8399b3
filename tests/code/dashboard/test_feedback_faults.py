"""A feedback store that refuses writes: locked by another writer, read-only, on a full disk.

The tester hears why in one sentence, the verdict stays in the page (and in the spool, where that can be
written) and is saved once the store takes writes again; nothing is dropped. The read-only and full-disk
cases use a real tmpfs (mounting needs root, as the CI machine has; elsewhere they skip with that reason).
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dashboard.client import ModelClient
from dashboard.feedback import FeedbackStore
from dashboard.session import Dashboard
from harness.disks import DiskUnavailable, small_disk


def dashboard_on(store: FeedbackStore, fake_server) -> Dashboard:
    return Dashboard(ModelClient(fake_server.url, timeout=2), store)


def flag_wrong(session: Dashboard, text: str) -> None:
    session.tweet_view.tweet.value = text
    asyncio.run(session.tweet_view._on_predict())
    asyncio.run(session.tweet_view._on_wrong())


def stored_texts(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT text FROM feedback ORDER BY id")]


@contextmanager
def locked_by_another_writer(path: Path) -> Iterator[None]:
    """Another connection holds the write lock until the block ends."""
    other_writer = sqlite3.connect(path, isolation_level=None)
    other_writer.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other_writer.execute("ROLLBACK")
        other_writer.close()


@pytest.fixture
def small_filesystem(tmp_path) -> Iterator[Path]:
    """A 1 MiB tmpfs of its own, so the disk can really fill up or turn read-only."""
    try:
        with small_disk(tmp_path / "mnt", "1m") as mount_point:
            yield mount_point
    except DiskUnavailable as reason:
        pytest.skip(str(reason))


def test_a_store_locked_by_another_writer_keeps_the_verdict_and_saves_it_after(tmp_path, fake_server):
    store = FeedbackStore(tmp_path / "feedback.db", busy_timeout_s=0.2)
    session = dashboard_on(store, fake_server)
    with locked_by_another_writer(store.path):
        flag_wrong(session, "first complaint")
        flag_wrong(session, "second complaint")
        message = session.verdicts.message.object
        assert f"The feedback is not saved yet: the feedback store {store.path} is locked by another writer" in message
        assert "2 verdicts kept in this page" in message
        assert [row["feedback"] for row in session.history.rows] == ["wrong (true: negative), not saved yet"] * 2

    assert asyncio.run(session.verdicts.save_unsaved()) is True
    assert stored_texts(store.path) == ["first complaint", "second complaint"]
    assert "Saved the 2 waiting verdicts as feedback #1 to #2" in session.verdicts.message.object
    assert [row["feedback"] for row in session.history.rows] == ["wrong (true: negative)"] * 2
    assert session.verdicts.unsaved == []


def test_a_read_only_store_keeps_the_verdict_until_it_is_writable_again(small_filesystem, fake_server):
    store = FeedbackStore(small_filesystem / "feedback.db")
    session = dashboard_on(store, fake_server)
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    try:
        flag_wrong(session, "refund from March, please check")
        assert f"the feedback store {store.path} is read-only" in session.verdicts.message.object
        # The spool beside the store is on the same read-only disk: the page says a restart would lose it.
        spool = small_filesystem / "feedback.db.spool"
        assert f"The spool {spool} cannot be written either" in session.verdicts.message.object
        assert "so a restart of the dashboard loses them" in session.verdicts.message.object
        assert len(session.verdicts.unsaved) == 1
        assert asyncio.run(session.verdicts.save_unsaved()) is False  # still read-only: still kept
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_filesystem)], check=True)

    assert asyncio.run(session.verdicts.save_unsaved()) is True
    assert stored_texts(store.path) == ["refund from March, please check"]
    assert "Saved as feedback #1: prediction marked wrong." in session.verdicts.message.object


def fill_up(path: Path) -> None:
    """Write zeros until the filesystem says no more."""
    with path.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 64 * 1024)
                handle.flush()
        except OSError:
            pass


def test_a_full_disk_keeps_the_verdict_until_there_is_room(small_filesystem, fake_server):
    store = FeedbackStore(small_filesystem / "feedback.db")
    session = dashboard_on(store, fake_server)
    filler = small_filesystem / "filler"
    fill_up(filler)
    flag_wrong(session, "still waiting for my bag, day three")
    assert f"the disk holding the feedback store {store.path} is full" in session.verdicts.message.object
    assert len(session.verdicts.unsaved) == 1

    filler.unlink()
    assert asyncio.run(session.verdicts.save_unsaved()) is True
    assert stored_texts(store.path) == ["still waiting for my bag, day three"]


def test_a_store_that_cannot_start_still_opens_the_page_and_saves_later(small_filesystem, fake_server):
    filler = small_filesystem / "filler"
    fill_up(filler)
    store = FeedbackStore(small_filesystem / "feedback.db")  # cannot create its table: logged, not raised
    session = dashboard_on(store, fake_server)
    flag_wrong(session, "lost my bag")
    assert f"the disk holding the feedback store {store.path} is full" in session.verdicts.message.object

    filler.unlink()
    assert asyncio.run(session.verdicts.save_unsaved()) is True
    assert stored_texts(store.path) == ["lost my bag"]


def test_a_session_closed_with_unsaved_verdicts_says_where_they_wait_in_the_log(tmp_path, fake_server, caplog):
    store = FeedbackStore(tmp_path / "feedback.db", busy_timeout_s=0.1)
    session = dashboard_on(store, fake_server)
    with locked_by_another_writer(store.path):
        flag_wrong(session, "lost my bag")
        session.verdicts.report_unsaved_on_close()
    waiting = f"a session closed with 1 feedback verdicts the store refused; they wait in the spool {store.path}.spool"
    assert waiting in caplog.text
    assert "they are lost" not in caplog.text


def test_a_session_closed_with_verdicts_the_spool_refused_too_logs_their_loss(
    tmp_path, fake_server, caplog, monkeypatch
):
    (tmp_path / "not a folder").write_text("")
    monkeypatch.setenv("FEEDBACK_SPOOL_DIR", str(tmp_path / "not a folder" / "spool"))
    store = FeedbackStore(tmp_path / "feedback.db", busy_timeout_s=0.1)
    session = dashboard_on(store, fake_server)
    with locked_by_another_writer(store.path):
        flag_wrong(session, "lost my bag")
        assert "cannot be written either" in session.verdicts.message.object
        session.verdicts.report_unsaved_on_close()
    assert "a session closed with 1 feedback verdicts the store and spool refused; they are lost" in caplog.text
