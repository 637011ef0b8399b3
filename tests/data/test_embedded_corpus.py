"""Data tests of the embedded corpus and of the split every comparison shares."""

from __future__ import annotations

import pandas as pd
import pytest

from pyfunc.normalize import normalize_batch
from steps.lib.datasets import clean_dataset, load_embedded, split_dataset


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    """The main job's split of the embedded corpus (default fractions and seed)."""
    frame, _ = clean_dataset(load_embedded())
    return split_dataset(frame, 0.1, 0.1, seed=42)


def test_embedded_corpus_loads_with_binary_labels_and_topics():
    frame = load_embedded()
    assert len(frame) == 38_158
    assert set(frame["label"]) == {0, 1}
    assert frame["label"].sum() == 16_186  # the corpus's "negative" rows; neutral and positive are 0
    assert (frame["source"] == "crowdflower_airline").sum() == 14_638


def test_the_split_is_leak_free_on_the_normalised_text(splits):
    """A tweet and its copy with another URL or case are one tweet: never in two splits."""
    seen = {name: set(normalize_batch(part["text"], "none")) for name, part in splits.items()}
    assert not seen["train"] & seen["val"] and not seen["train"] & seen["test"] and not seen["val"] & seen["test"]


def test_every_split_keeps_the_corpus_class_balance_and_has_no_empty_text(splits):
    shares = {name: part["label"].mean() for name, part in splits.items()}
    assert max(shares.values()) - min(shares.values()) < 0.005
    for part in splits.values():
        assert set(part["label"]) == {0, 1}
        assert part["text"].str.strip().str.len().min() > 0
        assert set(part["sentiment"]) <= {"negative", "neutral", "positive"}
    assert len(splits["val"]) == pytest.approx(0.1 * sum(map(len, splits.values())), rel=0.02)


def test_the_negative_label_is_the_corpus_negative_sentiment(splits):
    """Neutral and positive tweets are the `not_negative` class, as the served labels say."""
    for part in splits.values():
        assert ((part["sentiment"] == "negative") == (part["label"] == 1)).all()
