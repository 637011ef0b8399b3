"""Every step that scores many tweets shows a progress bar on stderr, and chunking changes no score.

`evaluate` (behaviour suite, service traffic), `shadow` and `monitor` (traffic) and the gate in
`register` (candidate and champion, then the bootstrap) all score through `predict_in_chunks`.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pandas as pd
import pytest

from steps import evaluate
from steps.lib import gate
from steps.lib.gate import Scored, bootstrap_difference, score_splits
from steps.lib.scoring import predict_in_chunks

PYFUNC = importlib.import_module("mlflow.pyfunc")  # the module itself: `mlflow.pyfunc` may be a lazy proxy
TEXTS = [f"tweet {i} " + "late again " * (i % 7) for i in range(23)]


class CountingModel:
    """A pyfunc stand-in that scores each tweet by its own length and counts its `predict` calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.calls.append(len(frame))
        proba = frame["text"].str.len().to_numpy() / 100
        return pd.DataFrame({"label": np.where(proba >= 0.4, "negative", "not_negative"), "proba_negative": proba})


def one_call(texts: list[str]) -> pd.DataFrame:
    return CountingModel().predict(pd.DataFrame({"text": texts}))


@pytest.fixture(autouse=True)
def bars_on(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_chunks_report_progress_and_return_what_one_call_returns(capsys):
    model = CountingModel()
    scored = predict_in_chunks(model, TEXTS, 5, "scoring traffic")
    assert model.calls == [5, 5, 5, 5, 3]
    pd.testing.assert_frame_equal(scored, one_call(TEXTS))
    bar = capsys.readouterr()
    assert bar.out == ""  # the step's own output stays its own
    assert "scoring traffic: 100%" in bar.err and "23/23" in bar.err


def test_tqdm_disable_silences_the_bar(capsys, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    pd.testing.assert_frame_equal(predict_in_chunks(CountingModel(), TEXTS, 5, "scoring"), one_call(TEXTS))
    assert capsys.readouterr().err == ""


def test_evaluate_scores_through_chunks_with_a_labelled_bar(capsys, monkeypatch):
    model = CountingModel()
    monkeypatch.setattr(PYFUNC, "load_model", lambda uri: model)
    monkeypatch.setattr(evaluate, "PREDICT_BATCH", 4)
    predict = evaluate.pyfunc_predictor("models:/m/1")
    pd.testing.assert_frame_equal(predict(TEXTS, desc="scoring behaviour cases"), one_call(TEXTS))
    assert len(model.calls) == math.ceil(len(TEXTS) / 4)
    assert "scoring behaviour cases: 100%" in capsys.readouterr().err


def test_shadow_monitor_and_gate_scoring_report_progress_per_split(capsys, monkeypatch):
    model = CountingModel()
    model.predict = lambda frame, predict=model.predict: predict(frame).assign(threshold=0.4, model_version="lr:r1")
    monkeypatch.setattr(PYFUNC, "load_model", lambda uri: model)
    monkeypatch.setattr(gate, "SCORING_BATCH", 6)
    scored = score_splits("models:/m/1", {"val": TEXTS, "test": TEXTS[:7]}, "champion")
    assert model.calls == [6, 6, 6, 5, 6, 1]
    np.testing.assert_array_equal(scored["val"].proba, one_call(TEXTS)["proba_negative"].to_numpy())
    assert scored["test"].threshold == 0.4 and scored["test"].model_version == "lr:r1"
    err = capsys.readouterr().err
    assert "scoring val (champion): 100%" in err and "scoring test (champion): 100%" in err


def test_gate_bootstrap_reports_progress_and_keeps_its_interval(capsys, monkeypatch):
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 50)
    good = Scored(np.clip(labels * 0.5 + rng.random(100) * 0.5, 0, 1), 0.5)
    noise = Scored(rng.random(100), 0.5)
    interval = bootstrap_difference("val_roc_auc", labels, good, noise, 40, seed=3)
    assert "gate bootstrap (val_roc_auc): 100%" in capsys.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert bootstrap_difference("val_roc_auc", labels, good, noise, 40, seed=3) == interval
    assert capsys.readouterr().err == ""
