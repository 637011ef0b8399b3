"""Spark fixtures: one local SparkSession per test module, and a few hundred tweets with bad rows."""

from __future__ import annotations

import shutil

import mlflow
import pandas as pd
import pytest

# Rows the pyfunc would reject as a whole batch: score_batch keeps them, marked, out of the model.
BAD_TEXTS = {None: "text is null", "": "text is empty", "   ": "text is empty", "\u3000\t\n": "text is empty"}
# Valid but unusual: they must reach the model and get a prediction.
ODD_TEXTS = ["😡😡😡", "フライトが遅れた。最悪", 'delayed, again; "great" service\nnot', "so " * 2000]


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.fail("pyspark needs a Java 17+ runtime: `bash scripts/install.sh test` installs default-jre-headless")
    from steps.lib.spark_scoring import build_spark

    session = build_spark("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tweets(prepared_run_id) -> pd.DataFrame:
    """300 prepared tweets (with their ground-truth `label`), odd texts and bad rows, each with an `id`."""
    train = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=prepared_run_id, artifact_path="data/train.parquet")
    ).head(300)[["text", "label", "source"]]  # the file layout the tests write (prepared data has more)
    extra = pd.DataFrame({"text": [*ODD_TEXTS, *BAD_TEXTS], "label": 0, "source": "edge_case"})
    frame = pd.concat([train, extra], ignore_index=True)
    frame.insert(0, "id", range(len(frame)))
    return frame
