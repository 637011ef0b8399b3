"""The feedback store's figures for the Model health tab: verdicts per day, agreement, accuracy on agreed verdicts.

Counted in SQL over the store's own views (docs/design.md, "Sign-in, roles and agreed verdicts"), so
the tab, the steps and any SQL client agree on what "agreed" means. The connection is read-only:
looking at the figures never creates, migrates or write-locks the store testers write to.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from dashboard.feedback import DEFAULT_BUSY_TIMEOUT_S

PER_DAY = "SELECT substr(created_at, 1, 10) AS day, COUNT(*) FROM feedback GROUP BY day ORDER BY day"
# The model's answer is the one recorded with the verdict the agreement kept (a reviewer's decision, else
# the newest of the agreeing testers'): the answer the agreed label is checked against.
ACCURACY = """SELECT f.model_version, COUNT(*), SUM(f.predicted_label = a.true_label)
FROM agreed_verdicts AS a JOIN feedback AS f ON f.id = a.id
GROUP BY f.model_version ORDER BY f.model_version"""


class FeedbackUnreadable(Exception):
    """The store cannot be read; the message names the file and why, as one sentence."""


@dataclass(frozen=True)
class VersionAccuracy:
    """How often one model version was right on the tweets whose verdict is agreed."""

    model_version: str
    agreed: int
    right: int

    @property
    def accuracy(self) -> float:
        return self.right / self.agreed


@dataclass(frozen=True)
class FeedbackFigures:
    """Every figure the tab shows from the feedback store."""

    verdicts: int = 0
    per_day: list[tuple[str, int]] = field(default_factory=list)  # (UTC day, verdicts given that day)
    tweets: int = 0  # tweets with at least one verdict
    agreed: int = 0  # tweets with an agreed verdict (training data)
    conflicts: int = 0  # tweets whose testers disagree, waiting for a reviewer
    by_version: list[VersionAccuracy] = field(default_factory=list)

    @property
    def waiting(self) -> int:
        """Tweets with one tester's verdict only: neither agreed nor in conflict until a second one comes."""
        return self.tweets - self.agreed - self.conflicts


def read_figures(path: Path, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> FeedbackFigures:
    """The figures now; an absent file is an empty store (no verdict was ever given here).

    Raises:
        FeedbackUnreadable: the file is not a feedback store or cannot be opened.
    """
    if not path.exists():
        return FeedbackFigures()
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=busy_timeout_s)) as connection:
            per_day = [(str(day), int(count)) for day, count in connection.execute(PER_DAY)]
            tweets = connection.execute("SELECT COUNT(DISTINCT text) FROM feedback").fetchone()[0]
            agreed = connection.execute("SELECT COUNT(*) FROM agreed_verdicts").fetchone()[0]
            conflicts = connection.execute("SELECT COUNT(*) FROM verdict_conflicts").fetchone()[0]
            by_version = [VersionAccuracy(*row) for row in connection.execute(ACCURACY)]
    except sqlite3.Error as error:
        raise FeedbackUnreadable(f"The feedback store {path} cannot be read ({error}).") from None
    return FeedbackFigures(sum(count for _, count in per_day), per_day, tweets, agreed, conflicts, by_version)
