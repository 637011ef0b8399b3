"""CSV batches for the dashboard: read an upload, keep its valid rows, join the predictions back.

The output follows `score_batch`'s convention (docs/design.md, "Batch scoring"): every input row is
kept, invalid rows get `valid=False` and empty predictions, and only valid rows are sent to the model.
"""

from __future__ import annotations

import io

import pandas as pd

from dashboard.client import Prediction

TEXT_COLUMN = "text"
PREDICTION_COLUMNS = ("label", "proba_negative", "threshold", "model_version")


class BatchError(ValueError):
    """An upload the dashboard cannot score; the message is shown to the tester."""


def read_csv(data: bytes) -> pd.DataFrame:
    """Parse an uploaded CSV as strings (UTF-8, else latin-1 as Sentiment140 and CrowdFlower ship)."""
    if not data or not data.strip():
        raise BatchError("The file is empty.")
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise BatchError(f"This is not a readable CSV file: {error}") from None
    return frame


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


def to_csv_bytes(scored: pd.DataFrame) -> bytes:
    """The scored table as UTF-8 CSV for the download button."""
    return scored.to_csv(index=False).encode("utf-8")
