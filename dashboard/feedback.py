"""Durable store of testers' verdicts on predictions, and the wrong-prediction event.

A SQLite file (`FEEDBACK_DB`, default `feedback.db` in the working directory) with the fixed
`feedback` table that the monitoring alert also reads. Each write is its own short transaction on
its own connection, serialised by a lock within the process and by SQLite's busy timeout across
processes (several `panel serve` workers may share the file), so concurrent writes lose nothing.
A write the file refuses (locked past the timeout, read-only, a full disk) raises `FeedbackNotSaved`
with the reason in a tester's words; the dashboard keeps the verdict and retries it.

Every verdict carries who gave it (`user_name`, the sign-in name; NULL for verdicts stored before
sign-in, which count as one unnamed tester's) and their `role`. Only agreed verdicts become training
data: the view `agreed_verdicts` holds, per tweet, a reviewer's newest decision, else the label two or
more testers agree on; `verdict_conflicts` holds the tweets whose testers disagree and no reviewer has
decided (docs/design.md, "Sign-in, roles and agreed verdicts"). Stores made before sign-in are migrated
in place when opened: the two columns are added, no row is changed or dropped.

Each verdict may carry a `verdict_id` (unique, given when the tester gives it): storing the same verdict
twice keeps one row, so a verdict kept in the dashboard's spool can be stored again after a crash without
a doubt whether it was stored already (docs/design.md, "Dashboard input and output"). Older stores get the
column and its unique index on opening; their rows keep a NULL id.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyfunc import telemetry

logger = logging.getLogger(__name__)

LABELS = ("negative", "not_negative")
DEFAULT_PATH = "feedback.db"
FEEDBACK_DB_ENV = "FEEDBACK_DB"
# How long a write waits for another writer's lock; a tester waits this long before hearing why.
DEFAULT_BUSY_TIMEOUT_S = 5.0
# Less free space than this beside a failed write means the disk is full.
FULL_DISK_BYTES = 64 * 1024
SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,          -- ISO-8601 UTC
    text TEXT NOT NULL,
    predicted_label TEXT NOT NULL,
    proba_negative REAL NOT NULL,
    threshold REAL NOT NULL,
    true_label TEXT NOT NULL,
    is_correct INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    user_name TEXT,                    -- the sign-in name; NULL: stored before sign-in (one unnamed tester)
    role TEXT NOT NULL DEFAULT 'tester',
    verdict_id TEXT                    -- unique per verdict given; NULL: stored before verdict ids
)
"""
TESTER, REVIEWER = "tester", "reviewer"
ROLES = (TESTER, REVIEWER)
# Added to a store made before sign-in; its rows become the verdicts of one unnamed tester.
MIGRATION = {
    "user_name": "ALTER TABLE feedback ADD COLUMN user_name TEXT",
    "role": f"ALTER TABLE feedback ADD COLUMN role TEXT NOT NULL DEFAULT '{TESTER}'",
    "verdict_id": "ALTER TABLE feedback ADD COLUMN verdict_id TEXT",
}
VIEWS = (
    "CREATE INDEX IF NOT EXISTS feedback_text ON feedback (text)",
    # A verdict stored twice (a spooled one retried after a crash) stays one row; NULLs never collide.
    "CREATE UNIQUE INDEX IF NOT EXISTS feedback_verdict_id ON feedback (verdict_id)",
    # Each person's newest verdict per tweet: a tester who changes their mind counts once.
    """CREATE VIEW IF NOT EXISTS latest_verdicts AS
    SELECT * FROM feedback AS f WHERE f.id = (
        SELECT MAX(g.id) FROM feedback AS g
        WHERE g.text = f.text AND g.role = f.role AND COALESCE(g.user_name, '') = COALESCE(f.user_name, ''))""",
    # With MAX(id), SQLite takes the bare columns from the row holding that maximum: the newest decision.
    f"""CREATE VIEW IF NOT EXISTS reviewer_decisions AS
    SELECT id, created_at, text, true_label, user_name, MAX(id) AS newest
    FROM latest_verdicts WHERE role = '{REVIEWER}' GROUP BY text""",
    f"""CREATE VIEW IF NOT EXISTS verdict_conflicts AS
    SELECT text, COUNT(*) AS testers, MAX(id) AS newest FROM latest_verdicts
    WHERE role = '{TESTER}' AND text NOT IN (SELECT text FROM reviewer_decisions)
    GROUP BY text HAVING COUNT(DISTINCT true_label) > 1""",
    f"""CREATE VIEW IF NOT EXISTS agreed_verdicts AS
    SELECT id, created_at, text, true_label, 'reviewer' AS agreed_by FROM reviewer_decisions
    UNION ALL
    SELECT MAX(id), MAX(created_at), text, MIN(true_label), 'testers' FROM latest_verdicts
    WHERE role = '{TESTER}' AND text NOT IN (SELECT text FROM reviewer_decisions)
    GROUP BY text HAVING COUNT(*) >= 2 AND COUNT(DISTINCT true_label) = 1""",
)
COLUMNS = (
    "created_at",
    "text",
    "predicted_label",
    "proba_negative",
    "threshold",
    "true_label",
    "is_correct",
    "model_version",
    "user_name",
    "role",
    "verdict_id",
)
READ_COLUMNS = (
    "id, created_at, text, predicted_label, proba_negative, threshold, true_label, model_version, user_name, role"
)


@dataclass(frozen=True)
class Feedback:
    """One stored verdict; `is_correct` follows from the two labels."""

    text: str
    predicted_label: str
    proba_negative: float
    threshold: float
    true_label: str
    model_version: str
    created_at: str = ""
    id: int | None = None
    user_name: str | None = None  # None: given without sign-in (one unnamed tester)
    role: str = TESTER
    verdict_id: str | None = None  # unique per verdict given; the same id is stored once
    # The words the page showed as the reason for the prediction (`Prediction.top_words()`), strongest first.
    # Not a column: they travel with a wrong verdict to its `wrong_prediction` event only (docs/design.md,
    # "Why flagged, on the page").
    top_words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """A verdict read back from JSON (the spool) has a list: as a tuple it equals the one given."""
        object.__setattr__(self, "top_words", tuple(self.top_words))

    @property
    def is_correct(self) -> bool:
        return self.predicted_label == self.true_label

    @property
    def given_by(self) -> str:
        """Who gave the verdict, as the page and the alert name them."""
        return self.user_name or "an unnamed tester"


@dataclass(frozen=True)
class Conflict:
    """A tweet its testers disagree on, waiting for a reviewer: each tester's newest verdict, oldest first."""

    text: str
    verdicts: tuple[Feedback, ...]

    @property
    def prediction(self) -> Feedback:
        """The newest verdict's record of the model's answer (score, threshold, version)."""
        return self.verdicts[-1]


class FeedbackNotSaved(Exception):
    """The store refused a write; the message says why in a tester's words, naming the file."""


def why_not_saved(error: sqlite3.Error | OSError, path: Path) -> str:
    """SQLite's reason for a refused write, as the page shows it."""
    reason = str(error).lower()
    if "locked" in reason or "busy" in reason:
        return f"the feedback store {path} is locked by another writer"
    # SQLite says "unable to open database file" when WAL mode cannot write its side files.
    writable = os.access(path if path.exists() else path.parent, os.W_OK)  # False on a read-only mount, root too
    if "readonly" in reason or "read-only" in reason or not writable:
        return f"the feedback store {path} is read-only"
    # In WAL mode a full disk often surfaces as "disk I/O error": the free space tells the two apart.
    if "full" in reason or ("i/o" in reason and shutil.disk_usage(path.parent).free < FULL_DISK_BYTES):
        return f"the disk holding the feedback store {path} is full"
    return f"the feedback store {path} refused the write ({error})"


def utc_now() -> str:
    """ISO-8601 UTC with an explicit offset, sortable as text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class FeedbackStore:
    """The `feedback` table in one SQLite file; safe to share between threads."""

    def __init__(self, path: str | os.PathLike | None = None, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.path = Path(path or os.environ.get(FEEDBACK_DB_ENV) or DEFAULT_PATH)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._schema_ready = False
        try:
            self._ensure_schema()
        except FeedbackNotSaved as error:  # the page still comes up; the first write says why and is kept
            logger.error("feedback store not writable at start: %s", error)

    def _ensure_schema(self) -> None:
        """Create the file and table once; a store that cannot yet be written is tried again on the next write."""
        if self._schema_ready:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as connection:
                connection.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
                connection.execute(SCHEMA)
                migrate(connection)
        except (sqlite3.Error, OSError) as error:
            raise FeedbackNotSaved(why_not_saved(error, self.path)) from error
        self._schema_ready = True

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one transaction: committed on success, rolled back on error, closed."""
        with closing(sqlite3.connect(self.path, timeout=self.busy_timeout_s)) as connection, connection:
            yield connection

    def add(self, feedback: Feedback) -> Feedback:
        """Store a verdict (validated first) and return it with its id and timestamp.

        A verdict whose `verdict_id` is stored already is not stored again: the stored row is returned.

        Raises:
            ValueError: a label outside `LABELS`, or no text.
            FeedbackNotSaved: the file refused the write (locked, read-only, full disk); nothing was stored.
        """
        return self.add_once(feedback)[0]

    def add_once(self, feedback: Feedback) -> tuple[Feedback, bool]:
        """`add`, also saying whether this call stored the row (False: its `verdict_id` was stored before).

        The caller that reports a stored verdict onwards (the wrong-prediction event) does so only once.
        """
        for name in ("predicted_label", "true_label"):
            if getattr(feedback, name) not in LABELS:
                raise ValueError(f"{name} must be one of {LABELS}, got {getattr(feedback, name)!r}")
        if feedback.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {feedback.role!r}")
        if not feedback.text:
            raise ValueError("feedback needs the tweet text")
        created_at = feedback.created_at or utc_now()
        values = (
            created_at,
            feedback.text,
            feedback.predicted_label,
            float(feedback.proba_negative),
            float(feedback.threshold),
            feedback.true_label,
            int(feedback.is_correct),
            feedback.model_version,
            feedback.user_name,
            feedback.role,
            feedback.verdict_id,
        )
        with self._lock:
            self._ensure_schema()
            try:
                with self._connect() as connection:
                    cursor = connection.execute(
                        f"INSERT INTO feedback ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                        "ON CONFLICT (verdict_id) DO NOTHING",
                        values,
                    )
                    if cursor.rowcount == 1:
                        return Feedback(**{**feedback.__dict__, "created_at": created_at, "id": cursor.lastrowid}), True
                    row_id, created_at = connection.execute(
                        "SELECT id, created_at FROM feedback WHERE verdict_id = ?", (feedback.verdict_id,)
                    ).fetchone()
            except sqlite3.Error as error:
                raise FeedbackNotSaved(why_not_saved(error, self.path)) from error
        return Feedback(**{**feedback.__dict__, "created_at": created_at, "id": row_id}), False

    def recent(self, limit: int = 100) -> list[Feedback]:
        """The newest verdicts first."""
        return self._read(f"SELECT {READ_COLUMNS} FROM feedback ORDER BY id DESC LIMIT ?", (limit,))

    def conflicts(self) -> list[Conflict]:
        """The reviewer's queue: tweets whose testers disagree, oldest disagreement first."""
        verdicts = self._read(
            f"SELECT {READ_COLUMNS} FROM latest_verdicts WHERE role = ? AND text IN "
            "(SELECT text FROM verdict_conflicts) ORDER BY id",
            (TESTER,),
        )
        by_text: dict[str, list[Feedback]] = {}
        for verdict in verdicts:
            by_text.setdefault(verdict.text, []).append(verdict)
        queue = [Conflict(text, tuple(found)) for text, found in by_text.items()]
        return sorted(queue, key=lambda conflict: conflict.verdicts[-1].id)

    def decision(self, text: str) -> Feedback | None:
        """A reviewer's newest decision on the tweet, if one was made."""
        found = self._read(
            f"SELECT {READ_COLUMNS} FROM feedback WHERE text = ? AND role = ? ORDER BY id DESC LIMIT 1",
            (text, REVIEWER),
        )
        return found[0] if found else None

    def texts_judged_by(self, user_name: str | None) -> list[str]:
        """The tweets this person has given a verdict on (None: the unnamed tester), so a queue resumes where
        they stopped (docs/design.md, "Labelling the queue in the dashboard").

        Raises:
            FeedbackNotSaved: the store cannot be opened or read.
        """
        with self._lock:
            self._ensure_schema()
        try:
            with self._connect() as connection:
                rows = connection.execute(
                    "SELECT DISTINCT text FROM feedback WHERE COALESCE(user_name, '') = COALESCE(?, '')", (user_name,)
                ).fetchall()
        except sqlite3.Error as error:
            raise FeedbackNotSaved(why_not_saved(error, self.path)) from error
        return [row[0] for row in rows]

    def _read(self, query: str, parameters: tuple) -> list[Feedback]:
        """Verdicts from a query selecting `READ_COLUMNS`, in its order.

        Raises:
            FeedbackNotSaved: the store cannot be opened or read (the page says why, as for a write).
        """
        with self._lock:
            self._ensure_schema()
        try:
            with self._connect() as connection:
                rows = connection.execute(query, parameters).fetchall()
        except sqlite3.Error as error:
            raise FeedbackNotSaved(why_not_saved(error, self.path)) from error
        names = [name.strip() for name in READ_COLUMNS.split(",")]
        return [Feedback(**dict(zip(names, row, strict=True))) for row in rows]

    def count(self, wrong_only: bool = False) -> int:
        query = "SELECT COUNT(*) FROM feedback" + (" WHERE is_correct = 0" if wrong_only else "")
        with self._connect() as connection:
            return connection.execute(query).fetchone()[0]


def missing_columns(connection: sqlite3.Connection) -> list[str]:
    present = {row[1] for row in connection.execute("PRAGMA table_info(feedback)")}
    return [column for column in MIGRATION if column not in present]


def migrate(connection: sqlite3.Connection) -> None:
    """Give a store made before sign-in the attribution columns and the agreement views; no row changes.

    Several dashboard processes may open an old store at once: the one holding the write lock adds
    the columns, the others find them there once they get it.
    """
    if missing_columns(connection):
        connection.execute("BEGIN IMMEDIATE")
        for column in missing_columns(connection):
            connection.execute(MIGRATION[column])
    for statement in VIEWS:
        connection.execute(statement)


def record_feedback(store: FeedbackStore, feedback: Feedback) -> Feedback:
    """Store the verdict, then report a wrong prediction to monitoring.

    The row is stored first: a telemetry failure is logged and never loses the tester's verdict. A verdict
    stored before (the same `verdict_id`, retried from the spool) is not reported twice.
    """
    stored, new = store.add_once(feedback)
    if new and not stored.is_correct:
        try:
            telemetry.emit_wrong_prediction(
                text=stored.text,
                predicted_label=stored.predicted_label,
                proba_negative=stored.proba_negative,
                true_label=stored.true_label,
                model_version=stored.model_version,
                top_words=stored.top_words,
            )
        except Exception:  # monitoring is best effort; the stored row is what counts
            logger.exception("could not send the wrong-prediction event for feedback %s", stored.id)
    return stored
