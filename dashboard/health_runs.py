"""The newest finished `monitor` and `shadow` runs of the tracking store, with their charts, for the Model health tab.

Optional, like the registry line (dashboard/registry.py): the store is `MLFLOW_TRACKING_URI`, read
only when set, and the app makes MLflow's client fail fast (no retries, a 5 s timeout) so a store that
is down costs one short wait, never minutes. Runs are found by the `step` tag every step sets
(steps/lib/tracking.py, `run_step`), in every experiment, since `mlflow run` may have been given any.
Charts are the PNGs the steps log (docs/design.md, "Drift"; "Champion, challenger and rollback"),
downloaded with MLflow's client into a scratch folder and kept in memory.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dashboard.safe_uri import redacted, shown_uri
from dashboard.step_runs import newest_finished_run

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

MONITOR, SHADOW = "monitor", "shadow"
STEPS = (MONITOR, SHADOW)
CHART_FOLDERS = {MONITOR: "drift", SHADOW: "shadow"}
# What makes a run of each step, named on the page when there is none yet
# (README.md, "Closing the loop: feedback, challenger, shadow, drift, rollback").
MAKES_ONE = {
    MONITOR: "mlflow run . -e monitor --env-manager local -P input=<recent tweets>",
    SHADOW: "mlflow run . -e shadow --env-manager local -P input=<feedback.db or recent tweets>",
}


class TrackingUnavailable(Exception):
    """No tracking store to read, or it did not answer; the message is one sentence for the page.

    `kind`: the notice box it takes, "info" where nothing is wrong (no store configured), else "error".
    """

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Chart:
    """One PNG a step logged: its artifact path and its bytes."""

    path: str
    png: bytes


@dataclass(frozen=True)
class StepRun:
    """What the tab shows of one run: when it ended, its metrics, tags and params, and its charts."""

    step: str
    run_id: str
    ended: datetime
    metrics: dict[str, float]
    tags: dict[str, str]
    params: dict[str, str]
    charts: list[Chart]


def configured_uri() -> str:
    """`MLFLOW_TRACKING_URI`, or why there is nothing to read.

    Raises:
        TrackingUnavailable: the variable is unset (the tab is optional, so this is a sentence, not a failure).
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        raise TrackingUnavailable(
            "No tracking store is configured: serve the dashboard with MLFLOW_TRACKING_URI set to see the "
            "latest monitor and shadow runs.",
            "info",
        )
    return uri


def latest_runs(uri: str) -> dict[str, StepRun | None]:
    """The newest finished run of each step (None where there is none), with its charts.

    Raises:
        TrackingUnavailable: the store (or its artifacts) did not answer; the cause goes to the log.
    """
    from mlflow import MlflowClient  # imported only when a tracking store is configured

    try:
        client = MlflowClient(tracking_uri=uri)
        experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
        return {step: latest_run(client, experiment_ids, step) for step in STEPS}
    except Exception as error:  # MlflowException, requests' and SQLAlchemy's errors, OSError: all mean "not now"
        logger.warning("the tracking store %s could not be read: %s", shown_uri(uri), redacted(str(error)))
        raise TrackingUnavailable(
            f"The tracking store {shown_uri(uri)} cannot be read ({type(error).__name__}): is it running, is "
            "MLFLOW_TRACKING_URI right? The feedback figures do not need it."
        ) from None


def latest_run(client: MlflowClient, experiment_ids: list[str], step: str) -> StepRun | None:
    """The step's newest finished run as the tab shows it, charts downloaded."""
    run = newest_finished_run(client, step, experiment_ids)
    if run is None:
        return None
    return StepRun(
        step=step,
        run_id=run.info.run_id,
        ended=datetime.fromtimestamp((run.info.end_time or run.info.start_time) / 1000, UTC),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        charts=charts(client, run.info.run_id, CHART_FOLDERS[step]),
    )


def charts(client: MlflowClient, run_id: str, folder: str) -> list[Chart]:
    """The run's PNGs in `folder`, by name; downloaded to a scratch folder that is removed at once."""
    pngs = sorted(item.path for item in client.list_artifacts(run_id, folder) if item.path.endswith(".png"))
    with tempfile.TemporaryDirectory() as scratch:
        return [Chart(path, Path(client.download_artifacts(run_id, path, scratch)).read_bytes()) for path in pngs]
