"""bench/graph_variants.py builds the fused export it claims and scores it like the served graph."""

from __future__ import annotations

import json

import numpy as np

from bench.graph_variants import (
    PER_TOKEN_DISABLED_OPTIMIZERS,
    batch_dependence,
    build_variants,
    interleaved_ms_per_tweet,
    kernels,
    per_token_scales,
)
from pyfunc.transformer_model import HF_MODEL_ARTIFACT, ONNX_ARTIFACT, OnnxBackend
from steps.lib.onnx_export import export_onnx, quantize_int8
from steps.lib.pretrained import load_pretrained

TEXTS = [
    "@united lost my bag again",
    "thanks for the smooth flight",
    "where is my refund from March?",
    "ok",
    "could you check on my refund from march please, it has been three weeks",
    "love the new seats!!!",
]


def one_matmul_graph(path, weight: np.ndarray, bias: np.ndarray) -> None:
    """x [batch, tokens, k] @ weight + bias: a transformer's linear layer, the smallest graph that dynamic
    quantisation turns into MatMulInteger (and ONNX Runtime folds into MatMulIntegerToFloat with its bias)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["product"]), helper.make_node("Add", ["product", "b"], ["y"])],
        "one_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", n])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def row_errors(y: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row's largest error as a share of the row's own largest value (zero rows count as exact)."""
    magnitude = np.abs(reference).max(axis=-1)
    return np.abs(y - reference).max(axis=-1) / np.where(magnitude > 0, magnitude, 1)


def test_per_token_scales_quantise_each_row_on_its_own(tmp_path):
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(24, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    one_matmul_graph(tmp_path / "fp32.onnx", weight, bias)
    graph = per_token_scales(quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx"), tmp_path / "rows.onnx")
    session = ort.InferenceSession(
        str(graph), providers=["CPUExecutionProvider"], disabled_optimizers=list(PER_TOKEN_DISABLED_OPTIMIZERS)
    )
    x = rng.normal(size=(2, 3, 24)).astype(np.float32)
    x[1, 2] *= 1000  # one loud token: with one scale per call it would flatten every other row
    x[0, 1] = 0  # an all-zero row (padding after a layer norm never is, but the graph must stay finite)
    y = session.run(None, {"x": x})[0]

    scale = np.abs(x).max(axis=-1, keepdims=True) / 127  # the reference: symmetric int8 per row, fp32 weights
    reference = np.round(x / np.maximum(scale, 1e-30)) * scale @ weight + bias
    np.testing.assert_allclose(y[0, 1], bias, rtol=1e-6)
    assert np.max(row_errors(y, reference)) < 0.02  # each row within int8 rounding of its own magnitude
    per_call = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    assert np.max(row_errors(per_call.run(None, {"x": x})[0], reference)) > 0.2  # the loud token's scale for all
    alone = np.stack([session.run(None, {"x": x[i : i + 1, j : j + 1]})[0][0, 0] for i in range(2) for j in range(3)])
    np.testing.assert_allclose(alone.reshape(y.shape), y, rtol=1e-6, atol=1e-6)  # no row depends on another


def test_the_fused_variant_fuses_attention_and_scores_as_the_served_graph(tiny_pretrained, tiny_encoder, tmp_path):
    _, model = load_pretrained(str(tiny_pretrained), True)
    served = quantize_int8(export_onnx(model, tmp_path / "served_fp32.onnx", 0, 16), tmp_path / "served.onnx")
    config = json.loads((tiny_pretrained / "config.json").read_text())
    artifacts = {HF_MODEL_ARTIFACT: tiny_pretrained, ONNX_ARTIFACT: served}
    variants = build_variants(artifacts, config, tiny_encoder, tmp_path, tiny_encoder.encode(TEXTS[::-1]))
    assert list(variants) == [
        "served",
        "sdpa_int8",
        "fused_int8",
        "fused_no_attention_int8",
        "per_token_int8",
        "static_int8",
    ]
    assert variants["fused_int8"]["fused"].get("Attention", 0) == config["n_layers"]
    assert kernels(variants["fused_int8"]["path"])["QAttention"] == config["n_layers"]  # int8 attention ran
    assert sum(kernels(variants["fused_int8"]["path"]).values()) < sum(kernels(served).values())
    no_attention = variants["fused_no_attention_int8"]
    assert "Attention" not in no_attention["fused"] and no_attention["fused"].get("SkipLayerNormalization", 0) > 0
    assert "QAttention" not in kernels(no_attention["path"])
    backends = {
        name: OnnxBackend(str(variant["path"]), threads=1, disabled_optimizers=variant["disabled_optimizers"])
        for name, variant in variants.items()
    }
    ids = tiny_encoder.encode(TEXTS)
    logits = {
        name: np.concatenate([backend.logits(np.array([row]), np.ones((1, len(row)), dtype=np.int64)) for row in ids])
        for name, backend in backends.items()
    }
    for name in (
        "sdpa_int8",
        "fused_int8",
        "fused_no_attention_int8",
        "per_token_int8",
        "static_int8",
    ):  # int8 rounding apart, the same function
        np.testing.assert_allclose(logits[name], logits["served"], atol=0.05)
    assert batch_dependence(backends["per_token_int8"], ids, batch=4) < 1e-7
    assert batch_dependence(backends["static_int8"], ids, batch=4) < 1e-6  # frozen ranges: padding clips, no more
    static_kernels = kernels(variants["static_int8"]["path"])
    assert "DynamicQuantizeLinear" not in static_kernels and "DynamicQuantizeMatMul" not in static_kernels
    assert batch_dependence(backends["served"], ids, batch=4) > 1e-6  # one scale per call: neighbours matter
    for batch in (1, 4):
        timing = interleaved_ms_per_tweet(backends, ids, rounds=2, batch=batch)
        assert set(timing) == set(variants) and all(ms > 0 for ms in timing.values())
