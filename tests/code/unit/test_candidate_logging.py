"""A candidate run links its metrics to its logged model, and keeps them even when logging the model fails."""

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

    def load_artifacts(self, artifacts: dict[str, str]) -> None:
        pass  # nothing to rebuild: the scorer is its own state


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


def test_metrics_are_linked_to_the_logged_model_and_to_the_split_they_were_computed_on(tracking):
    splits = {"train": split(3), "val": split(1), "test": split(2)}
    with mlflow.start_run(experiment_id=tracking.experiment_id) as run:
        for name in ("val", "test"):
            mlflow.log_input(mlflow.data.from_pandas(splits[name], source=f"{name}.parquet", name=name), context=name)
        uri = candidate.log_candidate(LengthScorer("none"), "baseline", splits, 1.5, {}, [], ThresholdPolicy())
    client = MlflowClient()
    logged_run = client.get_run(run.info.run_id)
    model_id = logged_run.outputs.model_outputs[-1].model_id
    assert uri == f"models:/{model_id}"
    digests = {i.dataset.name: i.dataset.digest for i in logged_run.inputs.dataset_inputs}
    assert sorted(digests) == ["test", "val"]  # linking the metrics logged no second input
    linked = {m.key: m for m in mlflow.get_logged_model(model_id).metrics}
    assert set(linked) == set(logged_run.data.metrics) >= CANDIDATE_METRICS  # each metric linked once
    for key, value in logged_run.data.metrics.items():
        assert linked[key].value == pytest.approx(value)
        assert len(client.get_metric_history(run.info.run_id, key)) == 1  # the run's metrics as before
        name = key.split("_")[0] if key.startswith(("val_", "test_")) else None
        assert (linked[key].dataset_name, linked[key].dataset_digest) == (name, digests.get(name)), key
