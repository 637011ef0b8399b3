"""An uploaded file's name cannot forge a log line, run a terminal escape, name a path or flood the log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dashboard.client import ModelClient
from dashboard.feedback import FeedbackStore
from dashboard.file_names import MAX_NAME_CHARS, download_name, safe_file_name
from dashboard.session import Dashboard

HOSTILE = {
    "newline forging a log line": "a.csv\n2026-12-07 ERROR dashboard: admin password reset",
    "carriage return": "a.csv\rINFO all fine",
    "ANSI escape": "\x1b[2J\x1b[31mred.csv",
    "bidi override": "invoice\u202ecod.csv",
    "path": "../../etc/cron.d/evil.csv",
    "windows path": "C:\\Users\\x\\..\\tweets.csv",
    "NUL": "a\x00b.csv",
    "line separator": "a\u2028b.csv",
}


@pytest.mark.parametrize("name", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_name_becomes_one_printable_line_without_a_path(name):
    safe = safe_file_name(name)
    assert safe.isprintable() and "/" not in safe and "\\" not in safe and ".." not in safe
    assert download_name(name).startswith("scored_") and download_name(name).endswith(".csv")
    assert download_name(name).isprintable() and "/" not in download_name(name)


def test_ordinary_names_are_kept_and_an_empty_one_gets_a_default():
    assert safe_file_name("tweets March (2).csv") == "tweets March (2).csv"
    assert safe_file_name("Umfrage_Kunden_ÄÖÜ.csv") == "Umfrage_Kunden_ÄÖÜ.csv"
    assert safe_file_name("../../x/tweets.csv") == "tweets.csv"
    assert safe_file_name("") == safe_file_name(None) == safe_file_name("..") == "tweets.csv"
    assert download_name("tweets.csv") == "scored_tweets.csv"


def test_a_very_long_name_is_capped_and_keeps_its_extension():
    safe = safe_file_name("x" * 10_000 + ".csv")
    assert len(safe) == MAX_NAME_CHARS and safe.endswith("….csv")
    assert len(download_name("y" * 10_000 + ".csv")) <= MAX_NAME_CHARS + len("scored_.csv")


def test_a_scored_file_with_a_hostile_name_logs_one_line_each_and_downloads_under_a_safe_name(
    fake_server, tmp_path, caplog
):
    session = Dashboard(ModelClient(fake_server.url, timeout=2), FeedbackStore(tmp_path / "feedback.db"))
    name = "../../a.csv\n2026-12-07 ERROR forged\x1b[31m" + "z" * 5_000
    with caplog.at_level(logging.INFO, logger="dashboard.file_view"):
        asyncio.run(session.file_view._score_file(b"text\nlost my bag\n", name))

    batch_lines = [record.getMessage() for record in caplog.records if record.name == "dashboard.file_view"]
    assert len(batch_lines) == 2  # the batch's start and end
    for line in batch_lines:
        assert "\n" not in line and "\x1b" not in line and "../" not in line and len(line) < 300
    download = session.file_view.download.filename
    assert download.isprintable() and "/" not in download and len(download) <= MAX_NAME_CHARS + len("scored_.csv")
    assert "Scored 1 tweets from a.csv_2026-12-07 ERROR forged_[31m" in session.file_view.batch_message.object
