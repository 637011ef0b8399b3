"""Start and stop local servers (`mlflow models serve`, `panel serve`, uvicorn) as whole process groups.

`mlflow models serve` is a CLI that starts uvicorn as a child process: terminating the CLI alone
leaves uvicorn answering on the port for a while, so a "stopped" server still serves. Every server
this project starts runs in a session of its own and is stopped by signalling the whole group, and
"stopped" means the port refuses connections (docs/design.md, "Known traps").
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

STOP_TIMEOUT_S = 20.0
PORT_CLOSE_TIMEOUT_S = 20.0


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


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
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


def wait_port_closed(port: int, timeout: float = PORT_CLOSE_TIMEOUT_S, host: str = "127.0.0.1") -> None:
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
