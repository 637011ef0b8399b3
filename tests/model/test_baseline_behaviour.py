"""Model tests: the TF-IDF baseline trained on the complaint training split, as `train_baseline` builds it by default.

Minimum functionality (clear complaints flagged, clear praise not), invariance (a brand name, a URL
or a mention does not change the verdict) and direction (adding a complaint never lowers
P(negative)), on hand-written cases kept here, apart from the reported behavioural suite.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pyfunc.normalize import normalize_batch
from steps import train_baseline
from steps.lib.cli import parse
from steps.lib.complaint_labels import load_complaint_labels, prepared_splits

CLEAR_COMPLAINTS = [
    "@united lost my bag AGAIN and nobody at the desk will help me. worst airline ever",
    "@AmericanAir flight cancelled, 4 hours on hold, no refund. absolutely terrible service",
    "@SouthwestAir delayed three times today and the crew was rude about it",
]
CLEAR_PRAISE = [
    "@JetBlue thank you so much, the crew was wonderful and we landed early!",
    "@VirginAmerica love the new seats, best flight I have had all year",
    "@united great service today, thanks for the upgrade :)",
]


@pytest.fixture(scope="module")
def model():
    """P(negative) of raw tweets, through the default baseline fitted on the main job's training split."""
    labelled, _ = load_complaint_labels()
    splits = prepared_splits(labelled, max_rows=0, seed=42)
    options = parse(train_baseline.main)  # the command's defaults
    pipeline = train_baseline.build_pipeline(
        **{name: options[name] for name in inspect.signature(train_baseline.build_pipeline).parameters}
    )
    pipeline.fit(normalize_batch(splits["train"]["text"], options["preprocessing"]), splits["train"]["label"])

    def proba(texts: list[str]) -> np.ndarray:
        return pipeline.predict_proba(normalize_batch(texts, options["preprocessing"]))[:, 1]

    proba.validation = splits["val"]
    return proba


def test_the_baseline_ranks_validation_well(model):
    val = model.validation
    assert roc_auc_score(val["label"], model(val["text"].tolist())) > 0.85


def test_clear_complaints_and_clear_praise_fall_on_either_side(model):
    assert (model(CLEAR_COMPLAINTS) > 0.5).all()
    assert (model(CLEAR_PRAISE) < 0.5).all()


@pytest.mark.parametrize(
    ("original", "variant"),
    [
        (
            "@united my flight got cancelled and no one will rebook me",
            "@delta my flight got cancelled and no one will rebook me",
        ),
        ("@JetBlue thank you, lovely crew today", "@JetBlue thank you, lovely crew today http://t.co/abc123"),
        ("@SouthwestAir worst delay ever, 5 hours", "@SouthwestAir @jane_doe worst delay ever, 5 hours"),
    ],
)
def test_names_urls_and_mentions_do_not_change_the_verdict(model, original, variant):
    before, after = model([original, variant])
    assert (before >= 0.5) == (after >= 0.5)
    assert abs(before - after) < 0.15


@pytest.mark.parametrize("tweet", [*CLEAR_PRAISE, "@united flying to Boston tomorrow morning"])
def test_adding_a_complaint_never_lowers_p_negative(model, tweet):
    before, after = model([tweet, f"{tweet} but my bag never arrived and nobody helps"])
    assert after >= before
