"""The "Label next" tab in Debian's Chromium against the real `panel serve`: one click a verdict.

The queue comes from a `label_queue` run in a tracking store of the test's own, or from an uploaded
file when the dashboard has no tracking store. The model server is the scripted one (conftest.py):
the tab never asks it anything; what is tested is the queue, the progress and the stored verdicts.
"""

from __future__ import annotations

import sqlite3

import pytest
from playwright.sync_api import Page, expect

from tests.code.dashboard.test_browser import WAIT_MS, open_tab
from tests.code.dashboard.test_browser_signin import serve_signed, sign_in
from tests.code.dashboard.test_queue import log_queue_run, queue_bytes, queue_frame
from tests.conftest import new_tracking

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def progress_is(page: Page, text: str) -> None:
    expect(page.locator("#queue-progress")).to_have_text(text, timeout=WAIT_MS)


def click(page: Page, button: str, then: str) -> None:
    """One click on a verdict button, then wait for the progress it leads to."""
    page.get_by_role("button", name=button, exact=True).click()
    progress_is(page, then)


def verdicts(feedback_db) -> list[tuple]:
    with sqlite3.connect(feedback_db) as connection:
        return connection.execute("SELECT text, user_name, role, true_label FROM feedback ORDER BY id").fetchall()


def test_a_signed_in_tester_labels_the_newest_queue_one_click_each_and_resumes(
    browser, fake_server, start_dashboard, tmp_path
):
    tracking = new_tracking(tmp_path / "mlflow")
    frame = queue_frame()
    run_id = log_queue_run(tracking, frame, tmp_path / "queue", start_time=1_000)
    dashboard = serve_signed(fake_server, start_dashboard, tmp_path, MLFLOW_TRACKING_URI=tracking.uri)
    texts = frame["text"].tolist()

    page = sign_in(browser, dashboard.app_url, "alice")
    expect(page.locator("#signed-in")).to_have_text("alice (tester)", timeout=WAIT_MS)
    open_tab(page, "Label next")
    expect(page.locator("#queue-source")).to_have_text(f"label_queue run {run_id}", timeout=WAIT_MS)
    progress_is(page, "0 of 3")
    expect(page.locator("#queue-tweet")).to_have_text(texts[0])
    click(page, "Complaint", "1 of 3")
    expect(page.locator("#queue-tweet")).to_have_text(texts[1])
    click(page, "Not a complaint", "2 of 3")
    expect(page.locator("#feedback-status")).to_contain_text("Saved as feedback", timeout=WAIT_MS)
    assert verdicts(dashboard.feedback_db) == [
        (texts[0], "alice", "tester", "negative"),
        (texts[1], "alice", "tester", "not_negative"),
    ]
    page.context.close()

    again = sign_in(browser, dashboard.app_url, "alice")  # reopening resumes where she stopped
    open_tab(again, "Label next")
    progress_is(again, "2 of 3")
    expect(again.locator("#queue-tweet")).to_have_text(texts[2])
    click(again, "Complaint", "3 of 3 — done")
    expect(again.get_by_role("button", name="Complaint", exact=True)).to_be_hidden()
    assert [row[1] for row in verdicts(dashboard.feedback_db)] == ["alice"] * 3
    assert "Traceback" not in dashboard.log()


def test_without_a_tracking_store_an_uploaded_queue_is_labelled(fake_server, start_dashboard, page, tmp_path):
    fake_server.reply = lambda path, body: (
        (200, "text/plain", b"ok") if body is None else fake_server.contract_answer(body)
    )
    dashboard = start_dashboard(fake_server.url)
    page.goto(dashboard.app_url)
    open_tab(page, "Label next")
    expect(page.locator("#queue-status")).to_contain_text("No tracking store is set", timeout=WAIT_MS)

    upload = page.locator(".queue-file input[type=file]")  # the Batch tab has a file input of its own
    upload.set_input_files(files=[{"name": "tweets.csv", "mimeType": "text/csv", "buffer": b"tweet\nhello\n"}])
    expect(page.locator("#queue-status")).to_contain_text("The queue file has no text", timeout=WAIT_MS)
    upload.set_input_files(files=[{"name": "label_queue.csv", "mimeType": "text/csv", "buffer": queue_bytes()}])
    progress_is(page, "0 of 3")
    first, second = queue_frame()["text"].iloc[:2]
    expect(page.locator("#queue-tweet")).to_have_text(first)
    page.get_by_role("button", name="Skip", exact=True).click()
    expect(page.locator("#queue-tweet")).to_have_text(second)
    click(page, "Complaint", "1 of 3")
    assert verdicts(dashboard.feedback_db) == [(second, None, "tester", "negative")]  # without sign-in: unnamed
    assert "Traceback" not in dashboard.log()
