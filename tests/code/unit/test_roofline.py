"""bench/roofline.py counts the right operations, times the product it claims, and turns rates into a ceiling."""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from bench.roofline import (
    PARALLEL_PRODUCTS,
    Rate,
    Shapes,
    ceiling_tweets_per_s,
    graph_back_to_back_ms,
    graph_int8_parameters,
    product_graph,
)

MINILM = {"num_hidden_layers": 6, "hidden_size": 384, "intermediate_size": 1536, "num_attention_heads": 12}


def test_operations_per_tweet_are_the_bert_count():
    shapes = Shapes.from_config(MINILM)
    h, i, tokens = 384, 1536, 20
    # per layer: Q, K, V, output (4 h^2) and the FFN (2 h i) multiply-adds per token; pooler and head once
    assert shapes.weight_ops(tokens) == 6 * tokens * 2 * (4 * h * h + 2 * h * i) + 2 * h * h + 2 * h * 2
    assert shapes.attention_ops(tokens) == 6 * 4 * tokens * tokens * h
    assert shapes.head_size == 32
    assert shapes.weight_parameters() == 6 * (4 * h * h + 2 * h * i) + h * h + h * 2


def test_a_three_class_head_counts_three_outputs():
    shapes = Shapes.from_config(MINILM | {"id2label": {0: "neutral", 1: "negative", 2: "positive"}})
    assert shapes.classes == 3


@pytest.mark.parametrize("dtype", ["int8", "fp32"])
def test_the_timed_graph_computes_the_products_it_is_credited_with(dtype, tmp_path):
    model = product_graph(dtype, 1, 5, 16, 8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    a = (
        rng.integers(0, 256, (5, 16), dtype=np.uint8)
        if dtype == "int8"
        else rng.standard_normal((5, 16)).astype(np.float32)
    )
    outputs = session.run(None, {"a": a})
    weights = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    assert len(outputs) == PARALLEL_PRODUCTS
    for index, output in enumerate(outputs):
        expected = (
            a.astype(np.int64) @ weights[f"w{index}"].astype(np.int64) if dtype == "int8" else a @ weights[f"w{index}"]
        )
        np.testing.assert_allclose(output, expected, rtol=1e-5)
    path = tmp_path / "products.onnx"
    onnx.save(model, str(path))
    expected_count = PARALLEL_PRODUCTS if dtype == "int8" else 0
    assert graph_int8_parameters(path) == (expected_count, expected_count * 16 * 8)


def test_attention_products_take_both_sides_as_inputs():
    model = product_graph("fp32", 12, 7, 32, 7)
    assert not model.graph.initializer
    assert [value.name for value in model.graph.input] == ["a", "b"]


def test_the_ceiling_is_the_inverse_of_the_mean_matmul_time():
    shapes = Shapes.from_config(MINILM)
    lengths = [10, 30]
    # int8 weight products at 100 GOPS, the attention products at 10 GOPS
    rates = [Rate("onnxruntime", "int8", 20, k, n, 1, 100.0) for k, n, _ in shapes.weight_products()]
    rates += [Rate("onnxruntime", "fp32", 20, 32, 20, 12, 10.0), Rate("onnxruntime", "fp32", 20, 20, 32, 12, 10.0)]
    rates.append(Rate("torch", "int8", 20, 384, 384, 1, 1e6))  # another runtime never counts
    seconds = [(shapes.weight_ops(n) / 100e9 + shapes.attention_ops(n) / 10e9) for n in lengths]
    assert ceiling_tweets_per_s(shapes, lengths, rates, 20) == pytest.approx(1 / np.mean(seconds))


class SleepingGraph:
    """A stand-in backend: each call sleeps 2 ms per row and records the shape it was given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        assert input_ids.shape == attention_mask.shape and attention_mask.all()
        self.shapes.append(input_ids.shape)
        time.sleep(0.002 * len(input_ids))
        return np.zeros((len(input_ids), 2))


def test_the_graph_is_timed_one_tweet_per_call_back_to_back():
    graph, ids = SleepingGraph(), [[101, 7, 102], [101, 102], [101, 5, 6, 7, 102]]
    ms = graph_back_to_back_ms(graph, ids, seconds=0.05)
    assert set(graph.shapes) == {(1, 3), (1, 2), (1, 5)}  # each tweet alone, unpadded
    assert len(graph.shapes) % len(ids) == 0  # whole passes over the tweets only
    assert 2.0 <= ms < 20.0  # per tweet, not per pass (a pass of three tweets takes at least 6 ms)
