"""Served form of the fine-tuned transformer: Rust tokenizer + ONNX Runtime, no training stack.

The same `TextEncoder` tokenises the training data and the served requests, so the model sees
identical token ids in both places. Inference runs in ONNX Runtime when the exported graph is an
artifact (the lean path: no torch in the image), otherwise in torch under `inference_mode`.
`batch_size` is fixed at training time: 64 for fp32 graphs, 1 for a dynamic-int8 graph (whose
activation scales are computed per call, so batching would make a tweet's score depend on others).

ONNX Runtime runs each call on one thread, and the batches of a request (and of concurrent requests:
MLflow's server calls `predict` from a thread per request) go to a pool with one worker per core,
which serves the waiting requests round robin (`pyfunc/fair_pool.py`): a one-tweet request never
waits behind another request's whole batch. Intra-op threads would synchronise at every node of this
small graph, so one-thread calls side by side use the cores better than one call spread over them
(docs/serving.md, "What made it fast, and what did not").
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import joblib
import numpy as np
from tokenizers import Tokenizer

from pyfunc.contract import TweetClassifier, load_artifact
from pyfunc.fair_pool import FairPool
from pyfunc.normalize import normalize_batch

HF_MODEL_ARTIFACT = "hf_model"
ONNX_ARTIFACT = "onnx_model"
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
# Raw characters kept per token of `max_length` before normalising: a 100 kB "tweet" costs what a long
# tweet costs. Normalisation only shrinks URLs, elongations and whitespace, so 32 chars per token keeps
# every token the model can see for any real text; training goes through the same cut.
CHARS_PER_TOKEN = 32
DEFAULT_BATCH_SIZE = 64


def cpu_count() -> int:
    """Cores this process may use: joblib's count, which honours CPU affinity and a cgroup CPU quota
    (containers, Web Apps), capped by OMP_NUM_THREADS when that is set (a Spark task's share).

    Returns:
        At least 1.
    """
    cores = joblib.cpu_count()
    # A Spark executor runs several tasks at once and sets OMP_NUM_THREADS to spark.task.cpus: honour it.
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        cores = min(cores, int(threads))
    return max(1, cores)


class TextEncoder:
    """Raw tweets -> truncated token ids, through the shared normalisation and the model's tokenizer."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, preprocessing: str, pad_id: int) -> None:
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)  # counts [CLS]/[SEP]: ids never exceed max_length
        self.max_length = max_length
        self.preprocessing = preprocessing
        self.pad_id = pad_id

    @classmethod
    def from_pretrained_dir(cls, path: str | Path, max_length: int, preprocessing: str) -> TextEncoder:
        """Load the fast tokenizer that `save_pretrained` wrote (tokenizer.json), without transformers.

        Args:
            path: the `hf_model` folder.
            max_length: tokens kept per text, special tokens included.
            preprocessing: the normalisation variant the model was trained with.

        Returns:
            The encoder, padding with the pad token's id (0 when the tokenizer does not know it).
        """
        path = Path(path)
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        config = json.loads((path / "tokenizer_config.json").read_text())
        pad_token = config.get("pad_token") or "[PAD]"
        pad_id = tokenizer.token_to_id(pad_token if isinstance(pad_token, str) else pad_token["content"])
        return cls(tokenizer, max_length, preprocessing, 0 if pad_id is None else pad_id)

    def normalise(self, texts: list[str]) -> list[str]:
        """Cut each text to `max_length * CHARS_PER_TOKEN` characters, then normalise it.

        The cut bounds what a huge input costs yet keeps every token the model can see in any real
        text; training goes through it too.

        Args:
            texts: raw tweets.

        Returns:
            The normalised texts, in order.
        """
        limit = self.max_length * CHARS_PER_TOKEN
        return normalize_batch((text[:limit] for text in texts), self.preprocessing)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text (with special tokens), truncated to `max_length`, not padded.

        Args:
            texts: raw tweets, normalised here.

        Returns:
            The ids of each text.
        """
        return [encoding.ids for encoding in self.tokenizer.encode_batch(self.normalise(texts))]


class OnnxBackend:
    """Logits from the exported graph in ONNX Runtime, one session for the process."""

    def __init__(self, path: str, threads: int) -> None:
        """One session on `path` with `threads` intra-op threads, every graph rewrite on (the served graphs
        need none disabled; docs/design.md, "Known traps", names the one that per-token graphs would)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning workers keep their core busy while they wait, which costs throughput as soon as another
        # process wants the core (docs/serving.md, "Speed").
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {INPUT_NAMES[0]: input_ids, INPUT_NAMES[1]: attention_mask}
        return self.session.run([OUTPUT_NAME], feeds)[0]


class TorchBackend:
    """Logits from the transformers model under `torch.inference_mode` (no ONNX artifact)."""

    def __init__(self, model) -> None:
        self.model = model.eval()

    @classmethod
    def load(cls, path: str, threads: int) -> TorchBackend:
        import torch
        from transformers import AutoModelForSequenceClassification

        torch.set_num_threads(threads)
        return cls(AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True))

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            output = self.model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask))
        return output.logits.float().numpy()


NEGATIVE_INDEX = 1  # class 1 is `negative` in both label schemes (binary; neutral/negative/positive)


def negative_proba(logits: np.ndarray) -> np.ndarray:
    """P(negative) = softmax(logits)[:, 1], computed stably, for two-class or three-class heads.

    A three-class head (neutral, negative, positive) serves P(negative) against both other classes,
    so the served contract is the same whichever scheme the model was trained with.

    Args:
        logits: (rows, classes) from either backend.

    Returns:
        P(negative) per row, as float64.
    """
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights[:, NEGATIVE_INDEX] / weights.sum(axis=1)


class TransformerTweetClassifier(TweetClassifier):
    """Fine-tuned sequence classifier; label 1 (negative) is the model's class index 1."""

    runtime_attributes = ("encoder", "backend", "_pool", "_buffers")
    encoder: TextEncoder | None = None
    backend: OnnxBackend | TorchBackend | None = None

    def __init__(
        self,
        preprocessing: str,
        max_length: int,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threshold: float = 0.5,
        model_version: str = "unlogged",
    ) -> None:
        super().__init__(preprocessing, threshold, model_version)
        self.max_length = max_length
        self.batch_size = batch_size

    def load_artifacts(self, artifacts: dict[str, str]) -> None:
        """Encoder from `hf_model`; ONNX Runtime when an `onnx_model` artifact exists, else torch on every core.

        Args:
            artifacts: local paths of `hf_model` and, when exported, `onnx_model`.
        """

        def encoder_from(path: str) -> TextEncoder:
            return TextEncoder.from_pretrained_dir(path, self.max_length, self.preprocessing)

        encoder = load_artifact(artifacts, HF_MODEL_ARTIFACT, encoder_from)
        if artifacts.get(ONNX_ARTIFACT):
            backend = load_artifact(artifacts, ONNX_ARTIFACT, lambda path: OnnxBackend(path, threads=1))
        else:
            backend = load_artifact(artifacts, HF_MODEL_ARTIFACT, lambda path: TorchBackend.load(path, cpu_count()))
        self.attach(encoder, backend)

    def attach(self, encoder: TextEncoder, backend: OnnxBackend | TorchBackend) -> None:
        """Install the runtime pieces: a worker per core for one-thread ONNX sessions (torch already
        spreads one call over every core, so it gets a single worker), shared fairly by concurrent
        requests, and per-worker batch buffers.

        A pool from an earlier call is shut down first, so only one is ever live.

        Args:
            encoder: the served text encoder.
            backend: where the logits come from.
        """
        previous = getattr(self, "_pool", None)
        if previous is not None:  # training attaches torch, then each export: one live pool at a time
            previous.shutdown(wait=True)
        self.encoder, self.backend = encoder, backend
        workers = cpu_count() if isinstance(backend, OnnxBackend) else 1
        self._pool = FairPool(workers, thread_name_prefix="tweet-scoring")
        self._buffers = threading.local()

    def _padded(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Contiguous (rows, longest) views on this worker's buffers, allocated once per worker thread:
        dynamic padding without an allocation per batch."""
        buffers = self._buffers
        if getattr(buffers, "size", 0) != self.batch_size * self.max_length:
            buffers.size = self.batch_size * self.max_length
            buffers.ids = np.empty(buffers.size, dtype=np.int64)
            buffers.mask = np.empty(buffers.size, dtype=np.int64)
        width = max(len(row) for row in rows)
        ids = buffers.ids[: len(rows) * width].reshape(len(rows), width)
        mask = buffers.mask[: len(rows) * width].reshape(len(rows), width)
        ids.fill(self.encoder.pad_id)
        mask.fill(0)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

    def _score(self, rows: list[list[int]]) -> np.ndarray:
        ids, mask = self._padded(rows)
        return negative_proba(self.backend.logits(ids, mask))

    def raw_proba(self, texts: list[str]) -> np.ndarray:
        """Score in batches of similar length (little padding) on the shared workers, then restore the order.

        Args:
            texts: raw tweets.

        Returns:
            Uncalibrated P(negative) per text, in the input order.
        """
        encoded = self.encoder.encode(texts)
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        chunks = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        scored = self._pool.map(self._score, [[encoded[i] for i in chunk] for chunk in chunks])
        proba = np.empty(len(encoded), dtype=np.float64)
        for chunk, chunk_proba in zip(chunks, scored, strict=True):
            proba[chunk] = chunk_proba
        return proba
