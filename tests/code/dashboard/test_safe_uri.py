"""The tracking store's address as the page shows it: no user, password or token, whatever the scheme."""

from __future__ import annotations

import pytest

from dashboard.health_runs import TrackingUnavailable, latest_runs
from dashboard.queue_source import QueueError, latest_queue_run_id
from dashboard.safe_uri import redacted, shown_uri


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://ops:s3cret@tracking:5000/prefix?token=s3cret", "http://tracking:5000"),
        ("https://ops:s3cret@mlflow.example.com/?api_key=s3cret", "https://mlflow.example.com"),
        ("postgresql://mlflow:s3cret@db:5432/mlflow", "postgresql://db:5432"),
        ("postgresql+psycopg2://mlflow:s3cret@db/mlflow?sslpassword=s3cret", "postgresql+psycopg2://db"),
        ("mysql://root:s3cret@10.0.0.5:3306/mlflow", "mysql://10.0.0.5:3306"),
        ("http://ops:s3cret@[::1]:5000", "http://[::1]:5000"),
        ("sqlite:///runs/mlflow.db?mode=ro", "sqlite:///runs/mlflow.db"),
        ("file:///srv/mlruns", "file:///srv/mlruns"),
        ("/srv/mlruns", "/srv/mlruns"),
    ],
)
def test_a_shown_uri_keeps_scheme_host_and_port_only_and_a_local_store_its_path(uri, shown):
    assert shown_uri(uri) == shown and "s3cret" not in shown_uri(uri)


def test_the_queue_tab_names_a_store_that_is_down_without_its_credentials(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(QueueError) as error:
        latest_queue_run_id("http://ops:s3cret@127.0.0.1:9")  # nothing listens on the discard port
    assert str(error.value).startswith("The tracking store http://127.0.0.1:9 cannot be read (")
    assert "s3cret" not in str(error.value)


def test_an_error_quoting_urls_loses_their_credentials_and_keeps_the_rest():
    text = "API request to http://ops:s3cret@127.0.0.1:9/api/2.0/x failed; see https://host/docs?q=a@b"
    assert redacted(text) == "API request to http://127.0.0.1:9/api/2.0/x failed; see https://host/docs?q=a@b"


def test_the_health_tab_logs_a_store_that_is_down_without_its_credentials(monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(TrackingUnavailable):
        latest_runs("http://ops:s3cret@127.0.0.1:9")
    assert "the tracking store http://127.0.0.1:9 could not be read" in caplog.text and "s3cret" not in caplog.text
