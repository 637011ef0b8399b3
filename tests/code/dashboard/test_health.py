"""The Model health tab without a browser: the feedback figures, the tracking store's runs, every problem a sentence."""

from __future__ import annotations

import asyncio
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from mlflow import MlflowClient

from dashboard.feedback import Feedback, FeedbackStore
from dashboard.health_feedback import FeedbackFigures, FeedbackUnreadable, VersionAccuracy, read_figures
from dashboard.health_runs import TrackingUnavailable, configured_uri, latest_runs, shown_uri
from dashboard.health_view import HealthView, feedback_html, monitor_html, per_day_chart, shadow_html
from steps.lib.monitoring_charts import agreement_chart, drift_histogram
from tests.conftest import new_tracking

OLD, NEW = "baseline:" + "a" * 32, "transformer:" + "b" * 32
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def give(store: FeedbackStore, text: str, said: str, truth: str, who: str, day: str, **fields: str) -> None:
    """One verdict: the model `said`, the person says `truth`."""
    store.add(
        Feedback(
            text=text,
            predicted_label=said,
            proba_negative=0.7 if said == "negative" else 0.2,
            threshold=0.5,
            true_label=truth,
            model_version=fields.get("model_version", OLD),
            created_at=f"{day}T10:00:00.000+00:00",
            user_name=who,
            role=fields.get("role", "tester"),
        )
    )


def give_known_verdicts(store: FeedbackStore) -> FeedbackStore:
    """Five tweets: two agreed by testers (right on the old model, right on the new), one decided by a reviewer
    (the old model wrong), one conflict, one with a single verdict; ten verdicts over two days."""
    for who in ("alice", "bob"):
        give(store, "agreed right", "negative", "negative", who, "2026-12-05")
    give(store, "conflict", "negative", "negative", "alice", "2026-12-05")
    give(store, "conflict", "negative", "not_negative", "bob", "2026-12-06")
    give(store, "decided wrong", "negative", "negative", "alice", "2026-12-06")
    give(store, "decided wrong", "negative", "not_negative", "bob", "2026-12-06")
    give(store, "decided wrong", "negative", "not_negative", "rita", "2026-12-06", role="reviewer")
    give(store, "alone", "not_negative", "negative", "alice", "2026-12-06")
    for who in ("alice", "carol"):
        give(store, "new model right", "not_negative", "not_negative", who, "2026-12-06", model_version=NEW)
    return store


@pytest.fixture
def known_store(tmp_path: Path) -> FeedbackStore:
    return give_known_verdicts(FeedbackStore(tmp_path / "feedback.db"))


def test_a_store_with_known_verdicts_gives_known_counts_agreement_and_accuracy(known_store):
    figures = read_figures(known_store.path)
    assert figures.verdicts == 10 and figures.per_day == [("2026-12-05", 3), ("2026-12-06", 7)]
    assert (figures.tweets, figures.agreed, figures.conflicts, figures.waiting) == (5, 3, 1, 1)
    assert figures.by_version == [VersionAccuracy(OLD, 2, 1), VersionAccuracy(NEW, 1, 1)]

    shown = feedback_html(figures, "feedback.db")
    assert '<span id="health-verdicts">10 on 5 tweets</span>' in shown
    assert "3 tweets agreed, 1 open conflict, 1 waiting for a second verdict" in shown
    assert "67%: the model was right on 2 of 3 agreed verdicts" in shown
    assert 'id="health-accuracy-by-version"' in shown and "<td style='padding:2px 10px'>50%</td>" in shown
    chart = per_day_chart(figures)
    assert chart["xAxis"]["data"] == ["2026-12-05", "2026-12-06"] and chart["series"][0]["data"] == [3, 7]


def test_one_model_version_gets_no_per_version_table_and_its_name_is_escaped(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    for who in ("alice", "bob"):
        give(store, "t", "negative", "negative", who, "2026-12-06", model_version="<b>x</b>")
    shown = feedback_html(read_figures(store.path), "f.db")
    assert "100%: the model was right on 1 of 1 agreed verdict" in shown and "health-accuracy-by-version" not in shown
    two = FeedbackFigures(2, [], 1, 1, 0, [VersionAccuracy("<b>x</b>", 1, 1), VersionAccuracy("y", 1, 0)])
    assert "&lt;b&gt;x&lt;/b&gt;" in feedback_html(two, "f.db") and "<b>x</b>" not in feedback_html(two, "f.db")


def test_an_empty_or_absent_store_is_a_sentence(tmp_path):
    assert read_figures(tmp_path / "never-written.db") == FeedbackFigures()
    assert not (tmp_path / "never-written.db").exists()  # looking never creates the store
    FeedbackStore(tmp_path / "empty.db")
    shown = feedback_html(read_figures(tmp_path / "empty.db"), "empty.db")
    assert "No verdicts yet in the feedback store empty.db" in shown and "Right and Wrong buttons" in shown


def test_only_unagreed_verdicts_say_there_is_no_accuracy_yet(tmp_path):
    store = FeedbackStore(tmp_path / "f.db")
    give(store, "alone", "negative", "negative", "alice", "2026-12-06")
    assert "no agreed verdict yet" in feedback_html(read_figures(store.path), "f.db")


def test_a_file_that_is_not_a_feedback_store_is_named(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not a database at all, just some text that is long enough" * 20)
    with pytest.raises(FeedbackUnreadable, match=r"^The feedback store .*notes\.db cannot be read \("):
        read_figures(path)


def log_monitor_run(client: MlflowClient, experiment_id: str, status: str = "FINISHED") -> str:
    """A run as `monitor` logs it: the step tag, the drift tags, PSIs, rows and one histogram."""
    run_id = client.create_run(experiment_id, tags={"step": "monitor"}).info.run_id
    client.set_tag(run_id, "drift.alert", "true")
    client.set_tag(run_id, "drift.features", "length")
    client.log_param(run_id, "psi_alert", "0.2")
    for name, value in {"psi_proba": 0.05, "psi_length": 0.31, "rows": 1234.0}.items():
        client.log_metric(run_id, name, value)
    bins = {"edges": [float("-inf"), 40.0, float("inf")], "reference": [0.5, 0.5], "recent": [0.2, 0.8]}
    figure = drift_histogram("length", bins, 0.31, 300, 1234)
    client.log_figure(run_id, figure, "drift/histogram_length.png")
    plt.close(figure)
    client.set_terminated(run_id, status)
    return run_id


@pytest.fixture
def store_uri(tmp_path: Path, monkeypatch) -> tuple[str, MlflowClient, str]:
    tracking = new_tracking(tmp_path / "mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.uri)  # the dashboard reads the store from the environment
    return tracking.uri, MlflowClient(tracking.uri), tracking.experiment_id


def test_the_newest_finished_monitor_run_is_read_with_its_chart(store_uri):
    uri, client, experiment_id = store_uri
    assert latest_runs(uri) == {"monitor": None, "shadow": None}
    finished = log_monitor_run(client, experiment_id)
    log_monitor_run(client, experiment_id, status="FAILED")  # newer, but a failed run's charts may be missing

    runs = latest_runs(configured_uri())
    monitor = runs["monitor"]
    assert monitor.run_id == finished and runs["shadow"] is None
    assert [chart.path for chart in monitor.charts] == ["drift/histogram_length.png"]
    assert monitor.charts[0].png.startswith(PNG_MAGIC)
    shown = monitor_html(monitor)
    assert f"Latest monitor run {finished}" in shown
    assert "DRIFT in length on 1,234 tweets (alert above PSI 0.2)" in shown
    assert "<td style='padding:2px 10px'>0.310</td><td style='padding:2px 10px'>yes</td>" in shown


def test_the_newest_shadow_run_is_read_with_its_agreement_and_accuracies(store_uri):
    uri, client, experiment_id = store_uri
    run_id = client.create_run(experiment_id, tags={"step": "shadow"}).info.run_id
    metrics = {"rows": 400.0, "agreement_rate": 0.9125, "disagreements": 35.0, "champion_flagged_share": 0.2}
    metrics |= {"challenger_flagged_share": 0.25, "champion_accuracy": 0.81, "challenger_accuracy": 0.84}
    for name, value in metrics.items():
        client.log_metric(run_id, name, value)
    figure = agreement_chart(np.array([True, False]), np.array([True, True]))
    client.log_figure(run_id, figure, "shadow/agreement.png")
    plt.close(figure)
    client.set_terminated(run_id, "FINISHED")

    shadow = latest_runs(uri)["shadow"]
    assert shadow.run_id == run_id and [chart.path for chart in shadow.charts] == ["shadow/agreement.png"]
    assert (
        "the two models agree on 91.2% of 400 tweets (35 disagreements); flagged 20.0% (champion) vs 25.0% "
        "(challenger). Accuracy on labelled tweets: 0.810 (champion) vs 0.840 (challenger)."
    ) in shadow_html(shadow)


def test_no_tracking_store_configured_is_an_info_sentence(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(TrackingUnavailable, match=r"^No tracking store is configured: .*MLFLOW_TRACKING_URI") as error:
        configured_uri()
    assert error.value.kind == "info"


def test_a_store_that_is_down_is_one_sentence_without_its_credentials(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")  # what the app sets for its process
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(TrackingUnavailable) as error:
        latest_runs("http://ops:s3cret@127.0.0.1:9")
    message = str(error.value)
    assert message.startswith("The tracking store http://127.0.0.1:9 cannot be read (") and "\n" not in message
    assert "s3cret" not in message and error.value.kind == "error"
    assert shown_uri("sqlite:///x.db?mode=ro") == "sqlite:///x.db"


def test_the_view_says_which_command_makes_a_missing_run_and_shows_the_figures(store_uri, known_store):
    view = HealthView(known_store)
    asyncio.run(view.refresh())
    assert '<span id="health-verdicts">10 on 5 tweets</span>' in view.feedback.object and view.per_day.visible
    assert "No monitor run yet: `mlflow run . -e monitor" in view.sections["monitor"].object
    assert "No shadow run yet: `mlflow run . -e shadow" in view.sections["shadow"].object
    assert view.tracking.object == "" and "Read at" in view.status.object and not view.refresh_button.disabled

    _, client, experiment_id = store_uri
    run_id = log_monitor_run(client, experiment_id)
    asyncio.run(view.refresh())  # Refresh shows the run made since
    assert f"Latest monitor run {run_id}" in view.sections["monitor"].object
    (chart,) = view.charts["monitor"]
    assert chart[0].object.startswith(PNG_MAGIC) and f"drift/histogram_length.png, monitor run {run_id}" in (
        chart[1].object
    )


def test_the_view_without_a_store_still_shows_the_feedback(monkeypatch, known_store):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    view = HealthView(known_store)
    asyncio.run(view.refresh())
    assert "No tracking store is configured" in view.tracking.object and 'role="status"' in view.tracking.object
    assert view.sections["monitor"].object == "" and "10 on 5 tweets" in view.feedback.object
