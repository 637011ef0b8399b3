"""The row limit judged from the body's bytes, before MLflow parses it (docs/design.md, "Serving limits").

The counters never parse: each is checked against the parser it stands in for (Python's `json` for
the largest container, pandas for CSV rows and Parquet footers) on the request forms and the texts that trip a naive
scan (commas, brackets, escaped quotes and newlines inside strings and quoted fields).
"""

from __future__ import annotations

import asyncio
import io
import json

import pandas as pd
import pytest

from pyfunc.limits import (
    WIDEST_REQUEST,
    LimitExceeded,
    ServingLimits,
    asks_for_explanations,
    csv_quoting_is_well_formed,
    csv_refusal,
    csv_rows,
    json_refusal,
    largest_json_container,
    parquet_refusal,
)
from pyfunc.request_guard import judge

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
    limits = ServingLimits(max_rows=100, max_explained_rows=200)
    assert json_refusal(request_bodies(rows_of(100))[form], limits) is None
    assert json_refusal(request_bodies(rows_of(101))[form], limits) == limits.rows_refusal(101)


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
    assert json_refusal(b"", ServingLimits(max_rows=1)) is None
    assert json_refusal(b'"late again"', ServingLimits(max_rows=1)) is None


def test_a_container_deep_inside_the_request_is_counted_too():
    body = json.dumps({"inputs": {"text": ["x"]}, "params": {"threshold": list(range(101))}}).encode()
    limits = ServingLimits(max_rows=100)
    assert json_refusal(body, limits) == limits.rows_refusal(101)
    assert json_refusal(body, ServingLimits(max_rows=101)) is None


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
    assert csv_refusal(b"", ServingLimits(max_rows=1)) is None


def test_a_csv_request_at_the_limit_passes_and_one_more_row_is_refused_naming_it():
    limits = ServingLimits(max_rows=40)
    assert csv_refusal(csv_of(rows_of(40)), limits) is None
    assert csv_refusal(csv_of(rows_of(41)), limits) == limits.rows_refusal(41)


def test_line_breaks_inside_quoted_fields_do_not_make_rows():
    body = csv_of(["one\ntwo\nthree\nfour"] * 3)
    assert body.count(b"\n") > 10
    assert csv_refusal(body, ServingLimits(max_rows=3)) is None


@pytest.mark.parametrize("explained", [False, True])
def test_predict_and_the_guard_refuse_with_the_same_message(explained):
    """An explained request over the row limit is told the explained limit, the one it must meet."""
    limits = ServingLimits(max_rows=100, max_explained_rows=10)
    body = json.dumps({"inputs": {"text": rows_of(101)}, "params": {"explain": explained}}).encode()
    with pytest.raises(LimitExceeded) as refused:
        limits.check_rows(101, explained)
    assert json_refusal(body, limits) == refused.value.message
    named = "(MAX_EXPLAINED_ROWS_PER_REQUEST)" if explained else "at most 100 (MAX_ROWS_PER_REQUEST)"
    assert named in refused.value.message and refused.value.message.startswith("101 rows")


@pytest.mark.parametrize(
    ("params", "asks"),
    [
        (b'"params": {"explain": true}', True),
        (b'"params": {"explain" :  true, "threshold": 0.5}', True),
        (b'"params": {"explain": false}', False),
        (b'"params": {"threshold": 0.5}', False),
        (b'"note": "explain: true"', False),  # text, not a key
        (b'"note": "say \\"explain\\": true"', False),  # escaped quotes inside a text
    ],
)
def test_explanations_are_asked_for_only_by_an_explain_key_set_to_true(params, asks):
    assert asks_for_explanations(b'{"inputs": {"text": ["explain"]}, ' + params + b"}") is asks


@pytest.mark.parametrize("form", ["dataframe_records", "dataframe_split"])
def test_one_row_of_several_columns_is_not_refused_as_several_rows(form):
    """A row's own container holds its columns (and `dataframe_split` its columns, index and data): with a
    limit of one row, one row of four columns is `predict`'s to judge, not four rows."""
    row = {"text": "late again", "id": 7, "lang": "en", "source": "app"}
    payload = {
        "dataframe_records": {"dataframe_records": [row]},
        "dataframe_split": {"dataframe_split": {"columns": list(row), "index": [0], "data": [list(row.values())]}},
    }[form]
    body = json.dumps(payload).encode()
    assert largest_json_container(body) == 4
    assert json_refusal(body, ServingLimits(max_rows=1)) is None


def test_below_the_widest_request_the_row_limit_is_left_to_predict():
    limits = ServingLimits(max_rows=1)
    assert json_refusal(request_bodies(rows_of(WIDEST_REQUEST))["inputs"], limits) is None
    wider = request_bodies(rows_of(WIDEST_REQUEST + 1))["inputs"]
    assert json_refusal(wider, limits) == limits.rows_refusal(WIDEST_REQUEST + 1)


FOUR_LINE_TWEET = '"lost my bag\nagain\nthird time\nthis month"\n'


def test_a_quote_inside_an_unquoted_field_does_not_make_a_legitimate_request_refused():
    """pandas reads `My 55" tv died` as text: parity would take the tweets' line breaks for rows."""
    body = ('text\nMy 55" tv died\n' + FOUR_LINE_TWEET * 999).encode()
    assert pandas_rows(body) == 1_000
    assert csv_refusal(body, ServingLimits(max_rows=1_000)) is None


def test_a_quote_inside_an_unquoted_field_is_left_to_predict_not_counted_short():
    """Parity would take every line after `x"` for one quoted field and count one row of 5,001."""
    body = b'text\nx"\n' + b"a\n" * 5_000
    assert pandas_rows(body) == 5_001
    assert not csv_quoting_is_well_formed(body)
    assert csv_refusal(body, ServingLimits(max_rows=1_000)) is None  # `predict` refuses it after pandas


@pytest.mark.parametrize(
    ("body", "well_formed"),
    [
        (b"text\na\nb\n", True),
        (b'"text"\n"a"\n"b"', True),
        (b'text\n"he said ""hi"""\n""\n"""a"""\r\n', True),
        (b'id,text\n1,"a\nb"\n2,"c"\r3,""', True),
        (b'text\nMy 55" tv died\n', False),
        (b'text\n "a\nb"\n', False),  # pandas keeps the space: the quote is text
        (b'text\n"a" \nb\n', False),  # a closing quote followed by a space
        (b'text\n"a"b\n', False),
        (b'text\n"never closed\n', False),
    ],
)
def test_quoting_is_well_formed_only_where_parity_reads_the_quotes_as_pandas_does(body, well_formed):
    assert csv_quoting_is_well_formed(body) is well_formed
    if well_formed:
        assert csv_rows(body) == pandas_rows(body)


def test_a_well_formed_csv_over_the_limit_is_still_counted_and_refused():
    body = csv_of(['he said ""hi""', "a\nb", "x, y", "plain"] * 300)
    limits = ServingLimits(max_rows=1_000)
    assert pandas_rows(body) == 1_200
    assert csv_refusal(body, limits) == limits.rows_refusal(1_200)


def parquet_of(texts: list[str], compression: str = "snappy") -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"text": texts}).to_parquet(buffer, index=False, compression=compression)
    return buffer.getvalue()


def test_a_parquet_request_at_the_limit_passes_and_one_more_row_is_refused_naming_it():
    limits = ServingLimits(max_rows=40)
    assert parquet_refusal(parquet_of(rows_of(40)), limits) is None
    assert parquet_refusal(parquet_of(rows_of(41)), limits) == limits.rows_refusal(41)


def test_a_compressed_parquet_of_many_rows_is_refused_by_its_footer():
    """A few KB of zstd columns hold 200,000 rows: the bytes do not bound a Parquet body's rows."""
    body = parquet_of(["a"] * 200_000, compression="zstd")
    limits = ServingLimits(max_rows=1_000)
    assert len(body) < 20_000
    assert parquet_refusal(body, limits) == limits.rows_refusal(200_000)


@pytest.mark.parametrize("body", [b"", b"PAR1", b"not parquet at all", b"PAR1" + b"\0" * 64 + b"PAR1"])
def test_a_parquet_body_whose_footer_cannot_be_read_is_left_to_mlflow(body):
    assert parquet_refusal(body, ServingLimits(max_rows=1)) is None


def test_the_guard_judges_a_parquet_body_by_its_content_type():
    body = parquet_of(["a"] * 200_000, compression="zstd")
    limits = ServingLimits(max_rows=1_000)
    assert asyncio.run(judge(body, "application/vnd.apache.parquet", limits)) == limits.rows_refusal(200_000)
    assert asyncio.run(judge(parquet_of(rows_of(1_000)), "application/vnd.apache.parquet", limits)) is None
