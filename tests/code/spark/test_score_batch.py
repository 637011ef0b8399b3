"""score_batch on Spark: the pyfunc's own probabilities, bad rows kept and marked, clear input errors."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from steps.lib.spark_scoring import (
    PREDICTION_COLUMNS,
    check_paths,
    check_runtime,
    fetch_model,
    read_input,
    score_file,
)
from steps.lib.tracking import StepError
from tests.code.spark.conftest import BAD_TEXTS, ODD_TEXTS
from tests.conftest import mlflow_run, run_id_of

pytestmark = pytest.mark.integration

OUTPUT_COLUMNS = [
    "id",
    "text",
    "input_label",  # the input's ground truth, renamed so the prediction's `label` cannot shadow it
    "source",
    *PREDICTION_COLUMNS,
    "valid",
    "invalid_reason",
]


@pytest.fixture(scope="module")
def model_uri(baseline_run_id) -> str:
    return f"runs:/{baseline_run_id}/model"


@pytest.fixture(scope="module")
def scored(spark, tweets, model_uri, tmp_path_factory) -> tuple[dict, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("score_parquet")
    tweets.to_parquet(folder / "tweets.parquet", index=False)
    summary = score_file(spark, model_uri, str(folder / "tweets.parquet"), str(folder / "scored"), batch_size=64)
    output = pd.read_parquet(folder / "scored").sort_values("id").reset_index(drop=True)
    return summary, output


def test_spark_gives_the_probabilities_of_the_pyfunc_called_directly(scored, tweets, model_uri):
    _, output = scored
    valid = output[output["valid"]]
    assert len(valid) == len(tweets) - len(BAD_TEXTS)
    direct = mlflow.pyfunc.load_model(model_uri).predict(tweets.loc[valid["id"], ["text"]].reset_index(drop=True))
    np.testing.assert_allclose(valid["proba_negative"], direct["proba_negative"], rtol=0, atol=1e-9)
    assert valid["label"].tolist() == direct["label"].tolist()
    assert set(valid["threshold"]) == set(direct["threshold"])
    assert set(valid["model_version"]) == set(direct["model_version"])
    odd = valid[valid["text"].isin(ODD_TEXTS)]
    assert len(odd) == len(ODD_TEXTS) and odd["proba_negative"].between(0, 1).all()


def test_bad_rows_are_kept_marked_and_never_scored(scored, tweets):
    summary, output = scored
    invalid = output[~output["valid"]]
    assert invalid["id"].tolist() == tweets.index[tweets["source"].eq("edge_case")].tolist()[len(ODD_TEXTS) :]
    assert invalid["invalid_reason"].tolist() == list(BAD_TEXTS.values())
    assert invalid[list(PREDICTION_COLUMNS)].isna().all().all()
    assert output.loc[output["valid"], "invalid_reason"].isna().all()
    assert {key: summary[key] for key in ("rows", "valid_rows", "invalid_rows")} == {
        "rows": len(tweets),
        "valid_rows": len(tweets) - len(BAD_TEXTS),
        "invalid_rows": len(BAD_TEXTS),
    }
    assert summary["negative_rows"] == int(output["label"].eq("negative").sum())


def test_output_keeps_every_input_row_and_column(scored, tweets):
    _, output = scored
    assert output.columns.tolist() == OUTPUT_COLUMNS
    assert output["id"].tolist() == tweets["id"].tolist()
    assert output["input_label"].tolist() == tweets["label"].tolist()
    valid = output["valid"]
    assert output.loc[valid, "text"].tolist() == tweets.loc[valid, "text"].tolist()


def test_csv_input_keeps_quotes_commas_newlines_and_takes_a_threshold(spark, tweets, model_uri, tmp_path):
    tweets.to_csv(tmp_path / "tweets.csv", index=False)
    with open(tmp_path / "tweets.csv", "a") as csv_file:
        csv_file.write('9999,"one field too many",0,edge_case,surplus\n')  # malformed: kept and marked
    summary = score_file(spark, model_uri, str(tmp_path / "tweets.csv"), str(tmp_path / "scored"), threshold=0.0)
    output = pd.read_parquet(tmp_path / "scored")
    output = output.assign(id=output["id"].astype(int)).set_index("id").sort_index()
    valid = output[output["valid"]]
    assert valid["text"].tolist() == tweets.set_index("id").loc[valid.index, "text"].tolist()
    assert len(valid) == len(tweets) - len(BAD_TEXTS)
    assert output.loc[9999, "invalid_reason"] == "malformed CSV record" and pd.isna(output.loc[9999, "label"])
    assert summary["invalid_rows"] == len(BAD_TEXTS) + 1  # CSV writes None and "" alike: both read back as null
    assert set(valid["label"]) == {"negative"} and set(valid["threshold"]) == {0.0}


def _write(path, raw: str | None = None, **columns) -> str:
    """A raw file when `raw` is given, else a Parquet file of `columns`."""
    if raw is not None:
        path.write_text(raw)
    else:
        pd.DataFrame(columns).to_parquet(path, index=False)
    return str(path)


BAD_INPUTS = {
    "missing file": (lambda tmp: str(tmp / "nowhere.csv"), "input not found"),
    "unknown format": (lambda tmp: _write(tmp / "t.json", "{}"), "unknown input format '.json'"),
    "parquet without text": (
        lambda tmp: _write(tmp / "t.parquet", tweet=["ok"]),
        "has no 'text' column (columns: tweet)",
    ),
    "csv without text": (
        lambda tmp: _write(tmp / "t.csv", "id,tweet\n1,ok\n"),
        "has no 'text' column (columns: id, tweet)",
    ),
    "numbers as text": (lambda tmp: _write(tmp / "t.parquet", text=[1, 2]), "holds int64 values, not strings"),
    "not parquet": (lambda tmp: _write(tmp / "t.parquet", "text\nhello\n"), "cannot read"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_in_one_line_before_spark_starts(tmp_path, case):
    make, message = BAD_INPUTS[case]
    with pytest.raises(StepError) as error:
        check_paths(make(tmp_path), str(tmp_path / "scored"), overwrite=False)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    source = _write(tmp_path / "t.parquet", text=["ok"])
    (tmp_path / "scored").mkdir()
    with pytest.raises(StepError, match="already exists: remove it or pass -P overwrite=true"):
        check_paths(source, str(tmp_path / "scored"), overwrite=False)
    assert check_paths(source, str(tmp_path / "scored"), overwrite=True)[1] == str(tmp_path / "scored")


def test_spark_side_checks_cover_inputs_it_alone_can_read(spark, tmp_path):
    """hdfs://, s3a:// inputs are only seen by Spark: the same errors come from its reader."""
    with pytest.raises(StepError, match="has no 'text' column"):
        read_input(spark, _write(tmp_path / "t.parquet", tweet=["ok"]))
    with pytest.raises(StepError, match="holds bigint values, not strings"):
        read_input(spark, _write(tmp_path / "n.parquet", text=[1, 2]))


def test_a_missing_java_runtime_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(StepError, match="Java 17"):
        check_runtime()


def test_unregistered_champion_is_a_step_error(tracking, tmp_path):
    # A name no other test registers: the session store is shared (the serving tests crown a champion).
    with pytest.raises(StepError, match="cannot load model models:/never-registered-model@champion"):
        fetch_model("models:/never-registered-model@champion", str(tmp_path))


def test_mlflow_run_score_batch_logs_its_summary(tracking, tweets, model_uri, baseline_run_id, tmp_path):
    small = tweets.tail(40)  # odd and bad rows included; one core keeps the extra JVM light
    small.to_parquet(tmp_path / "tweets.parquet", index=False)
    result = mlflow_run(
        tracking,
        "score_batch",
        model_uri=model_uri,
        input=tmp_path / "tweets.parquet",
        output=tmp_path / "scored",
        spark_master="local[1]",
        batch_size=16,
    )
    run = MlflowClient().get_run(run_id_of(result))
    assert run.info.status == "FINISHED" and run.data.tags["step"] == "score_batch"
    assert run.data.tags["spark_master"] == "local[1]"
    metrics = run.data.metrics
    assert metrics["rows"] == len(small) and metrics["invalid_rows"] == len(BAD_TEXTS)
    assert metrics["tweets_per_second"] > 0 and metrics["seconds"] > 0
    assert run.data.tags["scored_model_version"] == f"baseline:{baseline_run_id}"
    assert "partitions done" in result.stdout
    assert len(pd.read_parquet(tmp_path / "scored")) == len(small)


def test_mlflow_run_with_a_missing_input_fails_in_one_line(tracking, tmp_path):
    result = mlflow_run(tracking, "score_batch", check=False, input=tmp_path / "none.csv", output=tmp_path / "o")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "score_batch: error:" in line]
    assert len(lines) == 1 and "input not found" in lines[0]
    assert MlflowClient().get_run(run_id_of(result)).info.status == "FAILED"
