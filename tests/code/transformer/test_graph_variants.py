"""bench/graph_variants.py builds the fused export it claims and scores it like the served graph."""

from __future__ import annotations

import json

import numpy as np

from bench.graph_variants import build_variants, interleaved_ms_per_tweet, kernels
from pyfunc.transformer_model import HF_MODEL_ARTIFACT, ONNX_ARTIFACT, OnnxBackend
from steps.lib.onnx_export import export_onnx, quantize_int8
from steps.lib.pretrained import load_pretrained

TEXTS = ["@united lost my bag again", "thanks for the smooth flight", "where is my refund from March?", "ok"]


def test_the_fused_variant_fuses_attention_and_scores_as_the_served_graph(tiny_pretrained, tiny_encoder, tmp_path):
    _, model = load_pretrained(str(tiny_pretrained), True)
    served = quantize_int8(export_onnx(model, tmp_path / "served_fp32.onnx", 0, 16), tmp_path / "served.onnx")
    config = json.loads((tiny_pretrained / "config.json").read_text())
    artifacts = {HF_MODEL_ARTIFACT: tiny_pretrained, ONNX_ARTIFACT: served}
    variants = build_variants(artifacts, config, tiny_encoder, tmp_path)
    assert list(variants) == ["served", "eager_int8", "fused_int8"]
    assert variants["fused_int8"]["fused"].get("Attention", 0) == config["n_layers"]
    assert kernels(variants["fused_int8"]["path"])["QAttention"] == config["n_layers"]  # int8 attention ran
    assert sum(kernels(variants["fused_int8"]["path"]).values()) < sum(kernels(served).values())
    backends = {name: OnnxBackend(str(variant["path"]), threads=1) for name, variant in variants.items()}
    ids = tiny_encoder.encode(TEXTS)
    logits = {
        name: np.concatenate([backend.logits(np.array([row]), np.ones((1, len(row)), dtype=np.int64)) for row in ids])
        for name, backend in backends.items()
    }
    for name in ("eager_int8", "fused_int8"):  # int8 rounding apart, the same function of the same weights
        np.testing.assert_allclose(logits[name], logits["served"], atol=0.05)
    timing = interleaved_ms_per_tweet(backends, ids, rounds=2)
    assert set(timing) == set(variants) and all(ms > 0 for ms in timing.values())
