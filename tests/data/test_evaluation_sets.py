"""Data tests of the sets that decide nothing: the hand-written service traffic and the behavioural suite.

They are reported for every candidate, so their own shape is pinned: size, balance, coverage of the
false-alarm region and of polite complaints, no overlap with what the models train on.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pyfunc.normalize import normalize
from steps.lib.behaviour import generate_cases, load_suite
from steps.lib.datasets import load_embedded
from steps.lib.service_traffic import load_service_traffic

COMPLAINT_KINDS = {"complaint_explicit", "complaint_polite", "complaint_question", "complaint_sarcastic"}
CAPABILITIES = {
    "negation",
    "negated_praise",
    "resolved_problems",
    "question_complaints",
    "non_brand_mood",
    "intensity",
    "sarcasm",
    "airline_vocabulary",
    "names",
    "typos",
    "urls_mentions",
    "emoji",
    "added_sentiment",
    "service_questions",
    "polite_complaints",
}


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    return generate_cases(load_suite())


def test_the_set_is_realistic_service_traffic_about_half_complaints():
    frame, digest = load_service_traffic()
    assert len(frame) >= 150 and len(digest) == 12
    assert 0.4 <= frame["label"].mean() <= 0.6
    assert not frame["text"].duplicated().any()
    # Kinds are labelled consistently, and polite or questioning complaints are there in numbers.
    assert set(frame.loc[frame.label == 1, "kind"]) <= COMPLAINT_KINDS
    assert not set(frame.loc[frame.label == 0, "kind"]) & COMPLAINT_KINDS
    counts = frame["kind"].value_counts()
    assert counts["complaint_polite"] >= 20 and counts["complaint_question"] >= 20
    assert counts["question_neutral"] >= 25 and counts["praise_resolved_problem"] >= 10
    assert frame["brand"].nunique() >= 20


def test_no_service_traffic_tweet_is_in_the_embedded_corpus():
    """Written for this project: none of it can leak into training through the embedded data."""
    corpus_texts = {normalize(str(text), "none") for text in load_embedded()["text"]}
    frame, _ = load_service_traffic()
    assert not {normalize(text, "none") for text in frame["text"]} & corpus_texts


def test_suite_generates_at_least_300_cases_covering_every_capability_and_type(cases):
    assert len(cases) >= 300
    assert set(cases["capability"]) == CAPABILITIES
    assert set(cases["type"]) == {"MFT", "INV", "DIR"}
    assert cases.groupby("capability").size().min() >= 30
    assert not cases.duplicated(["test", "text", "variant"]).any()


def test_false_alarm_guards_cover_service_questions_and_polite_complaints(cases):
    service = cases[cases["capability"] == "service_questions"]
    assert len(service) >= 60
    assert (service["type"] == "MFT").all() and (service["expect"] == "not_negative").all()
    polite = cases[cases["capability"] == "polite_complaints"]
    assert len(polite) >= 40
    assert (polite["type"] == "MFT").all() and (polite["expect"] == "negative").all()


def test_the_complaint_definitions_hard_cases_have_40_cases_each(cases):
    """docs/labelling.md's hard cases, each with the label the guide gives it."""
    expected = {
        "negated_praise": "not_negative",
        "resolved_problems": "not_negative",
        "sarcasm": "negative",
        "question_complaints": "negative",
        "non_brand_mood": "not_negative",
    }
    for capability, label in expected.items():
        hard = cases[cases["capability"] == capability]
        assert len(hard) >= 40, capability
        assert (hard["type"] == "MFT").all() and (hard["expect"] == label).all(), capability


def test_expansion_is_deterministic(cases):
    pd.testing.assert_frame_equal(cases, generate_cases(load_suite()))
