"""Where a benchmark's figures come from: code, model, machine, load and date, recorded beside them."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from steps.lib.run_cache import code_version
from steps.lib.tracking import PROJECT_ROOT


def cpu_model() -> str:
    """The CPU's model name: benchmark figures depend on the machine (docs/design.md, "Main job budget").

    Returns:
        The first `model name` of /proc/cpuinfo, or `unknown`.
    """
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


MATRIX_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> str:
    """The CPU's matrix-relevant instruction sets: the same model name can come with or without them.

    Returns:
        Those of `MATRIX_FLAGS` that /proc/cpuinfo lists, space-separated (empty when none or unknown).
    """
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return ""
    return " ".join(flag for flag in MATRIX_FLAGS if flag in flags)


def model_provenance(model_uri: str) -> dict[str, str]:
    """Registered name, version and training run of a `models:/` URI (resolved once), or the URI itself."""
    record = {"model_uri": model_uri}
    if not model_uri.startswith("models:/"):
        return record
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name, _, rest = model_uri.removeprefix("models:/").partition("@")
    client = MlflowClient()
    try:
        if rest:  # an alias
            version = client.get_model_version_by_alias(name, rest)
        else:
            name, _, number = model_uri.removeprefix("models:/").partition("/")
            version = client.get_model_version(name, number)
    except MlflowException:
        return record
    return record | {"model_name": name, "model_version": str(version.version), "model_run_id": version.run_id or ""}


def provenance(model_uri: str = "") -> dict[str, str]:
    """Commit, CPU model and flags, cores, load average at start, UTC date (and the model, when given).

    Args:
        model_uri: the benchmarked model's URI (empty = none).

    Returns:
        `git_commit`, `cpu`, `cpu_flags`, `cores`, `load_at_start` and `date`, all strings; with a URI also
        `model_uri`, plus `model_name`, `model_version` and `model_run_id` for a registered `models:/` one.
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    record = {
        "git_commit": code_version(PROJECT_ROOT),  # commit, plus a digest of uncommitted changes
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": str(os.cpu_count()),
        "load_at_start": f"{load:.2f}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return record | (model_provenance(model_uri) if model_uri else {})
