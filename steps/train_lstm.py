"""`train_lstm`: a bidirectional LSTM over word ids, its embedding learned or initialised from gensim.

Input: a prepare_data run. Output: a candidate run with the pyfunc under `model/`. It learns the
sentiment corpus first, then the complaint training split, as the transformer does by default.

Keras runs on the backend named by KERAS_BACKEND (torch unless set); the embedding layer starts
random (`learned`) or from Word2Vec/FastText vectors trained with gensim on the training tweets only,
frozen or fine-tuned. Early stopping watches validation AUC and restores the best epoch; loss and
AUC per epoch are MLflow metrics with steps. Reproducible for a given seed: python, numpy and the
backend are seeded, gensim trains on one worker, and MLproject sets PYTHONHASHSEED (gensim hashes words).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import click
import mlflow
import numpy as np

from pyfunc.keras_model import (
    BACKENDS,
    DEFAULT_BACKEND,
    MODEL_ARTIFACT,
    VOCABULARY_ARTIFACT,
    KerasTweetClassifier,
    Vocabulary,
    import_keras,
    set_torch_threads,
)
from steps.lib.candidate import log_candidate
from steps.lib.cli import data_run_option, policy_options, seed_option
from steps.lib.lstm_arms import CURVE_NAMES, LstmArm, arm_options, validate_arm
from steps.lib.operating_point import ThresholdPolicy
from steps.lib.tracking import SENTIMENT_SPLIT, StepError, log_step_params, pinned, prepare_training, run_step

SERVING_PACKAGES = ("mlflow", "keras", "numpy", "pandas", "emoji", "nltk", "lemminflect", "azure-monitor-opentelemetry")
TORCH_CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def keras_backend() -> str:
    """The backend this process will use: KERAS_BACKEND if set (validated), else torch."""
    backend = os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)
    if backend not in BACKENDS:
        raise StepError(f"unsupported KERAS_BACKEND {backend!r}; valid choices: {', '.join(BACKENDS)}")
    return backend


def configure_runtime(seed: int, backend: str, threads: int) -> None:
    """Seed python, numpy and the backend directly, and fix the backend's intra-op threads.

    `keras.utils.set_random_seed` would import TensorFlow whenever it is installed (seconds and a large
    RSS), so on torch the three generators Keras draws from are seeded here; Keras layers take their
    default seeds from python's `random`.
    """
    random.seed(seed)
    np.random.seed(seed)
    if backend == "torch":
        import torch

        torch.manual_seed(seed)
        set_torch_threads(threads)
        return
    keras = import_keras(backend)
    keras.utils.set_random_seed(seed)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # the TensorFlow runtime already started (a test process that used it before)
        print(f"TensorFlow runtime already initialised: threads={threads} not applied", flush=True)


def train_word_vectors(token_lists: list[list[str]], arm: LstmArm, seed: int):
    """Word2Vec or FastText on the training tweets only: one worker and a seed, so reruns match."""
    from gensim.models import FastText, Word2Vec

    options = dict(
        sentences=token_lists,
        vector_size=arm.embedding_dim,
        window=arm.window,
        min_count=arm.min_count,
        sg=arm.sg,
        epochs=arm.w2v_epochs,
        workers=1,
        seed=seed,
    )
    if arm.embeddings == "fasttext":
        return FastText(bucket=arm.fasttext_bucket, **options)
    return Word2Vec(**options)


def embedding_matrix(vocabulary: Vocabulary, vectors, dim: int, seed: int) -> tuple[np.ndarray, float]:
    """Initial embedding weights: a token's gensim vector when gensim knows it, else a random one.

    Random rows are drawn with the vectors' own spread so they sit on the same scale. FastText builds a
    vector for any token from its character n-grams, so its coverage is complete. Returns the matrix and
    the share of vocabulary words (padding and OOV rows excluded) that got a gensim vector.
    """
    known = [token for token in vocabulary.tokens[2:] if token in vectors]
    spread = float(np.std(vectors.vectors)) if len(vectors.vectors) else 0.1
    matrix = np.random.default_rng(seed).normal(0.0, spread, size=(len(vocabulary), dim)).astype(np.float32)
    matrix[0] = 0.0
    for token in known:
        matrix[vocabulary.index[token]] = vectors[token]
    return matrix, len(known) / max(len(vocabulary) - 2, 1)


def build_model(arm: LstmArm, vocabulary_size: int, weights: np.ndarray | None, seed: int):
    """Embedding (masked padding) -> BiLSTM -> dropout -> sigmoid, compiled for AUC."""
    keras = import_keras()
    inputs = keras.Input(shape=(arm.max_length,), dtype="int32", name="token_ids")
    embedded = keras.layers.Embedding(
        vocabulary_size,
        arm.embedding_dim,
        mask_zero=True,
        weights=None if weights is None else [weights],
        trainable=arm.trainable_embeddings or weights is None,
        name="embedding",
    )(inputs)
    encoded = keras.layers.Bidirectional(keras.layers.LSTM(arm.units), name="bilstm")(embedded)
    dropped = keras.layers.Dropout(arm.dropout, seed=seed)(encoded)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_negative")(dropped)
    model = keras.Model(inputs, outputs, name="bilstm_tweet_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=arm.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def epoch_curves_callback(stage: str):
    """MLflow's Keras callback, curves renamed `<stage>_` + CURVE_NAMES, minus its step-less `validation_*` copies.

    Its `on_test_end` re-logs the validation figures of each epoch at step 0 under another name; the
    per-epoch `epoch_val_loss`/`epoch_val_auc` curves already hold them.
    """
    from mlflow.keras import MlflowCallback

    class EpochCurves(MlflowCallback):
        def on_epoch_end(self, epoch, logs=None) -> None:
            renamed = {f"{stage}_{CURVE_NAMES.get(key, f'epoch_{key}')}": value for key, value in (logs or {}).items()}
            super().on_epoch_end(epoch, renamed)

        def on_test_end(self, logs=None) -> None:
            return None

    return EpochCurves()


def fit(model, x_train, y_train, x_val, y_val, arm: LstmArm, stage: str) -> dict[str, float]:
    """Train with early stopping on validation AUC (best weights restored); the stage's curves go to MLflow."""
    keras = import_keras()
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=arm.patience, restore_best_weights=True, verbose=1
    )
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=arm.epochs,
        batch_size=arm.batch_size,
        shuffle=True,
        callbacks=[stopping, epoch_curves_callback(stage)],
        verbose=1 if sys.stdout.isatty() else 2,  # live bars in a terminal, one line per epoch in logs
    )
    val_auc = history.history["val_auc"]
    best = int(np.argmax(val_auc))
    return {"epochs_trained": len(val_auc), "best_epoch": best + 1, "best_epoch_val_auc": val_auc[best]}


def inference_copy(model):
    """The trained network, uncompiled: no optimizer state in the file (a third of the size), all serving needs.

    `keras.models.clone_model` would recompile the copy, and saving would store a fresh optimizer's slots.
    """
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def serving_requirements(backend: str) -> list[str]:
    """Pinned serving packages plus the backend; torch from the CPU index so images do not pull CUDA."""
    if backend == "torch":
        return [*pinned(*SERVING_PACKAGES), f"torch=={version('torch').split('+')[0]}", TORCH_CPU_INDEX]
    return [*pinned(*SERVING_PACKAGES), *pinned("tensorflow-cpu")]


def initial_weights(vocabulary: Vocabulary, train_tokens: list[list[str]], arm: LstmArm, seed: int):
    """None for learned embeddings; else the gensim model and the matrix it gives the embedding layer."""
    if arm.embeddings == "learned":
        return None, None, {}
    print(f"training {arm.embeddings} vectors on {len(train_tokens)} tweets (gensim, 1 worker)", flush=True)
    started = time.perf_counter()
    vectors_model = train_word_vectors(train_tokens, arm, seed)
    weights, coverage = embedding_matrix(vocabulary, vectors_model.wv, arm.embedding_dim, seed)
    seconds = time.perf_counter() - started
    return weights, vectors_model, {"embedding_coverage": coverage, "embedding_train_seconds": seconds}


def log_artifacts_and_candidate(
    classifier: KerasTweetClassifier,
    vectors_model,
    splits,
    train_seconds: float,
    embeddings: str,
    policy: ThresholdPolicy,
) -> None:
    """The gensim model (named by `embeddings`) as an artifact, then the candidate: `.keras` file + vocabulary JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        model_path, vocabulary_path = Path(tmp) / "model.keras", Path(tmp) / "vocabulary.json"
        inference_copy(classifier.model).save(model_path)
        classifier.vocabulary.save(vocabulary_path)
        mlflow.log_metric("model_size_mb", (model_path.stat().st_size + vocabulary_path.stat().st_size) / 2**20)
        if vectors_model is not None:
            vectors_dir = Path(tmp) / "vectors"
            vectors_dir.mkdir()
            vectors_model.save(str(vectors_dir / f"{embeddings}.model"))
            mlflow.log_artifacts(str(vectors_dir), artifact_path=f"embeddings/{embeddings}")
        artifacts = {MODEL_ARTIFACT: str(model_path), VOCABULARY_ARTIFACT: str(vocabulary_path)}
        requirements = serving_requirements(classifier.keras_backend)
        log_candidate(classifier, "lstm", splits, train_seconds, artifacts, requirements, policy)


def train(data_run_id: str, seed: int, arm: LstmArm, policy: ThresholdPolicy) -> None:
    """Train one BiLSTM arm on the prepared data run (the sentiment corpus, then complaints); log it as a candidate.

    Args:
        data_run_id: the prepare_data run (empty = the newest finished one).
        seed: seeds python, numpy, the backend, gensim and dropout.
        arm: the architecture, embeddings and training knobs (`python -m steps.train_lstm --help`).
        policy: how the threshold is chosen on validation.
    """
    validate_arm(arm, policy)
    backend = keras_backend()
    options = {"data_run_id": data_run_id, "seed": seed} | asdict(arm) | policy.params()
    log_step_params(options | {"keras_backend": backend})
    mlflow.set_tag("keras_backend", backend)
    _, splits = prepare_training(data_run_id)
    configure_runtime(seed, backend, arm.threads)

    started = time.perf_counter()  # training time includes normalisation and gensim, as the baseline's does
    stages = {name: splits[split] for name, split in (("sentiment", SENTIMENT_SPLIT), ("complaints", "train"))}
    tokens = {name: Vocabulary.tokenize(rows["text"], arm.preprocessing) for name, rows in stages.items()}
    val_tokens = Vocabulary.tokenize(splits["val"]["text"], arm.preprocessing)
    every_training_tweet = tokens["sentiment"] + tokens["complaints"]
    vocabulary = Vocabulary.fit(every_training_tweet, arm.vocab_size, arm.max_length, arm.preprocessing)
    stats = {
        "vocabulary_size": len(vocabulary),
        "val_oov_rate": vocabulary.oov_rate(val_tokens),
        "train_truncated_share": float(np.mean([len(tweet) > arm.max_length for tweet in every_training_tweet])),
    }
    weights, vectors_model, vector_stats = initial_weights(vocabulary, every_training_tweet, arm, seed)
    model = build_model(arm, len(vocabulary), weights, seed)
    stats["trainable_parameters"] = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    x_val, y_val = vocabulary.encode_tokens(val_tokens), splits["val"]["label"].to_numpy("float32")
    for name, rows in stages.items():  # the sentiment corpus first, then the complaints it is judged on
        print(f"BiLSTM on {backend}, {name}: {len(rows)} tweets, vocabulary {len(vocabulary)}", flush=True)
        x_train, y_train = vocabulary.encode_tokens(tokens[name]), rows["label"].to_numpy("float32")
        stage_stats = fit(model, x_train, y_train, x_val, y_val, arm, name)
        stats |= {f"{name}_{key}": value for key, value in stage_stats.items()}
    train_seconds = time.perf_counter() - started
    mlflow.log_metrics(stats | vector_stats)

    classifier = KerasTweetClassifier(arm.preprocessing, keras_backend=backend, threads=arm.threads)
    classifier.model, classifier.vocabulary = model, vocabulary
    log_artifacts_and_candidate(classifier, vectors_model, splits, train_seconds, arm.embeddings, policy)


@click.command(help=__doc__)
@data_run_option
@seed_option
@arm_options()
@policy_options
def main(
    data_run_id: str,
    seed: int,
    threshold_policy: str,
    cost_ratio: float,
    beta: float,
    min_precision: float,
    **arm: object,
) -> None:
    policy = ThresholdPolicy(threshold_policy, cost_ratio, beta, min_precision)
    run_step("train_lstm", lambda run: train(data_run_id, seed, LstmArm(**arm), policy))


if __name__ == "__main__":
    main()
