"""Fixtures for the telemetry tests: a local stand-in for the Application Insights ingestion endpoint."""

from __future__ import annotations

import pytest
from appinsights_capture import CaptureServer, telemetry_env


@pytest.fixture
def capture(tmp_path):
    """A running capture server; `capture.env` is the environment that points telemetry at it.

    TMPDIR moves the exporter's offline retry storage into the test's folder, so envelopes a failed
    export stored in another test can never be re-sent here.
    """
    with CaptureServer() as server:
        server.env = {**telemetry_env(server.port), "TMPDIR": str(tmp_path)}
        yield server
