"""`emit_wrong_prediction` (called by the dashboard) and the on/off switch, each in a fresh process.

A process configures the Azure Monitor distro once, so every case runs in its own interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.appinsights_capture import base_data

REPO = Path(__file__).resolve().parents[3]
EMIT = """
from pyfunc.telemetry import emit_wrong_prediction
emit_wrong_prediction(text="@united two hours on the tarmac, thanks a lot", predicted_label="not_negative",
                      proba_negative=0.31, true_label="negative", model_version="baseline:0123abcd",
                      top_words=["thanks", "tarmac"])
"""


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    unset = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "TELEMETRY_SEND_TEXT"}  # each test says what it sets
    base = {k: v for k, v in os.environ.items() if k not in unset}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def wrong_predictions(capture) -> list[dict]:
    return [base_data(e) for e in capture.of_type("EventData") if base_data(e).get("name") == "wrong_prediction"]


def test_wrong_prediction_event_carries_the_feedback(capture):
    run_python(EMIT, {**capture.env, "TELEMETRY_SEND_TEXT": "true"})
    [event] = capture.wait_for(lambda: wrong_predictions(capture))
    properties = event["properties"]
    assert properties["predicted_label"] == "not_negative"
    assert properties["true_label"] == "negative"
    assert float(properties["proba_negative"]) == pytest.approx(0.31)
    assert properties["model_version"] == "baseline:0123abcd"
    assert properties["model_name"] == "baseline"
    assert properties["text"] == "@united two hours on the tarmac, thanks a lot"
    assert json.loads(properties["top_words"]) == ["thanks", "tarmac"]
    assert event["measurements"] == {"proba_negative": pytest.approx(0.31)}
    [envelope] = [e for e in capture.of_type("EventData") if base_data(e).get("name") == "wrong_prediction"]
    assert envelope["name"] == "Microsoft.ApplicationInsights.Event"
    assert envelope["tags"]["ai.cloud.role"] == "tweet-sentiment-dashboard"


@pytest.mark.parametrize("switch", [None, "false"], ids=["unset", "false"])
def test_the_text_stays_out_unless_opted_in(capture, switch):
    env = capture.env if switch is None else {**capture.env, "TELEMETRY_SEND_TEXT": switch}
    run_python(EMIT, env)
    [event] = capture.wait_for(lambda: wrong_predictions(capture))
    assert "text" not in event["properties"] and "top_words" not in event["properties"]
    assert "tarmac" not in str(event)
    assert event["properties"]["true_label"] == "negative"
    assert event["properties"]["model_version"] == "baseline:0123abcd"


def test_without_connection_string_telemetry_is_off_and_says_so_once():
    code = EMIT + (
        "\nfrom pyfunc.telemetry import configure_telemetry, telemetry_enabled, record_predictions\n"
        "assert configure_telemetry('again') is False and not telemetry_enabled()\n"
        "record_predictions('baseline:x', ['negative'], [0.9])\n"
        "import sys; assert 'azure.monitor.opentelemetry' not in sys.modules\n"
    )
    result = run_python(code, {})
    assert result.stderr.count("telemetry off") == 1, result.stderr


def test_a_broken_connection_string_leaves_telemetry_off():
    code = EMIT + "\nfrom pyfunc.telemetry import telemetry_enabled\nassert not telemetry_enabled()\n"
    result = run_python(code, {"APPLICATIONINSIGHTS_CONNECTION_STRING": "not a connection string"})
    assert "telemetry off: Azure Monitor could not be configured" in result.stderr


BIG_BATCH = """
import numpy as np
from pyfunc.telemetry import configure_telemetry, record_predictions
assert configure_telemetry("big-batch")
proba = np.linspace(0.0, 1.0, 1001)
record_predictions("lstm:r2", np.where(proba >= 0.5, "negative", "not_negative"), proba)
"""


def metric_points(capture) -> dict[str, list[tuple[dict, dict]]]:
    """Every metric point the capture server received, by metric name, with its dimensions."""
    capture.wait_for(lambda: capture.of_type("MetricData"))
    points: dict[str, list[tuple[dict, dict]]] = {}
    for envelope in capture.of_type("MetricData"):
        for point in base_data(envelope)["metrics"]:
            points.setdefault(point["name"], []).append((point, base_data(envelope)["properties"]))
    return points


def test_big_batch_counts_every_tweet_and_samples_the_histogram(capture):
    run_python(BIG_BATCH, capture.env)
    points = metric_points(capture)
    per_label = {}
    for point, dims in points["predictions"]:
        assert dims["model_name"] == "lstm" and dims["model_version"] == "lstm:r2"
        per_label[dims["label"]] = per_label.get(dims["label"], 0) + point["value"]
    assert per_label == {"negative": 501, "not_negative": 500}
    bins = {dims["proba_bin"]: point["value"] for point, dims in points["predictions"] if dims["label"] == "negative"}
    assert bins["0.9-1.0"] == 101  # 0.900 ... 1.000, the top value in the last decile
    [(histogram, _)] = points["proba_negative"]
    assert (histogram["count"], histogram["min"], histogram["max"]) == (256, 0.0, 1.0)
    assert histogram["value"] / histogram["count"] == pytest.approx(0.5, abs=0.01)
    [(batch, _)] = points["prediction_batch_size"]
    assert batch["value"] == 1001


WITH_FEATURES = """
from pyfunc.telemetry import configure_telemetry, record_predictions
assert configure_telemetry("features")
texts = ["@united lost my bag http://t.co/x", "thanks 😀", "@delta ok", "plain words"]
record_predictions("baseline:r3", ["negative", "not_negative", "not_negative", "not_negative"],
                   [0.9, 0.1, 0.2, 0.3], texts)
"""


def test_scored_tweets_feed_the_input_drift_metrics(capture):
    run_python(WITH_FEATURES, capture.env)
    points = metric_points(capture)
    with_feature = {dims["feature"]: point["value"] for point, dims in points["tweets_with"]}
    assert with_feature == {"url": 1, "mention": 2, "emoji": 1}  # same patterns as pyfunc.normalize
    [(lengths, dims)] = points["tweet_length"]
    assert (lengths["count"], lengths["min"], lengths["max"]) == (4, 8.0, 33.0)
    assert dims["model_version"] == "baseline:r3"
