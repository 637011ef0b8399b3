"""Rank the candidates of one data run by one validation metric, with why any is not eligible."""

from __future__ import annotations

import math

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from steps.lib.metrics import METRIC_FUNCTIONS

BEHAVIOUR_METRIC = "behaviour_failure_rate"  # overall rate logged by `evaluate` on the candidate's run
RANKABLE = tuple(f"val_{name}" for name in METRIC_FUNCTIONS)
# What ranks the candidates and decides the gate: macro F1 on the complaint validation split at each
# model's own threshold, the figure the product's targets are set in (docs/design.md, "The gate").
DECISION_METRIC = "val_macro_f1"


def reported_test_metric(metric: str) -> str:
    """`val_roc_auc` -> `test_roc_auc`: the figure reported beside the one that ranks.

    Args:
        metric: a validation metric key (`val_<name>`).

    Returns:
        The test key of the same metric.
    """
    return "test_" + metric.split("_", 1)[1]


def rank_candidates(
    client: MlflowClient, experiment_ids: list[str], data_run_id: str, metric: str, ceiling: float | None
) -> pd.DataFrame:
    """Every FINISHED candidate of this data run, best first; only finished runs have a complete model.

    Args:
        client: the tracking client.
        experiment_ids: where to look for candidate runs.
        data_run_id: the prepare_data run the candidates must share.
        metric: one of `RANKABLE`.
        ceiling: the behavioural failure-rate ceiling, or None when that gate is off.

    Returns:
        One row per candidate: rank, run, family, the metric and its test counterpart, the behaviour
        failure rate, `eligible` and the `reason` when not. Ties keep the earlier run first.
    """
    query = f"tags.candidate = 'true' and tags.data_run_id = '{data_run_id}' and attributes.status = 'FINISHED'"
    runs = client.search_runs(experiment_ids, query, max_results=5000)
    rows = [_ranking_row(run, metric, ceiling) for run in runs]
    columns = ["run_id", "run_name", "model_family", metric, reported_test_metric(metric), BEHAVIOUR_METRIC]
    table = pd.DataFrame(rows, columns=[*columns, "start_time", "eligible", "reason"])
    table = table.sort_values([metric, "start_time"], ascending=[False, True], na_position="last")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.drop(columns="start_time").reset_index(drop=True)


def _ranking_row(run: Run, metric: str, ceiling: float | None) -> list:
    metrics = run.data.metrics
    value = metrics.get(metric)
    behaviour = metrics.get(BEHAVIOUR_METRIC)
    reason = ""
    if value is None or math.isnan(value):
        reason = f"no {metric} logged"
    elif ceiling is not None and behaviour is None:
        reason = "not evaluated (run `evaluate` on it): the behaviour ceiling is set"
    elif ceiling is not None and behaviour > ceiling:
        reason = f"{BEHAVIOUR_METRIC} {behaviour:.3f} > ceiling {ceiling:.3f}"
    return [
        run.info.run_id,
        run.info.run_name,
        run.data.tags.get("model_family", "unknown"),
        value,
        metrics.get(reported_test_metric(metric)),
        behaviour,
        run.info.start_time,
        not reason,
        reason,
    ]
