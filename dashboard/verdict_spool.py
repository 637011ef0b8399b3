"""Verdicts kept on disk until the feedback store has them: a dashboard killed with verdicts waiting loses none.

One JSON file per verdict in `FEEDBACK_SPOOL_DIR` (default `<FEEDBACK_DB>.spool/`, a directory beside
the store, never the store's own file). A file is written to a temporary name, fsync'd, renamed into place
and its directory fsync'd, so a crash leaves either the whole verdict or nothing. Names start with the time
the verdict was given, so listing them sorted gives the order to store them in. A file that cannot be read
back as a verdict is moved to `corrupt/` inside the spool and logged; it never blocks the others
(docs/design.md, "Dashboard input and output").
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import os
import time
from pathlib import Path

from dashboard.feedback import Feedback

FEEDBACK_SPOOL_DIR_ENV = "FEEDBACK_SPOOL_DIR"
SPOOL_SUFFIX = ".spool"
CORRUPT_FOLDER = "corrupt"
_sequence = itertools.count()  # two verdicts of one process in the same nanosecond keep their order
_log = logging.getLogger(__name__)


class SpoolNotWritten(Exception):
    """The spool refused a verdict (read-only, full, missing); the message says why, naming the folder."""


def spool_directory(store_path: Path) -> Path:
    """`FEEDBACK_SPOOL_DIR`, else a folder beside the store: a store file that refuses writes keeps its spool apart."""
    configured = os.environ.get(FEEDBACK_SPOOL_DIR_ENV)
    return Path(configured) if configured else store_path.with_name(store_path.name + SPOOL_SUFFIX)


def spool_name(verdict: Feedback) -> str:
    """The file name: sortable by when the verdict was spooled, unique by its `verdict_id`."""
    return f"{time.time_ns():020d}-{next(_sequence):08d}-{verdict.verdict_id}.json"


class VerdictSpool:
    """The spool folder: put a verdict, list the waiting ones oldest first, remove one once stored."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, verdict: Feedback) -> Path:
        """Write the verdict durably before anything else happens to it.

        Raises:
            SpoolNotWritten: the folder cannot be created or written (the page says so; the verdict stays in memory).
        """
        if not verdict.verdict_id:
            raise ValueError("a spooled verdict needs its verdict_id, or a retry could store it twice")
        path = self.directory / spool_name(verdict)
        temporary = self.directory / f".{path.name}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as handle:
                json.dump(dataclasses.asdict(verdict), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            sync_directory(self.directory)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            why = error.strerror or error
            raise SpoolNotWritten(f"the spool {self.directory} cannot be written either ({why})") from error
        return path

    def waiting(self) -> list[tuple[Path, Feedback]]:
        """The spooled verdicts, oldest first; a file that is no verdict is moved aside and skipped."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                found.append((path, read_verdict(path)))
            except FileNotFoundError:  # another process stored and removed it meanwhile
                continue
            except (OSError, ValueError, TypeError) as error:
                self.move_aside(path, error)
        return found

    def texts_waiting_by(self, user_name: str | None) -> list[str]:
        """The tweets of this person's spooled verdicts (None: the unnamed tester, as the store matches them).

        A queue reopened before these reach the store counts them as judged, so it never asks them again.
        """
        return [verdict.text for _, verdict in self.waiting() if (verdict.user_name or "") == (user_name or "")]

    def remove(self, path: Path) -> None:
        """Forget a verdict the store now holds; another process may have removed it already.

        A file that cannot be removed is stored again later, harmlessly (its `verdict_id` is stored once).
        """
        try:
            path.unlink(missing_ok=True)
            sync_directory(self.directory)
        except OSError as error:
            _log.warning("stored verdict %s stays in the spool (%s); storing it again changes nothing", path, error)

    def move_aside(self, path: Path, why: Exception) -> None:
        """Keep an unreadable or refused file for a person to look at, out of the way of the others."""
        corrupt = self.directory / CORRUPT_FOLDER
        try:
            corrupt.mkdir(exist_ok=True)
            os.replace(path, corrupt / path.name)
        except FileNotFoundError:
            return
        _log.error("spooled verdict %s is not a verdict (%s): moved to %s", path.name, why, corrupt)


def read_verdict(path: Path) -> Feedback:
    """A spooled file back as a verdict.

    Raises:
        ValueError: not JSON, or no verdict id. TypeError: fields that are not a verdict's.
    """
    fields = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(fields, dict):
        raise ValueError("not a JSON object")
    verdict = Feedback(**fields)
    if not verdict.verdict_id:
        raise ValueError("no verdict_id")
    return verdict


def sync_directory(directory: Path) -> None:
    """fsync a folder, so a rename or removal in it survives a power cut, not only a killed process."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
