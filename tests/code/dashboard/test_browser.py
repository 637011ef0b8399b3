"""The dashboard in Debian's Chromium against a real `mlflow models serve` and the real `panel serve`.

The page changes through a websocket after each server answer, so every check of something the page
shows waits for it (Playwright's `expect`, or `eventually` for a value `expect` cannot compare): a
check that reads the page once passes or fails with the machine's load.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.integration]

WAIT_MS = 30_000
# The Batch tab's file input: the first on the page (the Label next tab has one of its own, class `queue-file`).
BATCH_FILE_INPUT = "input[type=file] >> nth=0"
expect.set_options(timeout=WAIT_MS)  # two shared cores: a busy machine renders slowly, never wrongly


def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait until the page shows `what`, as `expect` does, for a check `expect` has no assertion for."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not show {what} within {WAIT_MS / 1000:.0f} s")
        time.sleep(0.1)


def open_dashboard(page: Page, app_url: str) -> None:
    """Load the page and wait for a widget: a Panel page is empty until its websocket connects."""
    page.goto(app_url)
    expect(page.locator("textarea")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#server-status")).to_contain_text("is up", timeout=WAIT_MS)


def predict(page: Page, text: str) -> None:
    page.locator("textarea").fill(text)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#result-text")).to_have_text(text, timeout=WAIT_MS)


def set_threshold(page: Page, value: float) -> None:
    """Type into the slider's number box, as a tester does for a precise value."""
    box = page.locator(".slider-edit input")
    box.fill(str(value))
    box.press("Enter")


def model_threshold_box(page: Page) -> Locator:
    """The sidebar's "Use the model's own threshold" box, by its class: the file preview has tick boxes too."""
    return page.locator(".model-threshold input[type=checkbox]")


def open_tab(page: Page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).click()


def test_typed_tweet_shows_label_probability_threshold_model_and_latency(page, dashboard):
    open_dashboard(page, dashboard.app_url)
    predict(page, "@united lost my bag again, worst airline ever")

    expect(page.locator("#result-label")).to_have_text(re.compile(r"^(negative|not_negative)$"))
    label = page.locator("#result-label").inner_text()
    proba = float(page.locator("#result-proba").inner_text())
    threshold_text = page.locator("#result-threshold").inner_text()
    threshold = float(threshold_text.split()[0])
    assert label == ("negative" if proba >= threshold else "not_negative")
    assert 0 <= proba <= 1 and "(model's own)" in threshold_text
    expect(page.locator("#result-model")).to_have_text(re.compile(r"^baseline:[0-9a-f]{32}$"))
    expect(page.locator("#result-latency")).to_have_text(re.compile(r"^[0-9]+ ms$"))
    slider = page.locator(".slider-edit input")
    eventually(lambda: abs(float(slider.input_value()) - threshold) < 1e-4, f"the threshold {threshold} on the slider")
    expect(page.locator("canvas").first).to_be_attached()  # the ECharts gauge


def test_threshold_slider_is_sent_as_params_and_changes_the_decision(page, dashboard):
    open_dashboard(page, dashboard.app_url)
    predict(page, "the flight was fine I guess")

    set_threshold(page, 0.99)
    expect(page.locator("#result-threshold")).to_have_text("0.9900 (from the slider)", timeout=WAIT_MS)
    expect(page.locator("#result-label")).to_have_text("not_negative")
    expect(model_threshold_box(page)).not_to_be_checked()

    set_threshold(page, 0.01)
    expect(page.locator("#result-threshold")).to_have_text("0.0100 (from the slider)", timeout=WAIT_MS)
    expect(page.locator("#result-label")).to_have_text("negative")
    # Beside the slider, what 0.01 means on the model's validation tweets: nearly every complaint flagged.
    expect(page.locator("#threshold-meaning")).to_contain_text("At threshold 0.01", timeout=WAIT_MS)
    expect(page.locator("#threshold-meaning")).to_contain_text("of 100 complaints, about 100 are flagged")

    model_threshold_box(page).check()  # back to the model's own threshold
    expect(page.locator("#result-threshold")).to_contain_text("(model's own)", timeout=WAIT_MS)


def test_csv_upload_is_scored_in_chunks_charted_and_downloadable(page, dashboard, tmp_path):
    rows = [
        ("1", "I hate delays, worst airline"),
        ("2", ""),
        ("3", "great crew, thanks for the upgrade"),
        ("4", '<b>bold</b> & "quoted"'),
        ("5", "lost my luggage again"),
    ]
    upload = tmp_path / "tweets.csv"
    with upload.open("w", newline="") as handle:
        csv.writer(handle).writerows([("id", "text"), *rows])

    open_dashboard(page, dashboard.app_url)
    open_tab(page, "Batch")
    page.locator(BATCH_FILE_INPUT).set_input_files(upload)
    page.get_by_role("button", name="Score the file").click()
    expect(page.locator("#batch-status")).to_contain_text("Scored 4 tweets from tweets.csv", timeout=WAIT_MS)
    expect(page.locator("#batch-status")).to_contain_text("1 rows with an empty text were skipped")
    progress = page.locator("progress")  # full with the summary: 2 chunks of 2 rows
    expect(progress).to_have_attribute("max", "4")
    expect(progress).to_have_attribute("value", "4")
    log = dashboard.log()  # a batch's start and end are logged, so a stalled one shows where it stopped
    assert "batch tweets.csv: scoring rows 0-3 of 4" in log and "batch tweets.csv: 4 rows scored in" in log
    expect(page.locator(".tabulator-cell[tabulator-field=text]").nth(3)).to_have_text('<b>bold</b> & "quoted"')
    expect(page.locator(".bk-Figure, .bk-Canvas").first).to_be_attached()  # the histogram

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the scored CSV").click()
    download = download_info.value
    assert download.suggested_filename == "scored_tweets.csv"
    scored = list(csv.DictReader(io.StringIO(download.path().read_text())))
    assert [(row["id"], row["text"]) for row in scored] == rows
    assert [row["valid"] for row in scored] == ["True", "False", "True", "True", "True"]
    for row in scored:
        if row["valid"] == "True":
            proba, threshold = float(row["proba_negative"]), float(row["threshold"])
            assert row["label"] == ("negative" if proba >= threshold else "not_negative")
            assert row["model_version"].startswith("baseline:")
        else:
            assert row["label"] == row["proba_negative"] == ""


def test_flagging_a_prediction_wrong_stores_it(page, dashboard):
    text = "flight delayed 5 hours, no food, no info"
    open_dashboard(page, dashboard.app_url)
    predict(page, text)
    predicted = page.locator("#result-label").inner_text()
    true_label = {"negative": "not_negative", "not_negative": "negative"}[predicted]

    page.get_by_role("button", name=f"Wrong: it is {true_label}").click()
    expect(page.locator("#feedback-status")).to_contain_text("prediction marked wrong", timeout=WAIT_MS)
    expect(page.get_by_role("button", name=f"Wrong: it is {true_label}")).to_be_disabled()

    with sqlite3.connect(dashboard.feedback_db) as connection:
        rows = connection.execute(
            "SELECT predicted_label, true_label, is_correct, proba_negative, threshold, model_version "
            "FROM feedback WHERE text = ?",
            (text,),
        ).fetchall()
    assert len(rows) == 1
    stored_predicted, stored_true, is_correct, proba, stored_threshold, model_version = rows[0]
    assert (stored_predicted, stored_true, is_correct) == (predicted, true_label, 0)
    assert proba == pytest.approx(float(page.locator("#result-proba").inner_text()), abs=1e-4)
    assert stored_threshold == pytest.approx(float(page.locator("#result-threshold").inner_text().split()[0]), abs=1e-4)
    assert model_version == page.locator("#result-model").inner_text()

    open_tab(page, "History")
    expect(page.locator(".tabulator-cell[tabulator-field=feedback]").first).to_have_text(f"wrong (true: {true_label})")


def test_feedback_the_store_refuses_is_kept_and_saved_once_the_lock_is_gone(page, dashboard):
    """Another writer holds the store: the page says so, keeps the verdict, and its retry saves it."""
    text = "could you check on my refund from March?"
    open_dashboard(page, dashboard.app_url)
    predict(page, text)
    other_writer = sqlite3.connect(dashboard.feedback_db, isolation_level=None)
    other_writer.execute("BEGIN EXCLUSIVE")
    try:
        page.get_by_role("button", name=re.compile("^Wrong")).click()
        expect(page.locator("#feedback-status")).to_contain_text("is locked by another writer")
        expect(page.locator("#feedback-status")).to_contain_text("1 verdict kept in this page")
    finally:
        other_writer.execute("ROLLBACK")
        other_writer.close()
    expect(page.locator("#feedback-status")).to_contain_text("prediction marked wrong")  # the retry, no click
    with sqlite3.connect(dashboard.feedback_db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM feedback WHERE text = ?", (text,)).fetchone()[0] == 1


def test_script_in_a_tweet_is_shown_as_text(page, dashboard):
    text = '<script>alert("xss")</script><img src="x" onerror="alert(\'img\')"> <b>bold</b>'
    open_dashboard(page, dashboard.app_url)
    predict(page, text)  # asserts the literal text is what the result shows
    open_tab(page, "History")
    expect(page.locator(".tabulator-cell[tabulator-field=text]").first).to_have_text(text)

    assert page.locator("img[src='x']").count() == 0
    assert page.locator("b", has_text="bold").count() == 0
    assert page.dialogs == []


def test_markup_in_csv_column_names_and_cells_is_shown_as_text(page, dashboard, tmp_path):
    hostile_column = '<img src="x" onerror="alert(\'column\')">'
    hostile_cell = '<script>alert("cell")</script><b>bold</b>'
    upload = tmp_path / "hostile.csv"
    with upload.open("w", newline="") as handle:
        csv.writer(handle).writerows([(hostile_column, "text"), (hostile_cell, "late again")])
    no_text = tmp_path / "no_text.csv"
    with no_text.open("w", newline="") as handle:
        csv.writer(handle).writerows([(hostile_column, "<b>tweet</b>"), ("a", "b")])

    open_dashboard(page, dashboard.app_url)
    open_tab(page, "Batch")
    page.locator(BATCH_FILE_INPUT).set_input_files(upload)
    page.get_by_role("button", name="Score the file").click()
    expect(page.locator("#batch-status")).to_contain_text("Scored 1 tweets from hostile.csv")
    expect(page.locator(".tabulator-cell", has_text="alert")).to_have_text(hostile_cell)
    expect(page.locator(".tabulator-col-title", has_text="onerror")).to_have_text(hostile_column)

    page.locator(BATCH_FILE_INPUT).set_input_files(no_text)
    page.get_by_role("button", name="Score the file").click()
    expect(page.locator("#batch-status")).to_contain_text(f"columns found: {hostile_column}, <b>tweet</b>")
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("b", has_text="bold").count() == page.locator("b", has_text="tweet").count() == 0
    assert page.dialogs == []


def test_stopped_model_server_gives_a_plain_message_and_keeps_the_text(page, serve, baseline_run_id, start_dashboard):
    model_server = serve(f"runs:/{baseline_run_id}/model")
    dashboard = start_dashboard(model_server.url)
    open_dashboard(page, dashboard.app_url)
    predict(page, "first tweet while the server is up")

    model_server.stop()
    typed = "second tweet, typed after the server went away"
    page.locator("textarea").fill(typed)
    page.get_by_role("button", name="Predict").click()

    expect(page.locator("#message")).to_contain_text(f"Cannot reach the model server at {model_server.url}")
    expect(page.locator("#server-status")).to_contain_text("is not answering", timeout=WAIT_MS)
    expect(page.locator("textarea")).to_have_value(typed)
    expect(page.get_by_role("button", name="Predict")).to_be_enabled()

    open_tab(page, "Batch")  # the page stays usable: the batch tab reports the same failure
    upload = dashboard.feedback_db.parent / "one.csv"
    upload.write_text("text\nhello\n")
    page.locator(BATCH_FILE_INPUT).set_input_files(upload)
    page.get_by_role("button", name="Score the file").click()
    expect(page.locator("#batch-status")).to_contain_text("Cannot reach the model server", timeout=WAIT_MS)
    open_tab(page, "Predict")
    expect(page.locator("textarea")).to_have_value(typed)
    assert "batch one.csv: 0 rows scored in 0 ms, stopped: Cannot reach the model server" in dashboard.log()
    assert "Traceback" not in dashboard.log()
