"""The wrong-prediction alert, evaluated locally from the dashboard's feedback store (no Azure account needed).

Same rule as the Azure Monitor scheduled query rule in `deploy/monitoring/`: fire when at least
`threshold` predictions were flagged wrong within the last `window`, then stay quiet for `cooldown`.
`evaluate` is the pure rule (time is an argument); `check` applies it to the SQLite store, remembers
when it fired (table `alerts`, so the cooldown holds across runs) and notifies: a log line and,
optionally, a JSON POST to a webhook.

    python -m dashboard.alerts --db feedback.db [--threshold 3 --window-minutes 5 --cooldown-minutes 15]
                               [--webhook-url URL] [--watch SECONDS]
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import click
import requests

from dashboard.feedback import DEFAULT_PATH, FEEDBACK_DB_ENV

WEBHOOK_ENV = "ALERT_WEBHOOK_URL"
ALERTS_TABLE = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fired_at TEXT NOT NULL,           -- ISO-8601 UTC
    wrong_count INTEGER NOT NULL,
    threshold INTEGER NOT NULL,
    window_seconds INTEGER NOT NULL
)"""

_log = logging.getLogger("dashboard.alerts")


@dataclass(frozen=True)
class AlertRule:
    """At least `threshold` wrong predictions within `window` fire; no second alert within `cooldown`."""

    threshold: int = 3
    window: timedelta = timedelta(minutes=5)
    cooldown: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.window <= timedelta(0) or self.cooldown < timedelta(0):
            raise ValueError(f"invalid alert rule: {self}")


@dataclass(frozen=True)
class WrongPrediction:
    """One feedback row marked wrong (the fields the alert reports)."""

    created_at: datetime
    predicted_label: str = ""
    true_label: str = ""
    proba_negative: float = float("nan")
    model_version: str = ""


@dataclass(frozen=True)
class Evaluation:
    """The rule's verdict at `now` over the window [`window_start`, `now`]."""

    now: datetime
    window_start: datetime
    in_window: tuple[WrongPrediction, ...]
    rule: AlertRule
    last_fired: datetime | None = None
    fires: bool = field(init=False)
    cooling_down: bool = field(init=False)

    def __post_init__(self) -> None:
        cooling = self.last_fired is not None and self.now - self.last_fired < self.rule.cooldown
        object.__setattr__(self, "cooling_down", cooling)
        object.__setattr__(self, "fires", len(self.in_window) >= self.rule.threshold and not cooling)

    @property
    def count(self) -> int:
        return len(self.in_window)

    @property
    def status(self) -> str:
        if self.fires:
            return "FIRING"
        if self.count >= self.rule.threshold:
            return f"over threshold, cooling down until {iso(self.last_fired + self.rule.cooldown)}"
        return "ok"

    def message(self) -> str:
        minutes = self.rule.window.total_seconds() / 60
        versions = ", ".join(f"{v} ({n})" for v, n in Counter(w.model_version for w in self.in_window).items())
        return (
            f"{self.count} wrong predictions in the last {minutes:g} min (threshold {self.rule.threshold}) "
            f"between {iso(self.window_start)} and {iso(self.now)}" + (f"; models: {versions}" if versions else "")
        )


def evaluate(
    rule: AlertRule, wrong: Iterable[WrongPrediction], now: datetime, last_fired: datetime | None = None
) -> Evaluation:
    """The pure rule: which wrong predictions fall in [now - window, now], and whether that fires."""
    start = now - rule.window
    in_window = tuple(sorted((w for w in wrong if start <= w.created_at <= now), key=lambda w: w.created_at))
    return Evaluation(now=now, window_start=start, in_window=in_window, rule=rule, last_fired=last_fired)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(text: str) -> datetime:
    """ISO-8601 as the dashboard stores it; a naive time is UTC."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_wrong_predictions(connection: sqlite3.Connection, since: datetime) -> list[WrongPrediction]:
    """Wrong feedback rows at or after `since` (pre-filtered by date in SQL, exactly in Python).

    No `feedback` table yet (the dashboard has not stored any feedback) means no wrong predictions.
    """
    exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'feedback'"
    if connection.execute(exists).fetchone() is None:
        return []
    day = (since.astimezone(UTC) - timedelta(days=1)).date().isoformat()
    rows = connection.execute(
        "SELECT created_at, predicted_label, true_label, proba_negative, model_version FROM feedback "
        "WHERE is_correct = 0 AND created_at >= ?",
        (day,),
    )
    wrong = [WrongPrediction(parse_time(row[0]), row[1], row[2], float(row[3]), row[4]) for row in rows]
    return [w for w in wrong if w.created_at >= since]


def last_fired(connection: sqlite3.Connection) -> datetime | None:
    row = connection.execute("SELECT fired_at FROM alerts ORDER BY id DESC LIMIT 1").fetchone()
    return parse_time(row[0]) if row else None


def check(db_path: str, rule: AlertRule, now: datetime | None = None, webhook_url: str | None = None) -> Evaluation:
    """Evaluate the rule on the store at `now` (default: the clock); if it fires, record it and notify."""
    now = now or datetime.now(UTC)
    with closing(sqlite3.connect(db_path)) as connection, connection:
        connection.execute(ALERTS_TABLE)
        evaluation = evaluate(rule, read_wrong_predictions(connection, now - rule.window), now, last_fired(connection))
        if evaluation.fires:
            connection.execute(
                "INSERT INTO alerts (fired_at, wrong_count, threshold, window_seconds) VALUES (?, ?, ?, ?)",
                (iso(now), evaluation.count, rule.threshold, int(rule.window.total_seconds())),
            )
    if evaluation.fires:
        _log.warning("ALERT wrong_prediction: %s", evaluation.message())
        if webhook_url:
            post_webhook(webhook_url, evaluation)
    return evaluation


def post_webhook(url: str, evaluation: Evaluation) -> bool:
    """POST the alert as JSON (`text` makes it readable by Slack/Teams-style incoming webhooks)."""
    payload = {
        "alert": "wrong_prediction",
        "text": f"Tweet sentiment alert: {evaluation.message()}",
        "count": evaluation.count,
        "threshold": evaluation.rule.threshold,
        "window_minutes": evaluation.rule.window.total_seconds() / 60,
        "window_start": iso(evaluation.window_start),
        "window_end": iso(evaluation.now),
        "wrong_predictions": [
            {
                "created_at": iso(w.created_at),
                "predicted_label": w.predicted_label,
                "true_label": w.true_label,
                "proba_negative": w.proba_negative,
                "model_version": w.model_version,
            }
            for w in evaluation.in_window
        ],
    }
    try:
        requests.post(url, json=payload, timeout=10).raise_for_status()
    except requests.RequestException as error:  # the alert is logged and recorded either way
        _log.error("alert webhook %s failed: %s", webhook_origin(url), failure_reason(error))
        return False
    return True


def webhook_origin(url: str) -> str:
    """Scheme and host only: Slack/Teams-style webhook URLs carry their token in the path (a secret)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


def failure_reason(error: requests.RequestException) -> str:
    """Why the POST failed, without the URL that requests puts in its messages."""
    response = getattr(error, "response", None)
    if response is not None:
        return f"HTTP {response.status_code}"
    return type(error).__name__


def render(evaluation: Evaluation) -> str:
    """The current window as a small table for the terminal."""
    lines = [f"status: {evaluation.status} — {evaluation.message()}"]
    for w in evaluation.in_window:
        lines.append(
            f"  {iso(w.created_at)}  predicted={w.predicted_label:<12} true={w.true_label:<12} "
            f"proba_negative={w.proba_negative:.3f}  {w.model_version}"
        )
    return "\n".join(lines)


class IsoTime(click.ParamType):
    """An ISO 8601 time for `--now` (replays): naive times are UTC, as the feedback store's are."""

    name = "iso-time"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        try:
            return value if isinstance(value, datetime) else parse_time(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


@click.command(help="Evaluate the wrong-prediction alert on the feedback store.")
@click.option("--db", envvar=FEEDBACK_DB_ENV, default=DEFAULT_PATH, show_default=True, help="feedback SQLite file")
@click.option("--threshold", type=int, default=3, show_default=True, help="wrong predictions that fire the alert")
@click.option("--window-minutes", type=float, default=5.0, show_default=True, help="the window they are counted in")
@click.option(
    "--cooldown-minutes", type=float, default=15.0, show_default=True, help="no second alert within this time"
)
# The webhook URL carries its token: it is read from the environment and never shown in --help or logs.
@click.option("--webhook-url", envvar=WEBHOOK_ENV, default=None, help=f"POST the alert here (JSON); or ${WEBHOOK_ENV}")
@click.option("--watch", type=float, default=0, show_default=True, help="re-evaluate every N seconds (0: once)")
@click.option("--now", type=IsoTime(), default=None, help="evaluate at this ISO time (replays)")
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not os.path.exists(args.db):
        raise SystemExit(f"feedback store {args.db} not found (set --db or {FEEDBACK_DB_ENV})")
    rule = AlertRule(args.threshold, timedelta(minutes=args.window_minutes), timedelta(minutes=args.cooldown_minutes))
    while True:
        print(render(check(args.db, rule, args.now, args.webhook_url)), flush=True)
        if args.watch <= 0 or args.now is not None:
            return
        time.sleep(args.watch)


if __name__ == "__main__":
    main()
