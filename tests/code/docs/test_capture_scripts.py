"""The scripts that make the docs' captures still run: MLflow UI shots, dashboard shots, benchmark chart.

Each runs exactly as documented (a subprocess on a real store, a real `mlflow ui`/`mlflow models
serve`/`panel serve` and Debian's Chromium) but writes into a temporary folder, never docs/captures.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from matplotlib import image
from mlflow import MlflowClient

from steps.lib.model_card import publish_model_card
from tests.conftest import REPO, Tracking, mlflow_run, run_id_of

pytestmark = pytest.mark.integration  # drives mlflow run, mlflow ui, model servers and Chromium

MODEL_NAME = "capture-test-model"  # registered by this module only: the session store is shared
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_script(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts" / script), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def assert_screenshot(path: Path, min_width: int, min_height: int) -> None:
    """A real PNG of at least the viewport's size (full-page shots may be taller)."""
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    height, width = image.imread(path).shape[:2]
    assert width >= min_width and height >= min_height, (path, width, height)


@pytest.fixture(scope="module")
def registered_model(tracking: Tracking, prepared_run_id: str, baseline_run_id: str):
    """A second candidate of the same data run (so there is something to compare) and a registered
    model with the champion alias; the model is deleted afterwards."""
    second = run_id_of(mlflow_run(tracking, "train_baseline", data_run_id=prepared_run_id, min_df=2))
    client = MlflowClient(tracking.uri)
    version = mlflow.register_model(f"runs:/{baseline_run_id}/model", MODEL_NAME).version
    client.set_registered_model_alias(MODEL_NAME, "champion", version)
    client.set_model_version_tag(MODEL_NAME, version, "gate.passed", "true")
    publish_model_card(client, client.get_model_version(MODEL_NAME, version))  # as register writes it
    yield {"candidates": {baseline_run_id, second}, "version": version}
    client.delete_registered_model(MODEL_NAME)


def test_mlflow_ui_capture_shoots_the_comparison_and_the_registered_model(
    tracking: Tracking, prepared_run_id: str, registered_model: dict, tmp_path: Path
):
    result = run_script(
        "capture_mlflow_ui.py",
        *("--experiment", "tests", "--data-run-id", prepared_run_id, "--model-name", MODEL_NAME),
        *("--out", str(tmp_path)),
        env=tracking.env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    shots = ["mlflow_runs.png", "mlflow_run_comparison.png", "mlflow_registered_model.png", "mlflow_model_version.png"]
    for name in shots:
        assert_screenshot(tmp_path / name, 1600, 1000)
        assert f"{tmp_path / name}:" in result.stdout  # each shot is listed with what it shows
    assert "candidates of one data run compared side by side" in result.stdout
    assert f"{MODEL_NAME} version {registered_model['version']}" in result.stdout
    assert "the registration gate's tags and the model card" in result.stdout  # the card is on the page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--experiment", "no-such-experiment"), "no experiment named 'no-such-experiment'"),
        (("--experiment", "tests", "--model-name", "no-such-model"), "no registered model named 'no-such-model'"),
        (("--experiment", "tests", "--data-run-id", "0" * 32), "no finished candidate runs"),
    ],
)
def test_mlflow_ui_capture_names_what_is_missing_before_starting_anything(
    tracking: Tracking, prepared_run_id: str, baseline_run_id: str, args: tuple[str, ...], message: str, tmp_path: Path
):
    if "--data-run-id" not in args:
        args = (*args, "--data-run-id", prepared_run_id)
    result = run_script("capture_mlflow_ui.py", *args, "--out", str(tmp_path), env=tracking.env)
    assert result.returncode != 0
    assert f"capture_mlflow_ui: error: {message}" in result.stderr
    assert "mlflow ui on" not in result.stdout and not list(tmp_path.iterdir())


def test_dashboard_capture_shoots_every_state(tracking: Tracking, baseline_run_id: str, tmp_path: Path):
    result = run_script(
        "capture_dashboard.py",
        "--model-uri",
        f"runs:/{baseline_run_id}/model",
        "--out",
        str(tmp_path),
        env=tracking.env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    states = [
        *("prediction", "threshold", "feedback", "review", "script_as_text", "history", "health", "batch"),
        *("rows_explained", "label_next", "server_down"),
    ]
    for state in states:
        assert_screenshot(tmp_path / f"dashboard_{state}.png", 1400, 900)
    assert_screenshot(tmp_path / "dashboard_why_flagged.png", 1400, 150)  # the result alone, at the page's width
    assert "dashboard_why_flagged.png: why flagged: each word of the typed tweet shaded" in result.stdout
    assert "the decision flips" in result.stdout and "Cannot reach" not in result.stderr
    assert "dashboard_health.png: the Model health tab" in result.stdout
    assert re.search(r'one click a verdict \(stored with who gave it\), progress "\d+ of \d+"', result.stdout)


def test_benchmark_chart_draws_the_recorded_figures(tmp_path: Path):
    """The committed figures (docs/serve_benchmark.json, what docs/serving.md tabulates) still chart."""
    out = tmp_path / "chart.png"
    result = run_script("chart_serve_benchmark.py", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_screenshot(out, 1500, 550)
    recorded = json.loads((REPO / "docs" / "serve_benchmark.json").read_text())
    scenarios = {(r["concurrency"], r["batch"]) for r in recorded["champion"]}
    assert scenarios == {(c, b) for c in (1, 4, 16) for b in (1, 32)}
    assert {(r["concurrency"], r["batch"]) for r in recorded["naive"]} == scenarios


@pytest.mark.parametrize("content", ["not json", json.dumps({"naive": []}), json.dumps([1, 2])])
def test_benchmark_chart_rejects_a_file_that_is_not_the_benchmarks_json(content: str, tmp_path: Path):
    source = tmp_path / "figures.json"
    source.write_text(content)
    result = run_script("chart_serve_benchmark.py", "--json", str(source), "--out", str(tmp_path / "chart.png"))
    assert result.returncode != 0
    assert result.stderr.startswith("chart_serve_benchmark: error:") and str(source) in result.stderr
    assert not (tmp_path / "chart.png").exists()
