"""Spark batch scoring with a logged model: read, mark invalid rows, score with `spark_udf`, write, summarise.

The model runs inside `mlflow.pyfunc.spark_udf`, so the very pyfunc that `mlflow models serve`
serves (normalisation, calibration, threshold) scores every row. Rows whose text is missing or blank
are never sent to the model (the pyfunc would reject the whole batch): they are kept in the output
with `valid=false`, the reason, and null predictions (docs/design.md, "Batch scoring").
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from pyfunc.contract import TEXT_COLUMN
from steps.lib.tracking import StepError

DEFAULT_MASTER = "local[*]"
# The response contract of every candidate (pyfunc.contract.format_predictions), as a Spark struct.
RESULT_TYPE = "label string, proba_negative double, threshold double, model_version string"
PREDICTION_COLUMNS = ("label", "proba_negative", "threshold", "model_version")
STATUS_COLUMNS = ("valid", "invalid_reason")
# Spark puts the raw line of a CSV record it cannot parse here (PERMISSIVE mode): such rows are
# kept and marked like empty texts, instead of failing the whole job on one bad line.
CORRUPT_COLUMN = "_corrupt_record"
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# Exactly the characters Python's str.strip() removes, so "blank" here means what the pyfunc's
# validate_texts calls "text is empty" (Java's \s alone misses several of them).
_BLANK = "^[" + "".join(f"\\x{{{code:x}}}" for code in range(0x110000) if chr(code).isspace()) + "]*$"
# pyspark 4.3 warns about pandas 3 at every pandas UDF (driver and each worker); the Spark tests pin
# exact parity with the direct pyfunc on this pandas, so the warning is noise in every log line.
_PANDAS_WARNING = "PySpark does not yet fully support pandas"
_URI_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_local(path: str) -> bool:
    """Plain paths and file:// URIs are checked here; hdfs://, s3a://, abfss:// are Spark's business."""
    return not _URI_SCHEME.match(path) or path.startswith("file://")


def local_path(path: str) -> Path:
    return Path(path.removeprefix("file://")).expanduser().resolve()


def input_format(path: str) -> str:
    """CSV or Parquet from the suffix; a folder is a Parquet dataset (what Spark itself writes)."""
    if is_local(path) and local_path(path).is_dir():
        return "parquet"
    suffix = Path(path.rstrip("/")).suffix.lower()
    if suffix not in FORMATS:
        raise StepError(f"unknown input format {suffix or '(no suffix)'!r} for {path}: use a .csv or .parquet file")
    return FORMATS[suffix]


def check_paths(input_path: str, output_path: str, overwrite: bool) -> tuple[str, str]:
    """Fail before the JVM starts: missing input, unknown format, output in the way. Returns Spark paths.

    Only local paths are checked (a local input's header or schema too); hdfs://, s3a:// and the like
    are left to Spark.

    Args:
        input_path: the CSV or Parquet input.
        output_path: where the scored Parquet goes.
        overwrite: whether an existing local output may be replaced.

    Returns:
        The input and output paths, local ones made absolute.

    Raises:
        StepError: a path is missing; a local input does not exist, cannot be read or has no `text`
            column of strings; the format is unknown; or a local output exists without `overwrite`.
    """
    if not input_path or not output_path:
        raise StepError("score_batch needs -P input=<.csv or .parquet with a 'text' column> and -P output=<path>")
    if is_local(input_path):
        if not local_path(input_path).exists():
            raise StepError(f"input not found: {input_path}")
        input_path = str(local_path(input_path))
        check_text_column(input_path)
    else:
        input_format(input_path)
    if is_local(output_path):
        if local_path(output_path).exists() and not overwrite:
            raise StepError(f"output {output_path} already exists: remove it or pass -P overwrite=true")
        output_path = str(local_path(output_path))
    return input_path, output_path


def _no_text(path: str, columns: list[str]) -> StepError:
    return StepError(f"{path} has no '{TEXT_COLUMN}' column (columns: {', '.join(columns) or 'none'})")


def _not_strings(path: str, kind: str) -> StepError:
    return StepError(f"column '{TEXT_COLUMN}' of {path} holds {kind} values, not strings")


def check_text_column(path: str) -> None:
    """Read only the CSV header or the Parquet schema of a local input: a wrong file fails at once.

    Args:
        path: a local CSV file, Parquet file or Parquet folder.

    Raises:
        StepError: an unknown format, an unreadable Parquet input, no `text` column, or (Parquet) a
            `text` column that does not hold strings.
    """
    import pyarrow as pa
    import pyarrow.dataset

    if input_format(path) == "csv":
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = next(csv.reader(handle), [])
        if TEXT_COLUMN not in header:
            raise _no_text(path, header)
        return
    try:
        schema = pyarrow.dataset.dataset(path, format="parquet").schema
    except (pa.ArrowException, OSError) as error:
        raise StepError(f"cannot read {path} as parquet: {str(error).splitlines()[0]}") from None
    if TEXT_COLUMN not in schema.names:
        raise _no_text(path, schema.names)
    kind = schema.field(TEXT_COLUMN).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise _not_strings(path, str(kind))


def fetch_model(model_uri: str, destination: str) -> str:
    """Download the model once on the driver and check it serves the tweet contract.

    Args:
        model_uri: any MLflow model URI (`models:/`, `runs:/`, a path).
        destination: the local folder to download into.

    Returns:
        The model's local path, for `spark_udf`.

    Raises:
        StepError: the model cannot be loaded, or is not a pyfunc with `proba_negative` in its output.
    """
    try:
        path = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=destination)
        model = Model.load(path)
    except (MlflowException, OSError) as error:
        message = getattr(error, "message", str(error)).splitlines()[0]
        raise StepError(f"cannot load model {model_uri} from {mlflow.get_tracking_uri()}: {message}") from None
    outputs = model.get_output_schema()
    if "python_function" not in model.flavors or outputs is None or "proba_negative" not in outputs.input_names():
        raise StepError(f"{model_uri} is not a tweet classifier pyfunc (no proba_negative in its output signature)")
    return path


def check_runtime() -> None:
    """pyspark is an optional extra and needs a Java 17+ runtime: say so instead of a JVM traceback.

    Raises:
        StepError: pyspark is not installed, or neither `java` on PATH nor JAVA_HOME is found.
    """
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        raise StepError("score_batch needs pyspark: pip install -c requirements.lock '.[spark]'")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise StepError("pyspark needs a Java 17+ runtime: apt-get install default-jre-headless (or set JAVA_HOME)")


def build_spark(master: str):
    """A SparkSession on `master`; in local mode it stays on 127.0.0.1 with no web UI.

    Python workers use this interpreter (same environment as the driver, as `env_manager="local"`
    assumes); our own progress lines replace Spark's console bar, which garbles piped logs.

    Args:
        master: the Spark master URL (`local[*]`, `spark://...`).

    Returns:
        The session.
    """
    local = master.startswith("local")
    warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
    if local:
        worker_filter = f"ignore:{_PANDAS_WARNING}:FutureWarning"
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), worker_filter)))
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName("tweet-sentiment-score-batch")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    if local:
        builder = builder.config("spark.ui.enabled", "false").config("spark.driver.bindAddress", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1")
        # The read-back summary is a tiny aggregation: 200 shuffle partitions would be 200 tasks.
        builder = builder.config("spark.sql.shuffle.partitions", str(os.cpu_count() or 2))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def progress(spark, label: str, interval: float = 1.0):
    """Print a line whenever a running stage finishes another partition (works on any master)."""
    tracker = spark.sparkContext.statusTracker()
    stop = threading.Event()
    seen: dict[int, int] = {}

    def report() -> None:
        while not stop.wait(interval):
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info is None or seen.get(stage_id) == info.numCompletedTasks:
                    continue
                seen[stage_id] = info.numCompletedTasks
                print(
                    f"{label}: stage {stage_id}: {info.numCompletedTasks}/{info.numTasks} partitions done, "
                    f"{info.numActiveTasks} running",
                    flush=True,
                )

    thread = threading.Thread(target=report, name="spark-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def read_csv(spark, path: str):
    """Every column as a string (ids keep their zeros), quoted fields with commas, quotes and newlines.

    The schema comes from the header plus CORRUPT_COLUMN, so a malformed record (more fields than
    the header) is kept with its raw line there rather than truncated silently or failing the job.
    """
    from pyspark.sql.types import StringType, StructField, StructType

    options = {"header": True, "multiLine": True, "escape": '"'}
    names = spark.read.options(**options).csv(path).columns
    schema = StructType([StructField(name, StringType()) for name in [*names, CORRUPT_COLUMN]])
    return spark.read.options(**options, mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT_COLUMN).csv(
        path, schema=schema
    )


def read_input(spark, path: str):
    """The input as a DataFrame with a string `text` column (CSV: plus CORRUPT_COLUMN).

    Args:
        spark: the session.
        path: a CSV file, or a Parquet file or folder, by suffix (see `input_format`).

    Returns:
        The DataFrame, not yet validated row by row.

    Raises:
        StepError: an unknown format, an unreadable input, or no string `text` column.
    """
    from pyspark.errors import AnalysisException
    from pyspark.sql.types import StringType

    fmt = input_format(path)
    try:
        frame = read_csv(spark, path) if fmt == "csv" else spark.read.parquet(path)
    except AnalysisException as error:
        raise StepError(f"cannot read {path} as {fmt}: {str(error).splitlines()[0]}") from None
    if TEXT_COLUMN not in frame.columns:
        raise _no_text(path, frame.columns)
    text_type = frame.schema[TEXT_COLUMN].dataType
    if not isinstance(text_type, StringType):
        raise _not_strings(path, text_type.simpleString())
    return frame


def keep_input_names_apart(frame):
    """Input columns named like an output column (a prepared split's `label`) become `input_<name>`."""
    for name in (*PREDICTION_COLUMNS, *STATUS_COLUMNS):
        if name in frame.columns:
            print(f"input column {name!r} is kept as 'input_{name}'", flush=True)
            frame = frame.withColumnRenamed(name, f"input_{name}")
    return frame


def mark_validity(frame):
    """Add `valid` and `invalid_reason` (the pyfunc's own wording for null or blank text)."""
    from pyspark.sql import functions as F

    text = F.col(TEXT_COLUMN)
    reason = F.when(text.isNull(), F.lit("text is null")).when(text.rlike(_BLANK), F.lit("text is empty"))
    if CORRUPT_COLUMN in frame.columns:
        reason = F.when(F.col(CORRUPT_COLUMN).isNotNull(), F.lit("malformed CSV record")).otherwise(reason)
    frame = frame.withColumn("invalid_reason", reason).withColumn("valid", reason.isNull())
    return frame.drop(CORRUPT_COLUMN)


def score_frame(spark, frame, model_path: str, threshold: float | None, partitions: int):
    """Valid rows through the model's UDF, invalid rows beside them with null predictions."""
    from pyspark.sql import functions as F

    params = {"threshold": threshold} if threshold is not None else None
    # One OpenMP/BLAS thread per task core: N concurrent tasks on N cores must not start N x N threads.
    threads = {"OMP_NUM_THREADS": spark.conf.get("spark.task.cpus", "1")}
    predict = mlflow.pyfunc.spark_udf(
        spark, model_path, result_type=RESULT_TYPE, env_manager="local", params=params, extra_env=threads
    )
    inputs = [name for name in frame.columns if name not in STATUS_COLUMNS]
    valid = frame.filter("valid")
    target = partitions or spark.sparkContext.defaultParallelism
    current = valid.rdd.getNumPartitions()
    if current < target:
        valid = valid.repartition(target)  # a single CSV file is one partition: spread it over the cores
    elif current > target and spark.sparkContext.master.startswith("local"):
        valid = valid.coalesce(target)  # local mode: spark_udf loads the model afresh in every task
    scored = valid.withColumn("_prediction", predict(F.struct(TEXT_COLUMN))).select(
        *inputs,
        *(F.col(f"_prediction.{name}").alias(name) for name in PREDICTION_COLUMNS),
        F.lit(True).alias("valid"),
        F.lit(None).cast("string").alias("invalid_reason"),
    )
    types = dict(zip(PREDICTION_COLUMNS, ("string", "double", "double", "string"), strict=True))
    invalid = frame.filter(~F.col("valid")).select(
        *inputs, *(F.lit(None).cast(kind).alias(name) for name, kind in types.items()), *STATUS_COLUMNS
    )
    return scored.unionByName(invalid)


def summarise(spark, output: str, seconds: float) -> dict[str, Any]:
    """Counts read back from the written Parquet (column pruning keeps this cheap)."""
    written = spark.read.parquet(output)
    counts = [(row["valid"], row["label"], row["count"]) for row in written.groupBy("valid", "label").count().collect()]
    versions = [row[0] for row in written.filter("valid").select("model_version").distinct().limit(5).collect()]
    return summary_from_counts(counts, versions, seconds)


def summary_from_counts(counts: list[tuple[bool, str | None, int]], versions: list[str], seconds: float) -> dict:
    """The run's summary from (valid, label, rows) groups.

    `tweets_per_second` counts the tweets the model scored: invalid rows are only marked, never
    scored, and counting them would overstate the model's throughput on dirty input.

    Args:
        counts: (valid, label, rows) per group of the written output.
        versions: the model versions found among the valid rows.
        seconds: the run's wall time.

    Returns:
        `rows`, `valid_rows`, `invalid_rows`, `negative_rows`, `negative_share` (of the valid rows),
        `seconds`, `tweets_per_second` and `model_versions`.
    """
    rows = sum(count for _, _, count in counts)
    valid = sum(count for is_valid, _, count in counts if is_valid)
    negative = sum(count for _, label, count in counts if label == "negative")
    return {
        "rows": rows,
        "valid_rows": valid,
        "invalid_rows": rows - valid,
        "negative_rows": negative,
        "negative_share": negative / valid if valid else 0.0,
        "seconds": seconds,
        "tweets_per_second": valid / seconds if seconds > 0 else 0.0,
        "model_versions": versions,
    }


def score_file(
    spark,
    model_path: str,
    input_path: str,
    output_path: str,
    batch_size: int = 1024,
    partitions: int = 0,
    threshold: float | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Read, validate, score and write; return the summary. `model_path` is a local model folder or URI.

    Args:
        spark: the session.
        model_path: a local model folder (as `fetch_model` returns it) or a model URI.
        input_path: the CSV or Parquet input, as Spark reads it.
        output_path: where the Parquet output is written.
        batch_size: rows per Arrow batch sent to the model.
        partitions: partitions to score in (0 = Spark's default parallelism).
        threshold: overrides the model's stored threshold (None = keep it).
        overwrite: replace an existing output.

    Returns:
        As `summary_from_counts` returns it, read back from the written output.

    Raises:
        StepError: the input cannot be read or has no string `text` column.
    """
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
    started = time.perf_counter()
    frame = mark_validity(keep_input_names_apart(read_input(spark, input_path)))
    result = score_frame(spark, frame, model_path, threshold, partitions)
    with progress(spark, "scoring"):
        result.write.mode("overwrite" if overwrite else "errorifexists").parquet(output_path)
    return summarise(spark, output_path, time.perf_counter() - started)
