"""Fixtures for the telemetry tests: a local stand-in for the Application Insights ingestion endpoint,
and the dashboard's feedback store the alert reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.appinsights_capture import CaptureServer, telemetry_env


@pytest.fixture
def capture(tmp_path):
    """A running capture server; `capture.env` is the environment that points telemetry at it.

    TMPDIR moves the exporter's offline retry storage into the test's folder, so envelopes a failed
    export stored in another test can never be re-sent here.
    """
    with CaptureServer() as server:
        server.env = {**telemetry_env(server.port), "TMPDIR": str(tmp_path)}
        yield server


# The dashboard's table (created by the dashboard itself in production).
FEEDBACK_TABLE = """
CREATE TABLE feedback(id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, text TEXT NOT NULL,
  predicted_label TEXT NOT NULL, proba_negative REAL NOT NULL, threshold REAL NOT NULL, true_label TEXT NOT NULL,
  is_correct INTEGER NOT NULL, model_version TEXT NOT NULL)"""


@pytest.fixture
def store(tmp_path) -> Path:
    """An empty feedback store with the dashboard's table."""
    path = tmp_path / "feedback.db"
    with sqlite3.connect(path) as connection:
        connection.execute(FEEDBACK_TABLE)
    return path
