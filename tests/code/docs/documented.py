"""The commands the README and docs show a user: every `mlflow run` and every `python -m`, as written."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# Where a user reads commands: the README and the docs folder (its research log is history, not instructions).
DOCUMENTS = ("README.md", "docs/*.md")
NOT_INSTRUCTIONS = ("docs/research_log.md",)
COMMAND = re.compile(r"^(?:[A-Z_]+=\S+ +)*(?:mlflow run|(?:\S*/)?python -m) ")
FENCE = re.compile(r"^\s*```")
INLINE = re.compile(r"`([^`\n]+)`")
TRAILING_COMMENT = re.compile(r"\s+#\s.*$")


def documents() -> list[Path]:
    """The README and every doc a user reads, in a stable order."""
    found = [path for pattern in DOCUMENTS for path in sorted(REPO.glob(pattern))]
    return [path for path in found if path.relative_to(REPO).as_posix() not in NOT_INSTRUCTIONS]


def commands_in(text: str) -> list[str]:
    """Each command of `text`: lines of its code blocks (continuations joined) and its inline code spans.

    A compound line (`a && b`) yields each of its parts that is a command; a trailing `# comment` is dropped.
    """
    found: list[str] = []
    in_block = False
    pending = ""
    for line in text.splitlines():
        if FENCE.match(line):
            in_block, pending = not in_block, ""
            continue
        if in_block:
            joined = pending + line.strip()
            if joined.endswith("\\"):
                pending = joined[:-1].rstrip() + " "
                continue
            pending = ""
            found += [part for part in split_compound(TRAILING_COMMENT.sub("", joined)) if COMMAND.match(part)]
        else:
            for span in INLINE.findall(line):
                found += [part for part in split_compound(span) if COMMAND.match(part)]
    return found


def split_compound(line: str) -> list[str]:
    """The commands of a shell line joined by `&&`, stripped."""
    return [part.strip() for part in line.split("&&")]


def documented_commands() -> dict[str, list[str]]:
    """Every distinct command the docs show, with the documents that show it."""
    shown: dict[str, list[str]] = {}
    for path in documents():
        for command in commands_in(path.read_text()):
            shown.setdefault(command, []).append(path.relative_to(REPO).as_posix())
    return shown
