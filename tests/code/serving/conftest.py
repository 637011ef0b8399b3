"""One real `mlflow models serve` on `models:/tweet-sentiment@champion` for the whole serving suite.

The champion is the tiny baseline of the shared `baseline_run_id` fixture, registered here with
MlflowClient exactly as `register` does it. Starting the server once (not per test, as the
function-scoped `serve` fixture would) keeps the suite well under its time budget; every test that
sends bad input then proves the same server still answers a good request correctly.
"""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from harness.servers import ModelServer
from tests.conftest import Tracking

MODEL_NAME = "tweet-sentiment"
ALIAS = "champion"
CHAMPION_URI = f"models:/{MODEL_NAME}@{ALIAS}"
# A complaint and a compliment: two rows whose answer every "still serving" check compares.
PROBE_TEXTS = ["@united lost my bag again, worst airline ever", "Thanks for the smooth flight :)"]


def _logged_model_uri(run_id: str) -> str:
    """The `models:/m-...` URI of the pyfunc the training run logged (MLflow 3 logged models)."""
    outputs = mlflow.get_run(run_id).outputs
    model_ids = [output.model_id for output in (outputs.model_outputs if outputs else [])]
    assert model_ids, f"run {run_id} logged no model"
    return f"models:/{model_ids[-1]}"


@pytest.fixture(scope="session")
def champion(tracking: Tracking, baseline_run_id: str) -> Iterator[str]:
    """Register the baseline as `tweet-sentiment@champion`; restore the registry's previous state after.

    Other suites share the session store and may rely on who the champion is (or that there is
    none), so the version created here is removed again and any earlier alias put back.
    """
    client = MlflowClient()
    try:
        previous = client.get_model_version_by_alias(MODEL_NAME, ALIAS).version
    except MlflowException:
        previous = None
    existed = bool(client.search_registered_models(f"name = '{MODEL_NAME}'"))
    version = mlflow.register_model(_logged_model_uri(baseline_run_id), MODEL_NAME).version
    client.set_registered_model_alias(MODEL_NAME, ALIAS, version)
    yield CHAMPION_URI
    if not existed:
        client.delete_registered_model(MODEL_NAME)
        return
    if previous is not None:
        client.set_registered_model_alias(MODEL_NAME, ALIAS, previous)
    else:
        client.delete_registered_model_alias(MODEL_NAME, ALIAS)
    client.delete_model_version(MODEL_NAME, version)


@pytest.fixture(scope="session")
def server(champion: str, tracking: Tracking, tmp_path_factory) -> Iterator[ModelServer]:
    """`mlflow models serve -m models:/tweet-sentiment@champion` on 127.0.0.1, as in the README."""
    log_path = tmp_path_factory.mktemp("serving") / "server.log"
    model_server = ModelServer(champion, tracking.env, log_path)
    try:
        yield model_server.wait_ready()
    finally:
        model_server.stop()


@pytest.fixture(scope="session")
def reference(champion: str):
    """The champion loaded in-process: the oracle the HTTP answers must equal."""
    model = mlflow.pyfunc.load_model(champion)

    def predict(texts: list[str], threshold: float | None = None) -> pd.DataFrame:
        params = None if threshold is None else {"threshold": threshold}
        return model.predict(pd.DataFrame({"text": texts}), params=params)

    return predict


@pytest.fixture(scope="session")
def stored_threshold(baseline_run_id: str) -> float:
    """The threshold the training run chose on validation and stored in the model."""
    return mlflow.get_run(baseline_run_id).data.metrics["threshold"]


@pytest.fixture(scope="session")
def still_serving(server: ModelServer, reference):
    """Check that the server answers a good request correctly (after a bad one)."""

    def check() -> None:
        response = server.invocations({"dataframe_records": [{"text": text} for text in PROBE_TEXTS]})
        assert response.status_code == 200, response.text
        served = pd.DataFrame(response.json()["predictions"])
        expected = reference(PROBE_TEXTS)
        assert served["label"].tolist() == expected["label"].tolist()
        assert served["proba_negative"].tolist() == pytest.approx(expected["proba_negative"].tolist(), abs=1e-9)

    return check
