"""`monitor` on a real candidate: traffic like validation is stable, shifted traffic raises the alert."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from steps import monitor
from steps.lib.drift import PROFILE_ARTIFACT, psi
from tests.conftest import mlflow_run, run_id_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def monitored(module_tracking):
    """A baseline on 4,000 tweets: its validation profile and test split are large enough for PSI to be read."""
    data = run_id_of(mlflow_run(module_tracking, "prepare_data", max_rows=4000, seed=11))
    model = run_id_of(mlflow_run(module_tracking, "train_baseline", data_run_id=data, min_df=1))
    return SimpleNamespace(data=data, model_uri=f"runs:/{model}/model", test=split_texts(data, "test"))


def split_texts(prepared_run_id: str, name: str) -> list[str]:
    local = mlflow.artifacts.download_artifacts(run_id=prepared_run_id, artifact_path=f"data/{name}.parquet")
    return pd.read_parquet(local)["text"].tolist()


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift():
    assert psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == 0
    assert 0 < psi([0.5, 0.5], [0.6, 0.4]) < psi([0.5, 0.5], [0.9, 0.1])


def test_every_candidate_logs_its_reference_profile(baseline_run_id):
    profile = mlflow.artifacts.load_dict(f"runs:/{baseline_run_id}/{PROFILE_ARTIFACT}")
    assert set(profile["features"]) == {"proba", "length", "oov_share", "has_url", "has_mention", "has_emoji"}
    for feature in profile["features"].values():
        assert sum(feature["shares"]) == pytest.approx(1.0) and len(feature["edges"]) == len(feature["shares"]) + 1
    assert profile["vocabulary"] and profile["psi_alert"] == 0.2


def run_monitor(module_tracking, model_uri: str, texts: list[str], folder) -> mlflow.entities.Run:
    traffic = folder / "traffic.csv"
    pd.DataFrame({"text": texts}).to_csv(traffic, index=False)
    result = mlflow_run(module_tracking, "monitor", model_uri=model_uri, input=traffic)
    return MlflowClient().get_run(run_id_of(result)), result.stdout


def test_traffic_like_validation_is_stable(module_tracking, monitored, tmp_path):
    run, printed = run_monitor(module_tracking, monitored.model_uri, monitored.test, tmp_path)
    psis = {key: value for key, value in run.data.metrics.items() if key.startswith("psi_")}
    assert set(psis) == {"psi_proba", "psi_length", "psi_oov_share", "psi_has_url", "psi_has_mention", "psi_has_emoji"}
    assert max(psis.values()) < 0.2, psis
    assert run.data.tags["drift.alert"] == "false" and printed.strip().splitlines()[-1].startswith("no drift")
    charts = {item.path for item in MlflowClient().list_artifacts(run.info.run_id, monitor.HISTOGRAM_FOLDER)}
    assert charts == {f"drift/histogram_{name.removeprefix('psi_')}.png" for name in psis}


def test_long_new_vocabulary_complaints_raise_the_alert(module_tracking, monitored, tmp_path):
    shifted = [
        f"{text} zorblax quuxification flimbering snarfle {text} worst awful terrible delayed cancelled lost"
        for text in monitored.test
    ]
    run, printed = run_monitor(module_tracking, monitored.model_uri, shifted, tmp_path)
    metrics = run.data.metrics
    assert metrics["psi_length"] > 0.2 and metrics["psi_oov_share"] > 0.2 and metrics["psi_proba"] > 0.2
    assert run.data.tags["drift.alert"] == "true"
    assert {"length", "oov_share", "proba"} <= set(run.data.tags["drift.features"].split(","))
    assert "DRIFT in" in printed


def test_too_few_tweets_never_alert(module_tracking, monitored, tmp_path):
    shifted = [f"{text} zorblax quuxification {text}" for text in monitored.test[:50]]
    run, printed = run_monitor(module_tracking, monitored.model_uri, shifted, tmp_path)
    assert run.data.metrics["psi_length"] > 0.2  # measured and logged
    assert run.data.tags["drift.alert"] == "false" and "too few tweets to tell (50 < 200)" in printed


def test_a_model_without_a_profile_or_a_file_without_text_is_one_line(module_tracking, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", module_tracking.experiment_id)

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return pd.DataFrame({"proba_negative": [0.5] * len(model_input), "threshold": 0.5})

    with mlflow.start_run(experiment_id=module_tracking.experiment_id):
        old = mlflow.pyfunc.log_model(name="model", python_model=Constant()).model_uri
    traffic = tmp_path / "traffic.csv"
    traffic.write_text("text\nhello\n")
    with pytest.raises(SystemExit) as stopped:
        monitor.main.main(["--model-uri", old, "--input", str(traffic)])
    assert stopped.value.code == 2
    assert "has no reference profile (monitoring/reference_profile.json)" in capsys.readouterr().err
    no_text = tmp_path / "scored.csv"
    no_text.write_text("tweet\nhello\n")
    with pytest.raises(SystemExit):
        monitor.main.main(["--model-uri", old, "--input", str(no_text)])
    assert "has no `text` column" in capsys.readouterr().err
