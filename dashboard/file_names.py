"""An uploaded file's name made safe for the log, the page and the download's name.

The name is the tester's to choose, so it may hold a newline (a forged log line), an ANSI escape (a
terminal that reads the log runs it), a path (`../../x`) or a thousand characters. One function keeps
only the last path part, turns control and format characters and the characters file systems refuse
into `_`, and caps the length (docs/design.md, "Dashboard input and output").
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_CHARS = 80
DEFAULT_NAME = "tweets.csv"
# Refused in a file name by Windows or POSIX, or read as a path by either.
UNSAFE_IN_FILE_NAMES = set('<>:"/\\|?*')


def safe_char(char: str) -> str:
    """A printable character stays; a control, format (bidi override), separator or unsafe one becomes `_`."""
    category = unicodedata.category(char)
    unprintable = category.startswith("C") or category in ("Zl", "Zp")
    return "_" if unprintable or char in UNSAFE_IN_FILE_NAMES else char


def safe_file_name(name: str | None) -> str:
    """The uploaded file's name as the log, the page and the download may show it: one line, no path, capped.

    A name longer than `MAX_NAME_CHARS` keeps its start and its extension, joined by `…`.
    """
    last_part = re.split(r"[/\\]", name or "")[-1]
    cleaned = "".join(safe_char(char) for char in last_part).strip(" .")
    if not cleaned:
        return DEFAULT_NAME
    if len(cleaned) <= MAX_NAME_CHARS:
        return cleaned
    _, dot, extension = cleaned.rpartition(".")
    extension = f".{extension}" if dot and len(extension) <= 8 else ""
    return cleaned[: MAX_NAME_CHARS - len(extension) - 1] + "…" + extension


def download_name(name: str) -> str:
    """The scored file's name: `scored_` and the upload's safe name without its extension, as `.csv`."""
    stem = safe_file_name(name).rsplit(".", 1)[0] or "tweets"
    return f"scored_{stem}.csv"
