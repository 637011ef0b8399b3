"""The one place the served model reaches past MLflow's public API, gated on the versions it was verified with.

MLflow's scoring server (`mlflow models serve`, and the image, which runs it) offers no middleware
hook, no body-size limit and no app factory: `mlflow.pyfunc.scoring_server.app` loads the model,
then builds a plain FastAPI app around it (MLflow 3.17.2 and 3.18.0 alike). So the served model,
while it loads, makes FastAPI's app class add the request guard to every app built afterwards, as
OpenTelemetry's FastAPI instrumentation reaches that app. That swap holds only on the exact MLflow
and FastAPI versions below; on any other it is skipped with a warning, and the canary test
(tests/code/serving/test_scoring_server_shim.py) says whether MLflow has grown the hook that makes
it unnecessary (docs/design.md, "Serving limits").
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import version
from typing import Any

from pyfunc.limits import MAX_JSON_DEPTH, ServingLimits
from pyfunc.request_guard import RequestGuard

# Versions the class swap was verified with (requirements.lock pins them): the gate and its tests read this.
VERIFIED_VERSIONS = {"mlflow": "3.17.2", "fastapi": "0.165.0"}
# The open upstream request for a way to extend the scoring server (custom routes, middleware).
UPSTREAM_ISSUE = "https://github.com/mlflow/mlflow/issues/2828"
# The module `mlflow models serve` hands uvicorn (mlflow.pyfunc.scoring_server.get_cmd): it loads the model.
SCORING_APP_MODULE = "mlflow.pyfunc.scoring_server.app"

_log = logging.getLogger(__name__)


def in_scoring_server() -> bool:
    """True while MLflow's scoring server loads or runs the model in this process.

    uvicorn imports the app module, and that module loads the model, so the module is in
    `sys.modules` from the model's `load_context` on. A `mlflow.pyfunc.load_model` or Spark caller
    never imports it, so no serving limit reaches them: they size their own batches.
    """
    return SCORING_APP_MODULE in sys.modules


def unverified_versions(installed: dict[str, str] | None = None) -> dict[str, str]:
    """The libraries whose installed version differs from the one the swap was verified with.

    Args:
        installed: version by distribution name (default: what this environment has installed).

    Returns:
        `{name: installed version}` for each mismatch; empty when the swap may be installed.
    """
    installed = installed or {name: version(name) for name in VERIFIED_VERSIONS}
    return {name: installed[name] for name, verified in VERIFIED_VERSIONS.items() if installed[name] != verified}


def install_request_guard(limits: ServingLimits) -> bool:
    """Make every FastAPI app built from now on start with `RequestGuard` (once per process).

    Args:
        limits: the bounds the guard holds requests to.

    Returns:
        True when the guard is installed (now or before); False on an unverified MLflow or FastAPI,
        where the server runs without the body checks and the log says why (the row limit and the
        deadline, which live in the model's `predict`, still hold).
    """
    import fastapi

    mismatched = unverified_versions()
    if mismatched:
        _log.warning(
            "request guard NOT installed: verified with %s, found %s; rerun tests/code/serving and see %s",
            VERIFIED_VERSIONS,
            mismatched,
            UPSTREAM_ISSUE,
        )
        return False
    if getattr(fastapi.FastAPI, "guarded_by", None) is RequestGuard:
        return True
    base = fastapi.FastAPI

    class GuardedFastAPI(base):  # type: ignore[misc, valid-type]
        guarded_by = RequestGuard

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_middleware(RequestGuard, limits=limits)

    fastapi.FastAPI = GuardedFastAPI
    _log.warning(
        "serving limits: %s rows per request, %s bytes per body, JSON %s levels deep, %g s per request",
        f"{limits.max_rows:,}",
        f"{limits.max_bytes:,}",
        MAX_JSON_DEPTH,
        limits.timeout_s,
    )
    return True
