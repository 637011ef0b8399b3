"""The complaint-labelled set (docs/labelling.md): its digest, its split and its provenance are pinned."""

from __future__ import annotations

import pandas as pd
import pytest

from pyfunc.normalize import normalize
from steps.lib.complaint_labels import ComplaintLabelsError, load_complaint_labels, split_frames

DIGEST = "a6430ae4676c"  # a changed file is a new dataset: relabel on purpose, then update this


@pytest.fixture(scope="module")
def labelled() -> pd.DataFrame:
    frame, digest = load_complaint_labels()
    assert digest == DIGEST
    return frame


def test_the_split_is_stored_once_and_later_draws_went_to_training_only(labelled):
    """Draws 1 and 2 were split once; draws 3 to 5 went to training only, so validation and test never changed."""
    splits = split_frames(labelled)
    assert {name: len(part) for name, part in splits.items()} == {"train": 11526, "validation": 1601, "test": 1603}
    later = labelled["id"].str[1:].astype(int) >= 8000
    assert (labelled.loc[later, "split"] == "train").all() and later.sum() == 3971 + 750 + 2009
    for name in ("validation", "test"):
        assert 0.24 <= splits[name]["label"].mean() <= 0.28
    assert 0.29 <= splits["train"]["label"].mean() <= 0.30  # draw 5 is 43% complaints: its hard cases are


def test_no_tweet_is_in_two_splits(labelled):
    """Tweets the models' normalisation makes identical (spam sent to many handles) share a split."""
    keys = labelled.assign(key=[normalize(text, "none") for text in labelled["text"]])
    assert keys.groupby("key")["split"].nunique().max() == 1


def test_every_tweet_has_both_passes_and_a_disagreement_has_a_note(labelled):
    disagreed = labelled["label_a"] != labelled["label_b"]
    assert labelled.loc[disagreed, "adjudicated"].all() and not labelled.loc[~disagreed, "adjudicated"].any()
    assert (labelled.loc[disagreed, "adjudication_note"].str.strip() != "").all()
    assert (labelled.loc[~disagreed, "label"] == labelled.loc[~disagreed, "label_a"]).all()
    assert 1 - disagreed.mean() >= 0.95  # the agreement docs/labelling.md reports (99.0%)


def test_every_kind_of_tweet_is_in_the_test_split(labelled):
    """Brand-addressed and non-brand tweets of every sentiment, from both corpora."""
    test = labelled[labelled["split"] == "test"]
    present = set(zip(test["source"], test["sentiment"], test["addressed"], strict=True))
    for source, sentiment in [
        ("embedded_airline", "negative"),
        ("embedded_airline", "neutral"),
        ("embedded_airline", "positive"),
        ("embedded_other_brands", "negative"),
        ("sentiment140_negative", "negative"),
        ("sentiment140_positive", "positive"),
    ]:
        assert (source, sentiment, True) in present, (source, sentiment)
    for source, sentiment in [("embedded_other_brands", "negative"), ("sentiment140_negative", "negative")]:
        assert (source, sentiment, False) in present, (source, sentiment)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame: frame.drop(columns="label_b"), "no column label_b"),
        (lambda frame: frame.assign(label=frame["label"].where(frame.index > 0, 2)), "1 labels other than 0/1"),
        (lambda frame: frame.assign(split=frame["split"].where(frame.index > 0, "holdout")), "1 splits other than"),
        (lambda frame: pd.concat([frame, frame.head(2)]), "2 repeated ids"),
        (lambda frame: frame.assign(adjudicated=False), "adjudication flags that do not match"),
    ],
)
def test_a_damaged_file_is_refused_naming_the_problem(labelled, tmp_path, change, message):
    damaged = tmp_path / "complaints.csv"
    change(labelled).to_csv(damaged, index=False)
    with pytest.raises(ComplaintLabelsError, match=message):
        load_complaint_labels(damaged)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ComplaintLabelsError, match=r"complaints\.csv: the complaint-labelled set is missing"):
        load_complaint_labels(tmp_path / "complaints.csv")
