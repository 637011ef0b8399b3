"""CSV batches for the dashboard: read an upload, keep its valid rows, join the predictions back.

The output follows `score_batch`'s convention (docs/design.md, "Batch scoring"): every input row is
kept, invalid rows get `valid=False` and empty predictions, and only valid rows are sent to the model.
An upload is held to a size, a row count and a column count (`MAX_UPLOAD_BYTES`, `MAX_UPLOAD_ROWS`,
`MAX_UPLOAD_COLUMNS`), and the download cannot run a spreadsheet formula (docs/design.md, "Dashboard input and output").
The work that grows with the file (`prepare`, `scored_download`) is one call each, so the page runs it
in a thread and the shared event loop keeps serving every other session meanwhile.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass

import pandas as pd

from dashboard.client import Prediction

TEXT_COLUMN = "text"
PREDICTION_COLUMNS = ("label", "proba_negative", "threshold", "model_version")
MAX_UPLOAD_BYTES_ENV = "MAX_UPLOAD_BYTES"
MAX_UPLOAD_ROWS_ENV = "MAX_UPLOAD_ROWS"
MAX_UPLOAD_COLUMNS_ENV = "MAX_UPLOAD_COLUMNS"
# Under the websocket's message limit (`panel serve --websocket-max-message-size`, 20 MiB by default),
# which the base64-encoded file must fit; 100,000 tweets take about two minutes on the champion.
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_UPLOAD_ROWS = 100_000
# A tweet export has a handful of columns; a file of a million one-byte columns would cost the parser (and
# every table the page draws) far more than its bytes suggest, so the header is judged before the rows.
DEFAULT_MAX_UPLOAD_COLUMNS = 200
# What makes a spreadsheet read a cell as a formula (OWASP's list for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A spreadsheet whose locale splits on another list separator (`;` in much of Europe, tab, `|`) reads the
# text after one as a cell of its own: a formula character there is live too (`x;=1+1`).
FORMULA_AFTER_SEPARATOR = re.compile(r"([,;|\t])(\s*)(?=[=+\-@])")


class BatchError(ValueError):
    """An upload the dashboard cannot score; the message is shown to the tester."""


def upload_limit(name: str, default: int) -> int:
    """A whole number >= 1 from the environment, else the default (the page must come up regardless)."""
    try:
        value = int(os.environ.get(name, "").replace("_", ""))
    except ValueError:
        return default
    return value if value >= 1 else default


def read_csv(data: bytes) -> pd.DataFrame:
    """Parse an uploaded CSV as strings (UTF-8, else latin-1 as Sentiment140 and CrowdFlower ship).

    Raises:
        BatchError: an empty, unreadable or oversized file, or more rows than the dashboard takes.
    """
    if not data or not data.strip():
        raise BatchError("The file is empty.")
    max_bytes = upload_limit(MAX_UPLOAD_BYTES_ENV, DEFAULT_MAX_UPLOAD_BYTES)
    if len(data) > max_bytes:
        raise BatchError(
            f"The file is {len(data) / 2**20:.1f} MiB; the dashboard takes files up to {max_bytes / 2**20:.1f} MiB "
            f"({MAX_UPLOAD_BYTES_ENV}). Split it, or score it with `mlflow run . -e score_batch`."
        )
    check_columns(data)
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise BatchError(f"This is not a readable CSV file: {error}") from None
    max_rows = upload_limit(MAX_UPLOAD_ROWS_ENV, DEFAULT_MAX_UPLOAD_ROWS)
    if len(frame) > max_rows:
        raise BatchError(
            f"The file has {len(frame):,} rows; the dashboard scores up to {max_rows:,} per file "
            f"({MAX_UPLOAD_ROWS_ENV}). Split it, or score it with `mlflow run . -e score_batch`."
        )
    return frame


def check_columns(data: bytes) -> None:
    """Refuse a file with more columns than the dashboard takes, judged from its first line alone.

    Raises:
        BatchError: more separators on the header line than `MAX_UPLOAD_COLUMNS` allows.
    """
    max_columns = upload_limit(MAX_UPLOAD_COLUMNS_ENV, DEFAULT_MAX_UPLOAD_COLUMNS)
    header = data.split(b"\n", 1)[0]
    columns = header.count(b",") + 1  # an upper bound: a quoted header name may hold a comma
    if columns > max_columns:
        raise BatchError(
            f"The file has about {columns:,} columns; the dashboard takes up to {max_columns:,} "
            f"({MAX_UPLOAD_COLUMNS_ENV}). Keep the text column and a few others."
        )


def text_column(frame: pd.DataFrame) -> str:
    """The column holding the tweets: `text` (any case), or the only column there is."""
    for column in frame.columns:
        if str(column).strip().lower() == TEXT_COLUMN:
            return column
    if len(frame.columns) == 1:
        return frame.columns[0]
    found = ", ".join(map(str, frame.columns)) or "none"
    raise BatchError(f"The CSV needs a '{TEXT_COLUMN}' column with the tweets (columns found: {found}).")


def valid_mask(texts: pd.Series) -> pd.Series:
    """Rows the model accepts: non-blank strings (the served pyfunc rejects the rest with a 400)."""
    return texts.map(lambda value: isinstance(value, str) and bool(value.strip()))


def join_predictions(frame: pd.DataFrame, valid: pd.Series, predictions: list[Prediction]) -> pd.DataFrame:
    """The input rows with `valid` and the prediction columns; invalid rows keep empty predictions.

    `predictions` may cover only the first valid rows (a batch the model server stopped answering):
    the valid rows after them keep empty predictions too, so a partial download is still every row.
    """
    scored = frame.copy()
    scored["valid"] = valid.to_numpy()
    for column in PREDICTION_COLUMNS:
        scored[column] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if predictions:
        index = frame.index[valid.to_numpy()][: len(predictions)]
        rows = pd.DataFrame([prediction.__dict__ for prediction in predictions], index=index)
        for column in PREDICTION_COLUMNS:
            scored.loc[rows.index, column] = rows[column]
    scored["proba_negative"] = pd.to_numeric(scored["proba_negative"])
    scored["threshold"] = pd.to_numeric(scored["threshold"])
    return scored


@dataclass(frozen=True)
class PreparedBatch:
    """An upload parsed and split: the rows, the text column, which rows are valid and the texts to send."""

    frame: pd.DataFrame
    column: str
    valid: pd.Series
    texts: list[str]


def prepare(data: bytes) -> PreparedBatch:
    """Parse the upload and pick the tweets to score: everything that grows with the file, in one call for a thread.

    Raises:
        BatchError: as `read_csv` and `text_column` do.
    """
    frame = read_csv(data)
    column = text_column(frame)
    valid = valid_mask(frame[column])
    return PreparedBatch(frame, column, valid, frame.loc[valid, column].tolist())


def scored_download(frame: pd.DataFrame, valid: pd.Series, predictions: list[Prediction]) -> tuple[pd.DataFrame, bytes]:
    """The scored table and its formula-safe CSV bytes: the other step that grows with the file, for a thread."""
    result = join_predictions(frame, valid, predictions)
    return result, to_csv_bytes(result)


def neutralise_formula(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula, made inert with an apostrophe: at its start, and
    after every list separator that a spreadsheet in another locale would split the cell on.

    Excel, LibreOffice and Google Sheets show the apostrophe-prefixed text as typed; numbers and
    other text pass unchanged.
    """
    if not isinstance(cell, str):
        return cell
    cell = FORMULA_AFTER_SEPARATOR.sub(r"\1\2'", cell)
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def to_csv_bytes(scored: pd.DataFrame) -> bytes:
    """The scored table as UTF-8 CSV for the download button, column names and text cells formula-safe.

    Lines end in CRLF as RFC 4180 has it; that also makes the writer quote a field holding a bare
    carriage return, which would otherwise split its row in two.
    """
    safe = scored.rename(columns=lambda name: neutralise_formula(str(name)))
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):  # text, whatever pandas calls its dtype
            safe[column] = safe[column].map(neutralise_formula)
    return safe.to_csv(index=False, lineterminator="\r\n").encode("utf-8")
