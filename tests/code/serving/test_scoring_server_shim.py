"""The gated shim that adds the request guard to MLflow's scoring server, and the canary that retires it."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from importlib.metadata import version

import fastapi
import mlflow.environment_variables as mlflow_variables
import pytest
from mlflow.models import cli as models_cli
from mlflow.pyfunc import scoring_server

from pyfunc.limits import ServingLimits
from pyfunc.request_guard import RequestGuard
from pyfunc.scoring_server_shim import (
    SCORING_APP_MODULE,
    VERIFIED_VERSIONS,
    in_scoring_server,
    install_request_guard,
    unverified_versions,
)
from tests.conftest import REPO


def test_the_shim_holds_on_the_locked_versions_and_only_on_them():
    # requirements.lock pins what the swap was verified with; a lock upgrade lands here first.
    assert unverified_versions() == {}
    assert unverified_versions({**VERIFIED_VERSIONS, "fastapi": "0.200.0"}) == {"fastapi": "0.200.0"}
    assert unverified_versions({"mlflow": "3.18.0", "fastapi": VERIFIED_VERSIONS["fastapi"]}) == {"mlflow": "3.18.0"}


def test_on_an_unverified_version_fastapi_is_left_alone_and_the_log_says_why(monkeypatch, caplog):
    monkeypatch.setattr("pyfunc.scoring_server_shim.version", lambda name: "0.0.1")
    original = fastapi.FastAPI

    with caplog.at_level(logging.WARNING, logger="pyfunc.scoring_server_shim"):
        assert install_request_guard(ServingLimits()) is False

    assert fastapi.FastAPI is original
    assert "request guard NOT installed" in caplog.text and "mlflow/mlflow/issues/2828" in caplog.text


def test_on_the_verified_versions_every_app_built_afterwards_starts_with_the_guard(monkeypatch):
    monkeypatch.setattr(fastapi, "FastAPI", fastapi.FastAPI)  # undone after the test: other tests see stock FastAPI

    assert install_request_guard(ServingLimits(max_bytes=100)) and install_request_guard(ServingLimits())

    app = fastapi.FastAPI()
    assert [middleware.cls for middleware in app.user_middleware] == [RequestGuard]
    assert app.user_middleware[0].kwargs["limits"].max_bytes == 100  # the first install's limits, once


def test_a_load_model_caller_is_not_the_scoring_server():
    assert not in_scoring_server()


def test_the_scoring_servers_app_module_is_seen_while_it_loads_the_model(tmp_path):
    # What uvicorn does on `mlflow models serve`: import the app module, which loads the model. A stand-in
    # module under that name stands for it, so the check is shown to read the module, not the environment.
    probe = (
        "import sys, types\n"
        f"sys.modules[{SCORING_APP_MODULE!r}] = types.ModuleType('app')\n"
        "from pyfunc.scoring_server_shim import in_scoring_server\n"
        "print(in_scoring_server())\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "True"


def test_canary_mlflow_still_serves_that_module_and_offers_no_hook_for_the_guard():
    """Fails once MLflow's scoring server changes: if it now takes middleware, a body limit or an app
    factory, use that and delete pyfunc/scoring_server_shim.py (see its UPSTREAM_ISSUE)."""
    command, _ = scoring_server.get_cmd(model_uri="/tmp/model")
    assert command.endswith(f"{SCORING_APP_MODULE}:app")
    assert list(inspect.signature(scoring_server.init).parameters) == ["model"]
    serve_options = {parameter.name for parameter in models_cli.serve.params}
    assert serve_options == {
        "model_uri",
        "port",
        "host",
        "timeout",
        "workers",
        "env_manager",
        "no_conda",
        "install_mlflow",
    }
    server_variables = [name for name in vars(mlflow_variables) if name.startswith("MLFLOW_SCORING_SERVER_")]
    assert server_variables == ["MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"]
    assert version("mlflow") == VERIFIED_VERSIONS["mlflow"]


@pytest.mark.parametrize("name", sorted(VERIFIED_VERSIONS))
def test_the_lock_pins_each_verified_version(name):
    assert f"{name}=={VERIFIED_VERSIONS[name]}" in (REPO / "requirements.lock").read_text().splitlines()
