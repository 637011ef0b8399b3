"""scripts/smoke_test.py, which CD runs against the image and the deployed URL, on the real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "smoke_test.py"


def smoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_smoke_test_passes_and_recognises_the_same_answer(server, tmp_path):
    saved = tmp_path / "expected.json"
    first = smoke(server.url, "--save", str(saved))
    assert first.returncode == 0, first.stderr
    assert "smoke test passed" in first.stdout
    assert [row["label"] for row in json.loads(saved.read_text())] == ["negative", "not_negative"]

    again = smoke(server.url, "--expect", str(saved))
    assert again.returncode == 0, again.stderr


def test_smoke_test_fails_when_the_answer_differs_from_the_tested_image(server, tmp_path):
    saved = tmp_path / "expected.json"
    assert smoke(server.url, "--save", str(saved)).returncode == 0
    rows = json.loads(saved.read_text())
    rows[0]["proba_negative"] = round(rows[0]["proba_negative"] / 2, 6)
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(rows))

    result = smoke(server.url, "--expect", str(stale))
    assert result.returncode == 1
    assert "differs from the tested image's" in result.stderr


def test_smoke_test_fails_when_nothing_answers(tmp_path):
    result = smoke("http://127.0.0.1:9", "--wait", "0")
    assert result.returncode == 1
    assert "smoke test FAILED" in result.stderr
