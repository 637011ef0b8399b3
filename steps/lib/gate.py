"""The gate: the best candidate against the champion on rows neither could have trained on.

The decision is the point estimate: the candidate passes when its metric is at least the champion's
on the same rows. The stratified bootstrap interval of the difference is reported beside it and
takes no part in the decision (docs/design.md, "The gate").
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.utils import resample

from steps.lib.fair_comparison import MIN_GATE_ROWS, GateRows, gate_rows
from steps.lib.metrics import METRIC_FUNCTIONS
from steps.lib.ranking import DECISION_METRIC, reported_test_metric
from steps.lib.scoring import predict_in_chunks, progress
from steps.lib.tracking import StepError, load_splits

SCORING_BATCH = 512
SPLITS = ("val", "test")


@dataclass(frozen=True)
class GateSettings:
    """What the gate compares by: the metric, the fewest fair rows, and the reported interval's resampling."""

    metric: str = DECISION_METRIC
    min_rows: int = MIN_GATE_ROWS
    bootstrap_samples: int = 1000
    seed: int = 42


@dataclass
class Scored:
    """A model's P(negative) on some rows, the threshold it decides with, and the version it answers with."""

    proba: np.ndarray
    threshold: float
    model_version: str = ""  # `family:run_id`, as the served model names itself in every answer

    def on(self, rows: np.ndarray) -> Scored:
        """The same model's scores on a subset of the rows."""
        return Scored(self.proba[rows], self.threshold, self.model_version)


def metric_value(metric: str, labels: np.ndarray, scored: Scored) -> float:
    """The named metric (split prefix ignored, `val_roc_auc` = `roc_auc`) for one model on the given rows.

    Args:
        metric: a logged metric key, such as `val_roc_auc`.
        labels: the rows' labels (1 = negative).
        scored: the model's scores on the same rows, and its threshold.

    Returns:
        The metric's value.
    """
    return float(METRIC_FUNCTIONS[metric.split("_", 1)[1]](labels, scored.proba, scored.threshold))


def score_splits(model_uri: str, splits: dict[str, list[str]], role: str = "") -> dict[str, Scored]:
    """P(negative) and threshold per split through the registered pyfunc, exactly what the server answers.

    Scored `SCORING_BATCH` tweets at a time, with a progress bar per split on stderr.

    Args:
        model_uri: a `models:/` or `runs:/` URI.
        splits: texts per split name.
        role: what the model is here (`candidate`, `champion`), named on the progress bars.

    Returns:
        The model's scores per split.
    """
    model = mlflow.pyfunc.load_model(model_uri)
    scored = {}
    for split, texts in splits.items():
        desc = f"scoring {split}" + (f" ({role})" if role else "")
        output = predict_in_chunks(model, texts, SCORING_BATCH, desc)
        proba = output["proba_negative"].to_numpy(dtype=float)
        scored[split] = Scored(proba, float(output["threshold"].iloc[0]), str(output["model_version"].iloc[0]))
    return scored


def bootstrap_difference(
    metric: str,
    labels: np.ndarray,
    candidate: Scored,
    champion: Scored,
    samples: int,
    seed: int,
    desc: str = "gate bootstrap",
) -> tuple[float, float]:
    """95% percentile interval of metric(candidate) - metric(champion), resampling the same rows for both.

    The project's one bootstrap: the gate's interval and `compare_lstm`'s between two arms. Stratified by
    class (scikit-learn's `resample`), so every resample keeps the rows' class balance and AUC stays
    defined (docs/design.md, "The gate"). A progress bar on stderr counts the resamples.

    Args:
        metric: a logged metric key, such as `val_roc_auc`.
        labels: the compared rows' labels.
        candidate: the candidate's scores on those rows.
        champion: the champion's scores on the same rows.
        samples: how many resamples.
        seed: the resampling seed.
        desc: what the progress bar calls the resampling (the metric is added).

    Returns:
        The interval's low and high ends.
    """
    random_state = np.random.RandomState(seed)
    every_row = np.arange(len(labels))
    differences = np.empty(samples)
    for i in progress(range(samples), desc=f"{desc} ({metric})", unit="resample"):
        rows = resample(every_row, stratify=labels, random_state=random_state)
        resampled = labels[rows]
        differences[i] = metric_value(metric, resampled, candidate.on(rows))
        differences[i] -= metric_value(metric, resampled, champion.on(rows))
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(low), float(high)


def champion_data_run(client: MlflowClient, champion: ModelVersion) -> str | None:
    """The prepare_data run the champion trained on: its version tag, else its training run's; None if unknown."""
    if champion.tags.get("data_run_id"):
        return champion.tags["data_run_id"]
    try:
        run = client.get_run(champion.run_id)
    except MlflowException:
        return None
    return run.data.tags.get("data_run_id") or run.data.params.get("data_run_id")


def rows_for_champion(
    client: MlflowClient, champion: ModelVersion, data_run_id: str, splits: dict[str, pd.DataFrame], min_rows: int
) -> dict[str, GateRows]:
    """Per split, the candidate's rows the champion could not have trained on (steps.lib.fair_comparison)."""
    theirs = champion_data_run(client, champion)
    training = None
    if theirs and theirs != data_run_id:
        try:
            training = load_splits(theirs)["train"]
        except StepError:
            theirs = None  # its data can no longer be read: treated as unknown
    return {split: gate_rows(splits[split], data_run_id, theirs, training, min_rows) for split in SPLITS}


def compare_with_champion(
    client: MlflowClient,
    model_name: str,
    version: ModelVersion,
    champion: ModelVersion | None,
    data_run_id: str,
    settings: GateSettings,
) -> dict:
    """Score candidate and champion on validation rows neither could have trained on; decide; report test.

    Args:
        client: the tracking client.
        model_name: the registered model both versions belong to.
        version: the candidate's registered version.
        champion: the current champion, or None before the first one.
        data_run_id: the candidate's prepare_data run, whose splits are scored.
        settings: metric, fewest fair rows, bootstrap resamples and seed.

    Returns:
        `passed`, `metric`, `rows`, `rows_basis`, the candidate's and champion's values, the bootstrap
        interval (`diff_ci_low/high`, when compared) and the test figures reported beside them.
    """
    splits = load_splits(data_run_id)
    texts = {split: splits[split]["text"].tolist() for split in SPLITS}
    labels = {split: splits[split]["label"].to_numpy() for split in SPLITS}
    candidate = score_splits(f"models:/{model_name}/{version.version}", texts, "candidate")
    test_metric = reported_test_metric(settings.metric)
    result = {
        "metric": settings.metric,
        "rows": len(labels["val"]),
        "candidate_value": metric_value(settings.metric, labels["val"], candidate["val"]),
        "report_test_candidate_value": metric_value(test_metric, labels["test"], candidate["test"]),
    }
    if champion is None:
        return result | {"passed": True, "champion_value": None, "rows_basis": "first_champion"}
    rows = rows_for_champion(client, champion, data_run_id, splits, settings.min_rows)
    result |= {"rows_basis": rows["val"].basis, "rows_note": rows["val"].note, "rows": int(rows["val"].mask.sum())}
    if not rows["val"].fair:
        return result | {"passed": False, "champion_value": None}
    incumbent = score_splits(f"models:/{model_name}/{champion.version}", texts, "champion")
    val, test = rows["val"].mask, rows["test"].mask
    mine, theirs = candidate["val"].on(val), incumbent["val"].on(val)
    low, high = bootstrap_difference(
        settings.metric, labels["val"][val], mine, theirs, settings.bootstrap_samples, settings.seed
    )
    result |= {
        "candidate_value": metric_value(settings.metric, labels["val"][val], mine),
        "champion_value": metric_value(settings.metric, labels["val"][val], theirs),
        "diff_ci_low": low,
        "diff_ci_high": high,
    }
    if rows["test"].fair:  # test is reported on rows the champion never trained on, too
        test_labels = labels["test"][test]
        result["report_test_candidate_value"] = metric_value(test_metric, test_labels, candidate["test"].on(test))
        result["report_test_champion_value"] = metric_value(test_metric, test_labels, incumbent["test"].on(test))
    result["passed"] = result["candidate_value"] >= result["champion_value"]
    return result
