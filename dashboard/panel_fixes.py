"""A fix for a race in Panel's websocket writer that left a page showing a stale state for good.

A gated shim: Panel offers no public way to flush its write queue, so the fix wraps a private
function, on the exact Panel version it was verified with and no other. The race came with
holoviz/panel#8623 (1.9.3) and is still in 1.10.0; `test_stock_panel_leaves_the_second_change_queued_for_good`
(tests/code/dashboard/test_panel_fixes.py) fails once a Panel release has fixed it, and then this
module can go (docs/design.md, "Dashboard input and output").

Panel (`panel.io.document`) sends a change made while the socket is busy through a queue: it
marks the document blocked, queues the message and starts a writer task. A writer that finds the
document unblocked returns at once, even when messages wait in the queue. So when the writer before
it finishes in between (its socket write completed, and its wake-up ran first), it lifts the block,
the new writer returns, and the queued messages stay unsent until some later change of that page
happens to start another writer. A batch that ended in the same instant as an earlier write left
the page at "Scoring 1 tweets…" although the dashboard had logged the result (docs/design.md,
"Dashboard input and output"). The fix: a writer that finds messages waiting blocks the document
again and sends them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

import panel
from panel.io import document as panel_document

_log = logging.getLogger(__name__)
MARKER = "sends_queued_messages"
# The Panel release the fix was verified with (requirements.lock pins it), and the change that caused the race.
VERIFIED_PANEL_VERSION = "1.9.4"
CAUSE = "https://github.com/holoviz/panel/pull/8623"


def send_queued_messages() -> bool:
    """Make Panel's queue writer send what waits in the queue, whether or not a writer lifted the block.

    Idempotent: `panel serve` runs the app module once per session, and the writer is patched once.

    Returns:
        True when the writer is patched (now or before); False on any Panel but the verified one, or
        one without that writer (the fix is skipped and the log says why).
    """
    if panel.__version__ != VERIFIED_PANEL_VERSION:
        _log.warning(
            "Panel %s: the queued-message fix is verified on %s only and is not applied; run "
            "tests/code/dashboard/test_panel_fixes.py on this version (cause: %s)",
            panel.__version__,
            VERIFIED_PANEL_VERSION,
            CAUSE,
        )
        return False
    original: Callable[[object], Awaitable[None]] | None = getattr(panel_document, "_dispatch_msgs", None)
    needed = ("_WRITE_BLOCK", "_WRITE_MSGS")
    if original is None or not all(hasattr(panel_document, name) for name in needed):
        _log.warning("Panel's websocket writer changed shape: its queued-message fix is not applied")
        return False
    if getattr(original, MARKER, False):
        return True

    @functools.wraps(original)
    async def dispatch_queued(doc) -> None:
        if doc not in panel_document._WRITE_BLOCK and panel_document._WRITE_MSGS.get(doc):
            panel_document._WRITE_BLOCK[doc] = True  # what queued them meant: block until they are sent
        await original(doc)

    setattr(dispatch_queued, MARKER, True)
    # Panel looks the writer up by module name each time it starts one, its own re-tries included.
    panel_document._dispatch_msgs = dispatch_queued
    return True
