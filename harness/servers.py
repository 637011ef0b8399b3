"""Local servers (`mlflow models serve`, `panel serve`, `mlflow ui`, uvicorn) for tests, benchmarks and scripts.

One way to start a server, wait until it answers and stop it, shared by everything that drives the
project from outside (docs/design.md, "Layout and dependency direction"). `mlflow models serve` is a
CLI that starts uvicorn as a child process: terminating the CLI alone leaves uvicorn answering on the
port for a while, so a "stopped" server still serves. Every server started here runs in a session of
its own, is stopped by signalling the whole group, and "stopped" means the port refuses connections
(docs/design.md, "Known traps").
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NoReturn, Self

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STOP_TIMEOUT_S = 20.0
PORT_CLOSE_TIMEOUT_S = 20.0
LOG_TAIL_CHARS = 3000


class ServerFailed(RuntimeError):
    """A server exited, or never answered, before it was ready; the message ends with its log's tail."""


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on now (bound, then released): for a server, or as a closed port."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def with_interpreter_path(env: dict[str, str]) -> dict[str, str]:
    """`env` with this interpreter's `bin` first on PATH.

    `mlflow models serve --env-manager local` execs `uvicorn` from PATH, and `panel`/`mlflow` are found
    there too: the venv's must win (docs/design.md, "Known traps").
    """
    return {**env, "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")}


def start_server(
    command: list[str], env: dict[str, str], log: IO[str], cwd: str | Path | None = None
) -> subprocess.Popen:
    """Start `command` as the leader of a new process group, its output going to `log`.

    Args:
        command: the server's command line.
        env: its environment.
        log: an open text file that receives stdout and stderr.
        cwd: its working directory (None = this process's).

    Returns:
        The process; pass it to `stop_server` to stop it and every process it started.
    """
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def port_accepts(port: int, host: str = HOST) -> bool:
    """Whether something still accepts TCP connections on the port.

    Args:
        port: the TCP port.
        host: the address to connect to.

    Returns:
        True when a connection is accepted.
    """
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_port_closed(port: int, timeout: float = PORT_CLOSE_TIMEOUT_S, host: str = HOST) -> None:
    """Block until the port refuses connections.

    Args:
        port: the TCP port the stopped server listened on.
        timeout: seconds to wait.
        host: the address to connect to.

    Raises:
        TimeoutError: something still listens after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while port_accepts(port, host):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host}:{port} still accepts connections {timeout:.0f} s after its server was stopped")
        time.sleep(0.1)


def stop_server(process: subprocess.Popen, port: int | None = None, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the server's whole process group, SIGKILL what is left after `timeout`, then wait for the port.

    Args:
        process: a process started by `start_server` (the leader of its own group).
        port: the port it listened on; when given, returns only once the port refuses connections.
        timeout: seconds allowed for a graceful shutdown before the group is killed.
    """
    _signal_group(process, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    # The leader may be gone while a child (uvicorn) still runs: the group is killed either way.
    _signal_group(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    if port is not None:
        wait_port_closed(port)


class ServerProcess:
    """A server on a 127.0.0.1 port, run as its own process group, its output in a log shown when it fails.

    Without a `log_path` the log is a temporary file, removed when the server stops after a clean run
    and kept (its path in the error) when it failed. Also a context manager that stops it on exit.
    """

    name = "server"
    ready_path = "/"  # what `wait_ready` polls, under `url`

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        log_path: Path | None,
        port: int,
        cwd: str | Path | None = None,
        name: str | None = None,
    ) -> None:
        """Start the server; it is not ready until `wait_ready` (or `wait_until_ok`) returns.

        Args:
            command: the server's command line.
            env: its environment.
            log_path: where its output goes (None = a temporary file).
            port: the 127.0.0.1 port it listens on (`free_port()`).
            cwd: its working directory (None = this process's).
            name: what errors call it (default: the class's `name`).
        """
        self.name = name or self.name
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self._keep_log = log_path is not None
        if log_path is None:
            handle, temporary = tempfile.mkstemp(prefix=f"{self.name.replace(' ', '-')}-", suffix=".log")
            os.close(handle)
            log_path = Path(temporary)
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop())
        self._stopped = False
        self.process = start_server(command, env, self._log, cwd=cwd)

    def wait_until_ok(self, url: str, timeout: float, poll: float = 0.5) -> None:
        """Poll `url` until it answers 200; fail at once, log tail included, if the server exits first.

        Raises:
            ServerFailed: the server exited, or `url` did not answer 200 within `timeout` seconds; the
                server is stopped and its log kept.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self._fail(f"{self.name} exited with code {self.process.returncode} before {url} answered")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=5).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self._fail(f"{self.name}: {url} did not answer 200 within {timeout:.0f} s")
            time.sleep(poll)

    def wait_ready(self, timeout: float = 120, poll: float = 0.5) -> Self:
        """Wait until `ready_path` answers 200 (see `wait_until_ok`); returns the server."""
        self.wait_until_ok(self.url + self.ready_path, timeout, poll)
        return self

    def _fail(self, what: str) -> NoReturn:
        self._keep_log = True
        with contextlib.suppress(TimeoutError):
            self.stop()
        raise ServerFailed(f"{what}; the end of its log {self.log_path}:\n{self.log()[-LOG_TAIL_CHARS:]}")

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace")

    def rss_mb(self) -> float:
        """Resident memory of the server and every process it started (uvicorn, workers), in MiB."""
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total / 2**20

    def stop(self) -> None:
        """Stop every process of the server and wait for the port to close; again, it does nothing."""
        if self._stopped:
            return
        self._stopped = True
        try:
            stop_server(self.process, self.port)
        finally:
            self._log.close()
            if not self._keep_log:
                self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ModelServer(ServerProcess):
    """`mlflow models serve -m URI --env-manager local` on a free 127.0.0.1 port, as the README runs it."""

    name = "model server"
    ready_path = "/ping"  # MLflow's `/ping` answers 200 once the model is loaded

    def __init__(
        self,
        model_uri: str,
        env: dict[str, str],
        log_path: Path | None = None,
        workers: int = 1,
        name: str | None = None,
    ) -> None:
        """Start serving `model_uri` (see `ServerProcess`); `workers` is `mlflow models serve -w`."""
        port = free_port()
        command = ["mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local"]
        command += ["-h", HOST, "-p", str(port), "-w", str(workers)]
        super().__init__(command, with_interpreter_path(env), log_path, port, name=name)
        self.predict_url = f"{self.url}/invocations"

    def invocations(self, body: object, content_type: str = "application/json", **kwargs: object) -> requests.Response:
        """POST `body` (text or bytes as they are, anything else as JSON) to `/invocations`."""
        data = body if isinstance(body, (str, bytes)) else None
        json_body = None if data is not None else body
        headers = {"Content-Type": content_type}
        return requests.post(self.predict_url, data=data, json=json_body, headers=headers, timeout=120, **kwargs)


class DashboardServer(ServerProcess):
    """`panel serve dashboard/app.py` for a model server URL on a free 127.0.0.1 port, as the README runs it."""

    name = "panel serve"
    ready_path = "/app"

    def __init__(
        self, model_server_url: str, env: dict[str, str], log_path: Path | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        """Start the dashboard (see `ServerProcess`); `extra_args` go to `panel serve` (`--num-procs 2`)."""
        port = free_port()
        command = ["panel", "serve", "dashboard/app.py", "--address", HOST, "--port", str(port)]
        command += ["--allow-websocket-origin", f"{HOST}:{port}", *extra_args]
        env = with_interpreter_path(env | {"MODEL_SERVER_URL": model_server_url})
        super().__init__(command, env, log_path, port, cwd=REPO)
        self.app_url = f"{self.url}/app"


class TrackingServer(ServerProcess):
    """`mlflow server` on a SQLite store and a local artifact folder under `root`, as a team runs one."""

    name = "tracking server"
    ready_path = "/health"

    def __init__(self, root: Path, env: dict[str, str], port: int | None = None) -> None:
        """Start it (see `ServerProcess`) on `port` (a free one when None); the same `root` and port restart it."""
        port = port or free_port()
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
        command += ["--artifacts-destination", str(root / "artifacts"), "-h", HOST, "-p", str(port), "--workers", "1"]
        super().__init__(command, env, root / f"tracking-server-{port}.log", port)
