"""The queued-message fix for Panel's websocket writer, on the exact interleaving that lost a page's update."""

from __future__ import annotations

import asyncio
import logging

from bokeh.document import Document
from panel.io import document as panel_document

from dashboard import panel_fixes
from tests.conftest import REPO


class FakeSocket:
    """Stands for the browser's websocket: Panel writes to it through `extra_socket_handlers`."""


class FakeConnection:
    def __init__(self) -> None:
        self._socket = FakeSocket()
        self.protocol = self

    @staticmethod
    def create(kind: str, events: list[str]) -> list[str]:
        return list(events)  # a "message" is its events, so the test reads what reached the socket


def stock_writer():
    writer = panel_document._dispatch_msgs
    return getattr(writer, "__wrapped__", writer)  # dashboard.app may have patched this process already


async def race(monkeypatch) -> tuple[list[str], dict]:
    """Two changes of one page while the socket is busy, the first writer finishing as the second is queued.

    Returns:
        What reached the socket, and what was left in Panel's queue once every write completed.
    """
    loop = asyncio.get_running_loop()
    sent: list[str] = []
    writes: list[asyncio.Future] = []

    def write(connection, msg=None) -> list[asyncio.Future]:
        sent.extend(msg)
        writes.append(loop.create_future())  # a socket write that completes when the test says so
        return writes[-1:]

    monkeypatch.setitem(panel_document.extra_socket_handlers, FakeSocket, write)
    doc, connection = Document(), FakeConnection()
    panel_document.schedule_write_events(doc, [connection], ["Scoring 1 tweets…"])
    for _ in range(2):  # the first writer sends and waits on its socket write
        await asyncio.sleep(0)
    assert sent == ["Scoring 1 tweets…"]
    writes[0].set_result(None)  # that write completes: the first writer's wake-up is queued...
    panel_document.schedule_write_events(doc, [connection], ["Cannot reach the model server"])  # ...before this
    for _ in range(5):
        await asyncio.sleep(0.01)
        for pending in writes:
            if not pending.done():
                pending.set_result(None)
    return sent, panel_document._WRITE_MSGS.get(doc) or {}


def test_stock_panel_leaves_the_second_change_queued_for_good(monkeypatch):
    # The failure the fix exists for (since holoviz/panel#8623). The canary: once a Panel release passes
    # this scenario, the fix can go (dashboard/panel_fixes.py).
    monkeypatch.setattr(panel_document, "_dispatch_msgs", stock_writer())

    sent, queued = asyncio.run(race(monkeypatch))

    assert sent == ["Scoring 1 tweets…"]
    assert [messages for messages in queued.values()] == [[["Cannot reach the model server"]]]


def test_with_the_fix_the_change_queued_behind_a_finishing_writer_reaches_the_page(monkeypatch):
    monkeypatch.setattr(panel_document, "_dispatch_msgs", stock_writer())
    assert panel_fixes.send_queued_messages()

    sent, queued = asyncio.run(race(monkeypatch))

    assert sent == ["Scoring 1 tweets…", "Cannot reach the model server"]
    assert not any(queued.values())


def test_the_writer_is_patched_once_however_often_the_app_module_runs(monkeypatch):
    original = stock_writer()
    monkeypatch.setattr(panel_document, "_dispatch_msgs", original)

    assert panel_fixes.send_queued_messages() and panel_fixes.send_queued_messages()

    assert panel_document._dispatch_msgs.__wrapped__ is original


def test_a_panel_without_that_writer_is_left_alone_and_says_so(monkeypatch, caplog):
    monkeypatch.delattr(panel_document, "_dispatch_msgs")

    with caplog.at_level(logging.WARNING, logger="dashboard.panel_fixes"):
        assert panel_fixes.send_queued_messages() is False

    assert "fix is not applied" in caplog.text
    assert not hasattr(panel_document, "_dispatch_msgs")


def test_any_other_panel_release_is_left_alone_and_the_log_says_where_to_look(monkeypatch, caplog):
    original = stock_writer()
    monkeypatch.setattr(panel_document, "_dispatch_msgs", original)
    monkeypatch.setattr(panel_fixes.panel, "__version__", "1.10.0")

    with caplog.at_level(logging.WARNING, logger="dashboard.panel_fixes"):
        assert panel_fixes.send_queued_messages() is False

    assert panel_document._dispatch_msgs is original
    assert "verified on 1.9.4 only" in caplog.text and "holoviz/panel/pull/8623" in caplog.text


def test_the_lock_pins_the_verified_panel():
    lock = (REPO / "requirements.lock").read_text().splitlines()
    assert f"panel=={panel_fixes.VERIFIED_PANEL_VERSION}" in lock


def test_the_dashboard_runs_with_the_fix():
    import dashboard.app  # noqa: F401

    assert getattr(panel_document._dispatch_msgs, panel_fixes.MARKER, False)
