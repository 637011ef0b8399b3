"""Data tests of the embedded corpus and of the prepared data every comparison shares."""

from __future__ import annotations

import pandas as pd
import pytest

from pyfunc.normalize import normalize_batch
from steps.lib.complaint_labels import load_complaint_labels, prepared_splits, without_texts
from steps.lib.datasets import clean_dataset, load_embedded


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    """The main job's prepared data: the complaint set's stored split, and the embedded sentiment corpus
    less the complaint validation and test tweets (steps.prepare_data)."""
    labelled, _ = load_complaint_labels()
    prepared = prepared_splits(labelled, max_rows=0, seed=42)
    frame, _ = clean_dataset(load_embedded())
    held_out = pd.concat([prepared["val"]["text"], prepared["test"]["text"]])
    prepared["sentiment"], prepared["removed"] = without_texts(frame, held_out)
    return prepared


def test_embedded_corpus_loads_with_binary_labels_and_topics():
    frame = load_embedded()
    assert len(frame) == 38_158
    assert set(frame["label"]) == {0, 1}
    assert frame["label"].sum() == 16_186  # the corpus's "negative" rows; neutral and positive are 0
    assert (frame["source"] == "crowdflower_airline").sum() == 14_638


def test_no_complaint_validation_or_test_tweet_is_in_the_sentiment_corpus(splits):
    """A tweet and its copy with another URL or case are one tweet: what is judged is never learned."""
    seen = {name: set(normalize_batch(splits[name]["text"], "none")) for name in ("sentiment", "val", "test")}
    assert not seen["sentiment"] & seen["val"] and not seen["sentiment"] & seen["test"]
    assert 2_500 < splits["removed"] < 3_300  # most of the complaint set's held-out tweets come from this corpus


def test_the_sentiment_corpus_has_every_sentiment_and_no_empty_text(splits):
    corpus = splits["sentiment"]
    assert set(corpus["label"]) == {0, 1} and 30_000 < len(corpus) < 36_000
    assert corpus["text"].str.strip().str.len().min() > 0
    assert set(corpus["sentiment"]) == {"negative", "neutral", "positive"}


def test_the_negative_label_is_the_corpus_negative_sentiment(splits):
    """In the sentiment corpus, neutral and positive tweets are label 0; the complaint label is another matter."""
    corpus = splits["sentiment"]
    assert ((corpus["sentiment"] == "negative") == (corpus["label"] == 1)).all()
