"""The newest finished run of one project step in a tracking store, for the tabs that read the store.

Runs are found by the `step` tag every step sets (steps/lib/tracking.py, `run_step`), in every
experiment, since `mlflow run` may have been given any. Only FINISHED runs count: a failed or running
one has no complete artifacts to show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run


def newest_finished_run(client: MlflowClient, step: str, experiment_ids: list[str] | None = None) -> Run | None:
    """The step's run that finished last, or None.

    Args:
        client: a client of the store to search.
        step: the step's `step` tag, e.g. "monitor".
        experiment_ids: where to search (default: every experiment of the store; read once by a caller
            that searches for several steps).
    """
    if experiment_ids is None:
        experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    if not experiment_ids:
        return None
    found = client.search_runs(
        experiment_ids,
        filter_string=f"tags.step = '{step}' AND attributes.status = 'FINISHED'",
        order_by=["attributes.end_time DESC"],
        max_results=1,
    )
    return found[0] if found else None
