"""A candidate run keeps every metric it measured even when logging the model itself fails."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from pyfunc.contract import TweetClassifier
from steps.lib import candidate
from steps.lib.operating_point import ThresholdPolicy
from tests.conftest import CANDIDATE_METRICS


class LengthScorer(TweetClassifier):
    """P(negative) grows with the text's length: enough to give every metric a value."""

    def raw_proba(self, texts: list[str]) -> np.ndarray:
        return np.array([min(0.99, len(text) / 40) for text in texts])


def split(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 60)
    texts = [("so bad " * (3 + 2 * label + int(rng.integers(0, 3))))[: 10 + 20 * label] for label in labels]
    return pd.DataFrame({"text": texts, "label": labels, "source": "test"})


def test_metrics_are_logged_before_the_model_so_a_failed_model_log_keeps_them(tracking, monkeypatch):
    def failing_log_model(**kwargs):
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(candidate.mlflow.pyfunc, "log_model", failing_log_model)
    splits = {"train": split(3), "val": split(1), "test": split(2)}
    with mlflow.start_run(experiment_id=tracking.experiment_id) as run, pytest.raises(OSError):
        candidate.log_candidate(LengthScorer("none"), "baseline", splits, 1.5, {}, [], ThresholdPolicy())
    logged = MlflowClient().get_run(run.info.run_id).data.metrics
    assert set(logged) >= CANDIDATE_METRICS - {"predict_ms_per_1k"}  # timing needs the logged model
    assert logged["train_seconds"] == 1.5 and logged["threshold"] == pytest.approx(1 / 3)
