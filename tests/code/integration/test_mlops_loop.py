"""The loop end to end: train -> serve -> a tester flags -> retrain with the feedback -> register -> rollback.

Real parts throughout: `mlflow run` steps on a SQLite store, `mlflow models serve` on 127.0.0.1, the
dashboard's HTTP client and feedback store, the registry.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from dashboard.client import ModelClient
from dashboard.feedback import Feedback, FeedbackStore, record_feedback
from steps.lib.registry import CHALLENGER_ALIAS, CHAMPION_ALIAS, PREVIOUS_CHAMPION_TAG
from tests.conftest import mlflow_run, run_id_of

pytestmark = pytest.mark.integration

FLAGGED = [
    "@united could you check on my refund from March? still nothing",
    "@delta is there any update on my lost suitcase, it has been a week",
    "@JetBlue thanks for the upgrade, lovely crew",
]


def test_feedback_from_the_served_champion_retrains_and_the_registry_can_roll_back(module_tracking, serve, tmp_path):
    client, model_name = MlflowClient(), f"loop-{tmp_path.name[-12:]}"
    data = run_id_of(mlflow_run(module_tracking, "prepare_data", max_rows=900, seed=5))
    first = run_id_of(mlflow_run(module_tracking, "train_baseline", data_run_id=data, min_df=1))
    mlflow_run(module_tracking, "register", data_run_id=data, model_name=model_name, bootstrap_samples=50)
    champion = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    assert champion.run_id == first

    # A tester scores tweets against the served champion and flags what it got wrong.
    server = serve(f"models:/{model_name}@{CHAMPION_ALIAS}")
    predictions = ModelClient(server.url).predict(FLAGGED).predictions
    store = FeedbackStore(tmp_path / "feedback.db")
    truths = ["negative", "negative", "not_negative"]
    for text, prediction, truth in zip(FLAGGED, predictions, truths, strict=True):
        record_feedback(
            store,
            Feedback(
                text,
                prediction.label,
                prediction.proba_negative,
                prediction.threshold,
                truth,
                prediction.model_version,
                user_name="rita",  # a reviewer's decision: agreed, so it becomes training data
                role="reviewer",
            ),
        )
    server.stop()

    # Retrain on the corpus plus the verdicts; the gate decides on validation rows both could be judged on.
    fed = run_id_of(mlflow_run(module_tracking, "prepare_data", max_rows=900, seed=5, feedback_db=store.path))
    assert client.get_run(fed).data.metrics["feedback_rows_added"] == len(FLAGGED)
    second = run_id_of(mlflow_run(module_tracking, "train_baseline", data_run_id=fed, min_df=1))
    registered = mlflow_run(module_tracking, "register", data_run_id=fed, model_name=model_name, bootstrap_samples=50)
    outcome = client.get_run(run_id_of(registered)).data.tags["outcome"]
    assert outcome in ("promoted", "kept_champion")
    version = next(v for v in client.search_model_versions(f"name = '{model_name}'") if v.run_id == second)
    if outcome == "promoted":
        now = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
        assert now.run_id == second and now.tags[PREVIOUS_CHAMPION_TAG] == str(champion.version)
        # The operator rolls back to the first champion, and the registry says who replaced whom.
        mlflow_run(module_tracking, "rollback", model_name=model_name, reason="loop test rollback")
        back = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
        assert back.run_id == first and back.tags[PREVIOUS_CHAMPION_TAG] == str(version.version)
    else:
        challenger = client.get_model_version_by_alias(model_name, CHALLENGER_ALIAS)
        assert challenger.run_id == second
        assert client.get_model_version_by_alias(model_name, CHAMPION_ALIAS).run_id == first
    assert client.get_model_version(model_name, version.version).description.startswith(f"# {model_name}")
