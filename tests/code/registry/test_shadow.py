"""`shadow` on two real models: agreement and disagreements as each pyfunc answers, labels optional, bad input."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from dashboard.feedback import Feedback, FeedbackStore
from steps import shadow
from tests.code.registry.test_register_gate import STRONG, WEAK, in_process, train_here

pytestmark = pytest.mark.integration

TWEETS = [
    "@united lost my bag again, nobody helps",
    "@JetBlue thanks for the lovely flight",
    "@AmericanAir is the lounge open at 6am?",
    "@SouthwestAir 3 hours late and no updates. unacceptable",
    "@delta could you check on my refund from March?",
    "@VirginAmerica great crew, smooth landing",
    "@united worst customer service ever",
    "@usairways my flight was cancelled and the rebooking is a mess",
]


@pytest.fixture(scope="module")
def two_models(registry_tracking, prepared_run_id):
    strong = train_here(registry_tracking, prepared_run_id, STRONG)
    weak = train_here(registry_tracking, prepared_run_id, WEAK)
    return f"runs:/{strong}/model", f"runs:/{weak}/model"


def decisions(model_uri: str, texts: list[str]) -> np.ndarray:
    """What the pyfunc itself decides: the reference the step must match."""
    output = mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"text": texts}))
    return (output["label"] == "negative").to_numpy()


def run_shadow(tracking, input_path, champion_uri, challenger_uri):
    params = {"input": str(input_path), "champion_uri": champion_uri, "challenger_uri": challenger_uri}
    return in_process(tracking, shadow.main, params)


def test_agreement_and_disagreements_are_what_each_model_answers(registry_tracking, two_models, tmp_path):
    champion, challenger = two_models
    traffic = tmp_path / "traffic.csv"
    pd.DataFrame({"id": range(len(TWEETS) + 1), "text": [*TWEETS, ""]}).to_csv(traffic, index=False)
    outcome = run_shadow(registry_tracking, traffic, champion, challenger)
    mine, theirs = decisions(champion, TWEETS), decisions(challenger, TWEETS)
    metrics = outcome.run.data.metrics
    assert metrics["rows"] == len(TWEETS) and metrics["rows_skipped"] == 1
    assert (mine != theirs).any()  # the weak model answers some of these differently: a real comparison
    assert metrics["agreement_rate"] == pytest.approx(np.mean(mine == theirs))
    assert metrics["champion_flagged_share"] == pytest.approx(mine.mean())
    assert metrics["challenger_flagged_share"] == pytest.approx(theirs.mean())
    assert "champion_accuracy" not in metrics  # no labels, no accuracy
    local = mlflow.artifacts.download_artifacts(
        run_id=outcome.run.info.run_id, artifact_path="shadow/disagreements.json"
    )
    table = pd.read_json(local, orient="split")
    assert table["text"].tolist() == [text for text, a, b in zip(TWEETS, mine, theirs, strict=True) if a != b]
    assert outcome.run.data.tags["champion_run_id"] == champion.split("/")[1]
    charts = {item.path for item in MlflowClient().list_artifacts(outcome.run.info.run_id, "shadow")}
    assert {"shadow/agreement.png", "shadow/score_scatter.png"} <= charts


def test_labelled_traffic_from_the_feedback_store_gives_both_accuracies(registry_tracking, two_models, tmp_path):
    champion, challenger = two_models
    store = FeedbackStore(tmp_path / "feedback.db")
    truth = [1, 0, 0, 1, 1, 0, 1, 1]
    for text, label in zip(TWEETS, truth, strict=True):
        truth_label = "negative" if label else "not_negative"
        store.add(
            Feedback(text, "not_negative", 0.2, 0.5, truth_label, "baseline:x", user_name="rita", role="reviewer")
        )
    outcome = run_shadow(registry_tracking, tmp_path / "feedback.db", champion, challenger)
    metrics, labels = outcome.run.data.metrics, np.array(truth) == 1
    for role, uri in (("champion", champion), ("challenger", challenger)):
        flagged = decisions(uri, TWEETS)
        assert metrics[f"{role}_accuracy"] == pytest.approx(np.mean(flagged == labels))
        assert metrics[f"{role}_miss_rate"] == pytest.approx(np.mean(~flagged[labels]))
        assert metrics[f"{role}_false_alarm_rate"] == pytest.approx(np.mean(flagged[~labels]))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tweet\nhello\n", "has no `text` column (columns: tweet)"),
        ("text\n\n   \n", "has no tweet to score"),
        ("text,label\nhello,maybe\n", "label of row 0 is 'maybe'"),
    ],
)
def test_bad_traffic_is_one_line(registry_tracking, two_models, tmp_path, capsys, monkeypatch, content, message):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", registry_tracking.experiment_id)
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(SystemExit) as stopped:
        shadow.main.main(["--input", str(path), "--champion-uri", two_models[0], "--challenger-uri", two_models[1]])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("shadow: error: ") and message in error[0]


def test_a_file_that_is_not_a_feedback_store_and_a_missing_model_are_named(
    registry_tracking, two_models, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", registry_tracking.experiment_id)
    broken = tmp_path / "feedback.db"
    with closing(sqlite3.connect(broken)) as connection:
        connection.execute("CREATE TABLE other (x)")
    with pytest.raises(SystemExit):
        shadow.main.main(["--input", str(broken), "--champion-uri", two_models[0], "--challenger-uri", two_models[1]])
    assert "is not a feedback store with a `feedback` table" in capsys.readouterr().err
    traffic = tmp_path / "ok.csv"
    traffic.write_text("text\nhello\n")
    missing = "models:/no-such-model@challenger"
    with pytest.raises(SystemExit):
        shadow.main.main(["--input", str(traffic), "--champion-uri", two_models[0], "--challenger-uri", missing])
    assert f"challenger_uri {missing} cannot be loaded" in capsys.readouterr().err
    assert MlflowClient().search_registered_models("name = 'no-such-model'") == []
