"""Why flagged, on the page, without a browser: the typed tweet's explanation, a file's rows on demand,
and the top words a wrong verdict sends (docs/design.md, "Why flagged, on the page")."""

from __future__ import annotations

import asyncio
import json

from dashboard import client as client_module
from dashboard import feedback as feedback_module
from dashboard.client import ModelClient
from dashboard.feedback import FeedbackStore
from dashboard.session import Dashboard
from pyfunc import limits
from tests.code.dashboard.conftest import answer_without_explanations

CSV = b"id,text\n1,lost my bag again\n2,\n3,great crew\n4,delayed four hours no food\n"


def new_session(fake_server, tmp_path) -> Dashboard:
    return Dashboard(ModelClient(fake_server.url, timeout=2), FeedbackStore(tmp_path / "feedback.db"))


def invocations(fake_server) -> list[dict]:
    return [body for _, path, body, _ in fake_server.requests if path == "/invocations"]


def test_the_page_and_the_server_agree_on_the_explained_rows_limit():
    assert client_module.MAX_EXPLAINED_ROWS_ENV == limits.MAX_EXPLAINED_ROWS_ENV
    assert client_module.DEFAULT_MAX_EXPLAINED_ROWS == limits.DEFAULT_MAX_EXPLAINED_ROWS


def test_a_typed_tweet_is_explained_in_its_one_request_and_shown_shaded(fake_server, tmp_path):
    session = new_session(fake_server, tmp_path)
    session.tweet_view.tweet.value = "lost <my> luggage"
    asyncio.run(session.tweet_view._on_predict())

    assert [body.get("params") for body in invocations(fake_server)] == [{"explain": True}]
    shown = session.tweet_view.explanation.object
    assert 'id="explained-tweet-word-2" class="explained-word word-towards-negative"' in shown
    assert "&lt;my&gt;" in shown and "<my>" not in shown
    # proba 0.17 is not_negative, and every scripted word (len / 100) pushed the other way
    assert "Words that most pushed it to <i>not_negative</i>: none" in shown


def test_a_wrong_verdict_sends_the_top_words_the_page_showed(fake_server, tmp_path, monkeypatch):
    sent = []
    monkeypatch.setattr(feedback_module.telemetry, "emit_wrong_prediction", lambda **event: sent.append(event))
    session = new_session(fake_server, tmp_path)
    session.tweet_view.tweet.value = "x" * 50 + " lost luggage"  # proba 0.63: negative at the model's 0.42
    asyncio.run(session.tweet_view._on_predict())
    asyncio.run(session.tweet_view._on_wrong())

    assert session.tweet_view.last["prediction"].label == "negative"
    [event] = sent
    assert event["top_words"] == ("x" * 50, "luggage", "lost")
    assert session.store.count(wrong_only=True) == 1


def test_a_model_from_before_explanations_still_scores_and_says_why_there_are_no_highlights(fake_server, tmp_path):
    fake_server.reply = lambda path, body: answer_without_explanations(body)
    session = new_session(fake_server, tmp_path)
    session.tweet_view.tweet.value = "lost my bag"
    asyncio.run(session.tweet_view._on_predict())

    assert [body.get("params") for body in invocations(fake_server)] == [{"explain": True}, None]  # then plainly
    assert session.tweet_view.result_area.visible and "0.1100" in session.tweet_view.result.object
    assert 'id="explain-status"' in session.tweet_view.explanation.object
    assert "it may predate explanations" in session.tweet_view.explanation.object
    assert not session.tweet_view.predict_message.visible


def test_a_server_that_refuses_to_explain_still_scores_and_its_reason_is_shown(fake_server, tmp_path):
    refusal = json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": "explaining is off here"}).encode()

    def reply(path, body):
        if body.get("params", {}).get("explain"):
            return 400, "application/json", refusal
        return fake_server.contract_answer(body)

    fake_server.reply = reply
    session = new_session(fake_server, tmp_path)
    session.tweet_view.tweet.value = "lost my bag"
    asyncio.run(session.tweet_view._on_predict())
    assert session.tweet_view.result_area.visible
    assert "explaining is off here" in session.tweet_view.explanation.object


def scored_file(fake_server, tmp_path, monkeypatch, limit: str = "100") -> Dashboard:
    monkeypatch.setenv("MAX_EXPLAINED_ROWS_PER_REQUEST", limit)
    session = new_session(fake_server, tmp_path)
    asyncio.run(session.file_view._score_file(CSV, "tweets.csv"))
    fake_server.requests.clear()
    return session


def test_ticked_rows_of_a_file_are_explained_in_one_request(fake_server, tmp_path, monkeypatch):
    session = scored_file(fake_server, tmp_path, monkeypatch)
    view = session.file_view
    assert view.row_explainer.button.visible
    view.preview.selection = [3, 1, 0]  # row 1 has an empty text: nothing to explain
    asyncio.run(view._on_explain_rows())

    [body] = invocations(fake_server)
    assert body["params"] == {"explain": True}
    assert body["dataframe_split"]["data"] == [["lost my bag again"], ["delayed four hours no food"]]
    shown = view.row_explainer.explained.object
    assert 'id="explained-row-0"' in shown and 'id="explained-row-3"' in shown and 'id="explained-row-1"' not in shown
    assert 'id="explained-row-3-text-word-0"' in shown and "File row 4" in shown
    status = view.row_explainer.message.object
    assert "Explained 2 rows. 1 selected rows have no score" in status


def test_more_rows_than_the_limit_are_refused_in_a_plain_sentence_and_nothing_is_sent(
    fake_server, tmp_path, monkeypatch
):
    session = scored_file(fake_server, tmp_path, monkeypatch, limit="2")
    view = session.file_view
    view.preview.selection = [0, 2, 3]
    asyncio.run(view._on_explain_rows())

    assert invocations(fake_server) == []
    assert (
        "3 rows are selected; the model server explains at most 2 rows per request" in view.row_explainer.message.object
    )
    view.preview.selection = []
    asyncio.run(view._on_explain_rows())
    assert "Select rows in the table first" in view.row_explainer.message.object


def test_a_failed_explanation_says_why_and_a_new_file_clears_the_old_rows(fake_server, tmp_path, monkeypatch):
    session = scored_file(fake_server, tmp_path, monkeypatch)
    view = session.file_view
    view.preview.selection = [0]
    asyncio.run(view._on_explain_rows())
    assert view.row_explainer.explained.object
    fake_server.reply = lambda path, body: (500, "text/plain", b"boom")
    asyncio.run(view._on_explain_rows())
    assert "No explanation: The model server failed while scoring (HTTP 500): boom" in view.row_explainer.message.object
    assert not view.row_explainer.button.loading

    fake_server.reply = lambda path, body: fake_server.contract_answer(body)
    asyncio.run(view._score_file(CSV, "other.csv"))
    assert view.row_explainer.explained.object == "" and view.preview.selection == []
