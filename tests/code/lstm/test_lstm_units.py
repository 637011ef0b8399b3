"""The LSTM family's pieces in-process: vocabulary encoding, embedding matrix, validation, pyfunc round trip."""

from __future__ import annotations

import zipfile
from dataclasses import fields

import click
import h5py
import numpy as np
import pandas as pd
import pytest

from pyfunc import keras_model
from pyfunc.keras_model import (
    MODEL_ARTIFACT,
    OOV_ID,
    OOV_TOKEN,
    PAD_ID,
    PAD_TOKEN,
    VOCABULARY_ARTIFACT,
    KerasTweetClassifier,
    Vocabulary,
    import_keras,
)
from steps.compare_lstm import Decision, markdown_table, paired_auc_interval
from steps.lib.cli import parse
from steps.lib.lstm_arms import ARM_OPTIONS, LstmArm, validate_arm
from steps.lib.operating_point import ThresholdPolicy
from steps.lib.tracking import StepError
from steps.train_lstm import build_model, embedding_matrix, inference_copy, serving_requirements
from steps.train_lstm import main as train_lstm

TWEET = "Cancelled flights again, waiting!! @united 😡 http://t.co/x"


def arm_of(argv: list[str] = ()) -> LstmArm:
    """The arm train_lstm's command line describes."""
    return LstmArm.of(parse(train_lstm, argv))


def vocabulary(token_lists, max_size=50, max_length=6, preprocessing="none") -> Vocabulary:
    return Vocabulary.fit(token_lists, max_size=max_size, max_length=max_length, preprocessing=preprocessing)


def test_vocabulary_ranks_by_frequency_then_alphabetically_after_reserved_ids():
    vocab = vocabulary([["b", "a", "c"], ["c", "a"], ["a"], ["d"]])
    assert vocab.tokens == [PAD_TOKEN, OOV_TOKEN, "a", "c", "b", "d"]
    assert (vocab.index[PAD_TOKEN], vocab.index[OOV_TOKEN]) == (PAD_ID, OOV_ID)


def test_vocabulary_keeps_the_most_frequent_tokens_up_to_max_size():
    vocab = vocabulary([["b", "a", "c"], ["c", "a"], ["a"]], max_size=4)
    assert vocab.tokens == [PAD_TOKEN, OOV_TOKEN, "a", "c"]


def test_short_sequences_are_padded_at_the_end():
    vocab = vocabulary([["late", "flight"]], max_length=5)
    ids = vocab.encode_tokens([["late", "flight"]])
    assert ids.dtype == np.int32
    assert ids.tolist() == [[vocab.index["late"], vocab.index["flight"], PAD_ID, PAD_ID, PAD_ID]]


def test_long_sequences_keep_their_first_max_length_tokens():
    tokens = ["a", "b", "c", "d", "e", "f"]
    vocab = vocabulary([tokens], max_length=3)
    assert vocab.encode_tokens([tokens]).tolist() == [[vocab.index["a"], vocab.index["b"], vocab.index["c"]]]


def test_unknown_tokens_map_to_oov_and_a_tokenless_tweet_to_one_oov_step():
    vocab = vocabulary([["bag"]], max_length=3)
    assert vocab.encode_tokens([["bag", "zeppelin"], []]).tolist() == [
        [vocab.index["bag"], OOV_ID, PAD_ID],
        [OOV_ID, PAD_ID, PAD_ID],
    ]


@pytest.mark.parametrize("variant", ["stem", "lemma"])
def test_tokens_follow_the_preprocessing_variant(variant):
    tokens = Vocabulary.tokenize([TWEET], variant)[0]
    assert tokens == ["cancel", "flight", "again", "wait", "!", "xxuser", "emoji_enraged_face", "xxurl"]


@pytest.mark.parametrize("variant", ["stem", "lemma"])
def test_encode_normalises_raw_text_with_the_vocabulary_variant(variant):
    vocab = vocabulary(Vocabulary.tokenize(["waiting for cancelled flights"], variant), preprocessing=variant)
    assert vocab.encode(["WAITS... cancelling"])[0, :2].tolist() != [OOV_ID, OOV_ID]
    assert vocab.encode(["waiting"])[0, 0] == vocab.index["wait"]


def test_oov_rate_counts_tokens_outside_the_vocabulary():
    vocab = vocabulary([["bag", "lost"]])
    assert vocab.oov_rate([["bag", "lost", "again", "today"]]) == 0.5


def test_vocabulary_survives_a_save_and_load(tmp_path):
    vocab = vocabulary([["ça", "va", "😡"]], max_length=7, preprocessing="lemma")
    vocab.save(tmp_path / "vocabulary.json")
    loaded = Vocabulary.load(tmp_path / "vocabulary.json")
    assert (loaded.tokens, loaded.max_length, loaded.preprocessing) == (vocab.tokens, 7, "lemma")


def word2vec(sentences, dim=8):
    from gensim.models import Word2Vec

    return Word2Vec(sentences, vector_size=dim, min_count=2, epochs=2, workers=1, seed=1)


def test_embedding_matrix_gives_known_words_their_gensim_vector_and_unknown_words_a_random_one():
    sentences = [["lost", "bag", "again"], ["lost", "bag", "today"], ["rare"]]
    vocab = vocabulary(sentences)
    vectors = word2vec(sentences).wv
    matrix, coverage = embedding_matrix(vocab, vectors, dim=8, seed=3)
    assert matrix.shape == (len(vocab), 8)
    np.testing.assert_array_equal(matrix[vocab.index["lost"]], vectors["lost"])
    assert "rare" not in vectors and np.abs(matrix[vocab.index["rare"]]).sum() > 0
    assert not matrix[PAD_ID].any()
    assert coverage == pytest.approx(2 / 5)  # lost, bag of lost/bag/again/today/rare


def test_embedding_matrix_is_seeded():
    sentences = [["lost", "bag"], ["lost", "bag"], ["rare"]]
    vocab, vectors = vocabulary(sentences), word2vec(sentences).wv
    np.testing.assert_array_equal(embedding_matrix(vocab, vectors, 8, 3)[0], embedding_matrix(vocab, vectors, 8, 3)[0])


def test_fasttext_builds_vectors_for_words_it_never_saw():
    from gensim.models import FastText

    sentences = [["delayed", "flight"], ["delayed", "flight"]]
    model = FastText(sentences, vector_size=8, min_count=1, epochs=1, workers=1, seed=1, bucket=1000)
    vocab = vocabulary([["delayed", "flight", "delays"]])
    _, coverage = embedding_matrix(vocab, model.wv, dim=8, seed=1)
    assert coverage == 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--units", "0"], "units must be a positive integer, got 0"),
        (["--max-length", "-4"], "max_length must be a positive integer, got -4"),
        (["--vocab-size", "2"], "vocab_size must be at least 3"),
        (["--dropout", "1.0"], "dropout must be in [0, 1)"),
        (["--learning-rate", "0"], "learning_rate must be positive"),
        (["--sg", "2"], "sg must be 0 (CBOW) or 1 (skip-gram)"),
        (["--embeddings", "learned", "--trainable-embeddings", "false"], "freezes random vectors"),
    ],
)
def test_bad_parameters_are_refused_naming_the_problem(argv, message):
    with pytest.raises(StepError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        validate_arm(arm_of(argv), ThresholdPolicy())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preprocessing", "stemming"], "'stemming' is not one of 'none', 'stem', 'lemma'"),
        (["--embeddings", "glove"], "'glove' is not one of 'learned', 'word2vec', 'fasttext'"),
    ],
)
def test_unknown_choices_are_refused_by_the_command_line(argv, message):
    with pytest.raises(click.BadParameter, match=message):
        parse(train_lstm, argv)


def test_defaults_are_valid():
    validate_arm(arm_of(), ThresholdPolicy())


def test_an_arm_is_the_arm_options_and_any_not_given_take_their_defaults():
    assert [field.name for field in fields(LstmArm)] == list(ARM_OPTIONS)
    assert LstmArm.of({"units": 3, "seed": 7}) == LstmArm.of(
        {name: spec[1] for name, spec in ARM_OPTIONS.items()} | {"units": 3}
    )


def test_served_requirements_pin_the_cpu_build_of_torch():
    requirements = serving_requirements("torch")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    torch_pin = next(r for r in requirements if r.startswith("torch=="))
    assert "+" not in torch_pin
    assert any(r.startswith("keras==") for r in requirements)
    assert not any(r.startswith("tensorflow") for r in requirements)


@pytest.fixture(scope="module")
def tiny_pyfunc(tmp_path_factory):
    """A tiny untrained BiLSTM saved as the pyfunc's artifacts, and the classifier loaded from them."""
    folder = tmp_path_factory.mktemp("keras_pyfunc")
    arm = arm_of(["--max-length", "6", "--embedding-dim", "4", "--units", "3"])
    vocab = vocabulary(Vocabulary.tokenize(["lost my bag", "great crew thanks"], "stem"), preprocessing="stem")
    model = build_model(arm, len(vocab), weights=None, seed=42)
    model.save(folder / "model.keras")
    vocab.save(folder / "vocabulary.json")
    classifier = KerasTweetClassifier("stem", keras_backend="torch", threshold=0.5, model_version="lstm:test")
    classifier.load_artifacts(
        {MODEL_ARTIFACT: str(folder / "model.keras"), VOCABULARY_ARTIFACT: str(folder / "vocabulary.json")}
    )
    return classifier, model, vocab


def test_pyfunc_scores_in_batches_like_the_trained_model(tiny_pyfunc, monkeypatch):
    classifier, model, vocab = tiny_pyfunc
    texts = ["lost my bag", "great crew", "!!!", "x " * 300, "😡😡 #NeverAgain"]
    expected = model.predict(vocab.encode(texts), verbose=0)[:, 0]
    monkeypatch.setattr(keras_model, "PREDICT_BATCH", 2)
    np.testing.assert_allclose(classifier.raw_proba(texts), expected, rtol=1e-6)


def test_pyfunc_answers_the_contract_and_pickles_without_its_model(tiny_pyfunc):
    classifier = tiny_pyfunc[0]
    frame = classifier.predict(None, pd.DataFrame({"text": ["lost my bag", "great crew"]}), params={"threshold": 0.0})
    assert frame.columns.tolist() == ["label", "proba_negative", "threshold", "model_version"]
    assert frame["label"].tolist() == ["negative", "negative"]
    assert set(classifier.__getstate__()) >= {"preprocessing", "keras_backend", "threads", "threshold"}
    assert not {"model", "vocabulary"} & set(classifier.__getstate__())


def test_pyfunc_explains_each_word_by_leaving_it_out(tiny_pyfunc):
    """Contributions through the served encoding and model (docs/design.md, "Explanations")."""
    classifier = tiny_pyfunc[0]
    text = "lost my bag, thanks"
    frame = classifier.predict(None, pd.DataFrame({"text": [text]}), params={"explain": True})
    explanation = frame["explanation"].iloc[0]
    assert [entry["word"] for entry in explanation] == ["lost", "my", "bag,", "thanks"]
    without = classifier.predict_proba(["my bag, thanks", "lost bag, thanks", "lost my thanks", "lost my bag,"])
    expected = frame["proba_negative"].iloc[0] - without
    np.testing.assert_allclose([entry["contribution"] for entry in explanation], expected, atol=1e-6)


def test_pyfunc_refuses_a_vocabulary_of_another_variant(tiny_pyfunc, tmp_path):
    vocab = tiny_pyfunc[2]
    Vocabulary(vocab.tokens, vocab.max_length, "lemma").save(tmp_path / "vocabulary.json")
    classifier = KerasTweetClassifier("stem")
    with pytest.raises(ValueError, match="vocabulary was built with 'lemma'"):
        classifier.load_artifacts({MODEL_ARTIFACT: "unused", VOCABULARY_ARTIFACT: str(tmp_path / "vocabulary.json")})


def test_markdown_table_formats_floats_and_keeps_columns():
    table = pd.DataFrame({"arm": ["stem+word2vec"], "val_roc_auc": [0.912345], "epochs_trained": [3]})
    assert markdown_table(table).splitlines() == [
        "| arm | val_roc_auc | epochs_trained |",
        "|---|---|---|",
        "| stem+word2vec | 0.9123 | 3 |",
    ]


def test_decision_says_when_the_interval_includes_zero():
    close = Decision("stem vs lemma", "lemma", "stem", 0.91, 0.905, -0.002, 0.012)
    clear = Decision("stem vs lemma", "lemma", "stem", 0.93, 0.90, 0.01, 0.05)
    assert "Decision: lemma" in close.markdown(3596) and "not distinguishable" in close.markdown(3596)
    assert "+0.0300" in clear.markdown(3596) and "excludes 0" in clear.markdown(3596)


def test_paired_interval_is_zero_for_identical_runs_and_positive_for_a_clearly_better_one(monkeypatch):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    tables = {
        "good": pd.DataFrame({"text": map(str, range(400)), "label": labels, "proba_negative": labels * 0.8 + 0.1}),
        "noise": pd.DataFrame({"text": map(str, range(400)), "label": labels, "proba_negative": rng.random(400)}),
    }
    monkeypatch.setattr("steps.compare_lstm.validation_predictions", tables.__getitem__)
    assert paired_auc_interval("good", "good", seed=1) == (0.0, 0.0)
    low, high = paired_auc_interval("good", "noise", seed=1)
    assert 0.3 < low <= high < 0.6


def test_inference_copy_drops_the_optimizer_state_and_predicts_the_same(tmp_path):
    arm = arm_of(["--max-length", "6", "--embedding-dim", "4", "--units", "3"])
    model = build_model(arm, 50, weights=None, seed=42)
    model.fit(np.ones((4, 6), dtype="int32"), np.zeros(4), verbose=0)  # builds the optimizer's slots
    inference_copy(model).save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive, archive.open("model.weights.h5") as weights:
        assert "optimizer" not in h5py.File(weights, "r")
    keras = import_keras()
    ids = np.array([[2, 3, 4, 0, 0, 0]], dtype="int32")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
