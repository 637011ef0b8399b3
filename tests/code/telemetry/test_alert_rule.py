"""The wrong-prediction alert on synthetic timestamps: the counting (`busiest_window`), the pure rule with
test-controlled time, that no burst falls between two checks (locally, and in Azure with ingestion
latency, through a step-by-step model of the Kusto query), then the store and the CLI."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from dashboard.feedback import Feedback, FeedbackStore
from monitoring.alerts import (
    KQL_TEMPLATE,
    AlertRule,
    WrongPrediction,
    busiest_window,
    check,
    evaluate,
    kql_query,
    of_role,
)
from pyfunc.telemetry import DASHBOARD_SERVICE

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULE = AlertRule(threshold=3, window=timedelta(minutes=5), cooldown=timedelta(minutes=15))
STAGING = "tweet-sentiment-dashboard-staging"
WINDOW = timedelta(minutes=5)


def minute(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def wrong_at(*minutes: float, items: int = 1, role: str = DASHBOARD_SERVICE) -> list[WrongPrediction]:
    return [
        WrongPrediction(minute(m), "not_negative", "negative", 0.2, "baseline:r1", item_count=items, role=role)
        for m in minutes
    ]


def hms(text: str) -> datetime:
    """00:04:30 -> that time on T0's day, counted from midnight (for bursts across clock-aligned windows)."""
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return T0.replace(hour=0) + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def every(interval: timedelta, start: datetime, stop: datetime) -> list[datetime]:
    moments, moment = [], start
    while moment <= stop:
        moments.append(moment)
        moment += interval
    return moments


# --- the counting -------------------------------------------------------------------------------------


def test_busiest_window_counts_items_in_a_closed_interval():
    events = [(minute(m), 1) for m in (0, 1, 5, 5, 11)]
    busiest = busiest_window(events, WINDOW)
    assert (busiest.count, busiest.first, busiest.last) == (4, 0, 3)  # 0..5: both events at 5 included
    assert busiest_window([], WINDOW).count == 0
    assert busiest_window([(minute(0), 2), (minute(5), 1)], WINDOW).count == 3  # exactly one window apart
    assert busiest_window([(minute(0), 2), (minute(5) + timedelta(microseconds=1), 1)], WINDOW).count == 2
    with pytest.raises(ValueError, match="sorted"):
        busiest_window([(minute(1), 1), (minute(0), 1)], WINDOW)


def brute_force(events: list[tuple[datetime, int]], window: timedelta) -> int:
    """The most items in any [t, t + window] starting at an event: every candidate window, no cleverness."""
    return max((sum(n for u, n in events if t <= u <= t + window) for t, _ in events), default=0)


def test_busiest_window_agrees_with_a_brute_force_scan():
    rng = random.Random(14)
    for _ in range(400):
        # Whole seconds over a few windows: ties and events exactly one window apart are common.
        events = sorted(
            (T0 + timedelta(seconds=rng.randrange(0, 1200, 30)), rng.choice([1, 1, 1, 2, 5]))
            for _ in range(rng.randrange(12))
        )
        assert busiest_window(events, WINDOW).count == brute_force(events, WINDOW), events


# --- the rule -----------------------------------------------------------------------------------------


def test_three_wrong_within_five_minutes_fire():
    evaluation = evaluate(RULE, wrong_at(0, 2.5, 5), now=minute(5))
    assert evaluation.fires and evaluation.count == 3 and evaluation.status == "FIRING"


def test_a_burst_across_clock_aligned_windows_fires():
    times = [hms("00:04:00"), hms("00:06:00"), hms("00:08:30")]
    wrong = [WrongPrediction(t, model_version="baseline:r1") for t in times]
    # The five-minute windows a clock aligns ([00:00, 00:05), [00:05, 00:10)) hold 1 and 2 of them ...
    assert [sum(hms(f"00:0{s}:00") <= t < hms(f"00:0{s}:00") + WINDOW for t in times) for s in (0, 5)] == [1, 2]
    # ... but 4.5 minutes hold all three: the check once a minute that follows the burst fires.
    checks = every(timedelta(minutes=1), hms("00:00:00"), hms("00:20:00"))
    firing = [moment for moment in checks if evaluate(RULE, wrong, now=moment).fires]
    assert firing[0] == hms("00:09:00")
    evaluation = evaluate(RULE, wrong, now=hms("00:09:00"))
    assert (evaluation.window_start, evaluation.window_end) == (times[0], times[-1])
    assert "3 wrong predictions within 5 min (threshold 3), from 2026-03-01T00:04:00+00:00" in evaluation.message()


def test_three_wrong_spread_over_five_minutes_and_a_second_never_fire():
    wrong = wrong_at(0, 2.5, 5 + 1 / 60)
    checks = every(timedelta(seconds=15), minute(0), minute(12))
    assert not any(evaluate(RULE, wrong, now=moment).fires for moment in checks)
    assert max(evaluate(RULE, wrong, now=moment).count for moment in checks) == 2


def test_three_wrong_exactly_five_minutes_apart_fire():
    # The boundary is inside: [t - window, t] is closed, here, in busiest_window and in the Kusto sweep.
    wrong = wrong_at(0, 2.5, 5)
    assert evaluate(RULE, wrong, now=minute(5)).fires
    assert evaluate(RULE, wrong, now=minute(6)).fires  # the next check still sees the whole burst


def test_three_wrong_spread_over_six_minutes_never_fire():
    wrong = wrong_at(0, 3, 6)
    checks = every(timedelta(seconds=15), minute(0), minute(12))
    assert not any(evaluate(RULE, wrong, now=moment).fires for moment in checks)
    assert max(evaluate(RULE, wrong, now=moment).count for moment in checks) == 2


def test_two_wrong_do_not_fire_and_old_ones_leave_the_lookback():
    assert not evaluate(RULE, wrong_at(0, 1), now=minute(1)).fires
    assert RULE.lookback == timedelta(minutes=6)  # the window plus the one minute between two checks
    assert evaluate(RULE, wrong_at(0, 1, 2), now=minute(6)).count == 3
    assert evaluate(RULE, wrong_at(0, 1, 2), now=minute(6.5)).count == 2  # minute 0 left the lookback
    assert evaluate(RULE, wrong_at(0, 1, 2), now=minute(8.5)).count == 0


def test_a_sampled_row_counts_for_its_item_count():
    # Application Insights sampling: one stored row with itemCount 3 stands for three wrong predictions.
    evaluation = evaluate(RULE, wrong_at(1, items=3), now=minute(2))
    assert evaluation.fires and evaluation.count == 3 and len(evaluation.in_window) == 1
    assert evaluate(RULE, wrong_at(1, items=1) + wrong_at(4, items=2), now=minute(4)).fires  # 1 + 2
    assert not evaluate(RULE, wrong_at(1, items=2), now=minute(2)).fires
    assert not evaluate(RULE, wrong_at(0, items=2) + wrong_at(5.5), now=minute(5.5)).fires  # 5.5 min apart
    assert "baseline:r1 (3)" in evaluation.message()
    with pytest.raises(ValueError, match="item_count"):
        WrongPrediction(T0, item_count=0)


def test_staging_events_never_count_for_production():
    staging = wrong_at(0, 1, 2, role=STAGING)
    production = wrong_at(1.5, 2.5)
    assert of_role(staging + production, DASHBOARD_SERVICE) == production
    evaluation = evaluate(RULE, staging + production, now=minute(3))
    assert not evaluation.fires and evaluation.count == 2 and set(evaluation.seen) == set(production)
    assert not evaluate(RULE, wrong_at(0, 1, 2, items=5, role=STAGING), now=minute(3)).fires
    # The staging dashboard has a rule of its own, which production's events do not feed either.
    staging_rule = AlertRule(role=STAGING)
    assert evaluate(staging_rule, staging + production, now=minute(3)).fires
    assert not evaluate(staging_rule, production + wrong_at(3), now=minute(3)).fires


def test_no_second_alert_within_the_cooldown():
    wrong = wrong_at(0, 1, 2)
    first = evaluate(RULE, wrong, now=minute(2))
    assert first.fires
    more = wrong + wrong_at(5, 6, 7)
    again = evaluate(RULE, more, now=minute(7), last_fired=first.now)
    assert again.count >= 3 and not again.fires and again.cooling_down
    assert "cooling down until" in again.status
    later = evaluate(RULE, more + wrong_at(16, 16.5, 17), now=minute(17), last_fired=first.now)
    assert later.fires  # 15 minutes after the first alert, a new burst alerts again


def test_one_burst_alerts_once_even_when_the_lookback_outlasts_the_cooldown():
    rule = AlertRule(cooldown=timedelta(minutes=5), interval=timedelta(minutes=20))  # cron every 20 minutes
    assert rule.lookback == timedelta(minutes=25) and rule.mute == rule.lookback
    wrong, last = wrong_at(0, 1, 2), None
    fired = []
    for moment in every(timedelta(minutes=1), minute(0), minute(60)):
        evaluation = evaluate(rule, wrong, now=moment, last_fired=last)
        if evaluation.fires:
            fired.append(moment)
            last = moment
    assert fired == [minute(2)]
    assert AlertRule(cooldown=timedelta(0)).mute == timedelta(0)  # no cooldown stays no cooldown


@pytest.mark.parametrize(
    "rule",
    [
        dict(threshold=0),
        dict(window=timedelta(0)),
        dict(cooldown=timedelta(-1)),
        dict(interval=timedelta(-1)),
        dict(role=""),
    ],
)
def test_invalid_rules_are_refused(rule):
    with pytest.raises(ValueError, match="invalid alert rule"):
        AlertRule(**rule)


# --- no burst falls between two checks ----------------------------------------------------------------


def random_stream(rng: random.Random, span: timedelta) -> list[WrongPrediction]:
    """Sparse wrong predictions, some sampled, some from staging, with the odd burst."""
    wrong = []
    for _ in range(rng.randrange(1, 10)):
        at = T0 + timedelta(seconds=rng.uniform(0, span.total_seconds()))
        role = STAGING if rng.random() < 0.2 else DASHBOARD_SERVICE
        wrong.append(WrongPrediction(at, item_count=rng.choice([1, 1, 1, 1, 2, 3]), role=role))
        if rng.random() < 0.3:  # a burst around it
            for _ in range(rng.randrange(1, 4)):
                wrong.append(WrongPrediction(at + timedelta(seconds=rng.uniform(-200, 200)), role=role))
    return wrong


def qualifying_ends(wrong: list[WrongPrediction], rule: AlertRule) -> list[datetime]:
    """Brute force: every event that ends a window holding at least `threshold` items of the rule's role."""
    mine = [(w.created_at, w.item_count) for w in wrong if w.role == rule.role]
    return [t for t, _ in mine if sum(n for u, n in mine if t - rule.window <= u <= t) >= rule.threshold]


def test_checks_every_interval_fire_iff_a_brute_force_scan_finds_a_burst():
    rng = random.Random(20260301)
    span = timedelta(minutes=40)
    for trial in range(300):
        interval = timedelta(seconds=rng.choice([15, 60, 90, 300]))
        rule = AlertRule(threshold=3, window=WINDOW, cooldown=timedelta(0), interval=interval)
        wrong = random_stream(rng, span)
        checks = every(interval, T0 - timedelta(minutes=10) + timedelta(seconds=rng.uniform(0, 60)), T0 + span * 1.5)
        fires = {c: evaluate(rule, wrong, now=c).fires for c in checks}
        ends = qualifying_ends(wrong, rule)
        for c in checks:  # exact: a check fires iff its lookback holds a qualifying window (brute force)
            assert fires[c] == (brute_force(inside(wrong, rule, c), rule.window) >= rule.threshold), (trial, c)
        for t in ends:  # complete: the first check at or after a burst's end fires
            first = min(c for c in checks if c >= t)
            assert fires[first], (trial, t, first)
        assert any(fires.values()) == bool(ends), trial


def inside(wrong: list[WrongPrediction], rule: AlertRule, now: datetime) -> list[tuple[datetime, int]]:
    """The rule's items in [now - lookback, now], sorted (what one check looks at)."""
    start = now - rule.lookback
    return sorted((w.created_at, w.item_count) for w in wrong if w.role == rule.role and start <= w.created_at <= now)


def test_a_watcher_passing_its_previous_check_misses_nothing_however_late_it_wakes():
    rng = random.Random(7)
    rule = AlertRule(cooldown=timedelta(0), interval=timedelta(seconds=30))
    for trial in range(200):
        wrong = random_stream(rng, timedelta(minutes=30))
        # Checks that oversleep: gaps from 1 s to three times the nominal interval.
        checks, moment = [], T0 - timedelta(minutes=6)
        while moment < T0 + timedelta(minutes=40):
            checks.append(moment)
            moment += timedelta(seconds=rng.uniform(1, 90))
        previous, fired_at = None, []
        for c in checks:
            since = None if previous is None else previous - rule.window
            if evaluate(rule, wrong, now=c, since=since).fires:
                fired_at.append(c)
            previous = c
        for t in qualifying_ends(wrong, rule):
            first = min(c for c in checks if c >= t)
            assert first in fired_at, (trial, t)


# --- the same rule in Azure: the Kusto sweep, ingestion latency, the lookback -----------------------


def kusto_sweep(rows: list[tuple[datetime, int]], window: timedelta) -> int | None:
    """KQL_TEMPLATE step by step: each row becomes an arrival (+itemCount at its time) and a departure
    (-itemCount one window later); sort by timestamp asc, items desc; row_cumsum; the largest running
    sum at an arrival (`top 1 by wrong_in_window desc`); no rows, no result."""
    edges = [(t, n) for t, n in rows] + [(t + window, -n) for t, n in rows]
    edges.sort(key=lambda edge: (edge[0], -edge[1]))
    running, best = 0, None
    for _, items in edges:
        running += items
        if items > 0:
            best = running if best is None else max(best, running)
    return best


def test_the_kusto_template_is_the_sweep_modelled_here():
    lines = KQL_TEMPLATE.splitlines()
    assert lines[1] == '| where name == "wrong_prediction" and cloud_RoleName == "{0}"'
    assert "| extend edge = dynamic([1, -1])" in lines and "| mv-expand edge to typeof(long)" in lines
    assert "timestamp + {1}m), items = edge * tolong(itemCount)" in lines[4]  # departures one window later
    assert lines[5:] == [
        "| sort by timestamp asc, items desc",  # arrivals before departures at equal times: closed interval
        "| extend wrong_in_window = row_cumsum(items)",
        "| where items > 0",
        "| top 1 by wrong_in_window desc",
        "| project wrong_in_window",
    ]
    assert AlertRule().kql() == kql_query() == KQL_TEMPLATE.format(DASHBOARD_SERVICE, 5)
    assert 'cloud_RoleName == "tweet-sentiment-dashboard-staging"' in kql_query(timedelta(minutes=10), STAGING)
    assert "timestamp + 10m" in kql_query(timedelta(minutes=10), STAGING)
    for bad in (timedelta(seconds=90), timedelta(seconds=30)):
        with pytest.raises(ValueError, match="whole minutes"):
            kql_query(bad)
    with pytest.raises(ValueError, match="cloud role"):
        kql_query(role='x" or true or "')


def test_the_kusto_sweep_counts_as_busiest_window_does():
    rng = random.Random(5)
    for _ in range(400):
        rows = sorted(
            (T0 + timedelta(seconds=rng.randrange(0, 1200, 60)), rng.choice([1, 1, 2, 3]))
            for _ in range(rng.randrange(10))
        )
        expected = busiest_window(rows, WINDOW).count
        assert (kusto_sweep(rows, WINDOW) or 0) == expected, rows
    assert kusto_sweep([], WINDOW) is None  # no row: the rule has nothing to measure, it does not fire


def azure_evaluations(
    events: list[tuple[datetime, datetime, int]],
    evaluations: list[datetime],
    lookback: timedelta,
    window: timedelta,
    threshold: int = 3,
) -> list[datetime]:
    """The evaluations that fire: each sees the rows already ingested whose timestamp is in [e - lookback, e]
    (the rule's windowSize), runs the sweep and compares its maximum with the threshold."""
    firing = []
    for e in evaluations:
        rows = sorted((t, n) for t, ingested, n in events if ingested <= e and e - lookback <= t <= e)
        if (kusto_sweep(rows, window) or 0) >= threshold:
            firing.append(e)
    return firing


def test_azure_lookback_of_window_frequency_and_latency_misses_no_burst():
    # The template's defaults: window 5, evaluated every minute, 9 minutes allowed for ingestion: 15 minutes.
    window, frequency, latency = WINDOW, timedelta(minutes=1), timedelta(minutes=9)
    lookback = timedelta(minutes=15)
    assert lookback >= window + frequency + latency
    rng = random.Random(11)
    for trial in range(200):
        wrong = [w for w in random_stream(rng, timedelta(minutes=40)) if w.role == DASHBOARD_SERVICE]
        events = [(w.created_at, w.created_at + latency * rng.random(), w.item_count) for w in wrong]
        evaluations = every(frequency, T0 - timedelta(minutes=10), T0 + timedelta(minutes=80))
        firing = azure_evaluations(events, evaluations, lookback, window)
        ends = qualifying_ends(wrong, AlertRule())
        for t in ends:  # some evaluation after the burst's last row is in fires
            assert any(e >= t for e in firing), (trial, t)
        assert bool(firing) == bool(ends), trial  # and none fires without a burst


def test_the_old_rule_missed_a_burst_that_the_new_one_catches():
    # 00:04:00, 00:06:00, 00:08:30, each queryable two minutes later.
    times = [hms("00:04:00"), hms("00:06:00"), hms("00:08:30")]
    events = [(t, t + timedelta(minutes=2), 1) for t in times]
    evaluations = every(timedelta(minutes=1), hms("00:00:00"), hms("00:30:00"))
    # The old rule counted the rows of the last 5 minutes at each evaluation: never 3 at once.
    old = [e for e in evaluations if sum(1 for t, i, _ in events if i <= e and e - WINDOW <= t <= e) >= 3]
    assert old == []
    new = azure_evaluations(events, evaluations, timedelta(minutes=15), WINDOW)
    assert new[0] == hms("00:11:00")  # the first evaluation after the last row became queryable


# --- the store and the CLI ----------------------------------------------------------------------------


def add_feedback(store: Path, at: datetime, correct: bool, fmt: str = "iso") -> None:
    created = at.isoformat() if fmt == "iso" else at.strftime("%Y-%m-%dT%H:%M:%SZ")
    predicted, true = ("negative", "negative") if correct else ("not_negative", "negative")
    with sqlite3.connect(store) as connection:
        connection.execute(
            "INSERT INTO feedback (created_at, text, predicted_label, proba_negative, threshold, true_label, "
            "is_correct, model_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (created, "late again", predicted, 0.3, 0.4, true, int(correct), "baseline:r1"),
        )


def test_store_alert_counts_only_wrong_feedback_and_remembers_the_cooldown(store):
    for m, correct in [(0, False), (1, True), (2, True), (3, False)]:
        add_feedback(store, minute(m), correct)
    assert not check(str(store), RULE, now=minute(4)).fires  # two wrong, two correct
    add_feedback(store, minute(4), False, fmt="zulu")  # a `Z` timestamp counts too
    assert check(str(store), RULE, now=minute(4)).fires
    assert check(str(store), RULE, now=minute(5)).cooling_down  # recorded in the alerts table
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT wrong_count, threshold, window_seconds FROM alerts").fetchall() == [
            (3, 3, 300)
        ]


def test_store_check_looks_back_a_window_and_an_interval_or_to_since(store):
    for m in (0, 1, 2):
        add_feedback(store, minute(m), False)
    assert check(str(store), RULE, now=minute(6)).fires  # the check a minute after the burst sees it
    evaluation = check(str(store), AlertRule(cooldown=timedelta(0)), now=minute(20))
    assert evaluation.count == 0 and evaluation.since == minute(14)
    evaluation = check(str(store), AlertRule(cooldown=timedelta(0)), now=minute(20), since=minute(-1))
    assert evaluation.fires and evaluation.since == minute(-1)  # a watcher that overslept still sees it


def test_store_without_feedback_table_is_quiet(tmp_path):
    assert check(str(tmp_path / "empty.db"), RULE, now=T0).count == 0


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_cli_shows_the_window_fires_once_and_posts_the_webhook(store):
    for m in (0, 1, 2):
        add_feedback(store, minute(m), False)
    _Webhook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    command = [sys.executable, "-m", "monitoring.alerts", "--db", str(store), "--webhook-url"]
    command += [f"http://127.0.0.1:{server.server_address[1]}/hook"]
    try:
        first = subprocess.run([*command, "--now", minute(3).isoformat()], cwd=REPO, capture_output=True, text=True)
        second = subprocess.run([*command, "--now", minute(4).isoformat()], cwd=REPO, capture_output=True, text=True)
    finally:
        server.shutdown()
        server.server_close()
    assert first.returncode == 0, first.stderr
    assert "status: FIRING — 3 wrong predictions within 5 min (threshold 3)" in first.stdout
    assert "from 2026-03-01T12:00:00+00:00 to 2026-03-01T12:02:00+00:00" in first.stdout
    assert "looked at 2026-03-01T11:57:00+00:00 to 2026-03-01T12:03:00+00:00" in first.stdout
    assert first.stdout.count("predicted=not_negative") == 3
    assert "ALERT wrong_prediction" in first.stderr
    assert "cooling down until 2026-03-01T12:18:00+00:00" in second.stdout
    assert "ALERT" not in second.stderr
    [payload] = _Webhook.received
    assert payload["alert"] == "wrong_prediction" and payload["count"] == 3 and payload["threshold"] == 3
    assert (payload["window_start"], payload["window_end"]) == (minute(0).isoformat(), minute(2).isoformat())
    assert [w["true_label"] for w in payload["wrong_predictions"]] == ["negative"] * 3
    assert [w["item_count"] for w in payload["wrong_predictions"]] == [1] * 3


def test_cli_interval_sets_the_lookback(store):
    for m in (0, 1, 2):
        add_feedback(store, minute(m), False)
    command = [sys.executable, "-m", "monitoring.alerts", "--db", str(store), "--now", minute(12).isoformat()]
    quiet = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert quiet.returncode == 0 and "status: ok" in quiet.stdout, quiet.stderr
    hourly = subprocess.run([*command, "--interval-minutes", "60"], cwd=REPO, capture_output=True, text=True)
    assert hourly.returncode == 0 and "status: FIRING" in hourly.stdout, hourly.stderr


def test_the_alert_names_who_flagged_the_wrong_predictions(tmp_path):
    store = FeedbackStore(tmp_path / "signed.db")
    for m, who in [(0, "alice"), (1, "bob"), (2, "alice"), (3, None)]:  # None: a verdict from before sign-in
        at = minute(m).isoformat()
        store.add(Feedback("late again", "not_negative", 0.3, 0.4, "negative", "baseline:r1", at, user_name=who))
    evaluation = check(str(store.path), RULE, now=minute(4))
    assert evaluation.fires and evaluation.count == 4
    assert evaluation.message().endswith("; flagged by alice (2), bob (1), an unnamed tester (1)")
