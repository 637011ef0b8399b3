"""The labelling queue's ranking: near the threshold first, disagreement first, copies of what is labelled last."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from steps.lib.label_queue import QUEUE_COLUMNS, Candidates, closeness, rank_queue
from steps.lib.tracking import StepError
from steps.lib.verdicts import load_verdicts

TWEETS = [
    "@united lost my bag again and nobody answers the phone",
    "@delta is the lounge in terminal 4 open this early",
    "@JetBlue thanks for the smooth flight and the snacks",
    "@AmericanAir my refund from march never arrived",
    "@SouthwestAir gate agent was so kind to my grandmother",
]


def ranked_texts(candidates: Candidates, labelled: list[str] | None = None, size: int = 10) -> list[str]:
    return rank_queue(candidates, labelled or [], size)["text"].tolist()


def test_the_tweet_nearest_the_threshold_comes_first_and_far_ones_last():
    proba = np.array([0.95, 0.02, 0.35, 0.60, 0.20])
    order = ranked_texts(Candidates(TWEETS, proba, threshold=1 / 3))
    assert order == [TWEETS[2], TWEETS[4], TWEETS[3], TWEETS[0], TWEETS[1]]


def test_closeness_is_scaled_per_side_of_the_threshold():
    values = closeness(np.array([1 / 3, 0.0, 1.0, 1 / 6, 2 / 3]), 1 / 3)
    assert values == pytest.approx([1.0, 0.0, 0.0, 0.5, 0.5])


def test_where_closeness_is_equal_the_models_disagreement_comes_first():
    champion = np.array([0.6, 0.6, 0.6])
    challenger = np.array([0.62, 0.1, 0.5])
    order = ranked_texts(Candidates(TWEETS[:3], champion, 0.5, challenger))
    assert order == [TWEETS[1], TWEETS[2], TWEETS[0]]


def test_disagreement_can_outrank_a_slightly_closer_tweet_the_models_agree_on():
    champion = np.array([0.52, 0.60])
    challenger = np.array([0.52, 0.05])
    assert ranked_texts(Candidates(TWEETS[:2], champion, 0.5, challenger)) == [TWEETS[1], TWEETS[0]]
    assert ranked_texts(Candidates(TWEETS[:2], champion, 0.5)) == [TWEETS[0], TWEETS[1]]  # no challenger: closeness


def test_a_copy_of_a_labelled_tweet_comes_last_even_at_the_threshold():
    proba = np.array([0.5, 0.45, 0.7, 0.3, 0.6])
    queue = rank_queue(Candidates(TWEETS, proba, 0.5), [TWEETS[0].upper() + " https://t.co/x"], 10)
    assert queue["text"].iloc[-1] == TWEETS[0]
    assert queue["novelty"].iloc[-1] < 0.1  # a URL more: a near-copy, not an exact one
    assert (queue["novelty"].iloc[:-1] > 0.5).all()


def test_copies_within_the_traffic_fill_one_place_not_many():
    texts = [TWEETS[0], TWEETS[0], TWEETS[0], TWEETS[3]]
    queue = rank_queue(Candidates(texts, np.array([0.5, 0.5, 0.5, 0.4]), 0.5), [], 2)
    assert queue["text"].tolist() == [TWEETS[0], TWEETS[3]]


def test_the_queue_holds_size_rows_with_an_empty_label_for_the_verdict_and_is_deterministic():
    rng = np.random.default_rng(3)
    texts = [f"{TWEETS[i % 5]} number {i}" for i in range(40)]
    candidates = Candidates(texts, rng.random(40), 0.4, rng.random(40))
    first, again = rank_queue(candidates, TWEETS[:2], 7), rank_queue(candidates, TWEETS[:2], 7)
    assert list(first.columns) == list(QUEUE_COLUMNS) and len(first) == 7
    assert first["rank"].tolist() == list(range(1, 8)) and (first["label"] == "").all()
    pd.testing.assert_frame_equal(first, again)
    assert first["priority"].is_monotonic_decreasing


def test_a_size_larger_than_the_traffic_queues_every_tweet_once():
    queue = rank_queue(Candidates(TWEETS, np.linspace(0.1, 0.9, 5), 0.5), [], 50)
    assert sorted(queue["text"]) == sorted(TWEETS)


@pytest.mark.parametrize(
    ("candidates", "size", "message"),
    [
        (Candidates([], np.array([]), 0.5), 10, "no recent tweet to rank"),
        (Candidates(TWEETS, np.full(5, 0.5), 0.5), 0, "size must be >= 1"),
        (Candidates(TWEETS, np.full(5, 0.5), 1.0), 5, "threshold must lie strictly between 0 and 1"),
        (Candidates(TWEETS, np.full(4, 0.5), 0.5), 5, "texts and scores differ in length"),
    ],
)
def test_what_cannot_be_ranked_is_one_line(candidates, size, message):
    with pytest.raises(StepError, match=message):
        rank_queue(candidates, [], size)


def test_texts_without_any_word_are_all_new():
    queue = rank_queue(Candidates(["!!!", "???"], np.array([0.5, 0.9]), 0.5), ["..."], 2)
    assert queue["text"].tolist() == ["!!!", "???"] and (queue["novelty"] == 1.0).all()


def test_a_filled_queue_file_is_a_verdicts_file_adapt_reads(tmp_path):
    texts = [f"{TWEETS[i % 5]} case {chr(97 + i // 26)}{chr(97 + i % 26)}q" for i in range(80)]  # no digits: xxnum
    queue = rank_queue(Candidates(texts, np.linspace(0.05, 0.95, 80), 1 / 3), [], 80)
    queue["label"] = queue["rank"] % 2  # the team's verdicts, 40 of each
    path = tmp_path / "label_queue.csv"
    queue.to_csv(path, index=False)
    verdicts = load_verdicts(str(path))
    assert len(verdicts) == 80
    assert dict(zip(verdicts["text"], verdicts["label"], strict=True)) == dict(
        zip(queue["text"], queue["label"], strict=True)
    )


def test_a_queue_file_with_a_row_left_blank_is_refused_by_row(tmp_path):
    queue = rank_queue(Candidates(TWEETS, np.full(5, 0.4), 0.5), [], 5)
    queue.loc[:3, "label"] = "1"
    path = tmp_path / "label_queue.csv"
    queue.to_csv(path, index=False)
    with pytest.raises(StepError, match="label of row 4 is ''"):
        load_verdicts(str(path))
