"""Sign-in and roles in Debian's Chromium against the real `panel serve` with Panel's basic auth.

Two testers disagree on a tweet, the tweet lands in the reviewer's queue, the reviewer decides, and
only then is it an agreed verdict. The model server is the scripted one (conftest.py): what is tested
here is who may do what, not the model.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.code.dashboard.test_browser import WAIT_MS, open_tab, predict

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "rita": "rita-pw"}
ROLES = {"alice": "tester", "bob": "tester", "rita": "reviewer"}
TWEET = "@united my bag went to Denver and I did not"


SESSION_SECONDS = 15  # the expiry test's session length: long enough to sign in on a busy machine


def serve_signed(fake_server, start_dashboard, tmp_path, **env: str):
    """The dashboard as the README serves it for a local team: basic auth, a roles file, 127.0.0.1."""
    credentials, roles = tmp_path / "credentials.json", tmp_path / "roles.json"
    credentials.write_text(json.dumps(PASSWORDS))
    roles.write_text(json.dumps(ROLES))
    args = ("--basic-auth", str(credentials), "--cookie-secret", "a-test-cookie-secret-of-some-length")
    # `/ping` and `/version` (GET, no body) answer as a healthy server does, so the page says it is up.
    fake_server.reply = lambda path, body: (
        (200, "text/plain", b"ok") if body is None else fake_server.contract_answer(body)
    )
    return start_dashboard(fake_server.url, args, DASHBOARD_ROLES=str(roles), **env)


@pytest.fixture
def signed_dashboard(fake_server, start_dashboard, tmp_path):
    return serve_signed(fake_server, start_dashboard, tmp_path)


def sign_in(browser: Browser, app_url: str, name: str, password: str | None = None) -> Page:
    """A fresh browser (its own cookies) through Panel's login form."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(app_url)
    page.locator("input[name=username]").fill(name)
    page.locator("input[name=password]").fill(password or PASSWORDS[name])
    page.get_by_role("button", name="Login").click()
    return page


def test_a_wrong_password_is_refused_and_the_right_one_shows_the_name(browser, signed_dashboard):
    refused = sign_in(browser, signed_dashboard.app_url, "alice", "not-her-password")
    expect(refused.locator(".errormessage")).to_have_text("Invalid username or password!", timeout=WAIT_MS)
    expect(refused.locator("textarea")).to_have_count(0)

    page = sign_in(browser, signed_dashboard.app_url, "alice")
    expect(page.locator("#signed-in")).to_have_text("alice (tester)", timeout=WAIT_MS)
    open_tab(page, "Review queue")  # a tester opening the reviewer's queue: a sentence, no decision
    expect(page.locator("#review-status")).to_contain_text("The review queue is for reviewers")
    expect(page.get_by_role("button", name="Decide: negative")).to_have_count(0)


def test_two_testers_disagree_and_the_reviewer_decides(browser, signed_dashboard):
    for tester, button in (("alice", "Wrong"), ("bob", "Right")):
        page = sign_in(browser, signed_dashboard.app_url, tester)
        expect(page.locator("#signed-in")).to_have_text(f"{tester} (tester)", timeout=WAIT_MS)
        predict(page, TWEET)
        page.get_by_role("button", name=f"{button}: it is", exact=False).click()
        expect(page.locator("#feedback-status")).to_contain_text("Saved as feedback", timeout=WAIT_MS)
        page.context.close()

    reviewer = sign_in(browser, signed_dashboard.app_url, "rita")
    expect(reviewer.locator("#signed-in")).to_have_text("rita (reviewer)", timeout=WAIT_MS)
    open_tab(reviewer, "Review queue")
    card = reviewer.locator("#conflict-0")
    expect(card).to_contain_text(TWEET, timeout=WAIT_MS)
    expect(card).to_contain_text("alice: not_negative")
    expect(card).to_contain_text("bob: negative")
    with sqlite3.connect(signed_dashboard.feedback_db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM agreed_verdicts").fetchone()[0] == 0  # a conflict waits

    reviewer.get_by_role("button", name="Decide: negative").click()
    expect(reviewer.locator("#review-status")).to_contain_text("Decided: negative", timeout=WAIT_MS)
    expect(reviewer.locator("#conflict-0")).to_have_count(0)
    with sqlite3.connect(signed_dashboard.feedback_db) as connection:
        who = connection.execute("SELECT user_name, role FROM feedback ORDER BY id").fetchall()
        agreed = connection.execute("SELECT text, true_label, agreed_by FROM agreed_verdicts").fetchall()
    assert who == [("alice", "tester"), ("bob", "tester"), ("rita", "reviewer")]
    assert agreed == [(TWEET, "negative", "reviewer")]


def test_an_expired_session_goes_back_to_the_login_page(browser, fake_server, start_dashboard, tmp_path):
    # Basic auth's session length is PANEL_OAUTH_EXPIRY, in days (`--oauth-expiry-days` is for OAuth only).
    dashboard = serve_signed(fake_server, start_dashboard, tmp_path, PANEL_OAUTH_EXPIRY=str(SESSION_SECONDS / 86_400))
    page = sign_in(browser, dashboard.app_url, "alice")
    expect(page.locator("#signed-in")).to_have_text("alice (tester)", timeout=WAIT_MS)
    page.wait_for_timeout(SESSION_SECONDS * 1000 + 1000)
    page.goto(dashboard.app_url)
    expect(page.locator("input[name=username]")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#signed-in")).to_have_count(0)
