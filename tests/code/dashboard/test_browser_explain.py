"""Why flagged, on the page, in Chromium against a real `mlflow models serve` of the tiny baseline.

A typed tweet comes back with its words shaded; a file's ticked rows are explained on demand, at most
the limit per request; a wrong verdict sends the top words the page showed; a model that will not
explain still scores (docs/design.md, "Why flagged, on the page").
"""

from __future__ import annotations

import csv
import json
import re

import pytest
from playwright.sync_api import Page, expect

from harness.appinsights_capture import CaptureServer, base_data, telemetry_env
from tests.code.dashboard.conftest import answer_without_explanations
from tests.code.dashboard.test_browser import BATCH_FILE_INPUT, WAIT_MS, open_dashboard, open_tab, predict

pytestmark = [pytest.mark.browser, pytest.mark.integration]

TWEET = "@united lost my bag again, worst airline ever <b>really</b>"
WORD_CLASSES = {"word-towards-negative", "word-against-negative", "word-neutral"}
ROWS = [
    ("1", "I hate delays, worst airline"),
    ("2", "great crew, thanks for the upgrade"),
    ("3", "lost my luggage again"),
    ("4", "<i>where</i> is my refund"),
]


def explained_words(page: Page, element_id: str) -> list[tuple[str, str, float]]:
    """(shown word, direction class, contribution) of each shaded word under `element_id`, in text order."""
    spans = page.locator(f"#{element_id} .explained-word")
    return [
        (
            span.inner_text(),
            next(name for name in span.get_attribute("class").split() if name.startswith("word-")),
            float(span.get_attribute("data-contribution")),
        )
        for span in spans.all()
    ]


def test_a_typed_tweet_shows_its_words_shaded_by_their_push(page, dashboard):
    open_dashboard(page, dashboard.app_url)
    predict(page, TWEET)

    words = TWEET.split()
    expect(page.locator("#explained-tweet .explained-word")).to_have_count(len(words), timeout=WAIT_MS)
    shown = explained_words(page, "explained-tweet")
    assert [word for word, _, _ in shown] == words  # the tweet's own words, markup shown literally
    assert {kind for _, kind, _ in shown} <= WORD_CLASSES
    strongest = max(shown, key=lambda entry: abs(entry[2]))
    assert strongest[0] in words and strongest[2] != 0
    expect(page.locator(f"#explained-tweet-word-{words.index(strongest[0])}")).to_have_class(
        re.compile(r"word-(towards|against)-negative")
    )
    expect(page.locator(".explain-legend")).to_contain_text("pushed it towards negative")
    expect(page.locator("#explained-tweet-top")).to_contain_text("Words that most pushed it to")
    assert page.locator("b", has_text="really").count() == 0 and page.dialogs == []


def upload_and_score(page: Page, app_url: str, tmp_path) -> None:
    upload = tmp_path / "tweets.csv"
    with upload.open("w", newline="") as handle:
        csv.writer(handle).writerows([("id", "text"), *ROWS])
    open_dashboard(page, app_url)
    open_tab(page, "Batch")
    page.locator(BATCH_FILE_INPUT).set_input_files(upload)
    page.get_by_role("button", name="Score the file").click()
    expect(page.locator("#batch-status")).to_contain_text(f"Scored {len(ROWS)} tweets", timeout=WAIT_MS)


def tick(page: Page, row: int) -> None:
    """Tick a preview row's selection box (Tabulator's checkbox column)."""
    page.locator(".batch-preview .tabulator-row").nth(row).locator("input[type=checkbox]").click()


def test_ticked_file_rows_are_explained_on_demand_up_to_the_limit(page, model_server, start_dashboard, tmp_path):
    limited = start_dashboard(model_server.url, MAX_EXPLAINED_ROWS_PER_REQUEST="2")
    upload_and_score(page, limited.app_url, tmp_path)
    explain = page.get_by_role("button", name="Explain selected rows")

    tick(page, 0)
    tick(page, 3)
    explain.click()
    expect(page.locator("#explain-rows-status")).to_contain_text("Explained 2 rows.", timeout=WAIT_MS)
    for position in (0, 3):
        row = page.locator(f"#explained-row-{position}")
        expect(row).to_contain_text(f"File row {position + 1}")
        words = ROWS[position][1].split()
        expect(row.locator(".explained-word")).to_have_count(len(words))
        assert [word for word, _, _ in explained_words(page, f"explained-row-{position}-text")] == words
    expect(page.locator("#explained-row-1")).to_have_count(0)
    assert page.locator("i", has_text="where").count() == 0  # a row's markup is shown as text

    tick(page, 1)  # a third row: over the limit of 2
    explain.click()
    expect(page.locator("#explain-rows-status")).to_have_text(
        "3 rows are selected; the model server explains at most 2 rows per request. "
        "Select 2 or fewer and press “Explain selected rows” again."
    )


def test_a_wrong_verdict_sends_the_top_words_the_page_showed(page, model_server, start_dashboard, tmp_path):
    with CaptureServer() as capture:
        env = {**telemetry_env(capture.port), "TMPDIR": str(tmp_path), "TELEMETRY_SEND_TEXT": "true"}
        watched = start_dashboard(model_server.url, **env)
        open_dashboard(page, watched.app_url)
        predict(page, TWEET)
        top = page.locator("#explained-tweet-top .top-word")
        expect(top.first).to_be_visible(timeout=WAIT_MS)
        shown = top.all_inner_texts()
        page.get_by_role("button", name=re.compile("^Wrong")).click()
        expect(page.locator("#feedback-status")).to_contain_text("prediction marked wrong", timeout=WAIT_MS)

        def wrong_predictions() -> list[dict]:
            events = [base_data(envelope) for envelope in capture.of_type("EventData")]
            return [event for event in events if event.get("name") == "wrong_prediction"]

        [event] = capture.wait_for(wrong_predictions, timeout=60)
    assert 1 <= len(shown) <= 3 and all(word in TWEET.split() for word in shown)
    assert json.loads(event["properties"]["top_words"]) == shown
    assert event["properties"]["text"] == TWEET


def test_a_model_that_will_not_explain_still_scores_and_says_why(page, fake_server, start_dashboard):
    fake_server.reply = lambda path, body: (
        (200, "text/plain", b"ok") if body is None else answer_without_explanations(body)
    )
    old = start_dashboard(fake_server.url)
    open_dashboard(page, old.app_url)
    predict(page, "lost my bag")

    expect(page.locator("#result-proba")).to_have_text("0.1100")
    expect(page.locator("#explain-status")).to_contain_text("No word highlights for this tweet, only its score")
    expect(page.locator("#explain-status")).to_contain_text("it may predate explanations")
    expect(page.locator(".explained-word")).to_have_count(0)
