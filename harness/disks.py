"""A small disk of its own for fault tests and benchmarks: a real tmpfs that can fill up or turn read-only.

Mounting needs root (the CI machine has it); elsewhere `DiskUnavailable` says why, and tests skip with it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class DiskUnavailable(RuntimeError):
    """A tmpfs cannot be mounted here; the message is the reason `mount` gave."""


@contextmanager
def small_disk(mount_point: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` (`mount -o size=`, e.g. "1m") on `mount_point` (created), unmounted on exit.

    Raises:
        DiskUnavailable: `mount` refused (not root, or no tmpfs support).
    """
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        raise DiskUnavailable(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave_kib: int) -> Path:
    """Take all but `leave_kib` KiB of the disk with one file, and return it (delete it to make room)."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave_kib * 1024))
    return filler
