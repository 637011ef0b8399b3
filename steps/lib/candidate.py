"""Log a trained model as a candidate: threshold, metrics, plots, predictions and the pyfunc.

Every training step ends here, so every candidate run carries the same metric keys, tags,
artifacts and served contract (docs/design.md), and `register` can rank them blindly.
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Dataset as DatasetEntity
from tqdm.auto import tqdm

from pyfunc.contract import INPUT_EXAMPLE, TweetClassifier, apply_temperature, signature
from steps.lib.drift import PROFILE_ARTIFACT, reference_profile
from steps.lib.metrics import (
    ECE_LIMIT,
    classification_metrics,
    evaluation_figures,
    expected_calibration_error,
    fit_temperature,
    reliability_figure,
    threshold_sweep_figure,
)
from steps.lib.operating_point import (
    ThresholdPolicy,
    at_threshold,
    choose_threshold,
    empirical_min_cost_threshold,
    operating_curve,
)
from steps.lib.tracking import run_datasets

PYFUNC_CODE = str(Path(__file__).resolve().parents[2] / "pyfunc")
SCORING_BATCH = 256
TIMING_SAMPLE = 1000
SUMMARY_METRICS = ("val_macro_f1", "val_false_alarm_rate", "val_miss_rate", "val_roc_auc", "test_macro_f1")


def predict_in_batches(model: TweetClassifier, texts: list[str], desc: str) -> np.ndarray:
    """Uncalibrated P(negative) for many texts, in batches, with a progress bar.

    Args:
        model: a candidate with its runtime attributes in place.
        texts: raw tweets.
        desc: the progress bar's label.

    Returns:
        `model.raw_proba` of every text, in order (empty for no texts).
    """
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


def choose_operating_point(
    model: TweetClassifier, y_val: np.ndarray, proba_val: np.ndarray, policy: ThresholdPolicy
) -> dict[str, float]:
    """Set the model's threshold and operating curve by the policy; log what the threshold means.

    Returns the metrics that describe it: `threshold`, and on validation the precision, recall and
    flagged share at it (plus, under `cost`, the empirical minimiser logged beside the closed form).
    """
    threshold = choose_threshold(y_val, proba_val, policy)  # PolicyError: a floor no threshold reaches
    model.threshold = threshold
    curve = operating_curve(y_val, proba_val, threshold)
    model.operating_curve = {name: np.asarray(values) for name, values in curve.items()}  # ready for predict
    point = at_threshold(y_val, proba_val, threshold)
    metrics = {"threshold": threshold, "val_flagged_share": point["flagged_share"]}
    if policy.name == "cost":  # the diagnostic beside the closed form (docs/design.md, "Operating point")
        metrics["threshold_empirical_min_cost"] = empirical_min_cost_threshold(y_val, proba_val, policy.cost_ratio)
    mlflow.log_param("threshold_rule", policy.describe())
    mlflow.log_dict(curve, "operating_curve.json")
    sweep = threshold_sweep_figure(curve, threshold, policy.describe())
    mlflow.log_figure(sweep, "plots/val_threshold_sweep.png")
    plt.close(sweep)
    print(
        f"threshold {threshold:.3f} ({policy.describe()}): on validation {point['precision']:.1%} of flagged "
        f"tweets are complaints, {point['recall']:.1%} of complaints are flagged, {point['flagged_share']:.1%} flagged",
        flush=True,
    )
    return metrics


def log_linked_metrics(metrics: dict[str, float], model_id: str, datasets: dict[str, DatasetEntity]) -> None:
    """Log the run's metrics linked to its logged model, each `val_`/`test_` one to the dataset it was computed on.

    The run gets every metric once, as `mlflow.log_metrics` alone would log it; the LoggedModel gets
    them too, so the Models tab lists the model with its metrics, grouped by the `val`/`test` dataset
    inputs of the run (a split the run logged no input for is linked to the model only).

    Args:
        metrics: the metrics, by key.
        model_id: the logged model's id (`ModelInfo.model_id`).
        datasets: the run's dataset inputs, by name (`steps.lib.tracking.run_datasets`).
    """
    by_split = {split: {k: v for k, v in metrics.items() if k.startswith(f"{split}_")} for split in ("val", "test")}
    linked = set().union(*by_split.values())
    if rest := {key: value for key, value in metrics.items() if key not in linked}:
        mlflow.log_metrics(rest, model_id=model_id)
    for split, values in by_split.items():
        if values:
            mlflow.log_metrics(values, model_id=model_id, dataset=datasets.get(split))


def log_candidate(
    model: TweetClassifier,
    family: str,
    splits: dict[str, pd.DataFrame],
    train_seconds: float,
    artifacts: dict[str, str],
    pip_requirements: list[str],
    policy: ThresholdPolicy | None,
) -> str:
    """Choose the threshold on validation, log metrics, plots and the servable pyfunc; return its URI.

    The model is logged first, then the metrics linked to it (`log_linked_metrics`); when logging the
    model fails, the metrics are logged on the run alone before the error propagates, so the run
    still shows what it measured. Call it inside the candidate's active run.

    Args:
        model: the trained pyfunc; its temperature, threshold, operating curve and version are set here.
        family: the `model_family` tag (`baseline`, `lstm`, `transformer`).
        splits: the prepared splits; `val` chooses the threshold and calibration, `test` is reported.
        train_seconds: training wall time, logged as `train_seconds`.
        artifacts: local paths of the pyfunc's artifacts, by name.
        pip_requirements: the served model's exact requirements.
        policy: how the threshold is chosen on validation; None keeps the model's temperature,
            threshold and operating curve as they are (`adapt`, whose validation rows are the held-out
            verdicts that judge it: nothing may be fitted on them).

    Returns:
        The logged model's URI.

    Raises:
        PolicyError: a `precision_floor` policy whose floor no validation threshold reaches.
    """
    run_id = mlflow.active_run().info.run_id
    mlflow.set_tags({"candidate": "true", "model_family": family})
    raw = {
        split: predict_in_batches(model, splits[split]["text"].tolist(), f"scoring {split}")
        for split in ("val", "test")
    }
    y_val = splits["val"]["label"].to_numpy()
    if policy is None:
        metrics = {"train_seconds": train_seconds, "temperature": model.temperature, "threshold": model.threshold}
        mlflow.set_tag("operating_point", "kept from the model it was fine-tuned from")
    else:
        metrics = {"train_seconds": train_seconds, **calibrate(model, y_val, raw["val"])}
    proba = {split: apply_temperature(values, model.temperature) for split, values in raw.items()}
    model.model_version = f"{family}:{run_id}"
    if policy is not None:
        metrics |= choose_operating_point(model, y_val, proba["val"], policy)
    threshold = model.threshold
    metrics["test_ece"] = expected_calibration_error(splits["test"]["label"].to_numpy(), proba["test"])
    for split in ("val", "test"):
        labels = splits[split]["label"].to_numpy()
        metrics |= classification_metrics(labels, proba[split], threshold, split)
        for name, figure in evaluation_figures(labels, proba[split], threshold, split).items():
            mlflow.log_figure(figure, name)
            plt.close(figure)
        mlflow.log_table(_predictions_table(splits[split], proba[split], threshold), f"predictions/{split}.json")
    summary = ", ".join(f"{key}={metrics[key]:.4f}" for key in SUMMARY_METRICS)
    print(f"{family}: {summary}, threshold={threshold:.3f}", flush=True)

    print(f"logging the {family} pyfunc", flush=True)
    try:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            artifacts=artifacts,
            code_paths=[PYFUNC_CODE],
            signature=signature(threshold),
            input_example=INPUT_EXAMPLE,
            pip_requirements=pip_requirements,
        )
    except Exception:
        mlflow.log_metrics(metrics)  # what the run measured stays on it when its model cannot be logged
        raise
    log_linked_metrics(metrics, info.model_id, run_datasets(run_id))
    profile = reference_profile(splits["train"]["text"].tolist(), splits["val"]["text"].tolist(), proba["val"])
    mlflow.log_dict(profile, PROFILE_ARTIFACT)  # what `monitor` measures drift against
    timing_texts = splits["val"]["text"].tolist()[:TIMING_SAMPLE]
    mlflow.log_metrics(_time_served_model(info.model_uri, timing_texts, proba["val"]), model_id=info.model_id)
    return info.model_uri
