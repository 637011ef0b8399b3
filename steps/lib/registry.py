"""The model registry as the steps use it: the model's name, its aliases, versions, gate and handover tags.

Every move of `@champion` goes through `move_champion`, which writes on both versions who replaced
whom, when, why and from which run, so `rollback` reads the previous champion instead of guessing
(docs/design.md, "Champion, challenger and rollback").
"""

from __future__ import annotations

import contextlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from steps.lib.release import ARTIFACT_DIGEST_TAG, GATE_TAGS, folder_digest
from steps.lib.tracking import StepError

MODEL_NAME = "tweet-sentiment"
CHAMPION_ALIAS = "champion"
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}"
CHALLENGER_ALIAS = "challenger"
CHALLENGER_URI = f"models:/{MODEL_NAME}@{CHALLENGER_ALIAS}"
PREVIOUS_CHAMPION_TAG = "champion.previous_version"  # on the version that took the alias: whom it replaced
OPTIONAL_GATE_TAGS = ("diff_ci_low", "diff_ci_high", "rows", "rows_basis", "rows_note")


def model_version_for(client: MlflowClient, model_name: str, run_id: str) -> tuple[ModelVersion, bool]:
    """The registered version of a run's model, created only if none exists yet, so a rerun never duplicates it.

    Args:
        client: the tracking client.
        model_name: the registered model.
        run_id: the candidate run whose `model` artifact is registered.

    Returns:
        The version (the oldest, if several) and whether it was created now.
    """
    existing = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    if existing:
        return min(existing, key=lambda version: int(version.version)), False
    try:
        return mlflow.register_model(f"runs:/{run_id}/model", model_name), True
    except MlflowException as error:
        raise StepError(f"cannot register the model of run {run_id}: {error.message}") from None


def record_artifact_digest(client: MlflowClient, version: ModelVersion) -> str:
    """The SHA-256 of the version's files as CD downloads them, tagged on the version once, at registration.

    CD recomputes it over what it is about to build into the image and refuses a mismatch, so files
    replaced in the artifact store after the gate judged them never reach production (docs/design.md,
    "Who may write the registry"). A digest already recorded is kept: it describes what the gate judged.

    Args:
        client: the tracking client.
        version: the registered version.

    Returns:
        The recorded digest.
    """
    recorded = client.get_model_version(version.name, version.version).tags.get(ARTIFACT_DIGEST_TAG)
    if recorded:
        return recorded
    with tempfile.TemporaryDirectory(prefix="registered-") as folder:
        download_artifacts(artifact_uri=f"models:/{version.name}/{version.version}", dst_path=folder)
        digest = folder_digest(Path(folder))
    client.set_model_version_tag(version.name, version.version, ARTIFACT_DIGEST_TAG, digest)
    return digest


def current_champion(client: MlflowClient, model_name: str) -> ModelVersion | None:
    """The version `@champion` points at, or None before the first champion (no model or no alias yet).

    Args:
        client: the tracking client.
        model_name: the registered model.

    Returns:
        The champion's version, or None.
    """
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def _tag_value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def record_gate(client: MlflowClient, model_name: str, version: ModelVersion, result: dict) -> None:
    """The gate's outcome as tags on the version (docs/design.md, "The gate") and metrics on the active run.

    Args:
        client: the tracking client.
        model_name: the registered model.
        version: the version the gate decided on.
        result: `steps.lib.gate.compare_with_champion`'s outcome.
    """
    tags = {f"gate.{key}": _tag_value(result[key]) for key in GATE_TAGS}
    tags |= {f"gate.{key}": _tag_value(result[key]) for key in OPTIONAL_GATE_TAGS if key in result}
    tags["gate.register_run_id"] = mlflow.active_run().info.run_id
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version.version, key, value)
    numbers = {key: value for key, value in result.items() if type(value) in (int, float)}  # not bool: passed
    mlflow.log_metrics({f"gate_{key}": float(value) for key, value in numbers.items()})
    mlflow.log_metric("gate_passed", float(result["passed"]))


def version_or_none(client: MlflowClient, model_name: str, version: str) -> ModelVersion | None:
    """The registered version, or None when the model or that version does not exist."""
    try:
        return client.get_model_version(model_name, version)
    except MlflowException:
        return None


def move_champion(client: MlflowClient, model_name: str, version: ModelVersion, reason: str) -> ModelVersion | None:
    """Point `@champion` at `version`, recording the handover on both versions.

    The new champion gets `champion.previous_version` (the one it replaced, or `none`), `champion.since`,
    `champion.reason` and `champion.by_run`; the replaced one gets `champion.replaced_by` and
    `champion.replaced_at`. The tags are written before the alias moves, so an interrupted move never
    leaves a champion whose predecessor is unknown.

    Args:
        client: the tracking client.
        model_name: the registered model.
        version: the version that becomes champion.
        reason: why, in words (the gate's verdict, or the operator's reason for a rollback).

    Returns:
        The version that was champion before, or None when there was none.
    """
    previous = current_champion(client, model_name)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    run = mlflow.active_run()
    handover = {
        PREVIOUS_CHAMPION_TAG: previous.version if previous else "none",
        "champion.since": now,
        "champion.reason": reason,
        "champion.by_run": run.info.run_id if run else "none",
    }
    for key, value in handover.items():
        client.set_model_version_tag(model_name, version.version, key, value)
    if previous is not None:
        client.set_model_version_tag(model_name, previous.version, "champion.replaced_by", version.version)
        client.set_model_version_tag(model_name, previous.version, "champion.replaced_at", now)
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version.version)
    return previous


def set_challenger(client: MlflowClient, model_name: str, version: ModelVersion | None) -> None:
    """`@challenger` on the best candidate the gate did not promote; None clears it (the champion changed).

    Args:
        client: the tracking client.
        model_name: the registered model.
        version: the new challenger, or None to remove the alias.
    """
    if version is not None:
        client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version.version)
        return
    with contextlib.suppress(MlflowException):  # there was none
        client.delete_registered_model_alias(model_name, CHALLENGER_ALIAS)
