"""The shared tracking server as users and CD meet it: `scripts/tracking_server.sh`, then the pipeline on it.

Real parts: a private PostgreSQL cluster, Azurite's blob endpoint, `mlflow server` with the basic-auth
app, `mlflow run` steps, `mlflow models serve` of a registry version and CD's model step
(`scripts/pin_model.py`), all on 127.0.0.1 ports of the test's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from harness.servers import ModelServer, free_port, wait_port_closed
from tests.conftest import REPO, run_id_of

pytestmark = pytest.mark.integration

SCRIPT = REPO / "scripts" / "tracking_server.sh"
MODEL_NAME = "tweet-sentiment"


def server_env(home: Path, **ports: int) -> dict[str, str]:
    """The script's settings for a server of the test's own; nothing of the session's SQLite store."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env |= {"TRACKING_SERVER_HOME": str(home), "PYTHON": sys.executable}
    env |= {
        name: str(ports.get(name.lower()) or free_port()) for name in ("TRACKING_PORT", "POSTGRES_PORT", "AZURITE_PORT")
    }
    return env


def script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=300)


def exports(output: str) -> dict[str, str]:
    """The `export NAME=value` lines `up` prints, pasted into bash as a user would (reading the password file)."""
    lines = [line for line in output.splitlines() if line.startswith("export ")]
    names = [line.removeprefix("export ").split("=", 1)[0] for line in lines]
    shown = "".join(f'; printf "%s=%s\\0" {name} "${name}"' for name in names)
    result = subprocess.run(["bash", "-c", "\n".join(lines) + shown], capture_output=True, text=True, check=True)
    return dict(pair.split("=", 1) for pair in result.stdout.split("\0") if pair)


def admin_env(server) -> dict[str, str]:
    """The admin's credentials, read from the file `up` names."""
    password = (server["home"] / "secrets" / "admin_password").read_text().strip()
    return server["client"] | {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}


@pytest.fixture(scope="module")
def server():
    """One server with authentication on, up for the module, down after it."""
    # Run as root, the cluster belongs to the postgres user, who must be able to enter the folder.
    home = Path(tempfile.mkdtemp(prefix="tracking-server-"))
    home.chmod(0o755)
    env = server_env(home) | {"TRACKING_AUTH": "basic"}
    started = script("up", env)
    assert started.returncode == 0, started.stdout + started.stderr
    client_env = {key: value for key, value in env.items() if key != "PYTHON"} | exports(started.stdout)
    client_env["MLFLOW_EXPERIMENT_NAME"] = "tracking-server-test"
    yield {"home": home, "env": env, "client": client_env, "up": started.stdout}
    stopped = script("down", env)
    assert stopped.returncode == 0, stopped.stderr
    assert script("status", env).returncode == 3
    shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def mlflow_env(env: dict[str, str]) -> Iterator[None]:
    """The server's credentials in this process's environment, where MLflow's client reads them."""
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: env[name] for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


def pipeline_step(env: dict[str, str], entry_point: str, **params) -> subprocess.CompletedProcess:
    command = ["mlflow", "run", str(REPO), "-e", entry_point, "--env-manager", "local"]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{entry_point}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def psql(server, query: str) -> list[str]:
    home, env = server["home"], server["env"]
    command = [
        "psql",
        "-h",
        "127.0.0.1",
        "-p",
        env["POSTGRES_PORT"],
        "-U",
        "mlflow",
        "-d",
        "mlflow",
        "-tA",
        "-c",
        query,
    ]
    result = subprocess.run(
        command, env={**os.environ, "PGPASSFILE": str(home / "secrets" / "pgpass")}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def blob_names(server) -> list[str]:
    key = (server["home"] / "secrets" / "azurite_key").read_text().strip()
    endpoint = f"http://127.0.0.1:{server['env']['AZURITE_PORT']}/mlflowlocal"
    connection = f"DefaultEndpointsProtocol=http;AccountName=mlflowlocal;AccountKey={key};BlobEndpoint={endpoint};"
    container = BlobServiceClient.from_connection_string(connection).get_container_client("mlflow")
    return [blob.name for blob in container.list_blobs()]


@pytest.fixture(scope="module")
def registered(server):
    """prepare_data, train_baseline and register, each `mlflow run` against the server, unchanged."""
    env = server["client"]
    data = run_id_of(pipeline_step(env, "prepare_data", max_rows=900, seed=7))
    trained = run_id_of(pipeline_step(env, "train_baseline", data_run_id=data, min_df=1))
    pipeline_step(env, "register", data_run_id=data, bootstrap_samples=50)
    return {"data": data, "trained": trained}


def test_up_and_status_print_no_password_but_say_where_each_is(server):
    printed = exports(server["up"])
    assert printed["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{server['env']['TRACKING_PORT']}"
    pipeline_password = (server["home"] / "secrets" / "pipeline_password").read_text().strip()
    assert printed["MLFLOW_TRACKING_USERNAME"] == "pipeline", "the pipeline does not run as admin"
    assert printed["MLFLOW_TRACKING_PASSWORD"] == pipeline_password and len(pipeline_password) >= 24
    again = script("up", server["env"])
    assert again.returncode == 0 and "already up" in again.stdout
    assert exports(again.stdout) == printed
    status = script("status", server["env"])
    assert status.returncode == 0
    assert [line.split(":")[0] for line in status.stdout.splitlines()[:3]] == ["postgres", "azurite", "mlflow"]
    admin_file = server["home"] / "secrets" / "admin_password"
    secrets = [path.read_text().strip() for path in (server["home"] / "secrets").iterdir() if path.is_file()]
    for output in (server["up"], again.stdout + again.stderr, status.stdout + status.stderr):
        assert not [secret for secret in secrets if secret.split(":")[-1] in output], "a secret was printed"
        assert str(admin_file) in output and str(admin_file.with_name("pipeline_password")) in output


def test_the_pipeline_user_is_not_an_admin(server):
    """The printed account writes runs and the registry; creating users takes the admin's password."""
    from mlflow.server.auth.client import AuthServiceClient

    with mlflow_env(server["client"]), pytest.raises(MlflowException) as refused:
        AuthServiceClient(server["client"]["MLFLOW_TRACKING_URI"]).create_user("mallory", "x" * 24)
    assert refused.value.get_http_status_code() == 403
    with mlflow_env(admin_env(server)):
        assert AuthServiceClient(server["client"]["MLFLOW_TRACKING_URI"]).get_user("pipeline").is_admin is False


def test_no_secret_is_on_a_command_line(server):
    """`ps` shows every process's arguments to every user: passwords and keys live in files and env only."""
    secrets = [path.read_text().strip() for path in (server["home"] / "secrets").iterdir() if path.is_file()]
    command_lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert secrets and not [secret for secret in secrets if secret.split(":")[-1] in command_lines]


def test_runs_and_the_registry_land_in_postgres_and_artifacts_in_the_blob_container(server, registered):
    run_ids = set(psql(server, "SELECT run_uuid FROM runs"))
    assert {registered["data"], registered["trained"]} <= run_ids
    versions = psql(server, f"SELECT version || ':' || run_id FROM model_versions WHERE name = '{MODEL_NAME}'")
    assert versions == [f"1:{registered['trained']}"]
    assert psql(server, f"SELECT version FROM registered_model_aliases WHERE name = '{MODEL_NAME}'") == ["1"]
    names = blob_names(server)
    assert any(name.endswith("data/train.parquet") for name in names)
    assert any(name.endswith("/MLmodel") for name in names)
    assert not list((server["home"]).glob("**/mlartifacts")), "artifacts must not fall back to a local folder"


def test_a_registry_version_is_served_from_the_server(server, registered, tmp_path):
    model = ModelServer(f"models:/{MODEL_NAME}/1", server["client"], tmp_path / "serve.log")
    try:
        model.wait_ready(timeout=180)
        response = model.invocations({"inputs": ["@united lost my bag again, worst service ever"]})
        assert response.status_code == 200, response.text
        [row] = response.json()["predictions"]
        assert row["model_version"].endswith(registered["trained"])
    finally:
        model.stop()


def test_cd_pins_the_champion_to_its_version_and_downloads_exactly_that(server, registered, tmp_path):
    outputs = tmp_path / "github_output"
    env = server["client"] | {"GITHUB_OUTPUT": str(outputs)}
    command = [
        sys.executable,
        "-m",
        "scripts.pin_model",
        "--dest",
        str(tmp_path / "model"),
        "--git-sha",
        "abc1234",
    ]
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    pin = json.loads((tmp_path / "model_pin.json").read_text())
    assert pin | {"source": ""} == {
        "model_name": MODEL_NAME,
        "model_version": "1",
        "run_id": registered["trained"],
        "source": "",
        "model_uri": f"models:/{MODEL_NAME}/1",
        "image_tag": "abc1234-m1",
    }
    assert (tmp_path / "model" / "MLmodel").is_file()
    lines = outputs.read_text().splitlines()  # GitHub's delimited form: key<<DELIMITER, value, DELIMITER
    start = next(index for index, line in enumerate(lines) if line.startswith("model_version<<"))
    assert lines[start + 1] == "1" and lines[start + 2] == lines[start].split("<<", 1)[1]
    again = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "is not empty" in again.stderr


def stop_azurite(server) -> None:
    """Kill the blob store alone, as an outage would; PostgreSQL and mlflow server stay up."""
    pid = int((server["home"] / "run" / "azurite.pid").read_text())
    os.killpg(pid, signal.SIGKILL)
    wait_port_closed(int(server["env"]["AZURITE_PORT"]), timeout=10)


def test_a_blob_store_outage_during_register_leaves_no_version_behind(server, registered):
    """With the blob store down, register stops at its first artifact write, before any version exists.

    A failure after the version exists withdraws it (tests/code/registry/test_register_gate.py).
    """
    env = server["client"]
    data = run_id_of(pipeline_step(env, "prepare_data", max_rows=900, seed=11))
    trained = run_id_of(pipeline_step(env, "train_baseline", data_run_id=data, min_df=1))
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    champion_before = psql(server, f"SELECT version FROM registered_model_aliases WHERE name = '{MODEL_NAME}'")
    stop_azurite(server)
    try:
        outage_env = env | {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
        result = subprocess.run(
            [sys.executable, "-m", "steps.register", "--data-run-id", data, "--bootstrap-samples", "50"],
            env=outage_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        line = one_error_line(result, "register")
        assert "cannot log the ranking to the artifact store" in line and "nothing was registered" in line, line
        # MLflow's SQL registry keeps a deleted version's row, redacted: no row names the run any more.
        assert psql(server, f"SELECT version FROM model_versions WHERE run_id = '{trained}'") == []
        with mlflow_env(env):
            assert client.search_model_versions(f"name = '{MODEL_NAME}' and run_id = '{trained}'") == []
        aliases = f"SELECT version FROM registered_model_aliases WHERE name = '{MODEL_NAME}'"
        assert psql(server, aliases) == champion_before
    finally:
        restarted = script("up", server["env"])
        assert restarted.returncode == 0, restarted.stderr
    # Once the store is back, the same register completes: nothing of the failed attempt is in its way.
    pipeline_step(env, "register", data_run_id=data, bootstrap_samples=50)
    with mlflow_env(env):
        [version] = client.search_model_versions(f"name = '{MODEL_NAME}' and run_id = '{trained}'")
    assert version.tags["gate.passed"] in {"true", "false"}


def one_error_line(result: subprocess.CompletedProcess, step: str) -> str:
    """The step failed with status 2 and one error line, no traceback (library warnings may precede it)."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith(f"{step}: error:")]
    return line


def test_wrong_credentials_stop_a_step_in_one_line(server):
    env = server["client"] | {"MLFLOW_TRACKING_PASSWORD": "not-the-password"}
    result = subprocess.run(
        [sys.executable, "-m", "steps.train_baseline"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    line = one_error_line(result, "train_baseline")
    assert "refused the credentials (HTTP 401)" in line and env["MLFLOW_TRACKING_URI"] in line


def test_a_server_that_is_down_stops_a_step_in_one_line_naming_the_uri(server):
    uri = f"http://127.0.0.1:{free_port()}"
    env = server["client"] | {"MLFLOW_TRACKING_URI": uri}
    result = subprocess.run(
        [sys.executable, "-m", "steps.prepare_data"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    line = one_error_line(result, "prepare_data")
    assert f"the tracking server {uri} cannot be reached" in line


def test_down_when_nothing_runs_says_so(tmp_path):
    result = script("down", server_env(tmp_path))
    assert result.returncode == 0 and "not running" in result.stdout


def test_a_port_in_use_is_named_and_nothing_is_started(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = server_env(tmp_path, postgres_port=port)
        result = script("up", env)
    assert result.returncode == 1
    assert f"port {port} (for postgres) is in use by another process: set POSTGRES_PORT" in result.stderr
    assert not (tmp_path / "pgdata").exists()


def test_a_host_beyond_this_machine_demands_authentication(tmp_path):
    result = script("up", server_env(tmp_path) | {"TRACKING_HOST": "0.0.0.0", "TRACKING_AUTH": "none"})
    assert result.returncode == 1 and "needs TRACKING_AUTH=basic" in result.stderr


@pytest.mark.parametrize(
    ("public_uri", "named"),
    [("", "set TRACKING_PUBLIC_URI=https://"), ("http://mlflow.example.com", "must be the https:// address")],
)
def test_a_host_beyond_this_machine_demands_tls_in_front(tmp_path, public_uri, named):
    """Basic auth over plain HTTP sends the password in clear: refused before anything starts."""
    settings = {"TRACKING_HOST": "0.0.0.0", "TRACKING_AUTH": "basic", "TRACKING_PUBLIC_URI": public_uri}
    result = script("up", server_env(tmp_path) | settings)
    assert result.returncode == 1 and named in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "pgdata").exists()
