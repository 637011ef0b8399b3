"""The served contract: validation naming the row, threshold override, response shape."""

import numpy as np
import pandas as pd
import pytest

from pyfunc import explain as explain_module
from pyfunc.contract import (
    EXPLANATION_COLUMN,
    InvalidInput,
    TweetClassifier,
    apply_temperature,
    format_predictions,
    resolve_explain,
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
    # What the threshold in use means on validation (optional: models logged before it lack it), then the
    # explanation, sent only when asked for.
    optional = {spec.name for spec in declared.outputs.inputs if not spec.required}
    assert declared.outputs.input_names()[4:] == ["val_precision", "val_recall", "explanation"]
    assert optional == {"val_precision", "val_recall", "explanation"}
    assert declared.params.params[0].name == "threshold" and declared.params.params[0].default == 0.42


def test_signature_declares_the_explain_param_off_and_the_explanation_column_optional():
    declared = signature(0.42)
    explain = next(spec for spec in declared.params.params if spec.name == "explain")
    assert explain.to_dict() == {"name": "explain", "type": "boolean", "default": False, "shape": None}
    column = next(spec for spec in declared.outputs.inputs if spec.name == EXPLANATION_COLUMN)
    assert not column.required
    assert column.type.to_dict()["items"]["properties"].keys() == {"word", "contribution"}


class CountingModel(FixedModel):
    """FixedModel that records every batch it is asked to score."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[list[str]] = []

    def raw_proba(self, texts):
        self.calls.append(list(texts))
        return super().raw_proba(texts)


def test_without_explain_the_answer_and_the_scoring_are_unchanged():
    model = CountingModel(preprocessing="none", threshold=0.05, model_version="fixed:1")
    texts = pd.DataFrame({"text": ["lost my bag", "thanks"]})
    for params in (None, {"threshold": 0.05}, {"explain": False}):
        frame = model.predict(None, texts, params=params)
        assert frame.columns.tolist() == ["label", "proba_negative", "threshold", "model_version"]
    assert model.calls == [["lost my bag", "thanks"]] * 3


def test_explain_gives_each_words_leave_one_out_contribution_from_one_batched_call():
    model = CountingModel(preprocessing="none", threshold=0.05, model_version="fixed:1")
    texts = ["lost  my bag", "ok"]
    frame = model.predict(None, pd.DataFrame({"text": texts}), params={"explain": True})
    # One call for the request, one for every text-less-one-word of the whole request, as sent.
    assert model.calls == [texts, ["  my bag", "lost   bag", "lost  my ", ""]]
    [lost_my_bag, ok] = frame[EXPLANATION_COLUMN].tolist()
    assert [entry["word"] for entry in lost_my_bag] == ["lost", "my", "bag"]
    # P(negative) is the length / 100 here: a word's contribution is what its characters added.
    assert [entry["contribution"] for entry in lost_my_bag] == pytest.approx([0.04, 0.02, 0.03])
    assert ok == [{"word": "ok", "contribution": pytest.approx(0.02)}]
    assert frame["proba_negative"].tolist() == pytest.approx([0.12, 0.02])


def test_explain_follows_the_calibrated_probability_the_response_serves():
    model = FixedModel(preprocessing="none", threshold=0.05, model_version="fixed:1")
    model.temperature = 2.0
    frame = model.predict(None, pd.DataFrame({"text": ["x" * 40 + " bag"]}), params={"explain": True})
    contributions = [entry["contribution"] for entry in frame[EXPLANATION_COLUMN].iloc[0]]
    served = frame["proba_negative"].iloc[0]
    assert contributions[0] == pytest.approx(served - apply_temperature(np.array([0.04]), 2.0)[0])


def test_only_the_first_words_of_a_long_text_are_explained(monkeypatch):
    monkeypatch.setattr(explain_module, "MAX_EXPLAINED_WORDS", 3)
    model = CountingModel(preprocessing="none", threshold=0.05, model_version="fixed:1")
    frame = model.predict(None, pd.DataFrame({"text": ["a b c d e"]}), params={"explain": True})
    assert [entry["word"] for entry in frame[EXPLANATION_COLUMN].iloc[0]] == ["a", "b", "c"]
    assert len(model.calls[1]) == 3


@pytest.mark.parametrize("bad", ["yes", 1, None, 0.0])
def test_explain_must_be_true_or_false(bad):
    with pytest.raises(InvalidInput, match=r"params\.explain must be true or false"):
        resolve_explain({"explain": bad})
    assert resolve_explain(None) is False and resolve_explain({"explain": np.bool_(True)}) is True
