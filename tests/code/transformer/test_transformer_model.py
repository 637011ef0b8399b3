"""The transformer pyfunc: tokenisation with truncation, label mapping, batching, backends, threshold."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pyfunc import transformer_model
from pyfunc.contract import LABELS
from pyfunc.normalize import normalize
from pyfunc.transformer_model import (
    CHARS_PER_TOKEN,
    HF_MODEL_ARTIFACT,
    ONNX_ARTIFACT,
    OnnxBackend,
    TextEncoder,
    TorchBackend,
    TransformerTweetClassifier,
    cpu_count,
    negative_proba,
)
from steps.lib.pretrained import load_pretrained
from tests.conftest import REPO

TEXTS = [
    "@united lost my bag AGAIN!!! worst airline ever 😡 http://t.co/x",
    "thanks",
    "Flight was fine, crew was nice and the seats were comfortable #happy",
    "never flying @AmericanAir again... 3 hours on the tarmac :(",
    "ok",
    "The wifi didn't work the whole flight, and nobody at the gate could tell us why we were delayed",
]


@pytest.fixture(scope="module")
def tiny(tiny_pretrained):
    """The tiny model loaded as training loads it."""
    return load_pretrained(str(tiny_pretrained), True)


@pytest.fixture(scope="module")
def onnx_path(tiny, tmp_path_factory):
    from steps.lib.onnx_export import export_onnx

    _, model = tiny
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx", pad_id=0, max_length=16)


def classifier(encoder, backend, batch_size=2, threshold=0.5) -> TransformerTweetClassifier:
    model = TransformerTweetClassifier("none", encoder.max_length, batch_size=batch_size, threshold=threshold)
    model.attach(encoder, backend)
    return model


def test_long_text_is_truncated_to_max_length_with_special_tokens(tiny_encoder):
    long_text = "my flight was delayed again and again " * 50
    ids = tiny_encoder.encode([long_text, "ok"])
    assert len(ids[0]) == tiny_encoder.max_length
    assert ids[0][0] == 101 and ids[0][-1] == 102  # [CLS] ... [SEP] survive truncation
    assert ids[1] == [101, 7929, 102]  # short texts are not padded


def test_a_100kb_tweet_is_cut_before_normalisation(tiny_encoder):
    huge = "terrible service 😡 " * 6000
    assert len(huge) > 100_000
    [normalised] = tiny_encoder.normalise([huge])
    assert normalised == normalize(huge[: tiny_encoder.max_length * CHARS_PER_TOKEN])
    assert len(tiny_encoder.encode([huge])[0]) == tiny_encoder.max_length


def test_served_tokenizer_matches_the_training_tokenizer(tiny, tiny_encoder):
    tokenizer, _ = tiny
    for text in TEXTS:
        expected = tokenizer(normalize(text), truncation=True, max_length=tiny_encoder.max_length)["input_ids"]
        assert tiny_encoder.encode([text])[0] == expected


def test_label_mapping_class_one_is_negative(tiny):
    _, model = tiny
    assert model.config.id2label == LABELS == {0: "not_negative", 1: "negative"}
    assert model.config.label2id == {"not_negative": 0, "negative": 1}
    proba = negative_proba(np.array([[0.0, 4.0], [4.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(proba, [1 / (1 + np.exp(-4)), 1 / (1 + np.exp(4)), 0.5])
    # A three-class head (neutral, negative, positive) serves P(negative) against both others.
    three = negative_proba(np.array([[0.0, np.log(2.0), 0.0], [5.0, -5.0, 5.0]]))
    np.testing.assert_allclose(three, [0.5, np.exp(-10) / (2 + np.exp(-10))])


def test_batches_sorted_by_length_return_rows_in_request_order(tiny, tiny_encoder):
    _, model = tiny
    batched = classifier(tiny_encoder, TorchBackend(model), batch_size=4).raw_proba(TEXTS)
    one_by_one = [classifier(tiny_encoder, TorchBackend(model), batch_size=1).raw_proba([t])[0] for t in TEXTS]
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)
    assert len(set(np.round(batched, 6))) > 1  # rows really differ, so a shuffle would show


def test_onnx_graph_matches_torch_on_padded_batches(tiny, tiny_encoder, onnx_path):
    _, model = tiny
    torch_proba = classifier(tiny_encoder, TorchBackend(model), batch_size=3).raw_proba(TEXTS)
    onnx_proba = classifier(tiny_encoder, OnnxBackend(str(onnx_path), 1), batch_size=3).raw_proba(TEXTS)
    np.testing.assert_allclose(onnx_proba, torch_proba, atol=1e-5)


def test_the_export_traces_eager_attention_and_leaves_the_trained_model_as_it_was(tiny, tiny_encoder, tmp_path):
    """The served graph is traced with eager attention (fewer kernels in ONNX Runtime, docs/serving.md);
    SDPA's graph computes the same function, and the model keeps training with what it had."""
    import onnx

    from steps.lib.onnx_export import export_onnx

    _, model = tiny
    trained_with = model.config._attn_implementation
    graphs = {
        name: export_onnx(model, tmp_path / f"{name}.onnx", pad_id=0, max_length=16, **attention)
        for name, attention in {"default": {}, "eager": {"attention": "eager"}, "sdpa": {"attention": "sdpa"}}.items()
    }
    operators = {name: [node.op_type for node in onnx.load(str(path)).graph.node] for name, path in graphs.items()}
    assert operators["default"] == operators["eager"] != operators["sdpa"]
    assert model.config._attn_implementation == trained_with
    texts = ["@united lost my bag again", "thanks for the smooth flight, crew were great"]
    eager, sdpa = (classifier(tiny_encoder, OnnxBackend(str(graphs[name]), threads=1)) for name in ("eager", "sdpa"))
    np.testing.assert_allclose(eager.raw_proba(texts), sdpa.raw_proba(texts), atol=1e-5)


def test_load_artifacts_prefers_onnx_and_falls_back_to_torch(tiny_pretrained, onnx_path):
    model = TransformerTweetClassifier("none", 16)
    model.load_artifacts({HF_MODEL_ARTIFACT: str(tiny_pretrained), ONNX_ARTIFACT: str(onnx_path)})
    assert isinstance(model.backend, OnnxBackend)
    via_onnx = model.raw_proba(TEXTS)
    model.load_artifacts({HF_MODEL_ARTIFACT: str(tiny_pretrained)})
    assert isinstance(model.backend, TorchBackend)
    np.testing.assert_allclose(model.raw_proba(TEXTS), via_onnx, atol=1e-5)


# What `mlflow.pyfunc.log_model` (input example check) and the served-model timing do in `train_bert` with
# export_onnx=false: load torch-backed models, score, drop them, then let the process exit.
TORCH_MODELS_DROPPED_THEN_EXIT = """
import gc, sys, time, weakref
from pyfunc.transformer_model import HF_MODEL_ARTIFACT, TransformerTweetClassifier

def score_and_drop(path):
    model = TransformerTweetClassifier("none", 16)
    model.load_artifacts({HF_MODEL_ARTIFACT: path})  # no ONNX artifact: torch
    model.raw_proba(["my flight was delayed again", "thanks"])
    return weakref.ref(model)

dropped = [score_and_drop(sys.argv[1]) for _ in range(4)]
deadline = time.monotonic() + 10  # a worker may still be returning from its last batch
while gc.collect() >= 0 and any(ref() is not None for ref in dropped) and time.monotonic() < deadline:
    time.sleep(0.01)
print("models still alive:", sum(ref() is not None for ref in dropped), flush=True)
"""


@pytest.mark.integration
def test_dropped_torch_models_are_freed_and_the_process_exits_cleanly(tiny_pretrained):
    """A worker that kept its last request kept the model alive until the exit hook woke it, and it then freed
    the torch model while Python finalised: std::terminate, exit status 134, the train_bert run FAILED."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", TORCH_MODELS_DROPPED_THEN_EXIT, str(tiny_pretrained)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "terminate called" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "models still alive: 0" in result.stdout


def test_threshold_is_stored_and_overridable_per_request(tiny_encoder, onnx_path):
    model = classifier(tiny_encoder, OnnxBackend(str(onnx_path), 1), threshold=0.5)
    frame = pd.DataFrame({"text": TEXTS})
    proba = model.predict_proba(TEXTS)
    default = model.predict(None, frame)
    assert (default["threshold"] == 0.5).all()
    assert list(default["label"]) == [LABELS[int(p >= 0.5)] for p in proba]
    everything = model.predict(None, frame, params={"threshold": 0.0})
    assert (everything["label"] == "negative").all() and (everything["threshold"] == 0.0).all()
    cut = float(np.median(proba))
    middle = model.predict(None, frame, params={"threshold": cut})
    assert list(middle["label"]) == [LABELS[int(p >= cut)] for p in proba]


def test_explain_leaves_each_word_out_through_the_served_graph(tiny_encoder, onnx_path):
    """Each contribution is the served P(negative) less that of the tweet without the word, scored by the
    same ONNX graph, batched with the rest of the request (docs/design.md, "Explanations")."""
    model = classifier(tiny_encoder, OnnxBackend(str(onnx_path), 1), batch_size=3)
    texts = TEXTS[:3]
    frame = model.predict(None, pd.DataFrame({"text": texts}), params={"explain": True})
    for text, proba, explanation in zip(texts, frame["proba_negative"], frame["explanation"], strict=True):
        words = text.split()
        assert [entry["word"] for entry in explanation] == words
        without = model.predict_proba([" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))])
        np.testing.assert_allclose([entry["contribution"] for entry in explanation], proba - without, atol=1e-6)
    assert "explanation" not in model.predict(None, pd.DataFrame({"text": texts})).columns


def test_runtime_pieces_are_not_pickled(tiny_encoder, onnx_path):
    model = classifier(tiny_encoder, OnnxBackend(str(onnx_path), 1))
    restored = pickle.loads(pickle.dumps(model))
    assert restored.encoder is None and restored.backend is None
    assert (restored.max_length, restored.preprocessing, restored.batch_size) == (16, "none", 2)


def test_encoder_reads_the_pad_token_of_the_saved_tokenizer(tiny_pretrained):
    encoder = TextEncoder.from_pretrained_dir(tiny_pretrained, max_length=8, preprocessing="lemma")
    assert encoder.pad_id == 0
    assert encoder.normalise(["Planes were cancelled"]) == ["plane be cancel"]


@pytest.mark.parametrize(
    ("usable", "omp", "expected"),
    [
        (8, None, 8),  # every core joblib counts (affinity, capped by a cgroup quota)
        (2, None, 2),  # a 2-core container quota, as joblib reads it
        (8, "3", 3),  # a Spark task's OMP_NUM_THREADS caps it further
        (2, "16", 2),  # OMP_NUM_THREADS never raises it
        (4, "not-a-number", 4),  # an unusable OMP_NUM_THREADS is ignored
    ],
)
def test_cpu_count_is_joblibs_count_capped_by_omp_threads(monkeypatch, usable, omp, expected):
    monkeypatch.setattr(transformer_model.joblib, "cpu_count", lambda: usable)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert cpu_count() == expected


def test_cpu_count_never_exceeds_the_cores_this_process_may_run_on(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= cpu_count() <= len(os.sched_getaffinity(0))


def test_attaching_again_shuts_the_previous_worker_pool_down(tiny, tiny_encoder):
    _, model = tiny
    model_under_test = classifier(tiny_encoder, TorchBackend(model), batch_size=4)
    first = model_under_test._pool
    model_under_test.attach(tiny_encoder, TorchBackend(model))
    assert first.closed and not model_under_test._pool.closed
    assert model_under_test.raw_proba(TEXTS[:2]).shape == (2,)


def test_int8_graph_scored_one_tweet_per_call_ignores_the_other_rows(tiny_encoder, onnx_path, tmp_path):
    from steps.lib.onnx_export import quantize_int8

    int8 = quantize_int8(onnx_path, tmp_path / "int8.onnx")
    per_row = classifier(tiny_encoder, OnnxBackend(str(int8), 1), batch_size=1)
    alone = [per_row.raw_proba([text])[0] for text in TEXTS]
    np.testing.assert_array_equal(per_row.raw_proba(TEXTS), alone)
    np.testing.assert_array_equal(per_row.raw_proba(TEXTS[::-1]), alone[::-1])


def test_concurrent_requests_score_exactly_as_sequential_ones(tiny_encoder, onnx_path):
    """MLflow's server calls predict from a thread per request; the workers share one session and
    each has its own batch buffers, so no request may see another's rows."""
    from concurrent.futures import ThreadPoolExecutor

    model = classifier(tiny_encoder, OnnxBackend(str(onnx_path), 1), batch_size=2)
    requests = [TEXTS[i:] + TEXTS[:i] for i in range(len(TEXTS))] * 8  # every rotation, many times
    expected = [model.raw_proba(texts) for texts in requests]
    with ThreadPoolExecutor(max_workers=8) as callers:
        answers = list(callers.map(model.raw_proba, requests))
    for answer, reference in zip(answers, expected, strict=True):
        np.testing.assert_array_equal(answer, reference)


def test_onnx_spreads_calls_over_the_cores_and_torch_keeps_one_caller(tiny, tiny_encoder, onnx_path):
    onnx_model = classifier(tiny_encoder, OnnxBackend(str(onnx_path), 1))
    assert onnx_model._pool.workers == cpu_count()
    _, model = tiny
    assert classifier(tiny_encoder, TorchBackend(model))._pool.workers == 1  # torch uses every core itself


def test_a_workers_batch_buffers_are_allocated_once(tiny_encoder, onnx_path):
    model = classifier(tiny_encoder, OnnxBackend(str(onnx_path), 1), batch_size=4)
    first_ids, _ = model._padded([[101, 7, 102], [101, 102]])
    second_ids, second_mask = model._padded([[101, 8, 9, 10, 102]])
    assert first_ids.base is second_ids.base is model._buffers.ids  # views on one buffer
    assert second_ids.tolist() == [[101, 8, 9, 10, 102]] and second_mask.tolist() == [[1] * 5]
