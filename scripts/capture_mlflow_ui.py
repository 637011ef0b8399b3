"""Screenshots of the MLflow UI for the docs: the candidates' comparison and the registered model.

\b
    python scripts/capture_mlflow_ui.py                       # newest candidates of MLFLOW_TRACKING_URI's store
    python scripts/capture_mlflow_ui.py --data-run-id ID --model-name tweet-sentiment
    python scripts/capture_mlflow_ui.py --ui-url http://127.0.0.1:5000

Starts `mlflow ui` on the tracking store (unless --ui-url names a running one) on a free 127.0.0.1
port, opens it in Chromium with Playwright and writes to docs/captures/:
mlflow_runs.png (the experiment's runs), mlflow_run_comparison.png (the candidates of one data run,
side by side), mlflow_registered_model.png (versions and the champion alias) and
mlflow_model_version.png (the champion's version: source run and the gate's tags).
The candidates are those `scripts/results_table.py` tabulates (the article's tables), so the shots and
the tables show the same runs. Every shot waits for the text it is about, never for a fixed delay.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import click
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from capture_dashboard import CHROMIUM_ARGS, SERVER_START_TIMEOUT_S, WAIT_MS, absolute_store_uri
from harness.servers import ServerProcess, free_port
from results_table import candidate_runs
from steps.lib.cli import experiment_option
from steps.lib.registry import CHAMPION_ALIAS, MODEL_NAME

REPO = Path(__file__).resolve().parent.parent
CANDIDATES = "tags.candidate = 'true'"
EXPANDER = "button[data-component-id*=runnamecellrenderer]"  # the +/- before a parent run's name
MAX_NESTING = 4
VIEWPORT = {"width": 1600, "height": 1000}
COMPARISON_VIEWPORT = {"width": 1600, "height": 2600}
COMPARED_METRICS = ("val_macro_f1", "val_false_alarm_rate", "val_miss_rate", "val_roc_auc")


@contextlib.contextmanager
def mlflow_ui(tracking_uri: str) -> Iterator[str]:
    """`mlflow ui` on the store, one worker (the page's few requests need no more on 2 cores)."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with ServerProcess(command, dict(os.environ), None, port, cwd=REPO, name="mlflow ui") as server:
        print(f"mlflow ui on {tracking_uri} at {server.url}", flush=True)
        server.wait_until_ok(f"{server.url}/health", timeout=SERVER_START_TIMEOUT_S)
        yield server.url


def champion_version(client: MlflowClient, model_name: str, alias: str) -> str:
    """The aliased version, or the newest one: a store without a champion still gets its model shots."""
    try:
        return client.get_model_version_by_alias(model_name, alias).version
    except MlflowException:
        versions = client.search_model_versions(f"name = '{model_name}'", order_by=["version_number DESC"])
        if not versions:
            sys.exit(f"capture_mlflow_ui: error: no registered model named {model_name!r} in this store")
        return versions[0].version


def close_assistant(page: Page) -> None:
    """MLflow 3's assistant panel opens beside the runs table on a first visit and hides half of it."""
    with contextlib.suppress(PlaywrightTimeoutError):
        page.get_by_role("button", name="Close", exact=True).click(timeout=5_000)


def expand_nested_runs(page: Page) -> None:
    """Open every parent row once (main, then compare_lstm inside it): child runs start collapsed."""
    opened: set[str] = set()
    for _ in range(MAX_NESTING):
        rows = page.get_by_role("gridcell").filter(has=page.locator(EXPANDER))
        pending = [row for row in rows.all() if row.get_by_role("link").first.inner_text() not in opened]
        if not pending:
            return
        for row in pending:
            opened.add(row.get_by_role("link").first.inner_text())
            row.locator(EXPANDER).click()
        page.wait_for_timeout(500)


def plot_metrics(page: Page, metrics: tuple[str, ...]) -> None:
    """The comparison's parallel-coordinates plot opens on the first parameters and metric in
    alphabetical order (C, batch_size, threshold): show the metrics the candidates are ranked on."""
    page.get_by_role("button", name="Clear All").click()
    picker = page.get_by_role("combobox").nth(1)  # Parameters, then Metrics
    for metric in metrics:
        picker.click()
        page.keyboard.type(metric)
        # The visible option with this exact name (Enter could take val_roc_auc_torch, listed first at times)
        page.locator(f'[class*="select-item-option"][title="{metric}"]').click()
    page.keyboard.press("Escape")
    for metric in metrics:  # axis titles of the plot
        axis_title = page.locator("svg text").filter(has_text=re.compile(f"^{re.escape(metric)}$"))
        expect(axis_title.first).to_be_attached(timeout=WAIT_MS)


def shoot(page: Page, out: Path, name: str, what: str, shots: list[tuple[Path, str]]) -> None:
    page.wait_for_timeout(1000)  # let the charts finish drawing after the awaited text appeared
    path = out / name
    page.screenshot(path=str(path), full_page=True)
    shots.append((path, what))


def capture(ui_url: str, out: Path, experiment_id: str, runs: list[tuple[str, str]], model: str, version: str):
    """Open each page, wait for the names it must show, and shoot it."""
    shots: list[tuple[Path, str]] = []
    run_ids = [run_id for run_id, _ in runs]
    names = [name for _, name in runs]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)

        page.goto(f"{ui_url}/#/experiments/{experiment_id}/runs?{urllib.parse.urlencode({'searchFilter': CANDIDATES})}")
        expect(page.get_by_role("grid")).to_be_visible(timeout=WAIT_MS)
        close_assistant(page)
        expand_nested_runs(page)
        for name in names:
            expect(page.get_by_role("link", name=name, exact=True)).to_be_visible(timeout=WAIT_MS)
        shoot(page, out, "mlflow_runs.png", "the candidate runs, nested under main (and compare_lstm)", shots)

        query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([experiment_id])})
        page.set_viewport_size(COMPARISON_VIEWPORT)  # the page scrolls inside a container: show it whole
        page.goto(f"{ui_url}/#/compare-runs?{query}")
        for name in names:
            expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=WAIT_MS)
        close_assistant(page)
        plot_metrics(page, COMPARED_METRICS)
        shoot(
            page,
            out,
            "mlflow_run_comparison.png",
            f"{len(runs)} candidates of one data run compared side by side: parameters, metrics, tags",
            shots,
        )

        page.set_viewport_size(VIEWPORT)
        page.goto(f"{ui_url}/#/models/{urllib.parse.quote(model)}")
        expect(page.get_by_text(f"Version {version}", exact=True).first).to_be_visible(timeout=WAIT_MS)
        shoot(page, out, "mlflow_registered_model.png", f"registered model {model}: its versions and aliases", shots)

        page.goto(f"{ui_url}/#/models/{urllib.parse.quote(model)}/versions/{version}")
        expect(page.get_by_text(f"Version {version}", exact=True).first).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_text("Source Run", exact=False).first).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_text("Intended use", exact=False).first).to_be_visible(timeout=WAIT_MS)
        shoot(
            page,
            out,
            "mlflow_model_version.png",
            f"{model} version {version}: the source run, aliases, the registration gate's tags and the model card",
            shots,
        )
        browser.close()
    return shots


@click.command(help=__doc__)
@experiment_option("shot")
@click.option(
    "--data-run-id", default="", show_default=True, help="whose candidates to compare (empty = newest data run)"
)
@click.option("--model-name", default=MODEL_NAME, show_default=True, help="registered model whose pages are shot")
@click.option(
    "--alias",
    default=CHAMPION_ALIAS,
    show_default=True,
    help="alias of the version shot (the newest version if none has it)",
)
@click.option("--ui-url", help="use this MLflow UI instead of starting one on the tracking store")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=REPO / "docs" / "captures",
    show_default=True,
    help="folder the PNGs are written to",
)
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    tracking_uri = absolute_store_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        sys.exit(f"capture_mlflow_ui: error: no experiment named {args.experiment!r} in {tracking_uri}")
    candidates = candidate_runs(args.experiment, args.data_run_id)
    if candidates.empty:
        sys.exit(f"capture_mlflow_ui: error: no finished candidate runs in {args.experiment!r} to compare")
    runs = list(zip(candidates["run_id"], candidates["name"], strict=True))
    version = champion_version(client, args.model_name, args.alias)
    args.out.mkdir(parents=True, exist_ok=True)

    with contextlib.ExitStack() as stack:
        ui_url = args.ui_url or stack.enter_context(mlflow_ui(tracking_uri))
        shots = capture(ui_url, args.out, experiment.experiment_id, runs, args.model_name, version)
    for path, what in shots:
        print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {what}")


if __name__ == "__main__":
    main()
