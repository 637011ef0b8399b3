"""Application Insights telemetry for the served model and the dashboard (Azure Monitor OpenTelemetry distro).

Telemetry is on only when `APPLICATIONINSIGHTS_CONNECTION_STRING` is set; otherwise every function here is
a cheap no-op and the process says "telemetry off" once. Everything is best effort: the distro exports from
background threads (a dead or hanging ingestion endpoint only delays those threads), and each helper below
swallows its own errors, so telemetry can neither fail nor slow a prediction.

Environment (besides the distro's own `OTEL_*` / `APPLICATIONINSIGHTS_*` variables):
- `TELEMETRY_SEND_TEXT=true` puts the tweet text, and the words that most pushed the prediction when the
  caller explained it, into `wrong_prediction` events (privacy switch, off by default: unset, the events
  carry labels, probability and model version only).
- `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` lower the trace sampling; unset, every request is kept
  (the distro's default would rate-limit to 5 traces per second and drop errors with the rest).
- `OTEL_SDK_DISABLED=true` turns telemetry off even with a connection string (e.g. while training).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pyfunc.normalize import SURFACE_FEATURES, surface_features

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
SEND_TEXT_ENV = "TELEMETRY_SEND_TEXT"
MODEL_SERVICE = "tweet-sentiment-model"
DASHBOARD_SERVICE = "tweet-sentiment-dashboard"
WRONG_PREDICTION_EVENT = "wrong_prediction"
METER_NAME = "tweet_sentiment"
PROBA_BINS = 10
HISTOGRAM_SAMPLE = 256
# Attribute names the Azure Monitor log exporter turns into a customEvents row and its customMeasurements.
_EVENT_NAME_ATTRIBUTE = "microsoft.custom_event.name"
_MEASUREMENTS_ATTRIBUTE = "microsoft.custom_measurements"

_log = logging.getLogger(__name__)
# Events go through Python logging: the distro's handler sits on the root logger, this logger feeds it.
_events = logging.getLogger("tweet_sentiment.events")
_events.setLevel(logging.INFO)
_lock = threading.Lock()
_enabled: bool | None = None  # None until `configure_telemetry` has decided, once per process


@dataclass(frozen=True)
class _Instruments:
    requests: Any
    failures: Any
    batch_size: Any
    predictions: Any
    proba_negative: Any
    tweet_length: Any
    tweets_with: Any


_instruments: _Instruments | None = None


def configure_telemetry(service_name: str) -> bool:
    """Send this process's telemetry to Application Insights if a connection string is set; True if on.

    Idempotent (the distro must be configured once per process). Call it before the web framework builds
    its app, so the app's HTTP requests are instrumented too. `OTEL_SERVICE_NAME` overrides `service_name`
    (the cloud role name in Application Insights).

    Args:
        service_name: this process's role, e.g. `MODEL_SERVICE` or `DASHBOARD_SERVICE`.

    Returns:
        Whether telemetry is on; the first call decides, later ones return the same answer.
    """
    global _enabled
    with _lock:
        if _enabled is None:
            _enabled = _configure(os.environ.get("OTEL_SERVICE_NAME") or service_name)
        return _enabled


def telemetry_enabled() -> bool:
    """Whether telemetry is on in this process, without configuring it.

    Returns:
        True only after `configure_telemetry` has turned it on.
    """
    return bool(_enabled)


def _configure(service_name: str) -> bool:
    connection_string = os.environ.get(CONNECTION_STRING_ENV, "").strip()
    if not connection_string:
        _log.warning("telemetry off: %s is not set", CONNECTION_STRING_ENV)
        return False
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        _log.warning("telemetry off: OTEL_SDK_DISABLED=true")
        return False
    # Said before configuring: afterwards the root logger's only handler is the exporter's, not the console.
    _log.warning("telemetry on: sending to Application Insights as %r", service_name)
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource

        options: dict[str, Any] = {
            "connection_string": connection_string,
            "resource": Resource.create({SERVICE_NAME: service_name}),
        }
        if not os.environ.get("OTEL_TRACES_SAMPLER"):
            options["sampling_ratio"] = 1.0  # keep every request; the OTEL_* sampler variables lower it
        # FastAPI is instrumented below, with options the distro does not pass on.
        options["instrumentation_options"] = {"fastapi": {"enabled": False}}
        configure_azure_monitor(**options)
        _instrument_fastapi()
        _create_instruments()
    except Exception as error:  # a bad connection string or a broken install must not stop the server
        # The connection string holds the instrumentation key: an error that echoes it is redacted.
        reason = str(error).replace(connection_string, f"<{CONNECTION_STRING_ENV}>")
        _log.warning("telemetry off: Azure Monitor could not be configured: %s: %s", type(error).__name__, reason)
        return False
    return True


def _instrument_fastapi() -> None:
    """Request telemetry for FastAPI apps created from now on (MLflow's scoring server is one).

    One request item per HTTP request: the ASGI `receive`/`send` sub-spans (three or four InProc
    dependencies per request otherwise) are left out, and so are the `/ping` and `/health` probes unless
    `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS` (or `OTEL_PYTHON_EXCLUDED_URLS`) says which URLs to skip.
    """
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:  # FastAPI (or its instrumentation) not installed: no app to instrument
        return
    from_env = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
    excluded = None if from_env else r"/ping$,/health$"
    FastAPIInstrumentor().instrument(exclude_spans=["receive", "send"], excluded_urls=excluded)


def _create_instruments() -> None:
    """The model server's custom metrics (customMetrics in Application Insights)."""
    global _instruments
    from opentelemetry import metrics

    meter = metrics.get_meter(METER_NAME)
    _instruments = _Instruments(
        requests=meter.create_counter(
            "prediction_requests", unit="{request}", description="Calls of the model's predict, failed ones included"
        ),
        failures=meter.create_counter(
            "prediction_failures", unit="{request}", description="predict calls that raised, by error_type"
        ),
        batch_size=meter.create_histogram(
            "prediction_batch_size", unit="{tweet}", description="Tweets per successful predict call"
        ),
        predictions=meter.create_counter(
            "predictions", unit="{tweet}", description="Predictions by label and proba_negative decile (proba_bin)"
        ),
        proba_negative=meter.create_histogram(
            "proba_negative", unit="1", description="Calibrated P(negative) of each prediction"
        ),
        tweet_length=meter.create_histogram(
            "tweet_length", unit="{character}", description="Length of each scored tweet (drift of the inputs)"
        ),
        tweets_with=meter.create_counter(
            "tweets_with", unit="{tweet}", description="Scored tweets with a url, a mention or an emoji (feature)"
        ),
    )


def model_dimensions(model_version: str) -> dict[str, str]:
    """Metric dimensions: model family (e.g. `baseline`) and the full version string (`baseline:<run_id>`).

    Args:
        model_version: the model's `family:run_id`.

    Returns:
        `model_name` (the family) and `model_version`.
    """
    return {"model_name": model_version.split(":", 1)[0], "model_version": model_version}


def proba_bin(proba: float) -> str:
    """The decile a probability falls in, as a dimension value: `0.0-0.1` ... `0.9-1.0`.

    Args:
        proba: a probability; values outside [0, 1] fall in the first or last decile.

    Returns:
        The decile's label.
    """
    index = min(max(int(proba * PROBA_BINS), 0), PROBA_BINS - 1)
    return f"{index / PROBA_BINS:.1f}-{(index + 1) / PROBA_BINS:.1f}"


def record_predictions(
    model_version: str, labels: Sequence[str], proba_negative: Sequence[float], texts: Sequence[str] = ()
) -> None:
    """Count a successful predict call: batch size, predictions per label and decile, the probabilities,
    and the input features drift monitoring watches (length; tweets with a URL, a mention, an emoji).

    The per-decile counter counts every tweet. The `proba_negative` histogram records every value of
    batches up to `HISTOGRAM_SAMPLE` tweets and, beyond, that many values at evenly spaced ranks (min and
    max included), so a large batch costs no more to record than one of `HISTOGRAM_SAMPLE` tweets.
    A no-op when telemetry is off; never raises.

    Args:
        model_version: the model's `family:run_id`.
        labels: the predicted label per tweet.
        proba_negative: the calibrated P(negative) per tweet.
        texts: the scored tweets (their surface features are recorded; none = no feature metrics).
    """
    instruments = _instruments
    if instruments is None:
        return
    try:
        dimensions = model_dimensions(model_version)
        probas = np.asarray(proba_negative, dtype=np.float64)
        instruments.requests.add(1, dimensions)
        instruments.batch_size.record(len(probas), dimensions)
        label_index, names = pd.factorize(np.asarray(labels, dtype=object))
        bins = np.clip((probas * PROBA_BINS).astype(int), 0, PROBA_BINS - 1)
        counts = np.bincount(label_index * PROBA_BINS + bins, minlength=len(names) * PROBA_BINS)
        for key in np.flatnonzero(counts):
            label, index = divmod(int(key), PROBA_BINS)
            point = {**dimensions, "label": str(names[label]), "proba_bin": proba_bin((index + 0.5) / PROBA_BINS)}
            instruments.predictions.add(int(counts[key]), point)
        for value in _histogram_sample(probas).tolist():
            instruments.proba_negative.record(value, dimensions)
        if len(texts):
            features = surface_features(texts)
            for value in _histogram_sample(np.asarray(features["length"])).tolist():
                instruments.tweet_length.record(value, dimensions)
            for name in SURFACE_FEATURES:
                count = int(sum(features[f"has_{name}"]))
                if count:
                    instruments.tweets_with.add(count, {**dimensions, "feature": name})
        _annotate_request(dimensions, len(probas))
    except Exception:
        _log.debug("telemetry: recording predictions failed", exc_info=True)


def _histogram_sample(values: np.ndarray) -> np.ndarray:
    """All values, or `HISTOGRAM_SAMPLE` of them at evenly spaced ranks (keeps min, max and the quantiles)."""
    if len(values) <= HISTOGRAM_SAMPLE:
        return values
    ranks = np.linspace(0, len(values) - 1, HISTOGRAM_SAMPLE).round().astype(int)
    return np.sort(values)[ranks]


def record_failure(model_version: str, error: BaseException) -> None:
    """Count a predict call that raised (e.g. `InvalidInput`, answered with a 400) by error type.

    A no-op when telemetry is off; never raises.

    Args:
        model_version: the model's `family:run_id`.
        error: what the call raised.
    """
    instruments = _instruments
    if instruments is None:
        return
    try:
        dimensions = model_dimensions(model_version)
        instruments.requests.add(1, dimensions)
        instruments.failures.add(1, {**dimensions, "error_type": type(error).__name__})
        _annotate_request(dimensions, None)
    except Exception:
        _log.debug("telemetry: recording a failure failed", exc_info=True)


def _annotate_request(dimensions: dict[str, str], batch_size: int | None) -> None:
    """Put the model version (and batch size) on the HTTP request span: its customDimensions in requests."""
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(dimensions if batch_size is None else {**dimensions, "batch_size": batch_size})


def send_text() -> bool:
    """Whether `wrong_prediction` events carry the tweet text (privacy switch `TELEMETRY_SEND_TEXT`, opt-in).

    Tweets can hold personal data: they leave the dashboard's own store only when someone asks for it.

    Returns:
        True when the variable is `1`, `true`, `yes` or `on` (any case); False otherwise, unset included.
    """
    return os.environ.get(SEND_TEXT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def emit_wrong_prediction(
    *,
    text: str | None,
    predicted_label: str,
    proba_negative: float,
    true_label: str,
    model_version: str,
    top_words: Sequence[str] = (),
) -> None:
    """Send a `wrong_prediction` custom event (customEvents in Application Insights) for a flagged prediction.

    Properties: predicted_label, true_label, proba_negative, model_name, model_version and, only when
    `TELEMETRY_SEND_TEXT=true`, text and top_words (a JSON list: the tweet's own words, so as private as
    the text); proba_negative is also a customMeasurement. Configures telemetry for the dashboard on
    first use if nobody did; a no-op when telemetry is off. Exported in the background.

    Args:
        text: the tweet, sent only when the switch is on (None leaves it out whatever the switch says).
        predicted_label: the label the model served.
        proba_negative: the probability it served.
        true_label: the label the user gave.
        model_version: the model's `family:run_id`.
        top_words: the words that most pushed the served label, strongest first (docs/design.md,
            "Explanations"); sent only when the switch is on, left out when empty.
    """
    if _enabled is None:
        configure_telemetry(DASHBOARD_SERVICE)
    if not _enabled:
        return
    try:
        proba = float(proba_negative)
        attributes: dict[str, Any] = {
            _EVENT_NAME_ATTRIBUTE: WRONG_PREDICTION_EVENT,
            _MEASUREMENTS_ATTRIBUTE: json.dumps({"proba_negative": proba}),
            "predicted_label": str(predicted_label),
            "true_label": str(true_label),
            "proba_negative": proba,
            **model_dimensions(str(model_version)),
        }
        if send_text():
            if text is not None:
                attributes["text"] = str(text)
            if top_words:
                attributes["top_words"] = json.dumps([str(word) for word in top_words], ensure_ascii=False)
        _events.info(WRONG_PREDICTION_EVENT, extra=attributes)
    except Exception:
        _log.debug("telemetry: emitting wrong_prediction failed", exc_info=True)
