"""The wrong-prediction alert, evaluated locally from the dashboard's feedback store (no Azure account needed).

The rule, here and in Azure Monitor (`deploy/monitoring/wrong_prediction_alert.json`): fire when some
interval of length `window` holds at least `threshold` wrong predictions, then stay quiet for `cooldown`.
Any interval, not only the ones a clock aligns: a burst of three at 12:04, 12:06 and 12:08:30 fires.
Each event counts for its `item_count`: Application Insights may sample, and then one stored row
stands for `itemCount` events (rows of the local store are never sampled and count 1 each).

- `busiest_window` is the counting, a pure function of (time, item count) pairs: the most items any
  closed interval of length `window` holds (a burst spanning exactly `window` is inside it).
- `evaluate` applies the rule at `now` to the wrong predictions of one cloud role (`rule.role`,
  the production dashboard's by default; a staging dashboard's events never count), looking back
  `rule.lookback` = `window` + `interval`, where `interval` is the longest time between two checks.
  Why that is enough: a burst inside [a, a + window] is complete at its last event b <= a + window;
  the first check after b comes at c <= b + interval, and c - lookback <= a, so that check sees the
  whole burst. With `since` (the previous check's time minus `window`, as `--watch` passes it) the
  looked-at ranges of consecutive checks overlap by `window` whatever the actual gap was.
- `kql_query` is the same rule in Kusto, the Azure rule's query (the template holds `KQL_TEMPLATE`
  verbatim; a test keeps the two identical and checks the sweep it runs against `busiest_window`).
- `check` applies `evaluate` to the SQLite store, remembers when it fired (table `alerts`, so the
  cooldown holds across runs) and notifies: a log line and, optionally, a JSON POST to a webhook.

A burst stays in the lookback for up to `lookback` after it happened, so consecutive checks see it
again; the cooldown is what keeps it to one alert, and it is never shorter than the lookback (`mute`).

    python -m monitoring.alerts --db feedback.db [--threshold 3 --window-minutes 5 --cooldown-minutes 15]
                               [--interval-minutes 1 | --watch SECONDS] [--webhook-url URL]
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import click
import requests

from dashboard.feedback import DEFAULT_PATH, FEEDBACK_DB_ENV
from pyfunc.telemetry import DASHBOARD_SERVICE, WRONG_PREDICTION_EVENT

WEBHOOK_ENV = "ALERT_WEBHOOK_URL"
UNNAMED = "an unnamed tester"  # verdicts stored before sign-in, or by a dashboard served without it
ALERTS_TABLE = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fired_at TEXT NOT NULL,           -- ISO-8601 UTC
    wrong_count INTEGER NOT NULL,
    threshold INTEGER NOT NULL,
    window_seconds INTEGER NOT NULL
)"""
# The Azure rule's query; {0} is the cloud role name, {1} the window in minutes. The ARM template holds
# this text as its `queryTemplate` variable and fills it with format() (tests keep the two identical).
# A sweep: every event becomes an arrival (+itemCount at its time) and a departure (-itemCount one window
# later); sorted by time with arrivals before departures at equal times, the running sum at an arrival at
# t is the items within [t - window, t] (closed, like `busiest_window`), and the largest one is the busiest
# window's count. O(n log n) in the rows of the lookback, where a self-join on time would be O(n^2).
KQL_TEMPLATE = (
    "customEvents\n"
    f'| where name == "{WRONG_PREDICTION_EVENT}" and cloud_RoleName == "{{0}}"\n'
    "| extend edge = dynamic([1, -1])\n"
    "| mv-expand edge to typeof(long)\n"
    "| project timestamp = iff(edge > 0, timestamp, timestamp + {1}m), items = edge * tolong(itemCount)\n"
    "| sort by timestamp asc, items desc\n"
    "| extend wrong_in_window = row_cumsum(items)\n"
    "| where items > 0\n"
    "| top 1 by wrong_in_window desc\n"
    "| project wrong_in_window"
)
# The column the Azure rule measures (metricMeasureColumn, aggregated with Maximum).
KQL_MEASURE = "wrong_in_window"

_log = logging.getLogger("monitoring.alerts")


@dataclass(frozen=True)
class AlertRule:
    """At least `threshold` wrong predictions within any `window` fire; no second alert within `cooldown`.

    `interval` is the longest time between two checks (cron's schedule, or `--watch`): the lookback
    covers it, so no burst falls between two checks. `role` is the cloud role whose events count.
    """

    threshold: int = 3
    window: timedelta = timedelta(minutes=5)
    cooldown: timedelta = timedelta(minutes=15)
    interval: timedelta = timedelta(minutes=1)
    role: str = DASHBOARD_SERVICE

    def __post_init__(self) -> None:
        if (
            self.threshold < 1
            or self.window <= timedelta(0)
            or self.cooldown < timedelta(0)
            or self.interval < timedelta(0)
            or not self.role
        ):
            raise ValueError(f"invalid alert rule: {self}")

    @property
    def lookback(self) -> timedelta:
        """How far back each check looks: one window plus the longest gap between two checks."""
        return self.window + self.interval

    @property
    def mute(self) -> timedelta:
        """The cooldown in effect: at least the lookback, so one burst alerts once (0 keeps it off)."""
        return max(self.cooldown, self.lookback) if self.cooldown else self.cooldown

    def kql(self) -> str:
        """This rule's query for Azure Monitor (the window and the role; the threshold is the rule's criterion)."""
        return kql_query(self.window, self.role)


def kql_query(window: timedelta = timedelta(minutes=5), role: str = DASHBOARD_SERVICE) -> str:
    """The Kusto query of the Azure rule: the most wrong predictions of `role` within any `window`.

    Args:
        window: the rule's window; whole minutes, as the ARM template takes it.
        role: the cloud role name whose `wrong_prediction` events count.

    Returns:
        `KQL_TEMPLATE` filled in: one row with `wrong_in_window` (none when there are no events).
    """
    minutes = window.total_seconds() / 60
    if minutes < 1 or minutes != int(minutes):
        raise ValueError(f"the Azure rule takes a window of whole minutes, got {window}")
    if not role or any(c in role for c in '"\\\n'):
        raise ValueError(f"not a cloud role name: {role!r}")
    return KQL_TEMPLATE.format(role, int(minutes))


@dataclass(frozen=True)
class Busiest:
    """The busiest window found: `count` items in `events[first : last + 1]`, all within one window."""

    count: int
    first: int
    last: int


def busiest_window(events: Sequence[tuple[datetime, int]], window: timedelta) -> Busiest:
    """The most items any closed interval of length `window` holds.

    Two pointers over the events in time order: each event in turn ends a window [end - window, end],
    which starts at the first event not older than end - window. The busiest of these windows is the
    busiest of all (any interval can slide forward until it ends on an event, losing none of its
    events). An event exactly `window` before the end is inside. Linear in the events.

    Args:
        events: (timestamp, item count) pairs sorted by timestamp; an item count of n stands for n
            events (a sampled Application Insights row).
        window: the length of the interval.

    Returns:
        The count and the index range of the busiest window (the earliest one when several tie);
        `Busiest(0, 0, -1)` when there are no events.
    """
    best = Busiest(0, 0, -1)
    total = first = 0
    for last, (end, items) in enumerate(events):
        if last and end < events[last - 1][0]:
            raise ValueError("events must be sorted by time")
        total += items
        while events[first][0] < end - window:
            total -= events[first][1]
            first += 1
        if total > best.count:
            best = Busiest(total, first, last)
    return best


@dataclass(frozen=True)
class WrongPrediction:
    """One prediction flagged wrong (the fields the alert reports).

    `item_count`: how many events the record stands for (Application Insights' `itemCount` when it
    samples; 1 for a feedback row). `role`: the cloud role of the dashboard that recorded it.
    """

    created_at: datetime
    predicted_label: str = ""
    true_label: str = ""
    proba_negative: float = float("nan")
    model_version: str = ""
    item_count: int = 1
    role: str = DASHBOARD_SERVICE
    given_by: str = ""  # the sign-in name of who flagged it; "" for a verdict stored without one

    def __post_init__(self) -> None:
        if self.item_count < 1:
            raise ValueError(f"item_count must be at least 1, got {self.item_count}")


def of_role(wrong: Iterable[WrongPrediction], role: str) -> list[WrongPrediction]:
    """The wrong predictions recorded by `role` (what `cloud_RoleName == role` keeps in Kusto)."""
    return [w for w in wrong if w.role == role]


@dataclass(frozen=True)
class Evaluation:
    """The rule's verdict at `now`, having looked at the wrong predictions in [`since`, `now`].

    `in_window` holds the busiest window's wrong predictions, `count` their items.
    """

    now: datetime
    since: datetime
    seen: tuple[WrongPrediction, ...]
    rule: AlertRule
    last_fired: datetime | None = None
    in_window: tuple[WrongPrediction, ...] = field(init=False)
    count: int = field(init=False)
    fires: bool = field(init=False)
    cooling_down: bool = field(init=False)

    def __post_init__(self) -> None:
        busiest = busiest_window([(w.created_at, w.item_count) for w in self.seen], self.rule.window)
        cooling = self.last_fired is not None and self.now - self.last_fired < self.rule.mute
        object.__setattr__(self, "in_window", self.seen[busiest.first : busiest.last + 1])
        object.__setattr__(self, "count", busiest.count)
        object.__setattr__(self, "cooling_down", cooling)
        object.__setattr__(self, "fires", busiest.count >= self.rule.threshold and not cooling)

    @property
    def window_start(self) -> datetime:
        """The busiest window's first wrong prediction (the start of the lookback when there is none)."""
        return self.in_window[0].created_at if self.in_window else self.since

    @property
    def window_end(self) -> datetime:
        """The busiest window's last wrong prediction (the check's time when there is none)."""
        return self.in_window[-1].created_at if self.in_window else self.now

    @property
    def status(self) -> str:
        if self.fires:
            return "FIRING"
        if self.count >= self.rule.threshold:
            return f"over threshold, cooling down until {iso(self.last_fired + self.rule.mute)}"
        return "ok"

    def message(self) -> str:
        minutes = self.rule.window.total_seconds() / 60
        models = Counter()
        for w in self.in_window:
            models[w.model_version] += w.item_count
        versions = ", ".join(f"{v} ({n})" for v, n in models.items() if v)
        return (
            f"{self.count} wrong predictions within {minutes:g} min (threshold {self.rule.threshold}), "
            f"from {iso(self.window_start)} to {iso(self.window_end)}"
            + (f"; models: {versions}" if versions else "")
            + (f"; flagged by {self.flagged_by()}" if self.in_window else "")
        )

    def flagged_by(self) -> str:
        """Who gave the window's verdicts, most first: a burst from one person reads differently from a team's."""
        people = Counter()
        for w in self.in_window:
            people[w.given_by or UNNAMED] += w.item_count
        return ", ".join(f"{name} ({n})" for name, n in people.most_common())


def evaluate(
    rule: AlertRule,
    wrong: Iterable[WrongPrediction],
    now: datetime,
    last_fired: datetime | None = None,
    since: datetime | None = None,
) -> Evaluation:
    """The pure rule at `now`: the busiest window of `rule.role`'s wrong predictions since the lookback, and
    whether it fires.

    Args:
        rule: the rule.
        wrong: wrong predictions (any role, any time: those of other roles or outside the lookback are left out).
        now: the time of the check.
        last_fired: when the rule last fired (the cooldown runs from there).
        since: where the lookback starts; default `now - rule.lookback`. A watcher that knows its previous
            check passes that check's time minus `rule.window` (never later than the default).

    Returns:
        The evaluation.
    """
    start = now - rule.lookback if since is None else min(since, now - rule.lookback)
    seen = tuple(sorted((w for w in of_role(wrong, rule.role) if start <= w.created_at <= now), key=_time))
    return Evaluation(now=now, since=start, seen=seen, rule=rule, last_fired=last_fired)


def _time(wrong: WrongPrediction) -> datetime:
    return wrong.created_at


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(text: str) -> datetime:
    """ISO-8601 as the dashboard stores it; a naive time is UTC."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_wrong_predictions(
    connection: sqlite3.Connection, since: datetime, role: str = DASHBOARD_SERVICE
) -> list[WrongPrediction]:
    """Wrong feedback rows at or after `since` (pre-filtered by date in SQL, exactly in Python), each with who gave it.

    A feedback store belongs to one dashboard: its rows are tagged with that dashboard's `role`, and
    each row is one event (nothing samples the store). No `feedback` table yet (the dashboard has not
    stored any feedback) means no wrong predictions.
    """
    exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'feedback'"
    if connection.execute(exists).fetchone() is None:
        return []
    day = (since.astimezone(UTC) - timedelta(days=1)).date().isoformat()
    columns = {row[1] for row in connection.execute("PRAGMA table_info(feedback)")}
    given_by = "user_name" if "user_name" in columns else "''"  # a store the dashboard has not migrated yet
    rows = connection.execute(
        f"SELECT created_at, predicted_label, true_label, proba_negative, model_version, {given_by} FROM feedback "
        "WHERE is_correct = 0 AND created_at >= ?",
        (day,),
    )
    wrong = [
        WrongPrediction(parse_time(r[0]), r[1], r[2], float(r[3]), r[4], role=role, given_by=r[5] or "") for r in rows
    ]
    return [w for w in wrong if w.created_at >= since]


def last_fired(connection: sqlite3.Connection) -> datetime | None:
    row = connection.execute("SELECT fired_at FROM alerts ORDER BY id DESC LIMIT 1").fetchone()
    return parse_time(row[0]) if row else None


def check(
    db_path: str,
    rule: AlertRule,
    now: datetime | None = None,
    webhook_url: str | None = None,
    since: datetime | None = None,
) -> Evaluation:
    """Evaluate the rule on the store at `now` (default: the clock); if it fires, record it and notify.

    `since` extends the lookback back to that time (see `evaluate`).
    """
    now = now or datetime.now(UTC)
    start = now - rule.lookback if since is None else min(since, now - rule.lookback)
    with closing(sqlite3.connect(db_path)) as connection, connection:
        connection.execute(ALERTS_TABLE)
        wrong = read_wrong_predictions(connection, start, rule.role)
        evaluation = evaluate(rule, wrong, now, last_fired(connection), since=start)
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
        "window_end": iso(evaluation.window_end),
        "checked_from": iso(evaluation.since),
        "checked_at": iso(evaluation.now),
        "wrong_predictions": [
            {
                "created_at": iso(w.created_at),
                "predicted_label": w.predicted_label,
                "true_label": w.true_label,
                "proba_negative": w.proba_negative,
                "model_version": w.model_version,
                "item_count": w.item_count,
                "given_by": w.given_by or UNNAMED,
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
    lines = [
        f"status: {evaluation.status} — {evaluation.message()}",
        f"  (looked at {iso(evaluation.since)} to {iso(evaluation.now)}, role {evaluation.rule.role})",
    ]
    for w in evaluation.in_window:
        lines.append(
            f"  {iso(w.created_at)}  predicted={w.predicted_label:<12} true={w.true_label:<12} "
            f"proba_negative={w.proba_negative:.3f}  {w.model_version}  by {w.given_by or UNNAMED}"
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
@click.option(
    "--window-minutes", type=float, default=5.0, show_default=True, help="within any interval this long, they fire"
)
@click.option(
    "--cooldown-minutes", type=float, default=15.0, show_default=True, help="no second alert within this time"
)
@click.option(
    "--interval-minutes",
    type=float,
    default=1.0,
    show_default=True,
    help="the longest time between two runs (e.g. cron's schedule); the lookback is the window plus this",
)
# The webhook URL carries its token: it is read from the environment and never shown in --help or logs.
@click.option("--webhook-url", envvar=WEBHOOK_ENV, default=None, help=f"POST the alert here (JSON); or ${WEBHOOK_ENV}")
@click.option(
    "--watch", type=float, default=0, show_default=True, help="re-evaluate every N seconds (0: once); sets the interval"
)
@click.option("--now", type=IsoTime(), default=None, help="evaluate at this ISO time (replays)")
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not os.path.exists(args.db):
        raise SystemExit(f"feedback store {args.db} not found (set --db or {FEEDBACK_DB_ENV})")
    if args.interval_minutes < 0 or args.watch < 0:
        raise click.BadParameter("must not be negative", param_hint="--interval-minutes / --watch")
    rule = AlertRule(
        args.threshold,
        timedelta(minutes=args.window_minutes),
        timedelta(minutes=args.cooldown_minutes),
        timedelta(seconds=args.watch) if args.watch > 0 else timedelta(minutes=args.interval_minutes),
    )
    since = None
    while True:
        evaluation = check(args.db, rule, args.now, args.webhook_url, since)
        print(render(evaluation), flush=True)
        if args.watch <= 0 or args.now is not None:
            return
        # The next check looks back to this one minus a window, however long the sleep really took.
        since = evaluation.now - rule.window
        time.sleep(args.watch)


if __name__ == "__main__":
    main()
