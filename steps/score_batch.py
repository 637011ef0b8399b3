"""`score_batch`: score a CSV or Parquet file of tweets with a logged model on Apache Spark.

The model runs inside `mlflow.pyfunc.spark_udf`, so the very pyfunc that `mlflow models serve`
serves (normalisation, calibration, threshold) scores every row; local mode by default, any
cluster through the Spark master URL. Rows whose text is missing or blank are never sent to the
model (the pyfunc would reject the whole batch): they are kept in the output with `valid=false`,
the reason, and null predictions.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import click
import mlflow

from steps.lib.cli import FLAG, WHOLE_NUMBER
from steps.lib.registry import CHAMPION_URI
from steps.lib.spark_scoring import DEFAULT_MASTER, build_spark, check_paths, check_runtime, fetch_model, score_file
from steps.lib.tracking import StepError, log_step_params, run_step


def parse_threshold(batch_size: int, partitions: int, threshold: str | None) -> float | None:
    """The decision threshold (None = the model's own), after the sizes are checked."""
    if batch_size < 1 or partitions < 0:
        raise StepError("batch_size must be >= 1 and partitions >= 0 (0 = one per core)")
    if threshold in ("", None):
        return None
    try:
        value = float(threshold)
    except ValueError:
        raise StepError(f"threshold must be a number between 0 and 1 (or empty), got {threshold!r}") from None
    if not 0.0 <= value <= 1.0:
        raise StepError(f"threshold must be between 0 and 1, got {value}")
    return value


def run(
    model_uri: str,
    input: str,
    output: str,
    spark_master: str,
    batch_size: int,
    partitions: int,
    threshold: str,
    overwrite: bool,
) -> None:
    """Score `input` into `output` on Spark with the model's pyfunc; log the summary on the active run.

    Args:
        model_uri: the model to score with (any MLflow model URI).
        input: .csv or .parquet (file or folder) with a `text` column.
        output: the Parquet output path (a folder, as Spark writes it).
        spark_master: Spark master URL (empty = $SPARK_MASTER or local mode).
        batch_size: rows per model call (Arrow batch).
        partitions: scoring partitions (0 = at least one per core).
        threshold: decision threshold in [0, 1], as text (empty = the model's own).
        overwrite: replace an existing output.
    """
    parameters = dict(locals())  # the options as given, logged below
    decision = parse_threshold(batch_size, partitions, threshold)
    input_path, output_path = check_paths(input, output, overwrite)
    check_runtime()
    master = spark_master or os.environ.get("SPARK_MASTER") or DEFAULT_MASTER
    log_step_params(parameters)
    mlflow.set_tag("spark_master", master)  # the resolved URL (the param may be empty)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = fetch_model(model_uri, tmp)
        print(f"scoring {input_path} with {model_uri} on Spark {master}", flush=True)
        started = time.perf_counter()
        spark = build_spark(master)
        startup = time.perf_counter() - started
        try:
            summary = score_file(
                spark, model_path, input_path, output_path, batch_size, partitions, decision, overwrite
            )
        finally:
            spark.stop()
    versions = summary.pop("model_versions")
    mlflow.set_tag("scored_model_version", ", ".join(versions))
    mlflow.log_metrics({**summary, "spark_startup_seconds": startup})
    mlflow.log_dict({**summary, "model_versions": versions, "output": output_path}, "score_batch_summary.json")
    print(json.dumps({key: round(value, 3) for key, value in summary.items()}), flush=True)
    print(f"wrote {output_path}", flush=True)


@click.command(help=__doc__)
@click.option(
    "--model-uri", default=CHAMPION_URI, show_default=True, help="the model to score with (any MLflow model URI)"
)
@click.option("--input", "input", default="", help=".csv or .parquet (file or folder) with a 'text' column")
@click.option("--output", default="", help="Parquet output path (a folder, as Spark writes it)")
@click.option("--spark-master", default="", help=f"Spark master URL (empty = $SPARK_MASTER or {DEFAULT_MASTER})")
@click.option(
    "--batch-size", type=WHOLE_NUMBER, default=1024, show_default=True, help="rows per model call (Arrow batch)"
)
@click.option(
    "--partitions",
    type=WHOLE_NUMBER,
    default=0,
    show_default=True,
    help="scoring partitions (0 = at least one per core)",
)
@click.option("--threshold", default="", help="decision threshold in [0, 1] (empty = the model's own)")
@click.option("--overwrite", type=FLAG, default=False, show_default=True, help="replace an existing output")
def main(**options: object) -> None:
    run_step("score_batch", lambda active: run(**options))


if __name__ == "__main__":
    main()
