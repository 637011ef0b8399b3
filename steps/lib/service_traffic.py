"""The service-traffic set: hand-written tweets to brands, about half complaints, reported and never used to choose.

The embedded corpus is mostly opinion; a support queue also receives neutral questions, thanks and
praise, and polite complaints. `service_traffic.csv` (written for this project, see docs/design.md,
"Evaluation sets that decide nothing") holds such traffic with its true label and kind. `evaluate`
scores every candidate on it at the served threshold; no step trains, picks a threshold or ranks on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

SERVICE_TRAFFIC_PATH = Path(__file__).resolve().parents[1] / "service_traffic.csv"
COLUMNS = ("text", "label", "brand", "kind")

Predict = Callable[[list[str]], pd.DataFrame]


class ServiceTrafficError(ValueError):
    """The set's file is missing or malformed: names the file and the problem."""


def load_service_traffic(path: str | Path = SERVICE_TRAFFIC_PATH) -> tuple[pd.DataFrame, str]:
    """The set and the first 12 hex digits of its file's SHA-256 (recorded beside every figure).

    Args:
        path: the set's CSV (default: `steps/service_traffic.csv`).

    Returns:
        The rows (columns `COLUMNS`) and the digest.

    Raises:
        ServiceTrafficError: the file is missing, lacks a column, has a row without text or with a
            label other than 0/1, or lacks one of the two classes.
    """
    path = Path(path)
    if not path.is_file():
        raise ServiceTrafficError(f"service-traffic set not found: {path}")
    frame = pd.read_csv(path, dtype={"text": str, "brand": str, "kind": str})
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ServiceTrafficError(f"{path}: missing column(s) {', '.join(missing)}")
    if frame["text"].isna().any() or not frame["label"].isin([0, 1]).all():
        raise ServiceTrafficError(f"{path}: every row needs a text and a label of 0 or 1")
    if frame.empty or frame["label"].nunique() < 2:
        raise ServiceTrafficError(f"{path}: needs complaints (label 1) and non-complaints (label 0)")
    return frame[list(COLUMNS)], hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def score_service_traffic(frame: pd.DataFrame, predict: Predict) -> pd.DataFrame:
    """The set with the served model's `proba_negative`, `predicted` label (0/1) and `correct`.

    Args:
        frame: as `load_service_traffic` returns it.
        predict: texts -> the pyfunc's output (`label` and `proba_negative` per text).

    Returns:
        A copy of the set with the three columns; `predicted` is 1 for the label `negative`.
    """
    output = predict(frame["text"].tolist())
    scored = frame.copy()
    scored["proba_negative"] = output["proba_negative"].to_numpy(dtype=float)
    scored["predicted"] = (output["label"] == "negative").astype(int).to_numpy()
    scored["correct"] = scored["predicted"] == scored["label"]
    return scored


def service_traffic_metrics(scored: pd.DataFrame) -> dict[str, float]:
    """Accuracy, false-alarm rate (non-complaints flagged) and miss rate (complaints not flagged).

    Args:
        scored: as `score_service_traffic` returns it.

    Returns:
        `service_traffic_accuracy`, `service_traffic_false_alarm_rate`, `service_traffic_miss_rate`
        and `service_traffic_rows`, as floats.
    """
    complaints = scored["label"] == 1
    return {
        "service_traffic_accuracy": float(scored["correct"].mean()),
        "service_traffic_false_alarm_rate": float(scored.loc[~complaints, "predicted"].mean()),
        "service_traffic_miss_rate": float(1 - scored.loc[complaints, "predicted"].mean()),
        "service_traffic_rows": float(len(scored)),
    }


def errors_by_kind(scored: pd.DataFrame) -> pd.DataFrame:
    """Error rate per kind of tweet (neutral question, thanks, polite complaint...): where the queue goes wrong.

    Args:
        scored: as `score_service_traffic` returns it.

    Returns:
        `kind`, `label`, `rows`, `errors` and `error_rate`, one row per kind and label, sorted.
    """
    grouped = scored.groupby(["kind", "label"], sort=True)["correct"]
    table = grouped.agg(rows="size", errors=lambda correct: int(np.sum(~correct))).reset_index()
    table["error_rate"] = table["errors"] / table["rows"]
    return table
