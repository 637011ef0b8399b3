"""Log a trained model as a candidate: threshold, metrics, plots, predictions and the pyfunc.

Every training step ends here, so every candidate run carries the same metric keys, tags,
artifacts and served contract (DESIGN.md), and `register` can rank them blindly.
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pyfunc.contract import INPUT_EXAMPLE, TweetClassifier, apply_temperature, signature
from steps.metrics import (
    ECE_LIMIT,
    THRESHOLD_RULE,
    choose_threshold,
    classification_metrics,
    evaluation_figures,
    expected_calibration_error,
    fit_temperature,
    reliability_figure,
    threshold_sweep_figure,
)

PYFUNC_CODE = str(Path(__file__).resolve().parent.parent / "pyfunc")
SCORING_BATCH = 256
TIMING_SAMPLE = 1000


def score(model: TweetClassifier, texts: list[str], desc: str) -> np.ndarray:
    """Uncalibrated P(negative) for many texts, in batches, with a progress bar."""
    batches = [texts[start : start + SCORING_BATCH] for start in range(0, len(texts), SCORING_BATCH)]
    parts = [model.raw_proba(batch) for batch in tqdm(batches, desc=desc, unit="batch", mininterval=2)]
    return np.concatenate(parts) if parts else np.empty(0)


def calibrate(model: TweetClassifier, y_val: np.ndarray, raw_val: np.ndarray) -> dict[str, float]:
    """Fit temperature scaling on validation when the raw model is miscalibrated (ECE above the limit)."""
    ece_raw = expected_calibration_error(y_val, raw_val)
    model.temperature = 1.0
    if ece_raw > ECE_LIMIT:
        fitted = fit_temperature(y_val, raw_val)
        # Log-loss and ECE can disagree on small splits: keep the temperature only if it helps ECE.
        if expected_calibration_error(y_val, apply_temperature(raw_val, fitted)) < ece_raw:
            model.temperature = fitted
    calibrated = apply_temperature(raw_val, model.temperature)
    figure = reliability_figure(y_val, {"raw": raw_val, "calibrated": calibrated})
    mlflow.log_figure(figure, "plots/val_reliability_diagram.png")
    plt.close(figure)
    mlflow.set_tag("calibration", "temperature_scaling" if model.temperature != 1.0 else "none")
    return {
        "val_ece_raw": ece_raw,
        "val_ece": expected_calibration_error(y_val, calibrated),
        "temperature": model.temperature,
    }


def _predictions_table(frame: pd.DataFrame, proba: np.ndarray, threshold: float) -> pd.DataFrame:
    table = frame[["text", "label", "source"]].copy()
    table["proba_negative"] = proba
    table["predicted"] = (proba >= threshold).astype(int)
    return table


def _time_served_model(model_uri: str, texts: list[str], expected: np.ndarray) -> dict[str, float]:
    """Milliseconds per 1,000 tweets through the logged pyfunc, and its parity with training."""
    loaded = mlflow.pyfunc.load_model(model_uri)
    frame = pd.DataFrame({"text": texts})
    loaded.predict(frame.head(8))  # warm-up: lazy imports and first-call allocations
    started = time.perf_counter()
    served = loaded.predict(frame)["proba_negative"].to_numpy()
    elapsed = time.perf_counter() - started
    return {
        "predict_ms_per_1k": elapsed * 1000 * 1000 / len(texts),
        "served_parity_max_abs_diff": float(np.max(np.abs(served - expected[: len(texts)]))),
    }


def log_candidate(
    model: TweetClassifier,
    family: str,
    splits: dict[str, pd.DataFrame],
    train_seconds: float,
    artifacts: dict[str, str],
    pip_requirements: list[str],
) -> str:
    """Choose the threshold on validation, log metrics, plots and the servable pyfunc; return its URI."""
    run_id = mlflow.active_run().info.run_id
    raw = {split: score(model, splits[split]["text"].tolist(), f"scoring {split}") for split in ("val", "test")}
    calibration = calibrate(model, splits["val"]["label"].to_numpy(), raw["val"])
    proba = {split: apply_temperature(values, model.temperature) for split, values in raw.items()}
    threshold = choose_threshold(splits["val"]["label"].to_numpy(), proba["val"])
    model.threshold = threshold
    model.model_version = f"{family}:{run_id}"

    metrics = {"threshold": threshold, "train_seconds": train_seconds, **calibration}
    metrics["test_ece"] = expected_calibration_error(splits["test"]["label"].to_numpy(), proba["test"])
    for split in ("val", "test"):
        labels = splits[split]["label"].to_numpy()
        metrics |= classification_metrics(labels, proba[split], threshold, split)
        for name, figure in evaluation_figures(labels, proba[split], threshold, split).items():
            mlflow.log_figure(figure, name)
            plt.close(figure)
        mlflow.log_table(_predictions_table(splits[split], proba[split], threshold), f"predictions/{split}.json")
    sweep = threshold_sweep_figure(splits["val"]["label"].to_numpy(), proba["val"], threshold)
    mlflow.log_figure(sweep, "plots/val_threshold_sweep.png")
    plt.close(sweep)
    mlflow.log_param("threshold_rule", THRESHOLD_RULE)
    mlflow.set_tags({"candidate": "true", "model_family": family})

    print(f"logging the {family} pyfunc", flush=True)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=model,
        artifacts=artifacts,
        code_paths=[PYFUNC_CODE],
        signature=signature(threshold),
        input_example=INPUT_EXAMPLE,
        pip_requirements=pip_requirements,
    )
    timing_texts = splits["val"]["text"].tolist()[:TIMING_SAMPLE]
    metrics |= _time_served_model(info.model_uri, timing_texts, proba["val"])
    mlflow.log_metrics(metrics)
    summary = ", ".join(f"{key}={metrics[key]:.4f}" for key in ("val_roc_auc", "val_f1", "test_roc_auc", "test_f1"))
    print(f"{family}: {summary}, threshold={threshold:.3f}", flush=True)
    return info.model_uri
