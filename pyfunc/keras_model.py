"""Served form of the Keras BiLSTM family, and the text encoding its training shares.

The encoding (normalise with the run's variant -> word tokens -> ids -> pad/truncate) lives here, not
in the training step, so the ids a served model sees are built by the very code it was trained on.
It is plain Python (dict look-ups): Keras 3's `TextVectorization` needs TensorFlow's string ops,
which the torch backend does not have.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pyfunc.contract import TweetClassifier, load_artifact
from pyfunc.normalize import normalize_batch, tokenize

MODEL_ARTIFACT = "keras_model"
VOCABULARY_ARTIFACT = "vocabulary"
DEFAULT_BACKEND = "torch"
BACKENDS = ("torch", "tensorflow")
PAD_TOKEN, OOV_TOKEN = "[PAD]", "[UNK]"
PAD_ID, OOV_ID = 0, 1
PREDICT_BATCH = 512


def import_keras(backend: str = DEFAULT_BACKEND):
    """Import Keras on `backend` unless KERAS_BACKEND already names one (Keras reads it once, at import).

    Args:
        backend: `torch` or `tensorflow`.

    Returns:
        The `keras` module.
    """
    os.environ.setdefault("KERAS_BACKEND", backend)
    import keras

    return keras


def set_torch_threads(threads: int) -> None:
    """Intra-op threads for torch (an operator's OMP_NUM_THREADS is respected by callers).

    This model's per-step matrices are small, so one thread is faster than two: their OpenMP barriers
    stall whenever a sibling thread is descheduled, as happens on a shared machine.

    Args:
        threads: torch's intra-op thread count.
    """
    import torch

    torch.set_num_threads(threads)


class Vocabulary:
    """Token <-> id mapping with the sequence length and normalisation variant it was fitted with.

    Id 0 pads (and is masked by the embedding layer), id 1 stands for any token outside the vocabulary.
    """

    def __init__(self, tokens: list[str], max_length: int, preprocessing: str) -> None:
        if tokens[:2] != [PAD_TOKEN, OOV_TOKEN]:
            raise ValueError(f"a vocabulary starts with {PAD_TOKEN!r} and {OOV_TOKEN!r}")
        self.tokens = tokens
        self.max_length = max_length
        self.preprocessing = preprocessing
        self.index = {token: position for position, token in enumerate(tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @staticmethod
    def tokenize(texts: Iterable[str], preprocessing: str) -> list[list[str]]:
        """Word tokens of normalised tweets: what the vocabulary, gensim and the model all see.

        Args:
            texts: raw tweets.
            preprocessing: the normalisation variant.

        Returns:
            The tokens of each tweet.
        """
        return [tokenize(text) for text in normalize_batch(texts, preprocessing)]

    @classmethod
    def fit(cls, token_lists: list[list[str]], max_size: int, max_length: int, preprocessing: str) -> Vocabulary:
        """The `max_size - 2` most frequent tokens; ties broken alphabetically so ids never depend on order.

        Args:
            token_lists: the training split's tokens, as `tokenize` returns them.
            max_size: ids in all, padding and out-of-vocabulary included.
            max_length: tokens kept per tweet.
            preprocessing: the variant the tokens were normalised with.

        Returns:
            The vocabulary.
        """
        counts = Counter(token for tokens in token_lists for token in tokens)
        ranked = sorted(counts, key=lambda token: (-counts[token], token))
        return cls([PAD_TOKEN, OOV_TOKEN, *ranked[: max(max_size - 2, 0)]], max_length, preprocessing)

    def encode_tokens(self, token_lists: list[list[str]]) -> np.ndarray:
        """Ids of the first `max_length` tokens, zero-padded at the end.

        A tweet with no word token (only punctuation, say) becomes one OOV id rather than an all-padding
        row, so every sequence has at least one unmasked step.

        Args:
            token_lists: tokens per tweet, as `tokenize` returns them.

        Returns:
            An int32 matrix (tweets, max_length).
        """
        ids = np.full((len(token_lists), self.max_length), PAD_ID, dtype=np.int32)
        for row, tokens in enumerate(token_lists):
            row_ids = [self.index.get(token, OOV_ID) for token in tokens[: self.max_length]] or [OOV_ID]
            ids[row, : len(row_ids)] = row_ids
        return ids

    def encode(self, texts: Iterable[str]) -> np.ndarray:
        """Raw tweets -> padded id matrix (batch, max_length), with this vocabulary's normalisation.

        Args:
            texts: raw tweets.

        Returns:
            As `encode_tokens` returns it.
        """
        return self.encode_tokens(self.tokenize(texts, self.preprocessing))

    def oov_rate(self, token_lists: list[list[str]]) -> float:
        """Share of tokens (within max_length) that fall outside the vocabulary.

        Args:
            token_lists: tokens per tweet, as `tokenize` returns them.

        Returns:
            The share, 0 when there are no tokens.
        """
        kept = [token for tokens in token_lists for token in tokens[: self.max_length]]
        return sum(token not in self.index for token in kept) / max(len(kept), 1)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary artifact: tokens, max_length and preprocessing as JSON.

        Args:
            path: the JSON file to write.
        """
        document = {"preprocessing": self.preprocessing, "max_length": self.max_length, "tokens": self.tokens}
        Path(path).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary that `save` wrote.

        Args:
            path: the JSON file.

        Returns:
            The vocabulary, with the max_length and preprocessing it was fitted with.

        Raises:
            ValueError: the tokens do not start with the padding and out-of-vocabulary tokens.
        """
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(document["tokens"], int(document["max_length"]), document["preprocessing"])


class KerasTweetClassifier(TweetClassifier):
    """A Keras model over vocabulary ids; the `.keras` file and vocabulary JSON are its artifacts."""

    runtime_attributes = ("model", "vocabulary")
    model = None
    vocabulary: Vocabulary | None = None

    def __init__(self, preprocessing: str, keras_backend: str = DEFAULT_BACKEND, threads: int = 1, **kwargs) -> None:
        super().__init__(preprocessing, **kwargs)
        self.keras_backend = keras_backend
        self.threads = threads

    def load_artifacts(self, artifacts: dict[str, str]) -> None:
        """Load the vocabulary and the `.keras` model; on torch, set the thread count unless OMP_NUM_THREADS is set.

        Args:
            artifacts: local paths of `keras_model` and `vocabulary`.

        Raises:
            ValueError: the vocabulary was fitted with another preprocessing variant than the model's.
        """
        keras = import_keras(self.keras_backend)
        if keras.backend.backend() == "torch" and "OMP_NUM_THREADS" not in os.environ:
            set_torch_threads(self.threads)
        self.vocabulary = load_artifact(artifacts, VOCABULARY_ARTIFACT, Vocabulary.load)
        if self.vocabulary.preprocessing != self.preprocessing:
            raise ValueError(
                f"vocabulary was built with {self.vocabulary.preprocessing!r}, model expects {self.preprocessing!r}"
            )
        self.model = load_artifact(artifacts, MODEL_ARTIFACT, lambda path: keras.saving.load_model(path, compile=False))

    def raw_proba(self, texts: list[str]) -> np.ndarray:
        """Uncalibrated P(negative): the model's single output, predicted in batches of `PREDICT_BATCH`.

        Args:
            texts: raw tweets.

        Returns:
            One probability per text, in order.
        """
        ids = self.vocabulary.encode(texts)
        parts = [
            np.asarray(self.model.predict_on_batch(ids[start : start + PREDICT_BATCH]), dtype=np.float64)[:, 0]
            for start in range(0, len(ids), PREDICT_BATCH)
        ]
        return np.concatenate(parts) if parts else np.empty(0)
