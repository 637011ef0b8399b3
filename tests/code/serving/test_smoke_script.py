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


def test_the_pinned_run_must_be_the_one_served(server, baseline_run_id):
    """CD passes the pinned version's run id: an old container still answering the same tweets fails."""
    assert smoke(server.url, "--expect-run-id", baseline_run_id).returncode == 0
    stale = smoke(server.url, "--expect-run-id", "0" * 32)
    assert stale.returncode == 1
    assert f"serves run {baseline_run_id}, not the pinned version's run {'0' * 32}" in stale.stderr


@pytest.mark.parametrize(("shift", "passes"), [(5e-4, True), (5e-3, False)])
def test_another_cpu_may_round_the_probabilities_within_1e_3(server, tmp_path, shift, passes):
    saved = tmp_path / "expected.json"
    assert smoke(server.url, "--save", str(saved)).returncode == 0
    rows = json.loads(saved.read_text())
    for row in rows:
        row["proba_negative"] = min(
            1.0, max(0.0, row["proba_negative"] + (shift if row["proba_negative"] < 0.5 else -shift))
        )
    shifted = tmp_path / "shifted.json"
    shifted.write_text(json.dumps(rows))
    assert (smoke(server.url, "--expect", str(shifted)).returncode == 0) is passes
