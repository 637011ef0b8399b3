"""Ten testers at once on the dashboard: every action timed, every error counted, no feedback lost.

Starts `mlflow models serve` on a model URI (default the champion, one worker) and, for each Panel
setting in `--panel-settings`, a fresh `panel serve dashboard/app.py` with an empty feedback store.
Then `--testers` separate Chromium contexts (each its own Bokeh session) run the same script at the
same time: open the page, predict typed tweets, move the threshold, flag predictions right or wrong,
upload a CSV of `--csv-rows` tweets and wait until it is scored. Reports per action the count, p50,
p95 and max in seconds, the errors (an action whose expected text did not appear within its
timeout, or an error message on the page), and the feedback rows flagged against those stored.

\b
    python bench/dashboard_load.py                                   # the champion, 10 testers
    python bench/dashboard_load.py --panel-settings "default;--num-threads 4;--num-procs 2"
    python bench/dashboard_load.py --model-uri runs:/<run_id>/model --json build/dashboard_load.json

Run it from the repository root with the project's virtual environment active, MLFLOW_TRACKING_URI
pointing at the store that holds the model, and Debian's Chromium installed (`scripts/install.sh test`).
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shlex
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve_benchmark import busy_warning, load_texts, machine, server_env, start_champion
from harness.provenance import provenance
from harness.servers import DashboardServer
from steps.lib.cli import WHOLE_NUMBER
from steps.lib.registry import CHAMPION_URI

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
ACTION_TIMEOUT_S = 600  # ten 1,000-row CSVs at once take the champion about two minutes on 2 cores
# Saved at once, or kept and saved by a retry a few seconds later: both are a verdict stored.
SAVED = re.compile(r"Saved as feedback|Saved the \d+ waiting verdicts as feedback")
PREDICTIONS_PER_TESTER = 4


def start_dashboard(model_url: str, setting: str, feedback_db: Path, log_path: Path) -> DashboardServer:
    """`panel serve dashboard/app.py` with one setting's extra arguments and an empty feedback store, ready."""
    env = server_env() | {"FEEDBACK_DB": str(feedback_db)}
    env.pop("MLFLOW_TRACKING_URI", None)  # the registry line is optional; it would add a lookup per prediction
    extra_args = [] if setting == "default" else shlex.split(setting)
    return DashboardServer(model_url, env, log_path, extra_args).wait_ready(timeout=120, poll=0.3)


class Tester:
    """One tester's browser context; each action is timed from the click to the text that proves it done."""

    def __init__(self, number: int, page, texts: list[str], csv_path: Path, csv_rows: int, timeout_s: float) -> None:
        self.number = number
        self.timeout_ms = timeout_s * 1000
        self.page = page
        self.texts = texts
        self.csv_path = csv_path
        self.csv_rows = csv_rows
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.flagged = 0

    async def timed(self, action: str, steps) -> None:
        started = time.perf_counter()
        try:
            await steps()
        except Exception as error:  # a timeout or a wrong page: counted, and the script goes on
            lines = str(error).splitlines() or [type(error).__name__]
            seen = next((line.strip() for line in lines if line.strip().startswith("Actual value")), "")
            self.errors.append(f"{action}: {lines[0][:200]}" + (f" ({seen[:200]})" if seen else ""))
            return
        self.seconds[action].append(time.perf_counter() - started)

    async def run(self, app_url: str) -> None:
        from playwright.async_api import expect

        page = self.page

        async def open_page() -> None:
            await page.goto(app_url)
            await expect(page.locator("#server-status")).to_contain_text("is up", timeout=self.timeout_ms)

        async def predict(text: str) -> None:
            await page.locator("textarea").fill(text)
            await page.get_by_role("button", name="Predict").click()
            await expect(page.locator("#result-text")).to_have_text(text, timeout=self.timeout_ms)

        async def move_threshold(value: float) -> None:
            box = page.locator(".slider-edit input")
            await box.fill(str(value))
            await box.press("Enter")
            await expect(page.locator("#result-threshold")).to_contain_text(f"{value:.4f}", timeout=self.timeout_ms)

        async def flag() -> None:
            await page.get_by_role("button", name=f"Wrong: it is {await other_label()}").click()
            await expect(page.locator("#feedback-status")).to_contain_text(SAVED, timeout=self.timeout_ms)
            self.flagged += 1

        async def other_label() -> str:
            label = await page.locator("#result-label").inner_text()
            return "not_negative" if label == "negative" else "negative"

        async def score_csv() -> None:
            await page.locator(".bk-tab", has_text="Batch").click()
            await page.locator("input[type=file]").first.set_input_files(self.csv_path)  # the Batch tab's
            await page.get_by_role("button", name="Score the file").click()
            try:
                status = page.locator("#batch-status")
                await expect(status).to_contain_text(f"Scored {self.csv_rows} tweets", timeout=self.timeout_ms)
            finally:  # a failed batch is one error: the tester's next actions still happen on the Predict tab
                await page.locator(".bk-tab", has_text="Predict").click()

        await self.timed("open the page", open_page)
        offset = self.number * PREDICTIONS_PER_TESTER
        for index in range(PREDICTIONS_PER_TESTER):
            text = self.texts[(offset + index) % len(self.texts)]
            await self.timed("predict a typed tweet", lambda text=text: predict(text))
            if index == 1:
                await self.timed("move the threshold", lambda: move_threshold(0.35))
                await self.timed("move the threshold", lambda: move_threshold(0.65))
            await self.timed("flag a prediction", flag)
            if index == 1:
                await self.timed(f"score a {self.csv_rows}-row CSV", score_csv)
        done = sum(len(seconds) for seconds in self.seconds.values())
        print(f"  tester {self.number}: {done} actions done, {len(self.errors)} errors", flush=True)
        if await page.locator("[role=alert]").count():
            for alert in await page.locator("[role=alert]").all_inner_texts():
                if alert.strip():
                    self.errors.append(f"error message on the page: {alert.strip()[:200]}")


async def run_testers(
    app_url: str, testers: int, texts: list[str], csv_path: Path, csv_rows: int, timeout_s: float
) -> list[Tester]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        contexts = [await browser.new_context() for _ in range(testers)]
        crew = [
            Tester(number, await context.new_page(), texts, csv_path, csv_rows, timeout_s)
            for number, context in enumerate(contexts)
        ]
        await asyncio.gather(*(tester.run(app_url) for tester in crew))
        await browser.close()
    return crew


def stored_feedback(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]


def summarise(setting: str, crew: list[Tester], stored: int, wall_s: float) -> dict:
    actions: dict[str, list[float]] = defaultdict(list)
    for tester in crew:
        for action, seconds in tester.seconds.items():
            actions[action] += seconds
    return {
        "setting": setting,
        "wall_s": wall_s,
        "actions": {
            action: {
                "count": len(seconds),
                "p50_s": float(np.percentile(seconds, 50)),
                "p95_s": float(np.percentile(seconds, 95)),
                "max_s": float(max(seconds)),
            }
            for action, seconds in actions.items()
        },
        "errors": [error for tester in crew for error in tester.errors],
        "feedback_flagged": sum(tester.flagged for tester in crew),
        "feedback_stored": stored,
    }


def table(summary: dict) -> str:
    lines = [f"### panel serve {summary['setting']}: {summary['wall_s']:.0f} s for every tester's script", ""]
    lines += ["| action | count | p50 s | p95 s | max s |", "|---|---:|---:|---:|---:|"]
    for action, figures in summary["actions"].items():
        seconds = " | ".join(f"{figures[key]:.2f}" for key in ("p50_s", "p95_s", "max_s"))
        lines.append(f"| {action} | {figures['count']} | {seconds} |")
    lines.append("")
    lines.append(f"errors: {len(summary['errors'])}" + (f" (e.g. {summary['errors'][0]})" if summary["errors"] else ""))
    lost = summary["feedback_flagged"] - summary["feedback_stored"]
    lines.append(f"feedback: {summary['feedback_flagged']} flagged, {summary['feedback_stored']} stored, {lost} lost")
    return "\n".join(lines)


@click.command(help=__doc__)
@click.option("--model-uri", default=CHAMPION_URI, show_default=True, help="model served by `mlflow models serve`")
@click.option("--testers", type=WHOLE_NUMBER, default=10, show_default=True, help="browser sessions at once")
@click.option("--csv-rows", type=WHOLE_NUMBER, default=1000, show_default=True, help="tweets in each tester's CSV")
@click.option(
    "--panel-settings",
    default="default;--num-threads 4",
    show_default=True,
    help="`panel serve` arguments to compare, separated by ';' (`default` = none)",
)
@click.option(
    "--action-timeout",
    type=float,
    default=ACTION_TIMEOUT_S,
    show_default=True,
    help="seconds an action may take before it counts as an error",
)
@click.option("--texts", default="", show_default=True, help="CSV/Parquet with a text column (empty = embedded tweets)")
@click.option("--json", default="", show_default=True, help="also write every figure to this JSON file")
@click.option("--seed", type=WHOLE_NUMBER, default=7, show_default=True, help="seed of the tweets' sample")
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: `bash scripts/install.sh test` installs Debian's Chromium")
    texts = load_texts(args.texts, max(4000, args.csv_rows), args.seed)
    host, origin = machine(), provenance(args.model_uri)  # at start: the load before the benchmark's own
    print(f"machine: {host}")
    if warning := busy_warning():
        print(warning, flush=True)
    settings = [setting.strip() for setting in args.panel_settings.split(";") if setting.strip()]
    summaries = []
    with tempfile.TemporaryDirectory(prefix="dashboard-load-") as folder:
        csv_path = Path(folder) / "tweets.csv"
        with csv_path.open("w", newline="") as handle:
            csv.writer(handle).writerows([("text",), *((text,) for text in texts[: args.csv_rows])])
        model = start_champion(args.model_uri, workers=1)
        print(f"served: {args.model_uri} (mlflow models serve, 1 worker)", flush=True)
        try:
            for number, setting in enumerate(settings):
                feedback_db = Path(folder) / f"feedback-{number}.db"
                log_path = Path(folder) / f"panel-{number}.log"
                with start_dashboard(model.url, setting, feedback_db, log_path) as dashboard:
                    started = time.perf_counter()
                    crew = asyncio.run(
                        run_testers(
                            dashboard.app_url, args.testers, texts, csv_path, args.csv_rows, args.action_timeout
                        )
                    )
                    wall_s = time.perf_counter() - started
                summary = summarise(setting, crew, stored_feedback(feedback_db), wall_s)
                summaries.append(summary)
                print("\n" + table(summary), flush=True)
                if args.json:  # after every setting: a run stopped later keeps what it measured
                    record = {"machine": host, "provenance": origin, "warning": warning, "testers": args.testers}
                    record |= {"csv_rows": args.csv_rows, "settings": summaries}
                    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                    Path(args.json).write_text(json.dumps(record, indent=2))
        finally:
            model.stop()


if __name__ == "__main__":
    main()
