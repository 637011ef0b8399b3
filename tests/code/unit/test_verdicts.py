"""`adapt`'s verdicts: every input a team can get wrong is one line naming the problem and the count."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.feedback import Feedback, FeedbackStore
from steps.lib.tracking import StepError
from steps.lib.verdicts import HELD_OUT_FRACTION, MIN_HELD_OUT_PER_LABEL, MIN_PER_LABEL, hold_out, load_verdicts


def spelled(number: int) -> str:
    """A word per number: verdicts are matched on normalised text, which maps digits to one token."""
    return "".join("abcdefghij"[int(digit)] for digit in str(number))


def verdicts(complaints: int, others: int) -> pd.DataFrame:
    rows = [(f"@united my bag {spelled(i)} is lost", 1) for i in range(complaints)]
    rows += [(f"@united thanks for the {spelled(i)} flight", 0) for i in range(others)]
    return pd.DataFrame(rows, columns=["text", "label"])


def test_csv_and_parquet_give_one_verdict_per_tweet(tmp_path):
    frame = verdicts(MIN_PER_LABEL, MIN_PER_LABEL + 5)
    csv, parquet = tmp_path / "v.csv", tmp_path / "v.parquet"
    pd.concat([frame, frame.head(3)]).to_csv(csv, index=False)  # the same verdict twice is one verdict
    frame.to_parquet(parquet)
    for path in (csv, parquet):
        loaded = load_verdicts(str(path))
        assert len(loaded) == len(frame) and loaded["label"].tolist() == frame["label"].tolist()


def test_the_dashboards_store_is_read_newest_verdict_first(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.db")
    texts = verdicts(MIN_PER_LABEL + 1, MIN_PER_LABEL)
    for text, label in texts.itertuples(index=False):
        name = "negative" if label else "not_negative"
        for tester in ("alice", "bob"):  # two testers agree: an agreed verdict
            store.add(Feedback(text, name, 0.5, 0.5, name, "v1", user_name=tester))
    flipped = texts["text"].iloc[0]
    for tester in ("alice", "bob"):  # both changed their mind
        store.add(Feedback(flipped, "negative", 0.9, 0.5, "not_negative", "v1", user_name=tester))
    loaded = load_verdicts(str(tmp_path / "feedback.db"))
    assert len(loaded) == len(texts)
    assert loaded.loc[loaded["text"] == flipped, "label"].item() == 0


def test_the_held_out_part_has_enough_of_each_label(tmp_path):
    path = tmp_path / "v.csv"
    verdicts(MIN_PER_LABEL, 100).to_csv(path, index=False)
    learn, held = hold_out(load_verdicts(str(path)), seed=0)
    assert len(held) == pytest.approx(HELD_OUT_FRACTION * (MIN_PER_LABEL + 100), abs=1)
    assert held["label"].value_counts().min() >= MIN_HELD_OUT_PER_LABEL
    assert not set(learn["key"]) & set(held["key"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("", "cannot read"),
        ("tweet,label\nlate again,1\n", "has no `text` column"),
        ("text\nlate again\n", "has no `label` column"),
        ("text,label\nlate again,2\n", "label of row 0 is '2'"),
    ],
    ids=["missing", "empty", "no-text", "no-label", "label-2"],
)
def test_a_file_the_team_got_wrong_is_one_line_naming_the_problem(tmp_path, content, message):
    path = tmp_path / "v.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(StepError, match=message):
        load_verdicts(str(path))


def test_the_same_text_with_both_labels_is_refused_with_the_count(tmp_path):
    frame = verdicts(MIN_PER_LABEL, MIN_PER_LABEL)
    contradicting = frame.head(2).assign(label=0)
    path = tmp_path / "v.csv"
    pd.concat([frame, contradicting]).to_csv(path, index=False)
    with pytest.raises(StepError, match="2 texts carry both labels"):
        load_verdicts(str(path))


@pytest.mark.parametrize(("complaints", "others"), [(0, 80), (MIN_PER_LABEL - 1, 80), (80, 5)])
def test_one_label_or_too_few_of_one_is_refused_saying_the_minimum(tmp_path, complaints, others):
    path = tmp_path / "v.csv"
    verdicts(complaints, others).to_csv(path, index=False)
    expected = f"{complaints} verdicts with label 1 and {others} with label 0; adapt needs at least {MIN_PER_LABEL}"
    with pytest.raises(StepError, match=expected):
        load_verdicts(str(path))
