"""`label_queue` on two real models: the logged queue is what each pyfunc answers, ranked; bad input is one line."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from dashboard.feedback import Feedback, FeedbackStore
from steps import label_queue
from steps.lib.label_queue import QUEUE_COLUMNS, closeness
from tests.code.registry.test_register_gate import STRONG, WEAK, in_process, train_here
from tests.code.registry.test_shadow import TWEETS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_models(registry_tracking, prepared_run_id):
    strong = train_here(registry_tracking, prepared_run_id, STRONG)
    weak = train_here(registry_tracking, prepared_run_id, WEAK)
    return f"runs:/{strong}/model", f"runs:/{weak}/model"


def served(model_uri: str, texts: list[str]) -> tuple[np.ndarray, float]:
    output = mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"text": texts}))
    return output["proba_negative"].to_numpy(dtype=float), float(output["threshold"].iloc[0])


def served_version(model_uri: str) -> str:
    """The `model_version` the pyfunc answers with (`family:run_id`)."""
    return str(mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"text": ["a"]}))["model_version"].iloc[0])


def logged_queue(run) -> pd.DataFrame:
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=label_queue.QUEUE_ARTIFACT)
    return pd.read_csv(local, keep_default_na=False)


def test_the_queue_ranks_recent_traffic_by_both_models_and_skips_what_is_labelled(
    registry_tracking, two_models, tmp_path
):
    champion, challenger = two_models
    traffic = tmp_path / "traffic.csv"
    pd.DataFrame({"text": [*TWEETS, ""]}).to_csv(traffic, index=False)
    store = FeedbackStore(tmp_path / "feedback.db")
    # A reviewer's decision: an agreed verdict, so the tweet counts as labelled (one tester's alone would not).
    store.add(Feedback(TWEETS[0], "negative", 0.9, 0.5, "negative", "baseline:x", user_name="rita", role="reviewer"))
    output = tmp_path / "queue.csv"
    params = {"input": traffic, "labelled": tmp_path / "feedback.db", "champion_uri": champion}
    outcome = in_process(
        registry_tracking, label_queue.main, params | {"challenger_uri": challenger, "size": 5, "output": output}
    )
    queue = logged_queue(outcome.run)
    assert list(queue.columns) == list(QUEUE_COLUMNS) and len(queue) == 5
    assert TWEETS[0] not in queue["text"].tolist()  # the labelled tweet is never worth a place among 5 of 8
    proba, threshold = served(champion, queue["text"].tolist())
    assert queue["proba_negative"].to_numpy() == pytest.approx(proba)
    assert queue["closeness"].to_numpy() == pytest.approx(closeness(proba, threshold))
    # What a verdict from the dashboard's "Label next" tab records: the champion's threshold and version.
    assert queue["threshold"].to_numpy() == pytest.approx(np.full(len(queue), threshold))
    assert (queue["model_version"] == served_version(champion)).all()
    assert queue["challenger_proba_negative"].to_numpy() == pytest.approx(served(challenger, queue["text"].tolist())[0])
    pd.testing.assert_frame_equal(pd.read_csv(output, keep_default_na=False), queue)
    metrics = outcome.run.data.metrics
    assert metrics["rows"] == len(TWEETS) and metrics["rows_skipped"] == 1 and metrics["labelled_known"] == 1
    assert metrics["queued"] == 5 and "queue_mean_disagreement" in metrics
    assert outcome.run.data.tags["label_queue.challenger"] == challenger
    assert "queued 5 of 8 recent tweets" in outcome.stdout and "-e adapt" in outcome.stdout


def test_without_a_challenger_the_queue_ranks_by_the_champion_alone(
    registry_tracking, two_models, model_name, tmp_path
):
    traffic = tmp_path / "traffic.csv"
    pd.DataFrame({"text": TWEETS}).to_csv(traffic, index=False)
    MlflowClient().create_registered_model(model_name)  # registered, with no @challenger (just promoted)
    unset = f"models:/{model_name}@challenger"
    for challenger in (unset, "none"):
        params = {"input": traffic, "champion_uri": two_models[0], "challenger_uri": challenger, "size": 3}
        outcome = in_process(registry_tracking, label_queue.main, params)
        queue = logged_queue(outcome.run)
        assert len(queue) == 3 and (queue["disagreement"] == 0).all()
        assert queue["challenger_proba_negative"].eq("").all()
        assert outcome.run.data.tags["label_queue.challenger"] == "none"
        assert (f"no {unset} registered" in outcome.stdout) == (challenger == unset)


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        ("empty_store", "holds no tweets yet: there is nothing to queue"),
        ("missing", "(not found)"),
        ("no_text", "has no tweet to score"),
        ("bad_challenger", "challenger_uri models:/no-such-model@challenger cannot be loaded"),
        ("bad_champion", "champion_uri models:/no-such-model@champion cannot be loaded"),
        ("bad_output", "its folder does not exist"),
    ],
)
def test_bad_input_is_one_line(registry_tracking, two_models, tmp_path, capsys, monkeypatch, prepare, message):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", registry_tracking.experiment_id)
    argv = ["--champion-uri", two_models[0]]
    if prepare == "empty_store":
        FeedbackStore(tmp_path / "feedback.db")
        argv += ["--input", str(tmp_path / "feedback.db")]
    elif prepare == "missing":
        argv += ["--input", str(tmp_path / "nowhere.csv")]
    elif prepare == "no_text":
        (tmp_path / "blank.csv").write_text("text\n\n  \n")
        argv += ["--input", str(tmp_path / "blank.csv")]
    else:
        (tmp_path / "ok.csv").write_text("text\nhello\n")
        argv += ["--input", str(tmp_path / "ok.csv"), "--challenger-uri", "none"]
        if prepare == "bad_challenger":
            argv += ["--challenger-uri", "models:/no-such-model@challenger"]
        elif prepare == "bad_champion":
            argv += ["--champion-uri", "models:/no-such-model@champion"]
        else:
            argv += ["--output", str(tmp_path / "no" / "such" / "queue.csv")]
    with pytest.raises(SystemExit) as stopped:
        label_queue.main.main(argv)
    assert stopped.value.code == 2
    printed = capsys.readouterr().err.strip().splitlines()  # progress bars of the champion's download may precede
    errors = [line for line in printed if "error" in line.lower()]
    assert errors == [printed[-1]] and printed[-1].startswith("label_queue: error: ") and message in printed[-1]
