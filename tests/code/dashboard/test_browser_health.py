"""The Model health tab in Debian's Chromium against the real `panel serve` and a real local MLflow store.

The feedback store holds known verdicts, so the tab's counts and accuracy are known; the tracking
store starts without a monitor run (the tab says which command makes one), then gets one, and Refresh
shows it with its histogram. The model server is the scripted one (conftest.py): the tab never asks it.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from playwright.sync_api import expect

from dashboard.feedback import FeedbackStore
from tests.code.dashboard.test_browser import WAIT_MS, open_tab
from tests.code.dashboard.test_health import give_known_verdicts, log_monitor_run
from tests.conftest import new_tracking

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_health_tab_shows_the_verdict_figures_and_a_monitor_run_after_refresh(
    page, fake_server, start_dashboard, tmp_path
):
    give_known_verdicts(FeedbackStore(tmp_path / "feedback.db"))  # the file start_dashboard serves
    tracking = new_tracking(tmp_path / "mlflow")
    fake_server.reply = lambda path, body: (
        (200, "text/plain", b"ok") if body is None else fake_server.contract_answer(body)
    )
    dashboard = start_dashboard(fake_server.url, MLFLOW_TRACKING_URI=tracking.uri)

    page.goto(dashboard.app_url)
    expect(page.locator("textarea")).to_be_visible(timeout=WAIT_MS)
    open_tab(page, "Model health")
    expect(page.locator("#health-verdicts")).to_have_text("10 on 5 tweets", timeout=WAIT_MS)
    expect(page.locator("#health-agreement")).to_have_text(
        "3 tweets agreed, 1 open conflict, 1 waiting for a second verdict"
    )
    expect(page.locator("#health-accuracy")).to_have_text("67%: the model was right on 2 of 3 agreed verdicts")
    expect(page.locator("#health-accuracy-by-version tbody tr")).to_have_count(2)
    expect(page.locator("#health-monitor")).to_have_text(
        "No monitor run yet: `mlflow run . -e monitor --env-manager local -P input=<recent tweets>` makes one.",
        timeout=WAIT_MS,
    )
    expect(page.locator("#health-shadow")).to_contain_text("No shadow run yet")

    run_id = log_monitor_run(MlflowClient(tracking.uri), tracking.experiment_id)
    page.get_by_role("button", name="Refresh", exact=True).click()
    expect(page.locator("#health-monitor")).to_contain_text(f"Latest monitor run {run_id}", timeout=WAIT_MS)
    expect(page.locator("#health-monitor")).to_contain_text("DRIFT in length on 1,234 tweets")
    expect(page.get_by_text(f"drift/histogram_length.png, monitor run {run_id}")).to_be_visible()
    image = page.locator("img[src^='data:image/png']")
    expect(image).to_have_count(1)
    assert image.evaluate("element => element.naturalWidth") > 100  # the histogram decoded, not a broken image
    assert "Traceback" not in dashboard.log(), dashboard.log()[-3000:]
