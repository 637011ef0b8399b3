"""Optional: which registered version (and alias) of `tweet-sentiment` the served model is.

The response's `model_version` is `family:run_id`; when `MLFLOW_TRACKING_URI` is set and its store
answers, the registry tells which registered version was built from that run. Never required:
any failure (no URI, store down, run not registered) just means no registry line on the page.
"""

from __future__ import annotations

import logging
import os
import re
import time

from dashboard.safe_uri import redacted

logger = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
_cache: dict[str, tuple[float, str | None]] = {}


def run_id_of(model_version: str) -> str | None:
    """The run id in `family:run_id` (MLflow run ids are 32 hex characters)."""
    match = re.fullmatch(r"[\w-]+:([0-9a-f]{32})", model_version.strip())
    return match.group(1) if match else None


def lookup(run_id: str, tracking_uri: str) -> str | None:
    """e.g. `tweet-sentiment v3 @champion`: the newest registered version logged from `run_id`, else None."""
    from mlflow import MlflowClient  # imported only when a tracking store is configured

    registry_uri = os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    if not versions:
        return None
    newest = max(versions, key=lambda version: int(version.version))
    aliases = client.get_model_version(newest.name, newest.version).aliases or []
    suffix = "".join(f" @{alias}" for alias in sorted(aliases))
    return f"{newest.name} v{newest.version}{suffix}"


def registry_label(model_version: str) -> str | None:
    """The registry's name for the served model, cached a minute; None whenever it cannot be known."""
    run_id = run_id_of(model_version)
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not run_id or not tracking_uri:
        return None
    cached = _cache.get(run_id)
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    try:
        label = lookup(run_id, tracking_uri)
    except Exception as error:  # optional information: log and show nothing
        logger.info("registry lookup for run %s failed: %s", run_id, redacted(str(error)))
        label = None
    _cache[run_id] = (time.monotonic(), label)
    return label
