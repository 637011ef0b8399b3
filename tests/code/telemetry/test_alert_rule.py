"""The local wrong-prediction alert: the pure rule with test-controlled time, then the store and the CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from dashboard.alerts import AlertRule, WrongPrediction, check, evaluate

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULE = AlertRule(threshold=3, window=timedelta(minutes=5), cooldown=timedelta(minutes=15))


def wrong_at(*minutes: float) -> list[WrongPrediction]:
    return [WrongPrediction(T0 + timedelta(minutes=m), "not_negative", "negative", 0.2, "baseline:r1") for m in minutes]


def minute(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def test_three_wrong_within_five_minutes_fire():
    evaluation = evaluate(RULE, wrong_at(0, 2.5, 5), now=minute(5))
    assert evaluation.fires and evaluation.count == 3 and evaluation.status == "FIRING"


def test_three_wrong_spread_over_six_minutes_never_fire():
    wrong = wrong_at(0, 3, 6)
    checks = [minute(m / 4) for m in range(0, 4 * 12)]  # every 15 s from the first to 12 minutes later
    assert not any(evaluate(RULE, wrong, now=moment).fires for moment in checks)
    assert max(evaluate(RULE, wrong, now=moment).count for moment in checks) == 2


def test_two_wrong_do_not_fire_and_old_ones_leave_the_window():
    assert not evaluate(RULE, wrong_at(0, 1), now=minute(1)).fires
    assert evaluate(RULE, wrong_at(0, 1, 2), now=minute(5.5)).count == 2  # minute 0 left the window


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


@pytest.mark.parametrize("rule", [dict(threshold=0), dict(window=timedelta(0)), dict(cooldown=timedelta(-1))])
def test_invalid_rules_are_refused(rule):
    with pytest.raises(ValueError, match="invalid alert rule"):
        AlertRule(**rule)


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
    command = [sys.executable, "-m", "dashboard.alerts", "--db", str(store), "--webhook-url"]
    command += [f"http://127.0.0.1:{server.server_address[1]}/hook"]
    try:
        first = subprocess.run([*command, "--now", minute(3).isoformat()], cwd=REPO, capture_output=True, text=True)
        second = subprocess.run([*command, "--now", minute(4).isoformat()], cwd=REPO, capture_output=True, text=True)
    finally:
        server.shutdown()
        server.server_close()
    assert first.returncode == 0, first.stderr
    assert "status: FIRING — 3 wrong predictions in the last 5 min (threshold 3)" in first.stdout
    assert first.stdout.count("predicted=not_negative") == 3
    assert "ALERT wrong_prediction" in first.stderr
    assert "cooling down until 2026-03-01T12:18:00+00:00" in second.stdout
    assert "ALERT" not in second.stderr
    [payload] = _Webhook.received
    assert payload["alert"] == "wrong_prediction" and payload["count"] == 3 and payload["threshold"] == 3
    assert [w["true_label"] for w in payload["wrong_predictions"]] == ["negative"] * 3
