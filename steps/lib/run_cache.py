"""What a finished run depends on, so `main` reuses it only when nothing it depends on changed.

A run is reused when it is a run of this project's own step (the `step` tag `run_step` writes), and
its parameters, code digest and input digest all match (docs/design.md, "Candidate runs"):
- code digest: the git commit, plus a digest of the uncommitted changes (tracked edits and
  untracked files) when the tree is dirty, so an edited step is never served from an older run.
  The step records it itself when it starts (`steps.lib.tracking.run_step`), from the code it runs:
  a run that `main` created but whose step never ran, or a run made by anything else, lacks it;
- input digest: for a step reading a file or folder (`prepare_data -P path=...`), a SHA-256 of its
  bytes, so a changed file at the same path is read again. A URL is keyed by the URL itself (it
  is not downloaded just to decide), and the embedded corpus by its installed file.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

CODE_DIGEST_TAG = "pipeline.code_digest"  # written by the step itself, never by `main`
INPUT_DIGEST_TAG = "pipeline.input_digest"
_CHUNK = 1 << 20


def _git(root: Path, *args: str) -> str | None:
    try:
        # Read-only: no index refresh, so a step's digest never holds the lock a user's `git commit` needs.
        command = ["git", "--no-optional-locks", *args]
        result = subprocess.run(command, cwd=root, capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.decode("utf-8", "replace")


def _hash_file(digest, path: Path) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)


def code_version(root: Path) -> str:
    """`<commit>` for a clean tree, `<commit>+dirty.<sha12>` with uncommitted changes, `nogit` outside git.

    The dirty digest covers `git diff HEAD` (staged and unstaged edits) and the bytes of every
    untracked, not ignored file, so two different sets of edits never share a version.

    Args:
        root: the repository's root.

    Returns:
        The code version.
    """
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return "nogit"
    status = _git(root, "status", "--porcelain", "--untracked-files=all") or ""
    if not status.strip():
        return commit.strip()
    digest = hashlib.sha256((_git(root, "diff", "HEAD", "--binary") or "").encode())
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z") or ""
    for name in sorted(filter(None, untracked.split("\0"))):
        digest.update(name.encode())
        if (root / name).is_file():
            _hash_file(digest, root / name)
    return f"{commit.strip()}+dirty.{digest.hexdigest()[:12]}"


def input_digest(path: str) -> str:
    """SHA-256 (12 hex digits) of a file, of a folder's files (names and bytes), or the URL itself; "" for none.

    Args:
        path: a file, a folder, a `file://` URI or a URL; empty when the step reads no file.

    Returns:
        The digest, `url:<path>` for a URL, `missing:<path>` for a path that does not exist, or "".
    """
    if not path:
        return ""
    if "://" in path and not path.startswith("file://"):
        return f"url:{path}"
    location = Path(path.removeprefix("file://")).expanduser()
    if not location.exists():
        return f"missing:{location}"  # the step itself reports the missing path
    digest = hashlib.sha256()
    files = sorted(p for p in location.rglob("*") if p.is_file()) if location.is_dir() else [location]
    for file in files:
        digest.update(str(file.relative_to(location) if location.is_dir() else file.name).encode())
        _hash_file(digest, file)
    return digest.hexdigest()[:12]
