"""Would a weighted ensemble of the candidates beat the best one? Measured from their logged predictions.

\b
    python bench/ensemble_gain.py [--data-run-id ID] [--base RUN_ID]

Every candidate logs its calibrated validation and test predictions (`predictions/{val,test}.json`).
A logistic regression on the members' logits (stacking) is fitted on validation; its validation
figures are out-of-fold (5-fold cross-fitting), so they compare fairly with the single models', and
test figures are reported only. The base (default: the best candidate by validation ROC AUC) is in
every ensemble; each other candidate, and the pairs of them, join it. The result is logged as a run
of its own (tag `trial=ensemble_stacking`) on the same data run, with its provenance.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from types import SimpleNamespace

import click
import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from steps.lib.cli import data_run_option, seed_option
from steps.lib.provenance import provenance
from steps.lib.tracking import EXPERIMENT_NAME, configure_tracking, newest_prepared_run_id

REPO = Path(__file__).resolve().parent.parent
FOLDS = 5


def predictions(run_id: str, split: str) -> pd.DataFrame:
    logged = mlflow.artifacts.load_dict(f"runs:/{run_id}/predictions/{split}.json")
    return pd.DataFrame(logged["data"], columns=logged["columns"])


def logits(proba: np.ndarray) -> np.ndarray:
    clipped = np.clip(proba, 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped))


def stacked(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], seed: int) -> dict[str, float]:
    """Out-of-fold validation and held-out test figures of a logistic regression on member logits."""
    model = LogisticRegression(max_iter=1000)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    out_of_fold = cross_val_predict(model, features["val"], labels["val"], cv=folds, method="predict_proba")[:, 1]
    test = model.fit(features["val"], labels["val"]).predict_proba(features["test"])[:, 1]
    return {
        "val_roc_auc": roc_auc_score(labels["val"], out_of_fold),
        "val_pr_auc": average_precision_score(labels["val"], out_of_fold),
        "test_roc_auc": roc_auc_score(labels["test"], test),
        "test_pr_auc": average_precision_score(labels["test"], test),
    }


@click.command(help=__doc__)
@data_run_option
@click.option(
    "--base", default="", show_default=True, help="candidate run every ensemble contains (empty = best by val AUC)"
)
@seed_option
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    configure_tracking()
    experiment_id = (
        os.environ.get("MLFLOW_EXPERIMENT_ID")
        or mlflow.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT_NAME)).experiment_id
    )
    data_run_id = args.data_run_id or newest_prepared_run_id([experiment_id])
    query = f"tags.candidate = 'true' and tags.data_run_id = '{data_run_id}' and attributes.status = 'FINISHED'"
    runs = MlflowClient().search_runs([experiment_id], query, order_by=["metrics.val_roc_auc DESC"])
    if len(runs) < 2:
        raise SystemExit(f"data run {data_run_id} has {len(runs)} finished candidate(s): nothing to ensemble")
    names = {run.info.run_id: run.info.run_name or run.data.tags.get("model_family", "?") for run in runs}
    base = args.base or runs[0].info.run_id
    frames = {run_id: {split: predictions(run_id, split) for split in ("val", "test")} for run_id in names}
    labels = {split: frames[base][split]["label"].to_numpy() for split in ("val", "test")}
    for run_id, frame in frames.items():  # every candidate scored the same rows in the same order
        for split in ("val", "test"):
            if not (frame[split]["text"].to_numpy() == frames[base][split]["text"].to_numpy()).all():
                raise SystemExit(f"run {run_id} did not score the same {split} rows as {base}")
    others = [run_id for run_id in names if run_id != base]
    rows = []
    for size in (0, 1, 2):
        for extra in itertools.combinations(others, size):
            members = [base, *extra]
            features = {
                split: np.column_stack([logits(frames[m][split]["proba_negative"].to_numpy()) for m in members])
                for split in ("val", "test")
            }
            rows.append({"members": " + ".join(names[m] for m in members), **stacked(features, labels, args.seed)})
    table = pd.DataFrame(rows).sort_values("val_roc_auc", ascending=False)
    single = table[table["members"] == names[base]].iloc[0]
    best = table.iloc[0]
    with mlflow.start_run(run_name="ensemble-stacking", experiment_id=experiment_id):
        mlflow.set_tags({"trial": "ensemble_stacking", "data_run_id": data_run_id, "base_run_id": base})
        mlflow.set_tags({f"provenance.{key}": value for key, value in provenance().items()})
        mlflow.log_table(table, "ensemble_gain.json")
        mlflow.log_metrics({f"single_{k}": float(single[k]) for k in single.index if k != "members"})
        mlflow.log_metrics({f"best_{k}": float(best[k]) for k in best.index if k != "members"})
        mlflow.log_param("best_members", best["members"])
    pd.set_option("display.width", 200)
    print(table.round(4).to_string(index=False))
    print(f"\nbest by out-of-fold validation ROC AUC: {best['members']}")
    print(
        f"  val {single['val_roc_auc']:.4f} -> {best['val_roc_auc']:.4f}; test {single['test_roc_auc']:.4f} -> "
        f"{best['test_roc_auc']:.4f} (reported only)"
    )


if __name__ == "__main__":
    main()
