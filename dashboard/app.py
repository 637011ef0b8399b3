"""Panel dashboard for testers: `panel serve dashboard/app.py` (model server URL: `MODEL_SERVER_URL`).

This file is the entry `panel serve` runs once per browser session: it builds that session's
`Dashboard` (dashboard/session.py) and its page (dashboard/page.py). The views live in their own
modules: the typed tweet (tweet_view.py), the CSV file (file_view.py), the history (history_view.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import panel as pn
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

# `panel serve dashboard/app.py` puts dashboard/ on sys.path, not the project root: add the root so
# `dashboard` and `pyfunc` resolve to this checkout even where the project is not pip-installed.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dashboard import page, panel_fixes  # noqa: E402
from dashboard.client import ModelClient  # noqa: E402
from dashboard.feedback import FeedbackStore  # noqa: E402
from dashboard.session import Dashboard  # noqa: E402
from dashboard.signin import ROLES_ENV, person_for  # noqa: E402
from dashboard.startup_objects import freeze_startup_objects  # noqa: E402
from pyfunc import telemetry  # noqa: E402

pn.extension("echarts", "tabulator", sizing_mode="stretch_width")
panel_fixes.send_queued_messages()  # or a page can keep a stale state: see dashboard/panel_fixes.py

# `panel serve` runs this file as a module of its own name per session: the log name is fixed here.
_log = logging.getLogger("dashboard.app")
# `panel serve --log-level` sets Bokeh's logger only; the dashboard's own INFO lines (a file's batch, a
# closed tab) reach its log through the root handler Bokeh installs, unless a level was set already.
if logging.getLogger("dashboard").level == logging.NOTSET:
    logging.getLogger("dashboard").setLevel(logging.INFO)


def quiet_closed_sessions(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """A tab closed while an update was on its way to it: one log line, not a traceback.

    Tornado reports such a write as an unretrieved task exception; it is no failure of the page, and
    a log where every traceback is a real error stays worth reading. Anything else keeps asyncio's
    default handling.

    Args:
        loop: the server's event loop.
        context: asyncio's description of the unhandled exception.
    """
    if isinstance(context.get("exception"), (WebSocketClosedError, StreamClosedError)):
        _log.info("a browser session closed while an update was being sent to it")
        return
    loop.default_exception_handler(context)


def create_app() -> pn.template.BootstrapTemplate:
    """The page for one browser session."""
    freeze_startup_objects()  # before this session's objects: a full collection skips the imports' objects
    asyncio.get_event_loop().set_exception_handler(quiet_closed_sessions)
    # The optional registry lookup must fail fast when a tracking server is down, not retry for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    # Wrong-prediction events go to Application Insights when its connection string is set (once per process).
    telemetry.configure_telemetry(telemetry.DASHBOARD_SERVICE)
    person, roles_problem = person_for(pn.state.user, os.environ.get(ROLES_ENV))
    session = Dashboard(ModelClient(), FeedbackStore(), person)
    template = page.template(session, roles_problem)
    pn.state.onload(session.status.check)
    pn.state.onload(session.review_view.refresh)
    pn.state.onload(session.queue_view.load)
    session.verdicts.start_restoring()  # verdicts a killed dashboard left in the spool
    pn.state.on_session_destroyed(lambda session_context: session.verdicts.report_unsaved_on_close())
    pn.state.on_session_destroyed(lambda session_context: session.queue_verdicts.report_unsaved_on_close())
    return template


if pn.state.served:
    create_app().servable()
