"""The optional registry line: found when the store knows the run, silently absent otherwise."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from dashboard import registry


@pytest.fixture(autouse=True)
def fresh_cache():
    registry._cache.clear()
    yield
    registry._cache.clear()


def test_run_id_is_read_from_family_colon_run_id():
    assert registry.run_id_of("transformer:0123456789abcdef0123456789abcdef") == "0123456789abcdef0123456789abcdef"
    assert registry.run_id_of("unlogged") is None
    assert registry.run_id_of("baseline:abc' OR '1'='1") is None  # never pasted into a filter


def test_no_tracking_uri_means_no_lookup(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert registry.registry_label("baseline:0123456789abcdef0123456789abcdef") is None


def test_unreachable_store_means_no_line(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")  # what the app sets for its process
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert registry.registry_label("baseline:0123456789abcdef0123456789abcdef") is None


def test_registered_version_and_alias_are_named(monkeypatch, tmp_path):
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the dashboard reads the store from the environment only
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("registry-test", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment)
    client.create_registered_model("tweet-sentiment")
    version = client.create_model_version("tweet-sentiment", str(tmp_path / "model"), run_id=run.info.run_id)
    client.set_registered_model_alias("tweet-sentiment", "champion", version.version)

    assert registry.registry_label(f"baseline:{run.info.run_id}") == "tweet-sentiment v1 @champion"
    other = client.create_run(experiment)
    assert registry.registry_label(f"baseline:{other.info.run_id}") is None
