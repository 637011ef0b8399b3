"""The row limit judged from the body's bytes, before MLflow parses it (docs/design.md, "Serving limits").

The counters never parse: each is checked against the parser it stands in for (Python's `json` for
the largest container, pandas for CSV rows) on the request forms and the texts that trip a naive
scan (commas, brackets, escaped quotes and newlines inside strings and quoted fields).
"""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from pyfunc.limits import (
    FORM_KEYS,
    LimitExceeded,
    ServingLimits,
    csv_refusal,
    csv_rows,
    json_refusal,
    largest_json_container,
    too_many_rows,
)

# Texts holding what a scan must not take for structure.
TRICKY = ["a, b, c", '[{"x": [1, 2]}]', 'say \\"hi\\", ok', "two\nlines, here", "\\", '"', "", "plain"]


def request_bodies(texts: list[str]) -> dict[str, bytes]:
    """The same texts in every JSON request form MLflow reads, with params beside them."""
    forms = {
        "inputs": {"inputs": {"text": texts}},
        "inputs-list": {"inputs": texts},
        "instances": {"instances": [{"text": text} for text in texts]},
        "dataframe_records": {"dataframe_records": [{"text": text} for text in texts]},
        "dataframe_split": {
            "dataframe_split": {
                "columns": ["text"],
                "index": list(range(len(texts))),
                "data": [[text] for text in texts],
            }
        },
    }
    params = {"threshold": 0.5, "explain": True}
    return {name: json.dumps(form | {"params": params}).encode() for name, form in forms.items()}


def rows_of(texts_count: int) -> list[str]:
    return [TRICKY[i % len(TRICKY)] for i in range(texts_count)]


@pytest.mark.parametrize("count", [3, 4, 7, 50])
def test_the_largest_container_of_every_form_holds_exactly_its_rows(count):
    """From three rows on: below that `dataframe_split`'s own keys (columns, index, data) are the most."""
    for form, body in request_bodies(rows_of(count)).items():
        assert largest_json_container(body) == count, form


@pytest.mark.parametrize("form", list(request_bodies(["x"])))
def test_a_json_request_at_the_limit_passes_and_one_more_row_is_refused_naming_it(form):
    limit = 40
    assert json_refusal(request_bodies(rows_of(limit))[form], limit) is None
    assert json_refusal(request_bodies(rows_of(limit + 1))[form], limit) == too_many_rows(limit + 1, limit)


@pytest.mark.parametrize(
    ("body", "items"),
    [
        (b"", 0),
        (b"{}", 1),  # an empty container counts one item: below every limit, so never refused
        (b"[]", 1),
        (b'{"inputs": {"text": []}}', 1),
        (b"[[], [], []]", 3),
        (b'["a,b,c,d", "[,,,]"]', 2),
        (b'["\\\\", ",", "\\",\\""]', 3),  # an escaped backslash ends nothing; an escaped quote ends nothing
        (b'{"a": [1, 2, 3, 4], "b": {"c": 1, "d": 2}}', 4),
        (b'"a, b, c"', 0),
        (b"1, 2, 3", 0),  # commas outside every container (not JSON: MLflow's parser answers it)
    ],
)
def test_items_are_commas_outside_strings_directly_inside_each_container_plus_one(body, items):
    assert largest_json_container(body) == items


def test_an_empty_body_and_a_bare_value_are_left_to_mlflows_parser():
    assert json_refusal(b"", 1) is None
    assert json_refusal(b'"late again"', 1) is None


def test_a_container_deep_inside_the_request_is_counted_too():
    body = json.dumps({"inputs": {"text": ["x"]}, "params": {"threshold": list(range(30))}}).encode()
    assert json_refusal(body, 29) == too_many_rows(30, 29)
    assert json_refusal(body, 30) is None


def csv_of(texts: list[str], **to_csv: object) -> bytes:
    return pd.DataFrame({"text": texts}).to_csv(index=False, **to_csv).encode()


def pandas_rows(body: bytes) -> int:
    """The oracle: the rows MLflow's CSV parser (`pd.read_csv`) reads from the body."""
    return len(pd.read_csv(io.BytesIO(body))) if body.strip() else 0


@pytest.mark.parametrize(
    "body",
    [
        csv_of(rows_of(30)),
        csv_of(rows_of(30), lineterminator="\r\n"),
        csv_of(['he said ""hi""', "a\nb\nc", '"\n"', "x"]),
        b"text\na\nb",  # no trailing newline
        b"text\na\n\n\n   \n\t\nb\n",  # blank lines and lines of spaces and tabs are skipped
        b"text\ra\rb\r",  # bare carriage returns end records too
        b"text\r\na\r\n\r\nb\r\n",
        b'text\n"a\r\nb"\n""\n',  # a quoted line break; an empty quoted field is a row
        b"\n\ntext\na\n",  # blank lines before the header
        b"text\n",  # the header only
        b"text",
    ],
)
def test_csv_rows_are_the_rows_pandas_reads(body):
    assert csv_rows(body) == pandas_rows(body)


def test_an_empty_csv_body_has_no_rows():
    assert csv_rows(b"") == 0
    assert csv_refusal(b"", 1) is None


def test_a_csv_request_at_the_limit_passes_and_one_more_row_is_refused_naming_it():
    limit = 40
    assert csv_refusal(csv_of(rows_of(limit)), limit) is None
    assert csv_refusal(csv_of(rows_of(limit + 1)), limit) == too_many_rows(limit + 1, limit)


def test_line_breaks_inside_quoted_fields_do_not_make_rows():
    body = csv_of(["one\ntwo\nthree\nfour"] * 3)
    assert body.count(b"\n") > 10
    assert csv_refusal(body, 3) is None


def test_predict_and_the_guard_refuse_with_the_same_message():
    with pytest.raises(LimitExceeded) as refused:
        ServingLimits(max_rows=40).check_rows(41)
    assert refused.value.message == too_many_rows(41, 40)
    assert "41 rows in one request; this server takes at most 40 (MAX_ROWS_PER_REQUEST)" in too_many_rows(41, 40)


def test_a_limit_below_a_forms_own_keys_is_left_to_predict():
    """`dataframe_split` holds columns, index and data: one row must not be refused as three."""
    body = request_bodies(["late again"])["dataframe_split"]
    assert largest_json_container(body) == FORM_KEYS
    assert json_refusal(body, 1) is None
    assert json_refusal(request_bodies(rows_of(FORM_KEYS + 1))["inputs"], 1) == too_many_rows(FORM_KEYS + 1, 1)
