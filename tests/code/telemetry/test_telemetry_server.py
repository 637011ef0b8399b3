"""The real model server (`mlflow models serve`) sends request telemetry and custom metrics to the endpoint."""

from __future__ import annotations

import re

import pytest

from harness.appinsights_capture import (
    INVOCATIONS_REQUEST,
    CaptureServer,
    HangingServer,
    base_data,
    telemetry_env,
)

pytestmark = pytest.mark.integration

GOOD = {"dataframe_records": [{"text": "worst airline ever, lost my bag"}, {"text": "thanks for the smooth flight"}]}
BAD = {"dataframe_records": [{"text": "fine"}, {"text": ""}]}
# Application Insights duration format: d.hh:mm:ss.fff (the exporter writes milliseconds)
DURATION = re.compile(r"^(\d+)\.(\d{2}):(\d{2}):(\d{2}\.\d+)$")


def _seconds(duration: str) -> float:
    days, hours, minutes, seconds = DURATION.match(duration).groups()
    return ((int(days) * 24 + int(hours)) * 60 + int(minutes)) * 60 + float(seconds)


def _requests_with_code(capture, code: str) -> list[dict]:
    return [
        base_data(e)
        for e in capture.of_type("RequestData")
        if base_data(e).get("responseCode") == code and base_data(e).get("name") == INVOCATIONS_REQUEST
    ]


def _metric_points(capture, name: str) -> list[tuple[dict, dict]]:
    """(point, dimensions) of every exported point of the custom metric `name`."""
    points = []
    for envelope in capture.of_type("MetricData"):
        data = base_data(envelope)
        points += [(point, data.get("properties", {})) for point in data["metrics"] if point["name"] == name]
    return points


def _total(points: list[tuple[dict, dict]], **dimensions: str) -> float:
    return sum(p["value"] for p, dims in points if all(dims.get(k) == v for k, v in dimensions.items()))


def test_requests_and_model_metrics_reach_the_ingestion_endpoint(capture, serve, tracking, baseline_run_id):
    server = serve(f"runs:/{baseline_run_id}/model", env={**tracking.env, **capture.env})
    ok = server.invocations(GOOD)
    bad = server.invocations(BAD)
    assert ok.status_code == 200, ok.text
    assert bad.status_code == 400 and "row 1: text is empty" in bad.text
    model_version = ok.json()["predictions"][0]["model_version"]
    labels = [row["label"] for row in ok.json()["predictions"]]

    # Request telemetry: one per HTTP request, with status, success and an Application Insights duration.
    [request_ok] = capture.wait_for(lambda: _requests_with_code(capture, "200"))
    [request_bad] = capture.wait_for(lambda: _requests_with_code(capture, "400"))
    assert request_ok["success"] is True and request_bad["success"] is False
    for request in (request_ok, request_bad):
        assert DURATION.match(request["duration"]) and 0 < _seconds(request["duration"]) < 60, request["duration"]
        assert request["properties"]["model_version"] == model_version
    assert request_ok["properties"]["batch_size"] == "2"
    # One item per request: no ASGI send/receive sub-spans, no health probes (the fixture polled /ping).
    assert not [e for e in capture.of_type("RemoteDependencyData") if base_data(e).get("type") == "InProc"]
    assert not [e for e in capture.of_type("RequestData") if base_data(e)["name"] != INVOCATIONS_REQUEST]

    # Custom metrics, with the model's name and version as dimensions.
    dims = {"model_name": "baseline", "model_version": model_version}
    assert model_version == f"baseline:{baseline_run_id}"
    failures = capture.wait_for(lambda: _metric_points(capture, "prediction_failures"))
    assert _total(failures, **dims, error_type="InvalidInput") == 1
    requests_ = capture.wait_for(lambda: _metric_points(capture, "prediction_requests"))
    assert _total(requests_, **dims) == 2
    [(batch, _)] = capture.wait_for(lambda: _metric_points(capture, "prediction_batch_size"))
    assert (batch["value"], batch["count"]) == (2, 1)
    predictions = capture.wait_for(lambda: _metric_points(capture, "predictions"))
    for label in set(labels):
        assert _total(predictions, **dims, label=label) == labels.count(label)
    assert {d["proba_bin"] for _, d in predictions} <= {f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)}
    [(proba, proba_dims)] = capture.wait_for(lambda: _metric_points(capture, "proba_negative"))
    probas = [row["proba_negative"] for row in ok.json()["predictions"]]
    assert proba["count"] == 2 and proba["value"] == pytest.approx(sum(probas))
    assert proba["min"] == pytest.approx(min(probas)) and proba["max"] == pytest.approx(max(probas))
    assert proba_dims["model_version"] == model_version


def test_server_answers_as_usual_when_the_endpoint_hangs(serve, tracking, baseline_run_id, tmp_path):
    """The worst ingestion failure: connections accepted, never answered (a closed port fails faster;
    both are measured in bench/telemetry_overhead.py)."""
    with HangingServer() as hanging:
        env = {**tracking.env, **telemetry_env(hanging.port), "TMPDIR": str(tmp_path)}
        server = serve(f"runs:/{baseline_run_id}/model", env=env)
        for _ in range(3):
            ok = server.invocations(GOOD)
            assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2
            assert server.invocations(BAD).status_code == 400
        assert "telemetry on" in server.log_path.read_text()


def test_server_answers_as_usual_when_the_endpoint_answers_500(serve, tracking, baseline_run_id, tmp_path):
    """An ingestion outage that answers: the exporter's posts are refused, the predictions are not."""
    with CaptureServer(status=500) as failing:
        env = {**tracking.env, **telemetry_env(failing.port), "TMPDIR": str(tmp_path)}
        server = serve(f"runs:/{baseline_run_id}/model", env=env)
        for _ in range(3):
            ok = server.invocations(GOOD)
            assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2
            assert server.invocations(BAD).status_code == 400
        refused = failing.wait_for(lambda: [failing.refused] if failing.refused else [])
        assert refused, "the exporter never posted: the 500 path was not exercised"
        assert server.invocations(GOOD).status_code == 200
    assert failing.envelopes == []
