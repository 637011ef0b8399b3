"""Error answers reach the client without MLflow's stack trace; the trace reaches the server's log."""

from __future__ import annotations

import asyncio
import json
import logging

from pyfunc.limits import ServingLimits
from pyfunc.request_guard import RequestGuard

TRACE = 'Traceback (most recent call last):\n  File "/opt/venv/lib/python3.11/site-packages/mlflow/x.py"\n'


def answer(status: int, document: dict, path: str = "/invocations") -> tuple[int, dict, bytes]:
    """What a client gets through the guard from an app that answers `document` in two body chunks."""
    payload = json.dumps(document).encode()

    async def app(scope, receive, send) -> None:
        await receive()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload[:10], "more_body": True})
        await send({"type": "http.response.body", "body": payload[10:]})

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b'{"inputs": {"text": ["late"]}}', "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "path": path,
        "method": "POST",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"30")],
    }
    asyncio.run(RequestGuard(app, ServingLimits(max_rows=2_000, max_bytes=1 << 20))(scope, receive, send))
    start = sent[0]
    body = b"".join(message.get("body", b"") for message in sent[1:])
    headers = dict(start["headers"])
    assert int(headers[b"content-length"]) == len(body), "the declared length must match the body sent"
    return start["status"], json.loads(body), body


def test_an_error_answer_keeps_its_message_and_loses_its_trace_to_the_log(caplog):
    with caplog.at_level(logging.ERROR, logger="pyfunc.error_answers"):
        status, document, body = answer(
            400, {"error_code": "BAD_REQUEST", "message": "row 1: text is null", "stack_trace": TRACE}
        )
    assert status == 400
    assert document == {"error_code": "BAD_REQUEST", "message": "row 1: text is null"}
    assert b"Traceback" not in body and b"stack_trace" not in body
    assert "row 1: text is null" in caplog.text and "Traceback (most recent call last)" in caplog.text


def test_a_server_error_loses_its_trace_too():
    status, document, _ = answer(500, {"error_code": "INTERNAL_ERROR", "message": "boom", "stack_trace": TRACE})
    assert status == 500 and document == {"error_code": "INTERNAL_ERROR", "message": "boom"}


def test_a_successful_answer_passes_unchanged():
    predictions = {"predictions": [{"label": "negative", "stack_trace": "a tweet may say anything"}]}
    status, document, _ = answer(200, predictions)
    assert status == 200 and document == predictions


def test_other_paths_are_cleaned_as_well():
    status, document, _ = answer(404, {"message": "no such route", "stack_trace": TRACE}, path="/nowhere")
    assert status == 404 and document == {"message": "no such route"}
