"""Error answers without stack traces: the trace goes to the server's log, never to the client.

MLflow's scoring server puts a Python traceback in its JSON error body (`stack_trace`, from
`_handle_serving_error` and its catch-all in `invocations`). A traceback tells a caller the code's
paths, versions and internals and tells a support agent nothing; the message stays, the trace is
logged server-side (docs/design.md, "Serving limits"). `pyfunc.request_guard.RequestGuard` wraps
every response's `send` with `without_stack_traces`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

TRACE_KEY = "stack_trace"
_log = logging.getLogger(__name__)


def strip_trace(body: bytes, path: str) -> bytes:
    """The JSON error body without its `stack_trace`, which is logged instead; any other body unchanged.

    Args:
        body: a complete error response body.
        path: the request's path, named in the log line.

    Returns:
        The body the client gets.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict) or TRACE_KEY not in document:
        return body
    trace = document.pop(TRACE_KEY)
    _log.error("error answer on %s: %s\n%s", path, document.get("message", ""), trace)
    return json.dumps(document).encode()


def without_stack_traces(send: Send, path: str) -> Send:
    """A `send` that holds back an error response (status >= 400) until its body is complete, then strips its trace.

    Successful responses pass through untouched and unbuffered.

    Args:
        send: the server's ASGI send.
        path: the request's path, for the log line.

    Returns:
        The wrapped send.
    """
    start: Message | None = None
    chunks: list[bytes] = []

    async def send_clean(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start" and message.get("status", 200) >= 400:
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = strip_trace(b"".join(chunks), path)
        headers = [(key, value) for key, value in start.get("headers", []) if key.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return send_clean
