"""A dashboard killed (SIGKILL) with verdicts the store refused loses none: the restarted one stores each once.

The store sits on a small tmpfs turned read-only; the spool (`FEEDBACK_SPOOL_DIR`) is elsewhere, as the
deploy docs advise for a store on a disk of its own. Mounting needs root, as the CI machine has; elsewhere
the test skips with that reason.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from dashboard.feedback import FeedbackStore
from harness.disks import DiskUnavailable, small_disk
from tests.code.dashboard.conftest import DashboardServer
from tests.code.dashboard.test_browser import eventually, open_dashboard, predict

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TEXTS = ["refund from March, please check", "bag lost on the way to Oslo", "no answer from support in a week"]


@pytest.fixture
def store_disk(tmp_path) -> Iterator[Path]:
    try:
        with small_disk(tmp_path / "mnt", "1m") as mount_point:
            yield mount_point
    except DiskUnavailable as reason:
        pytest.skip(str(reason))


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True)


def stored(path: Path) -> list[tuple[str, int]]:
    """Each stored text with how many rows hold it."""
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT text, COUNT(*) FROM feedback GROUP BY text ORDER BY MIN(id)").fetchall()


def test_verdicts_waiting_when_the_dashboard_is_killed_are_stored_once_after_a_restart(
    page, fake_server, store_disk, tmp_path
):
    fake_server.reply = lambda path, body: fake_server.contract_answer(body) if body else (200, "text/plain", b"ok")
    feedback_db, spool = store_disk / "feedback.db", tmp_path / "spool"
    FeedbackStore(feedback_db)  # the store exists, then its disk turns read-only
    first = DashboardServer(fake_server.url, feedback_db, tmp_path / "panel0.log", FEEDBACK_SPOOL_DIR=str(spool))
    try:
        first.wait_ready()
        open_dashboard(page, first.app_url)
        remount(store_disk, "ro")
        for count, text in enumerate(TEXTS, start=1):
            predict(page, text)
            page.get_by_role("button", name=re.compile("^Wrong")).click()
            status = page.locator("#feedback-status")
            expect(status).to_contain_text(f"{count} verdict{'s' if count > 1 else ''} kept in this page and in the")
        expect(status).to_contain_text(f"the feedback store {feedback_db} is read-only")
        os.killpg(first.process.pid, signal.SIGKILL)  # no shutdown hook runs, no session is closed
        first.process.wait(timeout=30)
    finally:
        remount(store_disk, "rw")
        first.stop()
    assert len(list(spool.glob("*.json"))) == len(TEXTS)
    assert stored(feedback_db) == []

    restarted = DashboardServer(fake_server.url, feedback_db, tmp_path / "panel1.log", FEEDBACK_SPOOL_DIR=str(spool))
    try:
        restarted.wait_ready()  # its first page request stores what the spool holds
        eventually(lambda: len(stored(feedback_db)) == len(TEXTS), "every spooled verdict in the store")
        assert stored(feedback_db) == [(text, 1) for text in TEXTS]
        assert list(spool.glob("*.json")) == []
        open_dashboard(page, restarted.app_url)  # another page later stores nothing twice
        page.wait_for_timeout(1000)
        assert stored(feedback_db) == [(text, 1) for text in TEXTS]
    finally:
        restarted.stop()
    assert "Traceback" not in restarted.log(), restarted.log()[-3000:]
