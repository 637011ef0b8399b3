"""How far one person is through the label queue: which tweet comes next, and "37 of 50".

A tweet counts as labelled by this person once they gave any verdict on it, here or on the Predict
tab, in this session or an earlier one: reopening the page resumes where they stopped. Tweets are
matched on the served normalisation, as `adapt` matches verdicts (steps/lib/verdicts.py), so a copy
differing only in a URL or a mention is not asked twice (docs/design.md, "Labelling the queue in the
dashboard").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dashboard.queue_source import Queue, QueuedTweet
from pyfunc.normalize import normalize, normalize_batch


@dataclass
class QueueProgress:
    """One person's place in one queue: what they judged (normalised texts) and what they skipped now."""

    queue: Queue
    judged: set[str] = field(default_factory=set)
    skipped: set[int] = field(default_factory=set)  # positions passed over in this session only

    def __post_init__(self) -> None:
        self.keys = normalize_batch(tweet.text for tweet in self.queue.tweets)

    @classmethod
    def resumed(cls, queue: Queue, texts_judged: Iterable[str]) -> QueueProgress:
        """The progress of a person who already gave verdicts on `texts_judged` (from the feedback store)."""
        return cls(queue, set(normalize_batch(texts_judged)))

    @property
    def size(self) -> int:
        return len(self.queue.tweets)

    @property
    def labelled(self) -> int:
        """Tweets of the queue this person gave a verdict on."""
        return sum(key in self.judged for key in self.keys)

    @property
    def done(self) -> bool:
        return self.labelled == self.size

    @property
    def current(self) -> int | None:
        """The position of the next tweet to show: the best-ranked one neither judged nor skipped."""
        for position, key in enumerate(self.keys):
            if key not in self.judged and position not in self.skipped:
                return position
        return None

    @property
    def current_tweet(self) -> QueuedTweet | None:
        position = self.current
        return None if position is None else self.queue.tweets[position]

    def mark_judged(self, text: str) -> None:
        """Count a verdict just given: its tweet (and any copy in the queue) is not shown again."""
        self.judged.add(normalize(text))

    def skip(self) -> None:
        """Pass over the current tweet until the queue is loaded again."""
        if (position := self.current) is not None:
            self.skipped.add(position)

    def text(self) -> str:
        """The progress line: `37 of 50`, and `50 of 50 — done` at the end."""
        line = f"{self.labelled} of {self.size}"
        return f"{line} — done" if self.done else line
