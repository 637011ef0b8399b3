"""The dashboard's page: notice boxes, `name: value` lines, and the layout of one session's views.

Everything a tweet or a server message reaches on the page is HTML-escaped here or shown by widgets
that render plain text (docs/design.md, "Dashboard input and output").
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import panel as pn

from dashboard import signin

if TYPE_CHECKING:
    from dashboard.session import Dashboard

STYLES = {
    "error": "background:#fdecea;color:#611a15;border:1px solid #f5c6cb;",
    "info": "background:#e8f4fd;color:#0c3c60;border:1px solid #b8daff;",
    "ok": "background:#edf7ed;color:#1e4620;border:1px solid #c3e6cb;",
}
TITLE = "Tweet Reaction Prediction — tester dashboard"


def message_html(text: str, kind: str = "error", element_id: str = "message") -> str:
    """A notice box; the text is escaped, so server messages and tweets show literally."""
    style = STYLES[kind] + "padding:8px 12px;border-radius:4px;white-space:pre-wrap;"
    role = "alert" if kind == "error" else "status"
    return f'<div id="{element_id}" role="{role}" style="{style}">{html.escape(text)}</div>'


def field_html(name: str, value: str, element_id: str) -> str:
    """One `name: value` line with an id the browser tests read; the value is escaped."""
    return f'<div><b>{html.escape(name)}:</b> <span id="{element_id}">{html.escape(value)}</span></div>'


def sidebar(session: Dashboard) -> list:
    """The model server's state and the threshold, beside every tab."""
    return [*session.status.widgets(), pn.layout.Divider(), *session.tweet_view.threshold_widgets()]


def main(session: Dashboard) -> pn.Tabs:
    """One tab per view: a typed tweet, a CSV file, the session's history, the reviewer's queue, the
    label queue, the model's health (read when first opened)."""
    tabs = pn.Tabs(
        ("Predict", session.tweet_view.panel()),
        ("Batch (CSV)", session.file_view.panel()),
        ("History", session.history.table),
        ("Review queue", session.review_view.panel()),
        ("Label next", session.queue_view.panel()),
        ("Model health", session.health_view.panel()),
        dynamic=False,
    )
    session.health_view.watch_tab(tabs, len(tabs) - 1)
    return tabs


def template(session: Dashboard, notice: str | None = None) -> pn.template.BootstrapTemplate:
    """The whole page, the sign-in name in its header; Bootstrap's assets ship with Panel (nothing loads
    from the internet). `notice`: a problem the page must state first (an unusable roles file)."""
    top = [pn.pane.HTML(message_html(notice, "error", "page-notice"))] if notice else []
    return pn.template.BootstrapTemplate(
        title=TITLE,
        sidebar=sidebar(session),
        main=[*top, main(session)],
        header=[pn.pane.HTML(signin.header_html(session.person), sizing_mode="fixed", width=420)],
        header_background="#1565c0",
    )
