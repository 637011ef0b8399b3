"""Tracking conventions shared by every step: store, experiment, failure handling, data hand-off."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.data.dataset_source import DatasetSource
from mlflow.entities import Dataset as DatasetEntity
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from steps.lib.run_cache import CODE_DIGEST_TAG, code_version

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT_NAME = "tweet-reaction-prediction"
SPLITS = ("train", "val", "test")
SENTIMENT_SPLIT = "sentiment"  # the sentiment corpus a model may learn from before the complaint splits
DATASET_CONTEXTS = {"train": "training", "val": "validation", "test": "testing", SENTIMENT_SPLIT: "pretraining"}
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TRACKING_PROBE_TIMEOUT = 10.0  # seconds: a server on the same network answers in milliseconds


class StepError(Exception):
    """A failure the user can fix (bad parameter, missing file): reported in one line, no traceback."""


def configure_tracking() -> None:
    """Embedded SQLite store unless MLFLOW_TRACKING_URI says otherwise; one experiment for all runs.

    Under `mlflow run` the CLI has already created the run (MLFLOW_RUN_ID) in the experiment it was
    given, so the experiment is only chosen here for direct `python -m steps.<step>` calls.
    """
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(DEFAULT_TRACKING_URI)
    check_tracking_server(mlflow.get_tracking_uri())
    if not os.environ.get("MLFLOW_RUN_ID") and not os.environ.get("MLFLOW_EXPERIMENT_ID"):
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT_NAME))


def check_tracking_server(uri: str, timeout: float = TRACKING_PROBE_TIMEOUT) -> None:
    """One quick authenticated call before any work, so a wrong URI, a server that is down or refused
    credentials stop the step in one line instead of after minutes of the client's retries.

    Args:
        uri: the tracking URI; only http(s) servers are probed.
        timeout: seconds to wait for the server's answer.

    Raises:
        StepError: the server cannot be reached, refuses the credentials, or is not an MLflow server.
    """
    if not uri.startswith(("http://", "https://")):
        return
    import requests
    from mlflow.utils.credentials import get_default_host_creds

    # MLflow's own reading of the credentials: environment variables, ~/.mlflow/credentials, TLS options.
    creds = get_default_host_creds(uri)
    url = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search"
    try:
        response = requests.get(
            url,
            params={"max_results": 1},
            auth=(creds.username, creds.password or "") if creds.username else None,
            headers={"Authorization": f"Bearer {creds.token}"} if creds.token else {},
            verify=creds.verify,
            timeout=timeout,
        )
    except requests.RequestException as error:
        raise StepError(
            f"the tracking server {uri} cannot be reached ({type(error).__name__}): is it running, is the URI right?"
        ) from None
    if response.status_code in (401, 403):
        raise StepError(
            f"the tracking server {uri} refused the credentials (HTTP {response.status_code}): "
            "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if not response.ok or not response.headers.get("content-type", "").startswith("application/json"):
        raise StepError(f"{uri} does not answer as an MLflow tracking server (HTTP {response.status_code} from {url})")


def run_step(step: str, body: Callable[[Run], None]) -> None:
    """Run `body` inside the step's MLflow run; a StepError fails the run with a one-line message, and so
    does a tracking server lost during the step (docs/design.md, "Tracking server lost mid-step").

    Args:
        step: the step's name, tagged `step` on the run beside the code digest `main`'s cache compares.
        body: the step's work, given the active run.

    Raises:
        SystemExit: status 2 after a StepError, 3 after the tracking server stopped answering, the message
            printed to stderr.
    """
    try:
        configure_tracking()
    except StepError as error:
        print(f"{step}: error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    try:
        run = mlflow.start_run()
        try:
            # Both read by `main`'s run cache: which of the project's steps ran, on which code (steps.lib.run_cache).
            mlflow.set_tags({"step": step, CODE_DIGEST_TAG: code_version(PROJECT_ROOT)})
            print(f"==> {step}: run {run.info.run_id} in experiment {run.info.experiment_id}", flush=True)
            body(run)
        except BaseException:
            if not tracking_lost():  # a lost server would make ending the run wait out the retries again
                with contextlib.suppress(Exception):  # a full disk may refuse the status too
                    mlflow.end_run("FAILED")
            raise
        mlflow.end_run()
    except Exception as error:
        if reason := store_failure(error):
            print(f"{step}: error: {reason}", file=sys.stderr, flush=True)
            # MLflow ends a run still active at exit; against a store that failed, that call would wait out
            # the client's retries once more, so it gets none (the setting is read at each request).
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
            sys.exit(3)
        if isinstance(error, StepError):
            print(f"{step}: error: {error}", file=sys.stderr, flush=True)
            sys.exit(2)
        raise


def store_failure(error: BaseException) -> str | None:
    """Why the step's tracking store, not the step, failed it, in one line; None when the store is fine.

    A full disk under the store or its artifacts (seen anywhere in the chain of causes) and a tracking
    server that stopped answering are faults of the machine, not bugs: the user needs what to do, not a
    traceback (docs/design.md, "Tracking server lost mid-step").
    """
    uri = mlflow.get_tracking_uri()
    if disk_full(error):
        return f"the disk under the tracking store {uri} or its artifacts is full: free space, then rerun the step"
    if tracking_lost():
        return (
            f"the tracking server {uri} stopped answering during the step; its run stays RUNNING there. "
            "Rerun the step once the server answers (a new run; main reuses finished runs only)"
        )
    return None


def disk_full(error: BaseException | None) -> bool:
    """Whether `error` or any exception behind it says the disk is full (errno ENOSPC, or SQLite's own words)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "database or disk is full" in str(error) or "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def tracking_lost() -> bool:
    """Whether the step's tracking server has stopped answering (only http(s) stores can be lost).

    Returns:
        True when a quick authenticated probe of the server fails.
    """
    try:
        check_tracking_server(mlflow.get_tracking_uri())
    except StepError:
        return True
    return False


def resolve_data_run_id(data_run_id: str) -> str:
    """The given prepare_data run, or the newest finished one of the active experiment.

    Args:
        data_run_id: a run id, or empty for the newest.

    Returns:
        The run id.

    Raises:
        StepError: the run does not exist or is not a finished prepare_data run, or there is none.
    """
    client = MlflowClient()
    if data_run_id:
        try:
            run = client.get_run(data_run_id)
        except mlflow.exceptions.MlflowException:
            raise StepError(f"data_run_id {data_run_id!r} does not exist in {mlflow.get_tracking_uri()}") from None
        if run.data.tags.get("step") != "prepare_data" or run.info.status != "FINISHED":
            raise StepError(f"run {data_run_id} is not a finished prepare_data run (status {run.info.status})")
        return data_run_id
    experiment_id = mlflow.active_run().info.experiment_id
    newest = newest_prepared_run_id([experiment_id])
    if newest is None:
        raise StepError(
            f"no finished prepare_data run in experiment {experiment_id}: run "
            "`mlflow run . -e prepare_data --env-manager local` first (same MLFLOW_EXPERIMENT_NAME), "
            "or pass -P data_run_id=<run id>"
        )
    return newest


def newest_prepared_run_id(experiment_ids: list[str]) -> str | None:
    """The newest finished prepare_data run of these experiments: what "the current data" means.

    Args:
        experiment_ids: where to look.

    Returns:
        Its run id, or None when there is none.
    """
    runs = MlflowClient().search_runs(
        experiment_ids,
        "tags.step = 'prepare_data' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def load_splits(data_run_id: str, names: tuple[str, ...] = SPLITS) -> dict[str, pd.DataFrame]:
    """Download the prepared splits of a prepare_data run.

    Args:
        data_run_id: the prepare_data run.
        names: which files of its `data/` folder (`SENTIMENT_SPLIT` for the sentiment corpus).

    Returns:
        The frames, by name.

    Raises:
        StepError: the run's `data` artifacts cannot be downloaded, or one of them is missing (a run
            prepared before the complaint set has no sentiment corpus).
    """
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=data_run_id, artifact_path="data", dst_path=tmp)
        except mlflow.exceptions.MlflowException as error:
            raise StepError(f"the prepared data of run {data_run_id} cannot be read: {error.message}") from None
        missing = [name for name in names if not (Path(local) / f"{name}.parquet").is_file()]
        if missing:
            raise StepError(
                f"the prepare_data run {data_run_id} has no {', '.join(missing)} split: it was prepared by an "
                "older version; run prepare_data again"
            )
        return {name: pd.read_parquet(Path(local) / f"{name}.parquet") for name in names}


class RunArtifactDatasetSource(DatasetSource):
    """A dataset that is a logged artifact of a run, wherever the store keeps it.

    MLflow resolves a local or cloud artifact path to a dataset source, but not the
    `mlflow-artifacts:/` URI of a tracking server that proxies its artifact store, so the split
    files are named by the run's own artifact URI and loaded through the tracking client.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @staticmethod
    def _get_source_type() -> str:
        return "mlflow_run_artifact"

    def load(self, dst_path: str | None = None) -> str:
        return mlflow.artifacts.download_artifacts(artifact_uri=self.uri, dst_path=dst_path)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False  # built explicitly by log_dataset_inputs, never guessed from a string

    @classmethod
    def _resolve(cls, raw_source: Any) -> RunArtifactDatasetSource:
        return cls(str(raw_source))

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> RunArtifactDatasetSource:
        return cls(source_dict["uri"])


def log_dataset_inputs(splits: dict[str, pd.DataFrame], data_run_id: str) -> None:
    """Record which prepared rows this run used, with MLflow's dataset digest.

    Args:
        splits: the frames, by split name.
        data_run_id: the prepare_data run they came from (their logged source).
    """
    artifact_uri = MlflowClient().get_run(data_run_id).info.artifact_uri
    for split, frame in splits.items():
        source = RunArtifactDatasetSource(f"{artifact_uri}/data/{split}.parquet")
        dataset = mlflow.data.from_pandas(frame, source=source, name=split, targets="label")
        mlflow.log_input(dataset, context=DATASET_CONTEXTS[split])


def run_datasets(run_id: str) -> dict[str, DatasetEntity]:
    """The datasets a run logged as inputs, by name (the last listed of a name when it logged several).

    Args:
        run_id: the run.

    Returns:
        Each input's dataset entity: what `mlflow.log_metrics(..., dataset=...)` links metrics to.
    """
    inputs = MlflowClient().get_run(run_id).inputs
    return {i.dataset.name: i.dataset for i in (inputs.dataset_inputs if inputs else [])}


def record_data_run_id(resolved: str) -> None:
    """Record which prepared data the active run read, as a parameter when still unset and always as a tag.

    `mlflow run` has already logged the value the user passed (empty when they named none, as a step run
    alone does): MLflow refuses to log a parameter twice, so the tag is what always holds the resolved id.

    Args:
        resolved: the prepare_data run id the step reads.
    """
    if "data_run_id" not in mlflow.get_run(mlflow.active_run().info.run_id).data.params:
        mlflow.log_param("data_run_id", resolved)
    mlflow.set_tag("data_run_id", resolved)


def prepare_training(data_run_id: str) -> tuple[str, dict[str, pd.DataFrame]]:
    """Common start of every training step: resolve, load and record the prepared data.

    Args:
        data_run_id: a prepare_data run id, or empty for the newest.

    Returns:
        The resolved run id (tagged `data_run_id` on the active run) and its frames: the complaint
        splits `train`, `val`, `test` and the sentiment corpus (`SENTIMENT_SPLIT`).

    Raises:
        StepError: no such prepare_data run, or its data cannot be read.
    """
    resolved = resolve_data_run_id(data_run_id)
    splits = load_splits(resolved, (*SPLITS, SENTIMENT_SPLIT))
    print(f"prepared data: run {resolved} ({', '.join(f'{k}={len(v)}' for k, v in splits.items())})", flush=True)
    record_data_run_id(resolved)
    log_dataset_inputs(splits, resolved)
    return resolved, splits


def pinned(*packages: str) -> list[str]:
    """Exact requirements for a logged model, taken from what this environment runs.

    Args:
        *packages: distribution names.

    Returns:
        `name==version` for each, as installed here.
    """
    return [f"{package}=={version(package)}" for package in packages]


def log_step_params(params: dict) -> None:
    """Log the step's parameters, skipping those `mlflow run` already logged from MLproject.

    `data_run_id` is only logged once resolved (by `prepare_training`), never as an empty string.

    Args:
        params: the step's options, by name.
    """
    logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    mlflow.log_params({key: value for key, value in params.items() if key not in logged and key != "data_run_id"})
