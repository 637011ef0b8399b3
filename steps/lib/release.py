"""What CD may release: a version the gate passed, whose files are still those registered.

`register` records the gate's verdict and a digest of the version's artifacts on the version;
`scripts/pin_model.py` recomputes the digest over what it downloaded and refuses a version without a
passed verdict or with other files (docs/design.md, "Who may write the registry"). Standard library
only: CD's pin step installs nothing but mlflow-skinny.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

GATE_TAGS = ("metric", "candidate_value", "champion_value", "passed")  # always set on a decided version
GATE_PASSED_TAG = "gate.passed"
ARTIFACT_DIGEST_TAG = "artifacts.sha256"  # written once, when register first decides on the version
_CHUNK = 1 << 20


def folder_digest(folder: Path) -> str:
    """SHA-256 over every file under `folder`: its relative path, its size and its bytes, in path order.

    The size before the bytes keeps one file's end from passing for another file's start.

    Args:
        folder: a downloaded model version.

    Returns:
        64 hex digits.
    """
    digest = hashlib.sha256()
    for file in sorted(path for path in folder.rglob("*") if path.is_file()):
        digest.update(f"{file.relative_to(folder).as_posix()}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def release_refusal(tags: dict[str, str], digest: str) -> str | None:
    """Why a version may not be released, in words; None when it may.

    Args:
        tags: the version's tags.
        digest: `folder_digest` of the files that would be released.

    Returns:
        The reason, to follow "refusing <version>: ", or None.
    """
    missing = [f"gate.{key}" for key in GATE_TAGS if f"gate.{key}" not in tags]
    if missing:
        return f"it carries no gate verdict ({', '.join(missing)} missing): only `register` may make a champion"
    if tags[GATE_PASSED_TAG] != "true":
        return f"its gate did not pass ({GATE_PASSED_TAG}={tags[GATE_PASSED_TAG]})"
    recorded = tags.get(ARTIFACT_DIGEST_TAG)
    if not recorded:
        return f"it has no {ARTIFACT_DIGEST_TAG} recorded at registration (registered before `register` recorded one)"
    if recorded != digest:
        return (
            f"its artifacts' digest {digest[:16]}... differs from the {recorded[:16]}... recorded at registration: "
            "its files changed after the gate judged them"
        )
    return None
