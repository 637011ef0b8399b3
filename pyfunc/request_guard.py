"""The scoring server's front door: size, nesting, rows and content type, judged before MLflow parses a byte.

A plain ASGI middleware. MLflow's scoring server has no hook for one, so `pyfunc.scoring_server_shim`
adds it to the server's app, on the MLflow and FastAPI versions that was verified with
(docs/design.md, "Serving limits").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlflow.pyfunc.scoring_server import CONTENT_TYPES

from pyfunc.error_answers import without_stack_traces
from pyfunc.limits import (
    REQUEST_ARRIVED,
    LimitExceeded,
    ServingLimits,
    csv_refusal,
    json_refusal,
    parquet_refusal,
    refusal_body,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GUARDED_PATH = "/invocations"
INLINE_JUDGE_BYTES = 64 * 1024
_large_body_judges = ThreadPoolExecutor(max_workers=2, thread_name_prefix="request-guard")


class RequestGuard:
    """ASGI middleware: a 413 for a body over the byte limit, a 400 for JSON that MLflow's parser would
    fail on (nested too deep, a number too long to read) and for JSON or CSV of more rows than the limit
    (MLflow would parse them all first) or Parquet whose footer states more, a 415 for no content type
    (MLflow's handler fails on it with a 500); else the app, whose error answers lose their stack trace
    to the log (`pyfunc.error_answers`). Nothing here costs more than linear time on the event loop."""

    def __init__(self, app: ASGIApp, limits: ServingLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            send = without_stack_traces(send, scope.get("path", ""))
        if scope["type"] != "http" or scope.get("path") != GUARDED_PATH or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        REQUEST_ARRIVED.set(time.monotonic())  # the scoring deadline counts from here (pyfunc.limits)
        content_type = header(scope, b"content-type")
        if not content_type:
            message = f"send a Content-Type header, one of {', '.join(CONTENT_TYPES)}"
            await respond(send, 415, refusal_body(LimitExceeded(message)))
            return
        try:
            self.limits.check_body_size(declared_length(scope))
            body = await self.read_body(receive)
        except LimitExceeded as refusal:
            await respond(send, refusal.status, refusal_body(refusal))
            return
        except ClientGone:
            return
        refused_because = await judge(body, content_type, self.limits)
        if refused_because:
            refusal = LimitExceeded(refused_because)
            await respond(send, refusal.status, refusal_body(refusal))
            return
        await self.app(scope, replay(body, receive), send)

    async def read_body(self, receive: Receive) -> bytes:
        """The whole body, refused as soon as it passes the limit (a chunked body declares no length)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            self.limits.check_body_size(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def judge(body: bytes, content_type: str, limits: ServingLimits) -> str | None:
    """`json_refusal`, `csv_refusal` or `parquet_refusal` for the body by its content type, off the event
    loop when it is large.

    A 10 MiB body takes a few hundred ms and a few hundred MiB of numpy scratch to judge, so large
    bodies take turns on two threads of their own: `/ping` never waits, a burst of large bodies
    cannot multiply the memory, and none of them waits behind the scoring threads MLflow's server
    shares. A small body is judged in place in a millisecond or two.
    """
    scan = _SCANS.get(next((kind for kind in _SCANS if kind in content_type), ""))
    if scan is None:
        return None  # another content type: MLflow's own answer
    if len(body) <= INLINE_JUDGE_BYTES:
        return scan(body, limits)
    return await asyncio.get_running_loop().run_in_executor(_large_body_judges, scan, body, limits)


_SCANS: dict[str, Callable[[bytes, ServingLimits], str | None]] = {
    "json": json_refusal,
    "csv": csv_refusal,
    "parquet": parquet_refusal,  # compressed columns: 56 KB can hold 20 M rows, so its footer is read
}


class ClientGone(Exception):
    """The client hung up before its body arrived: nothing to answer, nothing to score."""


def header(scope: Scope, name: bytes) -> str:
    """One request header, lower-cased, or '' when absent."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1").lower()
    return ""


def declared_length(scope: Scope) -> int:
    """The Content-Length the client declared, 0 when absent or unreadable (the body is counted as it arrives)."""
    try:
        return int(header(scope, b"content-length") or 0)
    except ValueError:
        return 0


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then passes on what the client sends next."""
    delivered = False

    async def receive_again() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


async def respond(send: Send, status: int, body: bytes) -> None:
    """A complete JSON response; the connection stays usable for the client's next request."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
