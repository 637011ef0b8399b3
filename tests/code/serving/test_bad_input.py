"""Bad requests get a 4xx naming the problem (and the row), and the server keeps serving.

Null and non-string texts are sent in the `dataframe_*` forms and CSV, which reach the model as
sent. The column-oriented `inputs`/`instances` forms are cast to the signature's `string` type by
MLflow before the model runs; `test_column_forms_cast_to_string` pins that documented behaviour.
"""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.integration

JSON = "application/json"
CSV = "text/csv"


def records(*texts) -> dict:
    return {"dataframe_records": [{"text": text} for text in texts]}


def split(*texts) -> dict:
    return {"dataframe_split": {"columns": ["text"], "data": [[text] for text in texts]}}


def message(response: requests.Response) -> str:
    """MLflow's JSON error message, or the plain-text body (the 415 answer is plain text)."""
    try:
        return response.json()["message"]
    except ValueError:
        return response.text


BAD_REQUESTS = [
    # (id, body, content type, status, fragments the message must contain)
    ("broken_json", '{"dataframe_records": [{"text": "late again"', JSON, 400, ["valid JSON"]),
    ("json_list_not_object", '[{"text": "late again"}]', JSON, 400, ["JSON dictionary"]),
    ("unknown_form", {"records": [{"text": "late again"}]}, JSON, 400, ["exactly one of the input fields"]),
    ("no_text_column", {"dataframe_records": [{"tweet": "late again"}]}, JSON, 400, ["missing inputs ['text']"]),
    ("no_text_column_inputs", {"inputs": {"tweet": ["late again"]}}, JSON, 400, ["missing inputs ['text']"]),
    ("no_text_column_csv", "tweet\nlate again\n", CSV, 400, ["missing inputs ['text']"]),
    ("null_text", records("late again", None), JSON, 400, ["row 1: text is null"]),
    ("null_text_split", split("late again", "ok", None), JSON, 400, ["row 2: text is null"]),
    ("null_text_csv", 'text\nlate again\n""\n', CSV, 400, ["row 1: text is null"]),
    ("int_text", records("late again", 5), JSON, 400, ["row 1: text must be a string, got int"]),
    ("float_text", split(1.5), JSON, 400, ["row 0: text must be a string, got float"]),
    ("bool_text", records("late again", True), JSON, 400, ["row 1: text must be a string, got bool"]),
    ("list_text", records(["late", "again"]), JSON, 400, ["row 0: text must be a string, got list"]),
    ("object_text", records({"text": "late"}), JSON, 400, ["row 0: text must be a string, got dict"]),
    ("empty_text", records("late again", ""), JSON, 400, ["row 1: text is empty"]),
    ("blank_text", split(" \t\n"), JSON, 400, ["row 0: text is empty"]),
    ("empty_text_inputs", {"inputs": {"text": ["late again", "ok", ""]}}, JSON, 400, ["row 2: text is empty"]),
    ("empty_batch_split", {"dataframe_split": {"columns": ["text"], "data": []}}, JSON, 400, ["empty batch"]),
    ("empty_batch_inputs", {"inputs": {"text": []}}, JSON, 400, ["empty batch"]),
    ("empty_batch_instances", {"instances": []}, JSON, 400, ["empty batch"]),
    ("empty_batch_csv", "text\n", CSV, 400, ["empty batch"]),
    # An empty record list has no columns at all: MLflow's schema check answers before the model.
    ("empty_batch_records", {"dataframe_records": []}, JSON, 400, ["Empty DataFrame", "missing inputs ['text']"]),
    # MLflow answers these two with a Python traceback beside the message; the guard keeps it in the log.
    ("broken_parquet", "not parquet at all", "application/vnd.apache.parquet", 400, ["Failed to parse input"]),
    ("broken_csv", 'text\n"late again\n', CSV, 400, ["Failed to parse input"]),
    ("text_plain", "late again", "text/plain", 415, ["content types", "Got 'text/plain'"]),
    ("form_urlencoded", "text=late+again", "application/x-www-form-urlencoded", 415, ["content types"]),
    ("xml", "<text>late again</text>", "application/xml", 415, ["content types", "Got 'application/xml'"]),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragments"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_REQUESTS],
)
def test_bad_request_is_a_4xx_naming_the_problem(server, still_serving, body, content_type, status, fragments):
    response = server.invocations(body, content_type=content_type)
    assert response.status_code == status, response.text
    for fragment in fragments:
        assert fragment in message(response)
    assert "Traceback" not in response.text and "stack_trace" not in response.text, "the trace belongs in the log"
    still_serving()


def test_missing_content_type_is_a_415_naming_the_types(server, still_serving):
    """MLflow's own handler fails on it with a 500 (AttributeError on None.split); the request guard answers first."""
    response = requests.post(f"{server.url}/invocations", data=b'{"inputs": {"text": ["late again"]}}', timeout=30)
    assert "Content-Type" not in response.request.headers
    assert response.status_code == 415, response.text
    assert "send a Content-Type header, one of text/csv, application/json" in response.json()["message"]
    still_serving()


@pytest.mark.parametrize(
    ("body", "seen_by_model"),
    [
        ({"inputs": {"text": ["late again", None, 5]}}, ["late again", "None", "5"]),
        ({"instances": [{"text": None}, {"text": 5}]}, ["None", "5"]),
    ],
    ids=["inputs", "instances"],
)
def test_column_forms_cast_to_string(server, reference, body, seen_by_model):
    """Documented MLflow behaviour: `inputs`/`instances` columns are cast to `string` before the model.

    JSON null arrives as "None" and 5 as "5", so they are scored rather than rejected; clients that
    need null rejected send `dataframe_split`/`dataframe_records` (docs/serving.md).
    """
    response = server.invocations(body)
    assert response.status_code == 200, response.text
    served = [row["proba_negative"] for row in response.json()["predictions"]]
    assert served == pytest.approx(reference(seen_by_model)["proba_negative"].tolist(), abs=1e-9)
