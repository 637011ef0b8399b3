"""The HTTP client against a tiny scripted HTTP server on 127.0.0.1: request shape, errors, timeouts."""

from __future__ import annotations

import json
import threading
import time

import pytest

from dashboard.client import (
    DEFAULT_BATCH_REQUESTS,
    ModelClient,
    ModelServerError,
    Prediction,
    WordContribution,
    request_body,
)
from harness.servers import free_port
from tests.code.dashboard.conftest import contract_answer


@pytest.fixture
def server(fake_server):
    return fake_server


def closed_port_url() -> str:
    """A URL where nothing listens (bound then released), so connecting is refused."""
    return f"http://127.0.0.1:{free_port()}"


def test_request_uses_dataframe_split_with_text_column_and_threshold_param(server):
    scored = ModelClient(server.url).predict(["I hate delays", "ok"], threshold=0.3)

    method, path, body, content_type = server.requests[0]
    assert (method, path, content_type) == ("POST", "/invocations", "application/json")
    assert body == {
        "dataframe_split": {"columns": ["text"], "data": [["I hate delays"], ["ok"]]},
        "params": {"threshold": 0.3},
    }
    assert [p.proba_negative for p in scored.predictions] == [0.13, 0.02]
    assert {p.threshold for p in scored.predictions} == {0.3}
    assert scored.predictions[0].model_version == "baseline:0123456789abcdef0123456789abcdef"
    assert scored.latency_ms > 0


def test_no_threshold_leaves_params_out_so_the_model_default_applies(server):
    scored = ModelClient(server.url).predict(["text"])
    assert "params" not in server.requests[0][2]
    assert scored.predictions[0].threshold == 0.42
    assert request_body(["a"], None) == {"dataframe_split": {"columns": ["text"], "data": [["a"]]}}


def explained_answer(body: dict) -> tuple[int, str, bytes]:
    """The contract's answer with an explanation per row: each word's contribution is its length / 100."""
    texts = [row[0] for row in body["dataframe_split"]["data"]]
    rows = json.loads(contract_answer(body)[2])["predictions"]
    for text, row in zip(texts, rows, strict=True):
        row["explanation"] = [{"word": word, "contribution": len(word) / 100} for word in text.split()]
    return 200, "application/json", json.dumps({"predictions": rows}).encode()


def test_explain_is_asked_for_as_a_param_and_each_word_comes_back(server):
    server.reply = lambda path, body: explained_answer(body)
    scored = ModelClient(server.url).predict(["lost my bag"], threshold=0.3, explain=True)
    assert server.requests[0][2]["params"] == {"threshold": 0.3, "explain": True}
    assert scored.predictions[0].explanation == (
        WordContribution("lost", 0.04),
        WordContribution("my", 0.02),
        WordContribution("bag", 0.03),
    )


def test_without_explain_the_request_and_the_predictions_are_as_before(server):
    scored = ModelClient(server.url).predict(["lost my bag"])
    assert "params" not in server.requests[0][2]
    assert scored.predictions[0].explanation is None
    assert request_body(["a"], 0.5, explain=False) == request_body(["a"], 0.5)


@pytest.mark.parametrize(
    ("explanation", "why"),
    [(None, "no explanation, though one was asked for"), ("lost", "a broken explanation"), ([{"w": 1}], "broken")],
)
def test_a_missing_or_broken_explanation_is_a_bad_response(server, explanation, why):
    row = {"label": "negative", "proba_negative": 0.9, "threshold": 0.5, "model_version": "baseline:x"}
    payload = json.dumps({"predictions": [row | ({} if explanation is None else {"explanation": explanation})]})
    server.reply = lambda path, body: (200, "application/json", payload.encode())
    with pytest.raises(ModelServerError, match=why) as caught:
        ModelClient(server.url).predict(["lost my bag"], explain=True)
    assert caught.value.kind == "bad_response"


def test_top_words_are_those_that_pushed_the_served_label_strongest_first():
    explanation = (WordContribution("lost", 0.2), WordContribution("thanks", -0.3), WordContribution("bag", 0.4))
    flagged = Prediction("negative", 0.9, 0.5, "baseline:x", explanation=explanation)
    assert flagged.top_words() == ["bag", "lost"]
    assert flagged.top_words(1) == ["bag"]
    missed = Prediction("not_negative", 0.1, 0.5, "baseline:x", explanation=explanation)
    assert missed.top_words() == ["thanks"]
    assert Prediction("negative", 0.9, 0.5, "baseline:x").top_words() == []


def test_base_url_comes_from_model_server_url_with_the_documented_default(monkeypatch, server):
    monkeypatch.delenv("MODEL_SERVER_URL", raising=False)
    assert ModelClient().base_url == "http://127.0.0.1:5001"
    monkeypatch.setenv("MODEL_SERVER_URL", server.url + "/")
    client = ModelClient()
    assert client.base_url == server.url
    client.predict(["x"])
    assert server.requests[0][1] == "/invocations"


def test_connection_refused_is_a_plain_unreachable_error():
    url = closed_port_url()
    with pytest.raises(ModelServerError) as caught:
        ModelClient(url, timeout=2).predict(["hello"])
    assert caught.value.kind == "unreachable"
    assert f"Cannot reach the model server at {url}" in caught.value.message
    assert "MODEL_SERVER_URL" in caught.value.message
    assert "Traceback" not in str(caught.value) and "HTTPConnectionPool" not in str(caught.value)


def test_slow_server_times_out_with_a_plain_message(server):
    release = threading.Event()

    def slow(path, body):
        release.wait(5)
        return server.contract_answer(body)

    server.reply = slow
    started = time.monotonic()
    with pytest.raises(ModelServerError) as caught:
        ModelClient(server.url, timeout=0.5).predict(["hello"])
    elapsed = time.monotonic() - started
    release.set()
    assert caught.value.kind == "timeout"
    assert "did not answer within 0.5 seconds" in caught.value.message
    assert elapsed < 4  # the call gave up at its timeout instead of waiting for the server


def test_400_shows_mlflows_message_without_the_input_dump(server):
    message = "Failed to predict data '  text\n0   ok\n1     '. \nError: row 1: text is empty"
    payload = {"error_code": "INVALID_PARAMETER_VALUE", "message": message}
    server.reply = lambda path, body: (400, "application/json", json.dumps(payload).encode())
    with pytest.raises(ModelServerError) as caught:
        ModelClient(server.url).predict(["ok", " "])
    assert caught.value.kind == "rejected"
    assert caught.value.status == 400
    assert caught.value.message == "The model server rejected the request (HTTP 400): row 1: text is empty"


def test_500_with_a_non_json_body_is_a_server_error_quoting_the_body(server):
    server.reply = lambda path, body: (500, "text/html", b"<html>Internal Server Error</html>")
    with pytest.raises(ModelServerError) as caught:
        ModelClient(server.url).predict(["x"])
    assert caught.value.kind == "server_error"
    assert caught.value.status == 500
    assert "failed while scoring (HTTP 500): <html>Internal Server Error</html>" in caught.value.message


def test_500_with_mlflow_json_uses_its_message(server):
    payload = json.dumps({"error_code": "INTERNAL_ERROR", "message": "model crashed"}).encode()
    server.reply = lambda path, body: (503, "application/json", payload)
    with pytest.raises(ModelServerError, match=r"\(HTTP 503\): model crashed$"):
        ModelClient(server.url).predict(["x"])


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"not json at all", "not JSON"),
        (b'{"result": []}', "no 'predictions' list"),
        (b'{"predictions": []}', "0 predictions for 1 tweets"),
        (b'{"predictions": [{"label": "negative"}]}', "lacks label, proba_negative or threshold"),
        (b'{"predictions": [{"label": "angry", "proba_negative": 0.9, "threshold": 0.5}]}', "unknown label"),
    ],
)
def test_answers_that_are_not_predictions_are_bad_responses(server, payload, why):
    server.reply = lambda path, body: (200, "application/json", payload)
    with pytest.raises(ModelServerError) as caught:
        ModelClient(server.url).predict(["x"])
    assert caught.value.kind == "bad_response"
    assert why in caught.value.message


def test_large_batches_go_in_chunks_in_order_with_progress(server):
    texts = [f"tweet number {i}" + "!" * i for i in range(7)]
    progress: list[tuple[int, int]] = []
    client = ModelClient(server.url)
    scored = client.predict_in_chunks(texts, 0.2, chunk_rows=3, on_progress=lambda *p: progress.append(p))

    sent = [[row[0] for row in body["dataframe_split"]["data"]] for _, _, body, _ in server.requests]
    assert sent == [texts[0:3], texts[3:6], texts[6:7]]
    assert all(body["params"] == {"threshold": 0.2} for _, _, body, _ in server.requests)
    assert [p.proba_negative for p in scored.predictions] == [len(text) / 100 for text in texts]
    assert progress == [(3, 7), (6, 7), (7, 7)]


def test_file_chunks_of_every_client_share_two_slots_and_a_typed_prediction_needs_none(server):
    """Ten testers' chunks in flight at once once made a typed prediction wait past its timeout."""
    release, lock = threading.Event(), threading.Lock()
    in_flight, peak = [0], [0]
    healthy = server.reply

    def hold_chunks(path, body):
        if len(body["dataframe_split"]["data"]) > 1:
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            release.wait(20)
            with lock:
                in_flight[0] -= 1
        return healthy(path, body)

    server.reply = hold_chunks
    files = [[f"file {number} tweet {i}" for i in range(4)] for number in range(5)]
    threads = [
        threading.Thread(target=ModelClient(server.url).predict_in_chunks, args=(texts,), kwargs={"chunk_rows": 2})
        for texts in files
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in range(200):
            if in_flight[0] == DEFAULT_BATCH_REQUESTS:
                break
            time.sleep(0.05)
        typed = ModelClient(server.url).predict(["typed while both slots are held"])
        assert typed.predictions[0].label in {"negative", "not_negative"}
        assert in_flight[0] == DEFAULT_BATCH_REQUESTS
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert peak[0] == DEFAULT_BATCH_REQUESTS
    assert len(server.requests) == len(files) * 2 + 1


def test_a_batch_that_fits_is_one_request(server):
    ModelClient(server.url, chunk_rows=100).predict_in_chunks(["a", "b", "c"])
    assert len(server.requests) == 1


def test_a_failing_chunk_keeps_what_was_scored_and_names_the_rows_left(server):
    def reject_second_chunk(path, body):
        if body["dataframe_split"]["data"][0][0] == "t3":
            payload = {"error_code": "INVALID_PARAMETER_VALUE", "message": "row 1: text is empty"}
            return 400, "application/json", json.dumps(payload).encode()
        return server.contract_answer(body)

    server.reply = reject_second_chunk
    texts = [f"t{i}" for i in range(8)]
    scored = ModelClient(server.url).predict_in_chunks(texts, chunk_rows=3)
    assert len(scored.predictions) == 3  # the first chunk's predictions are kept
    assert scored.failure.kind == "rejected"
    assert "row 4: text is empty" in scored.failure.message
    assert "(rows 3-7 of 8 not scored; 3 rows were scored)" in scored.failure.message

    server.reply = lambda path, body: server.contract_answer(body)
    rest = ModelClient(server.url).predict_in_chunks(texts, chunk_rows=3, start=3)
    assert rest.failure is None and len(rest.predictions) == 5
    sent = [[row[0] for row in body["dataframe_split"]["data"]] for _, _, body, _ in server.requests]
    assert sent[-2:] == [texts[3:6], texts[6:8]]  # the retry re-sends none of the scored rows


def test_ping_and_version(server):
    server.reply = lambda path, body: (200, "text/plain", b"3.17.2\n" if path == "/version" else b"\n")
    client = ModelClient(server.url)
    assert client.ping() is True
    assert client.version() == "3.17.2"
    assert ModelClient(closed_port_url(), timeout=1).ping() is False
    server.reply = lambda path, body: (503, "text/plain", b"loading")
    assert client.ping() is False
