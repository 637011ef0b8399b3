"""Explanations over HTTP (docs/design.md, "Explanations"): asked for with `params.explain`, absent otherwise.

The served champion is the tiny baseline; the LSTM and transformer pyfuncs explain through the same
contract code (tests/code/lstm, tests/code/transformer).
"""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from pyfunc.limits import DEFAULT_MAX_EXPLAINED_ROWS
from tests.code.serving.conftest import PROBE_TEXTS
from tests.conftest import RESPONSE_FIELDS

pytestmark = pytest.mark.integration
# The response fields of docs/design.md, "Serving contract", in their order.
RESPONSE_FIELDS_IN_ORDER = ("label", "proba_negative", "threshold", "model_version", "val_precision", "val_recall")


def body(texts: list[str], **params) -> dict:
    request = {"dataframe_split": {"columns": ["text"], "data": [[text] for text in texts]}}
    return request | ({"params": params} if params else {})


@pytest.fixture(scope="module")
def loaded(champion: str):
    return mlflow.pyfunc.load_model(champion)


def test_explained_predictions_carry_each_words_contribution(server, loaded):
    response = server.invocations(body(PROBE_TEXTS, explain=True))
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    expected = loaded.predict(pd.DataFrame({"text": PROBE_TEXTS}), params={"explain": True})
    for text, row, reference in zip(PROBE_TEXTS, rows, expected["explanation"], strict=True):
        assert set(row) == RESPONSE_FIELDS | {"explanation"}
        assert [entry["word"] for entry in row["explanation"]] == text.split()
        served = [entry["contribution"] for entry in row["explanation"]]
        assert served == pytest.approx([entry["contribution"] for entry in reference], abs=1e-9)
    # The complaint has a word that pushed it towards `negative`.
    assert max(entry["contribution"] for entry in rows[0]["explanation"]) > 0


@pytest.mark.parametrize("params", [{}, {"explain": False}, {"threshold": 0.5}])
def test_without_explain_the_answer_is_the_contract_unchanged(server, reference, params):
    response = server.invocations(body(PROBE_TEXTS, **params))
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert set(RESPONSE_FIELDS_IN_ORDER) == RESPONSE_FIELDS
    assert [list(row) for row in rows] == [list(RESPONSE_FIELDS_IN_ORDER)] * len(PROBE_TEXTS)
    expected = reference(PROBE_TEXTS, params.get("threshold"))
    assert [row["proba_negative"] for row in rows] == pytest.approx(expected["proba_negative"].tolist(), abs=1e-9)


@pytest.mark.parametrize("rows", [DEFAULT_MAX_EXPLAINED_ROWS + 1, 5_000])
def test_explanations_of_too_many_rows_are_refused_naming_the_limit(server, still_serving, rows):
    response = server.invocations(body([f"late flight number {i}" for i in range(rows)], explain=True))
    assert response.status_code == 400
    message = response.json()["message"]
    assert f"{rows:,} rows to explain in one request" in message
    assert f"at most {DEFAULT_MAX_EXPLAINED_ROWS:,} (MAX_EXPLAINED_ROWS_PER_REQUEST)" in message
    still_serving()


def test_explain_that_is_not_a_boolean_is_refused(server, still_serving):
    response = server.invocations(body(PROBE_TEXTS, explain="yes"))
    assert response.status_code == 400
    assert "'explain'" in response.json()["message"]
    still_serving()


def test_the_limit_explains_exactly_its_number_of_rows(server):
    texts = [f"my bag was lost on flight {i}" for i in range(DEFAULT_MAX_EXPLAINED_ROWS)]
    response = server.invocations(body(texts, explain=True))
    assert response.status_code == 200, response.text[:300]
    assert all(len(row["explanation"]) == 7 for row in response.json()["predictions"])
