"""train_bert's own logic without a full run: parameters, sampling, limits, requirements, parity rule."""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace

import click
import mlflow
import pandas as pd
import pytest

from steps import train_bert
from steps.lib.cli import parse
from steps.lib.fine_tune import FineTuning
from steps.lib.onnx_export import AUC_TOLERANCE, keeps_auc
from steps.lib.pretrained import LABEL_SCHEMES, position_limit
from steps.lib.tracking import StepError
from steps.lib.transformer_data import subsample, training_targets


def arguments(**overrides) -> dict[str, object]:
    """Every option of `train_bert.train`, at the values these tests start from, with `overrides`."""
    defaults = dict(
        data_run_id="",
        pretrained="",
        preprocessing="none",
        max_length=64,
        recipe="sentiment_then_complaints",
        epochs=1.0,
        complaint_epochs=3.0,
        complaint_learning_rate=3e-5,
        batch_size=32,
        learning_rate=5e-5,
        lr_scheduler="linear",
        label_scheme="binary",
        warmup_ratio=0.06,
        weight_decay=0.01,
        max_train_samples=0,
        bf16="auto",
        export_onnx=True,
        quantize=True,
        seed=42,
        threshold_policy="cost",
        cost_ratio=2.0,
        beta=2.0,
        min_precision=0.8,
    )
    return defaults | overrides


def stages(rows: dict[str, pd.DataFrame], **overrides) -> list:
    """`training_stages` of these options, given their Trainer settings as `train` gathers them."""
    options = arguments(**overrides)
    settings = FineTuning(**{field.name: options[field.name] for field in fields(FineTuning)})
    return train_bert.training_stages(
        rows,
        options["recipe"],
        settings,
        options["complaint_epochs"],
        options["complaint_learning_rate"],
        options["max_train_samples"],
        options["label_scheme"],
    )


def test_cli_defaults_are_the_measured_ones():
    parsed = parse(train_bert.main)
    assert (parsed["pretrained"], parsed["max_length"], parsed["epochs"], parsed["batch_size"]) == ("", 64, 1.0, 32)
    assert parsed["max_train_samples"] == 0  # all of the sentiment corpus
    assert (parsed["recipe"], parsed["complaint_epochs"], parsed["complaint_learning_rate"]) == (
        "sentiment_then_complaints",
        3.0,
        3e-5,
    )  # the best of the recipes on the complaint validation split (docs/design.md, "Complaints")
    assert parsed["export_onnx"] is True and parsed["quantize"] is True
    assert parse(train_bert.main, ["--max-length", "48.0", "--bf16", "true"])["max_length"] == 48
    assert parsed == arguments(learning_rate=1e-4)  # the tests' starting point is the command's, a faster rate aside


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_length": 4}, "at least 8"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"max_train_samples": -1}, "max_train_samples"),
        ({"complaint_epochs": 0}, "complaint_epochs and complaint_learning_rate must be > 0"),
        ({"complaint_learning_rate": -1e-5}, "complaint_epochs and complaint_learning_rate must be > 0"),
        ({"threshold_policy": "max_f2"}, "threshold_policy must be one of cost, f_beta, precision_floor"),
        ({"min_precision": 1.5}, r"min_precision must be in \(0, 1\], got 1.5"),
    ],
)
def test_bad_parameters_stop_with_one_line(overrides, message):
    """Checked first: no run is active, nothing is loaded or logged before the error."""
    with pytest.raises(StepError, match=message) as error:
        train_bert.train(**arguments(**overrides))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preprocessing", "stemming"], "'stemming' is not one of 'none', 'stem', 'lemma'"),
        (["--recipe", "sentiment_only"], "is not one of 'sentiment_then_complaints', 'complaints_only', 'mixture'"),
        (["--bf16", "yes"], "'yes' is not one of 'auto', 'true', 'false'"),
        (["--label-scheme", "five_class"], "'five_class' is not one of 'binary', 'three_class'"),
        (["--lr-scheduler", "step"], "'step' is not one of 'linear', 'cosine', 'constant_with_warmup'"),
        (["--threshold-policy", "max_f2"], "'max_f2' is not one of 'cost', 'f_beta', 'precision_floor'"),
    ],
)
def test_unknown_choices_are_refused_by_the_command_line(argv, message):
    with pytest.raises(click.BadParameter, match=message):
        parse(train_bert.main, argv)


def test_three_class_targets_keep_negative_as_class_one():
    frame = pd.DataFrame(
        {"text": list("abcd"), "label": [1, 0, 0, 1], "sentiment": ["negative", "neutral", "positive", "negative"]}
    )
    assert training_targets(frame, "binary").tolist() == [1, 0, 0, 1]
    assert training_targets(frame, "three_class").tolist() == [1, 0, 2, 1]
    assert LABEL_SCHEMES["three_class"][1] == "negative" == LABEL_SCHEMES["binary"][1]


def test_three_class_without_the_corpus_sentiments_is_a_one_line_error():
    binary_only = pd.DataFrame({"text": list("ab"), "label": [1, 0], "sentiment": ["negative", "positive"]})
    with pytest.raises(StepError, match="three_class needs all of neutral, negative, positive"):
        training_targets(binary_only, "three_class")
    with pytest.raises(StepError, match="no sentiment column"):
        training_targets(binary_only.drop(columns="sentiment"), "three_class")


def test_subsample_is_stratified_and_reproducible():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(1000)], "label": [1] * 300 + [0] * 700})
    sample = subsample(frame, 200, seed=3)
    assert len(sample) == 200 and sample["label"].sum() == 60
    assert sample.index.equals(subsample(frame, 200, seed=3).index)
    assert subsample(frame, 0, seed=3) is frame
    assert subsample(frame, 5000, seed=3) is frame


def test_position_limit_takes_the_smaller_real_limit():
    config = SimpleNamespace(max_position_embeddings=512)
    assert position_limit(SimpleNamespace(model_max_length=int(1e30)), config) == 512
    assert position_limit(SimpleNamespace(model_max_length=128), config) == 128


def test_serving_requirements_are_lean():
    onnx = train_bert.serving_requirements(onnx=True)
    names = {line.split("==")[0] for line in onnx}
    assert {"onnxruntime", "tokenizers", "mlflow", "numpy", "pandas", "emoji"} <= names
    assert not names & {"torch", "transformers", "tensorflow", "keras", "scikit-learn"}
    fallback = train_bert.serving_requirements(onnx=False)
    assert fallback[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    assert {line.split("==")[0] for line in fallback[1:]} >= {"torch", "transformers", "tokenizers"}


def test_int8_is_kept_only_within_the_auc_tolerance():
    assert keeps_auc(0.900, 0.900 - AUC_TOLERANCE + 1e-9)
    assert not keeps_auc(0.900, 0.890)
    assert not keeps_auc(0.900, 0.910)  # a different model either way


@pytest.fixture
def bert_step(tracking, monkeypatch, tiny_pretrained):
    """Run `train` inside an MLflow run with given splits (no prepare_data needed)."""

    def run(train_rows: int, **overrides):
        rows = pd.DataFrame({"text": ["bad flight", "great crew"] * 10, "label": [1, 0] * 10, "source": "t"})
        splits = {"train": rows.head(train_rows), "val": rows, "test": rows, "sentiment": rows}
        monkeypatch.setattr(train_bert, "prepare_training", lambda data_run_id: ("prepared", splits))
        with mlflow.start_run(experiment_id=tracking.experiment_id):
            train_bert.train(**arguments(pretrained=str(tiny_pretrained), **overrides))

    return run


def test_empty_training_split_stops_before_loading_a_model(bert_step, monkeypatch):
    monkeypatch.setattr(train_bert, "resolve_and_load", lambda *a: pytest.fail("loaded a model for no data"))
    with pytest.raises(StepError, match="complaint training split is empty"):
        bert_step(train_rows=0)


def test_max_length_above_the_model_limit_stops(bert_step):
    with pytest.raises(StepError, match=r"max_length 1000 exceeds the limit of .* \(128 tokens\)"):
        bert_step(train_rows=20, max_length=1000)


def recipe_rows() -> dict[str, pd.DataFrame]:
    sentiment = pd.DataFrame(
        {
            "text": [f"mood {i}" for i in range(30)],
            "label": [1, 0, 0] * 10,
            "sentiment": ["negative", "neutral", "positive"] * 10,
            "source": "s",
        }
    )
    complaints = pd.DataFrame({"text": [f"complaint {i}" for i in range(8)], "label": [1, 0] * 4, "source": "c"})
    return {"train": complaints, "sentiment": sentiment}


def test_the_default_recipe_learns_the_sentiment_corpus_then_the_complaints_at_their_own_rate():
    default = stages(recipe_rows(), max_train_samples=12, label_scheme="three_class")
    assert [(name, len(rows)) for name, rows, _, _ in default] == [("sentiment", 12), ("complaints", 8)]
    (_, _, sentiment_targets, first), (_, _, complaint_targets, second) = default
    assert set(sentiment_targets) == {0, 1, 2}  # three_class applies to the sentiment stage
    assert list(complaint_targets) == [1, 0] * 4  # a complaint is class 1, what the model serves
    assert (first.epochs, first.learning_rate) == (1.0, 5e-5)
    assert (second.epochs, second.learning_rate) == (3.0, 3e-5)


def test_complaints_only_skips_the_sentiment_corpus_and_mixture_repeats_the_complaints():
    only = stages(recipe_rows(), recipe="complaints_only")
    assert [(name, len(rows)) for name, rows, _, _ in only] == [("complaints", 8)]
    mixed = stages(recipe_rows(), recipe="mixture", complaint_epochs=2.0)
    assert [(name, len(rows)) for name, rows, _, _ in mixed] == [("mixture", 30 + 2 * 8)]
    assert mixed[0][3].learning_rate == 5e-5  # one pass at the sentiment stage's rate
