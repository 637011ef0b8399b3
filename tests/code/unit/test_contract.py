"""The served contract: validation naming the row, threshold override, response shape."""

import numpy as np
import pandas as pd
import pytest

from pyfunc.contract import (
    InvalidInput,
    TweetClassifier,
    apply_temperature,
    format_predictions,
    resolve_threshold,
    signature,
    validate_texts,
)


class FixedModel(TweetClassifier):
    """A family whose P(negative) is the text length / 100, to check the plumbing exactly."""

    def raw_proba(self, texts):
        return np.array([min(len(t) / 100, 1.0) for t in texts])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"tweet": ["x"]}), "missing required column 'text'"),
        (pd.DataFrame({"text": []}), "empty batch"),
        (pd.DataFrame({"text": ["ok", None]}), "row 1: text is null"),
        (pd.DataFrame({"text": ["ok", "fine", float("nan")]}), "row 2: text is null"),
        (pd.DataFrame({"text": ["ok", 5]}), "row 1: text must be a string, got int"),
        (pd.DataFrame({"text": ["ok", "fine", "ok", "  \t"]}), "row 3: text is empty"),
    ],
)
def test_invalid_input_names_the_problem_and_the_row(frame, message):
    with pytest.raises(InvalidInput, match=message) as error:
        validate_texts(frame)
    assert error.value.get_http_status_code() == 400


def test_column_oriented_dict_input_is_accepted():
    assert validate_texts({"text": ["a", "b"]}) == ["a", "b"]


@pytest.mark.parametrize("bad", [-0.1, 1.5, "high", None])
def test_threshold_override_must_be_a_probability(bad):
    with pytest.raises(InvalidInput, match=r"params\.threshold"):
        resolve_threshold({"threshold": bad}, 0.3)


def test_threshold_defaults_to_the_stored_one():
    assert resolve_threshold(None, 0.3) == 0.3
    assert resolve_threshold({"threshold": 0.8}, 0.3) == 0.8


def test_response_rows_follow_the_contract():
    frame = format_predictions(np.array([0.2, 0.7]), 0.5, "baseline:abc")
    assert frame.to_dict("records") == [
        {"label": "not_negative", "proba_negative": 0.2, "threshold": 0.5, "model_version": "baseline:abc"},
        {"label": "negative", "proba_negative": 0.7, "threshold": 0.5, "model_version": "baseline:abc"},
    ]


def test_predict_applies_the_request_threshold_only_to_that_request():
    model = FixedModel(preprocessing="none", threshold=0.05, model_version="fixed:1")
    texts = pd.DataFrame({"text": ["a" * 10, "b" * 60]})
    assert model.predict(None, texts)["label"].tolist() == ["negative", "negative"]
    assert model.predict(None, texts, params={"threshold": 0.5})["label"].tolist() == ["not_negative", "negative"]
    assert model.predict(None, texts)["threshold"].tolist() == [0.05, 0.05]


def test_temperature_keeps_the_ranking_and_softens_probabilities():
    proba = np.array([0.05, 0.4, 0.9, 0.99])
    softened = apply_temperature(proba, 2.0)
    assert np.all(np.diff(softened) > 0)
    assert softened[-1] < proba[-1] and softened[0] > proba[0]
    assert apply_temperature(np.array([0.5]), 3.0)[0] == pytest.approx(0.5)


def test_runtime_attributes_are_not_pickled():
    class Heavy(FixedModel):
        runtime_attributes = ("weights",)

    model = Heavy(preprocessing="none")
    model.weights = np.zeros(1_000_000)
    assert "weights" not in model.__getstate__()


def test_signature_declares_text_in_and_the_threshold_param():
    declared = signature(0.42)
    assert declared.inputs.input_names() == ["text"]
    assert declared.outputs.input_names()[:4] == ["label", "proba_negative", "threshold", "model_version"]
    # What the threshold in use means on validation: optional, models logged before it lack it.
    optional = {spec.name for spec in declared.outputs.inputs if not spec.required}
    assert declared.outputs.input_names()[4:] == ["val_precision", "val_recall"] and optional == {
        "val_precision",
        "val_recall",
    }
    assert declared.params.params[0].name == "threshold" and declared.params.params[0].default == 0.42
