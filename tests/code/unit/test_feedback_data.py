"""Feedback rows join training only: newest verdict wins, held-out tweets are left out, bad stores are named."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pandas as pd
import pytest

from dashboard.feedback import Feedback, FeedbackStore
from steps.lib.feedback_data import add_to_training, load_feedback
from steps.lib.tracking import StepError


def splits() -> dict[str, pd.DataFrame]:
    def frame(texts: list[str], labels: list[int]) -> pd.DataFrame:
        return pd.DataFrame({"text": texts, "label": labels, "source": "corpus", "sentiment": "neutral"})

    return {
        "train": frame(["@united lost my bag", "@JetBlue lovely crew"], [1, 0]),
        "val": frame(["@delta is the lounge open?"], [0]),
        "test": frame(["@AmericanAir worst delay ever"], [1]),
    }


def verdict(store: FeedbackStore, text: str, true_label: str, testers: tuple[str, ...] = ("alice", "bob")) -> None:
    """The same verdict from each of `testers` (two who agree make it training data)."""
    predicted = "not_negative" if true_label == "negative" else "negative"
    for tester in testers:
        store.add(Feedback(text, predicted, 0.4, 0.33, true_label, "transformer:abc", user_name=tester))


@pytest.fixture
def store(tmp_path) -> FeedbackStore:
    store = FeedbackStore(tmp_path / "feedback.db")
    verdict(store, "@SouthwestAir could you check on my refund from March?", "not_negative")
    verdict(store, "@SouthwestAir could you check on my refund from March?", "negative")  # newer: wins
    verdict(store, "@DELTA is the lounge open?", "negative")  # validation's tweet, other case
    verdict(store, "@JETBLUE Lovely crew", "negative")  # a training tweet (same after normalising), relabelled
    return store


def test_the_newest_verdict_per_tweet_becomes_a_training_row(store):
    rows, counts = load_feedback(str(store.path))
    assert counts == {"feedback_rows_read": 3, "feedback_conflicts_resolved": 0}  # one agreed verdict per tweet
    refund = rows[rows["text"].str.contains("refund")]
    assert refund["label"].tolist() == [1] and (rows["source"] == "feedback").all()


def test_feedback_joins_training_only_and_relabels_what_it_repeats(store):
    rows, _ = load_feedback(str(store.path))
    before = splits()
    after, counts = add_to_training(before, rows)
    assert counts == {"feedback_rows_added": 1, "feedback_rows_relabelled": 1, "feedback_rows_skipped": 1}
    pd.testing.assert_frame_equal(after["val"], before["val"])
    pd.testing.assert_frame_equal(after["test"], before["test"])
    train = after["train"].set_index("text")["label"]
    assert train["@united lost my bag"] == 1
    assert train["@SouthwestAir could you check on my refund from March?"] == 1
    assert train["@JETBLUE Lovely crew"] == 1 and "@JetBlue lovely crew" not in train
    assert "@DELTA is the lounge open?" not in train
    assert list(after["train"].columns) == list(before["train"].columns)


def test_an_empty_store_adds_nothing(tmp_path):
    rows, counts = load_feedback(str(FeedbackStore(tmp_path / "empty.db").path))
    assert rows.empty and counts == {"feedback_rows_read": 0, "feedback_conflicts_resolved": 0}


def test_a_file_that_is_not_a_feedback_store_is_named(tmp_path):
    missing = tmp_path / "nowhere.db"
    with pytest.raises(StepError, match=r"feedback_db .*nowhere.db not found"):
        load_feedback(str(missing))
    text_file = tmp_path / "notes.db"
    text_file.write_text("not a database at all")
    with pytest.raises(StepError, match=r"notes.db is not a feedback store with a `feedback` table"):
        load_feedback(str(text_file))
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE verdicts (x)")
    with pytest.raises(StepError, match=r"other.db is not a feedback store"):
        load_feedback(str(other))


def test_only_agreed_verdicts_become_training_rows(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.db")
    verdict(store, "@united one tester alone", "negative", testers=("alice",))
    verdict(store, "@united testers disagree", "negative", testers=("alice",))
    verdict(store, "@united testers disagree", "not_negative", testers=("bob",))
    verdict(store, "@united a reviewer decided", "negative", testers=("alice",))
    verdict(store, "@united a reviewer decided", "not_negative", testers=("bob",))
    store.add(
        Feedback(
            "@united a reviewer decided", "negative", 0.4, 0.33, "not_negative", "t:a", "", None, "rita", "reviewer"
        )
    )
    rows, _ = load_feedback(str(store.path))
    assert rows.set_index("text")["label"].to_dict() == {"@united a reviewer decided": 0}


def test_a_store_from_before_sign_in_is_named_until_the_dashboard_migrates_it(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY, text TEXT, true_label TEXT, created_at TEXT)"
        )
    with pytest.raises(StepError, match=r"predates sign-in.*start the dashboard on it once"):
        load_feedback(str(path))
