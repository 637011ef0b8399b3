"""Print the candidates of the newest prepared data as Markdown tables (the article's tables come from here).

\b
python scripts/results_table.py [--experiment tweet-reaction-prediction] [--data-run-id ID]
python scripts/results_table.py --json docs/results/main_job.json   # save the figures for the docs

With --json the candidates' figures are also written to a result file in the repository, with the run
ids, the commit and the dates: `python scripts/render_docs.py` renders the docs' quality tables from it,
so the docs never need the tracking store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import click
import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from steps.lib.cli import data_run_option, experiment_option
from steps.lib.ranking import DECISION_METRIC
from steps.lib.registry import CHAMPION_ALIAS, MODEL_NAME
from steps.lib.tracking import newest_prepared_run_id

QUALITY = ["macro_f1", "false_alarm_rate", "miss_rate", "roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy"]
TEST_TYPES = ("mft", "inv", "dir")


def candidate_runs(experiment: str, data_run_id: str) -> pd.DataFrame:
    """Finished candidate runs of one data run (the newest prepare_data run by default)."""
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    data_run_id = data_run_id or newest_prepared_run_id([experiment_id])
    if data_run_id is None:
        return pd.DataFrame()
    query = f"tags.candidate = 'true' and tags.data_run_id = '{data_run_id}' and attributes.status = 'FINISHED'"
    runs = mlflow.search_runs([experiment_id], query)
    if runs.empty:
        return runs
    runs["name"] = runs["tags.mlflow.runName"].fillna(runs["tags.model_family"])
    return runs.sort_values(f"metrics.{DECISION_METRIC}", ascending=False)


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' to_markdown needs the optional tabulate package)."""
    rows = [list(map(str, frame.columns))] + [["" if pd.isna(v) else str(v) for v in row] for row in frame.to_numpy()]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(frame.columns))
    return "\n".join(lines)


def selected(runs: pd.DataFrame, columns: dict[str, str], digits: int = 4) -> str:
    """The named columns that the runs logged, renamed and rounded, as Markdown."""
    present = {key: value for key, value in columns.items() if key in runs.columns}
    return markdown(runs[list(present)].rename(columns=present).round(digits))


def quality_table(runs: pd.DataFrame) -> str:
    columns = {"name": "run", "tags.model_family": "family"}
    columns |= {f"metrics.{split}_{m}": f"{split} {m}" for split in ("val", "test") for m in QUALITY[:4]}
    columns |= {
        "metrics.threshold": "threshold",
        "metrics.train_seconds": "train s",
        "metrics.predict_ms_per_1k": "ms / 1k tweets",
    }
    return selected(runs, columns)


def behaviour_table(runs: pd.DataFrame) -> str:
    """Failure rate per capability, read from whatever `evaluate` logged (the suite file defines them)."""
    columns = {"name": "run", "metrics.behaviour_failure_rate": "all"}
    for column in sorted(runs.columns):
        capability = column.removeprefix("metrics.behaviour_").removesuffix("_failure_rate")
        is_rate = column.startswith("metrics.behaviour_") and column.endswith("_failure_rate")
        if is_rate and capability not in (*TEST_TYPES, "") and column not in columns:
            columns[column] = capability
    return selected(runs, columns, digits=3)


def operating_point_table(runs: pd.DataFrame) -> str:
    """What each candidate's threshold means: on validation, and on the service-traffic set (reported only)."""
    columns = {"name": "run", "params.threshold_policy": "policy", "metrics.threshold": "threshold"}
    columns |= {f"metrics.val_{key}": f"val {key}" for key in ("precision", "recall", "flagged_share")}
    columns |= {f"metrics.service_traffic_{key}": f"service {key}" for key in ("accuracy", "false_alarm_rate")}
    columns["metrics.service_traffic_miss_rate"] = "service miss_rate"
    return selected(runs, columns)


def calibration_table(runs: pd.DataFrame) -> str:
    columns = {"name": "run", "metrics.val_ece_raw": "val ECE raw", "metrics.val_ece": "val ECE calibrated"}
    columns |= {"metrics.test_ece": "test ECE", "metrics.temperature": "temperature"}
    return selected(runs, columns)


TABLES = {
    "Quality": quality_table,
    "Operating point": operating_point_table,
    "Behaviour (failure rates)": behaviour_table,
    "Calibration": calibration_table,
}
KEPT_COLUMNS = ("name", "tags.model_family", "params.threshold_policy")  # besides every metric


def iso(milliseconds: float | None) -> str:
    """An MLflow timestamp as ISO 8601 in UTC (empty when the run has none)."""
    if milliseconds is None or pd.isna(milliseconds):
        return ""
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="seconds")


def champion_record() -> dict:
    """The registry's champion (version and run id), or an empty record when the store has none."""
    try:
        version = MlflowClient().get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
    except mlflow.exceptions.MlflowException:
        return {}
    return {"model": MODEL_NAME, "alias": CHAMPION_ALIAS, "version": version.version, "run_id": version.run_id}


def record(runs: pd.DataFrame, experiment: str) -> dict:
    """The candidates' figures with their provenance: what `--json` writes and `frame` reads back."""
    client = MlflowClient()
    first = client.get_run(runs["run_id"].iloc[0])
    parent_id = first.data.tags.get("mlflow.parentRunId", "")
    parent = client.get_run(parent_id) if parent_id else None
    source = parent or first
    rows = []
    for _, run in runs.iterrows():
        figures = {key: run[key] for key in runs.columns if key.startswith("metrics.") or key in KEPT_COLUMNS}
        figures = {key: value for key, value in figures.items() if not pd.isna(value)}
        rows.append({"run_id": run["run_id"], "git_commit": run.get("tags.mlflow.source.git.commit", ""), **figures})
    return {
        "what": "Candidate runs of one main job, as `python scripts/results_table.py --json` read them from the store",
        "provenance": {
            "experiment": experiment,
            "data_run_id": first.data.tags.get("data_run_id", ""),
            "main_run_id": parent_id,
            "git_commit": source.data.tags.get("mlflow.source.git.commit", ""),
            "started": iso(source.info.start_time),
            "ended": iso(source.info.end_time),
            "behaviour_suite": first.data.tags.get("behaviour_suite", ""),
            "champion": champion_record(),
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "runs": rows,
    }


def frame(saved: dict) -> pd.DataFrame:
    """The runs of a `--json` file as the frame the tables read (the order they were saved in)."""
    return pd.DataFrame([{key: value for key, value in run.items() if key != "git_commit"} for run in saved["runs"]])


@click.command(help=__doc__)
@experiment_option("tabulated")
@data_run_option
@click.option("--json", "json_path", default="", help="also write the candidates' figures and provenance here")
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    runs = candidate_runs(args.experiment, args.data_run_id)
    for title, table in TABLES.items():
        print(f"\n### {title}\n\n{table(runs)}")
    if args.json_path and not runs.empty:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record(runs, args.experiment), indent=1) + "\n")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
