"""The `/invocations` contract of docs/design.md, over HTTP, on the real MLflow scoring server."""

from __future__ import annotations

import io

import mlflow
import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.conftest import RESPONSE_FIELDS

pytestmark = pytest.mark.integration

# A comma, quotes, an embedded newline and an emoji: what breaks hand-rolled CSV/JSON handling.
TEXTS = [
    "@united lost my bag again, worst airline ever",
    "Thanks for the smooth flight :)",
    'Pilot said "we\'re on time" and we were 👍',
    "Stuck at the gate for 3 hours.\nNo updates, no water.",
]
JSON_FORMS = {
    "dataframe_split": {"dataframe_split": {"columns": ["text"], "data": [[text] for text in TEXTS]}},
    "dataframe_records": {"dataframe_records": [{"text": text} for text in TEXTS]},
    "inputs_columns": {"inputs": {"text": TEXTS}},
    "inputs_records": {"inputs": [{"text": text} for text in TEXTS]},
    "instances_records": {"instances": [{"text": text} for text in TEXTS]},
    "instances_columns": {"instances": {"text": TEXTS}},
}


def predictions(response: requests.Response) -> pd.DataFrame:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"predictions"}
    return pd.DataFrame(body["predictions"])


def assert_matches_reference(served: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(served) == len(expected)
    assert served["label"].tolist() == expected["label"].tolist()
    assert served["proba_negative"].tolist() == pytest.approx(expected["proba_negative"].tolist(), abs=1e-9)
    assert served["threshold"].tolist() == pytest.approx(expected["threshold"].tolist())


@pytest.mark.parametrize("form", JSON_FORMS, ids=list(JSON_FORMS))
def test_every_json_form_gets_the_models_predictions(server, reference, form):
    assert_matches_reference(predictions(server.invocations(JSON_FORMS[form])), reference(TEXTS))


def test_csv_gets_the_models_predictions(server, reference):
    body = pd.DataFrame({"text": TEXTS}).to_csv(index=False)
    served = predictions(server.invocations(body.encode(), content_type="text/csv; charset=utf-8"))
    assert_matches_reference(served, reference(TEXTS))


def test_parquet_gets_the_models_predictions(server, reference):
    buffer = io.BytesIO()
    pd.DataFrame({"text": TEXTS}).to_parquet(buffer)
    served = predictions(server.invocations(buffer.getvalue(), content_type="application/vnd.apache.parquet"))
    assert_matches_reference(served, reference(TEXTS))


def test_response_rows_follow_the_contract(server, stored_threshold, baseline_run_id):
    served = predictions(server.invocations(JSON_FORMS["dataframe_records"]))
    assert set(served.columns) == RESPONSE_FIELDS
    assert set(served["label"]) <= {"negative", "not_negative"}
    assert served["proba_negative"].between(0.0, 1.0).all()
    assert served["threshold"].tolist() == pytest.approx([stored_threshold] * len(TEXTS))
    expected_labels = ["negative" if p >= stored_threshold else "not_negative" for p in served["proba_negative"]]
    assert served["label"].tolist() == expected_labels
    assert set(served["model_version"]) == {f"baseline:{baseline_run_id}"}
    # What the stored threshold means on the model's validation split, as the training run logged it.
    run = MlflowClient().get_run(baseline_run_id)
    assert served["val_precision"].tolist() == pytest.approx([run.data.metrics["val_precision"]] * len(TEXTS))
    assert served["val_recall"].tolist() == pytest.approx([run.data.metrics["val_recall"]] * len(TEXTS))


@pytest.mark.parametrize("form", ["dataframe_split", "inputs_columns"])
def test_threshold_param_overrides_that_request_only(server, reference, stored_threshold, form):
    proba = reference(TEXTS)["proba_negative"]
    # A threshold between the lowest and highest probability flips at least one label either way.
    override = float((proba.min() + proba.max()) / 2)
    assert proba.min() < override < proba.max()

    overridden = predictions(server.invocations({**JSON_FORMS[form], "params": {"threshold": override}}))
    assert overridden["threshold"].tolist() == pytest.approx([override] * len(TEXTS))
    assert_matches_reference(overridden, reference(TEXTS, threshold=override))
    everything = predictions(server.invocations({**JSON_FORMS[form], "params": {"threshold": 0.0}}))
    assert set(everything["label"]) == {"negative"}
    assert set(everything["val_recall"]) == {1.0}  # flagging every tweet catches every complaint

    after = predictions(server.invocations(JSON_FORMS[form]))
    assert after["threshold"].tolist() == pytest.approx([stored_threshold] * len(TEXTS))
    assert_matches_reference(after, reference(TEXTS))


@pytest.mark.parametrize(
    ("threshold", "fragment"),
    [
        (1.5, "params.threshold must be between 0 and 1, got 1.5"),
        (-0.1, "params.threshold must be between 0 and 1, got -0.1"),
        ("high", "Failed to validate type and shape for 'threshold'"),
        (None, "params.threshold must be a number between 0 and 1, got None"),
    ],
)
def test_invalid_threshold_is_a_400_naming_it(server, still_serving, threshold, fragment):
    response = server.invocations({**JSON_FORMS["dataframe_records"], "params": {"threshold": threshold}})
    assert response.status_code == 400
    assert fragment in response.json()["message"]
    still_serving()


def test_ping_health_and_version(server):
    assert requests.get(f"{server.url}/ping", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
    version = requests.get(f"{server.url}/version", timeout=10)
    assert version.status_code == 200
    assert version.text == mlflow.__version__
