"""The machine's limit for the served transformer, measured, beside what the model reaches in process and served.

1. Matrix-multiply throughput on one thread (the served model runs one-thread ONNX Runtime sessions
   side by side, one per core) through ONNX Runtime, the runtime the model uses: int8 `MatMulInteger`
   (uint8 x int8 -> int32, MLAS's VNNI/AMX kernels) and fp32 `MatMul`, at the champion's weight
   shapes (hidden x hidden, hidden x intermediate, intermediate x hidden) for M rows per graph call:
   one median tweet's tokens (the dynamic-int8 model scores one tweet per call) and 32 tweets' tokens
   (a batch); the attention products (heads x length x head size) in fp32, as the graph runs them.
   torch's fp32 matmul and `torch._int_mm` are measured beside them for comparison.
2. Operations per tweet from the champion's `hf_model` config at the token lengths of real tweets
   (the champion's own normalisation and tokenizer): per layer 2L(4h^2 + 2hi) in the weight matmuls
   and 4L^2 h in attention; the pooler and the head once. The int8 graph's weight shapes are checked
   against that count.
3. The ceiling in tweets/s per core: one over the per-tweet matmul time at the measured rates (weight
   matmuls at the int8 rate, attention at the fp32 rate), averaged over the length distribution. It
   counts matrix multiplies only: layer norms, softmax, GELU and the graph's glue come on top.
4. Where a tweet's time goes, each part beside its floor: normalisation and tokenisation (floor: one
   C pass over the text's bytes), the graph (floor: the ceiling above), the pyfunc's own work
   (calibration, the contract's frame), MLflow's request handling (`scoring_server.invocations` less
   the predict; floor: the stdlib's JSON parse and dump of the same request and answer) and HTTP
   (the served p50 less `invocations`; floor: a bare ASGI app in the same uvicorn).
5. The graph's share of the ceiling: the graph timed as the ceiling's rates are, one tweet per call
   over the real tweets back to back, best of five stretches (what a busy worker does); beside it the
   share of the median one-tweet call between a request's other work (the parts table's figure).

\b
    python bench/roofline.py                                  # the champion
    python bench/roofline.py --model-uri models:/tweet-sentiment/3 --json docs/roofline.json

Run it from the repository root with the project's virtual environment active, MLFLOW_TRACKING_URI
pointing at the store that holds the model, on a quiet machine (it warns when the load is high).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve_benchmark import (
    BENCH_DIR,
    busy_warning,
    champion_body,
    drive,
    free_port,
    load_texts,
    machine,
    server_env,
    start_champion,
)
from steps.lib.cli import WHOLE_NUMBER
from steps.lib.provenance import provenance
from steps.lib.registry import CHAMPION_URI

BATCH_TWEETS = 32  # tweets per request in serve_benchmark's throughput goal
PARALLEL_PRODUCTS = 8  # independent products per graph call, so one call's overhead is spread over them
ONE_TWEET_ANSWER = b'{"predictions": [{"label": "negative", "proba_negative": 0.9, "threshold": 0.5}]}'


@dataclass
class Rate:
    """Sustained throughput of one product shape on one thread."""

    runtime: str
    dtype: str
    m: int
    k: int
    n: int
    batch: int
    gops: float

    @property
    def label(self) -> str:
        lead = f"{self.batch}x" if self.batch > 1 else ""
        return f"{lead}{self.m}x{self.k} @ {self.k}x{self.n}"


@dataclass
class Shapes:
    """What the champion's transformer multiplies, from its `hf_model` config."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    classes: int

    @classmethod
    def from_config(cls, config: dict) -> Shapes:
        return cls(
            layers=int(config["num_hidden_layers"]),
            hidden=int(config["hidden_size"]),
            intermediate=int(config["intermediate_size"]),
            heads=int(config["num_attention_heads"]),
            classes=len(config.get("id2label") or {0: 0, 1: 1}),
        )

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads

    def weight_products(self) -> list[tuple[int, int, int]]:
        """(K, N, count per layer) of the weight matmuls: Q, K, V and the output projection, the FFN's two."""
        h, i = self.hidden, self.intermediate
        return [(h, h, 4), (h, i, 1), (i, h, 1)]

    def weight_ops(self, tokens: int) -> float:
        """Multiply-adds x 2 in the weight matmuls of one tweet of `tokens` tokens, head included."""
        per_token = sum(2 * k * n * count for k, n, count in self.weight_products()) * self.layers
        head = 2 * self.hidden * self.hidden + 2 * self.hidden * self.classes  # pooler and classifier, on [CLS]
        return tokens * per_token + head

    def attention_ops(self, tokens: int) -> float:
        """Q K^T and the weighted sum of V: 2 x 2 L^2 h per layer."""
        return 4.0 * tokens * tokens * self.hidden * self.layers

    def weight_parameters(self) -> int:
        """Weights in the int8 matmuls: what the graph's `MatMulInteger` initialisers must add up to."""
        per_layer = sum(k * n * count for k, n, count in self.weight_products())
        return per_layer * self.layers + self.hidden * self.hidden + self.hidden * self.classes


def graph_int8_parameters(path: Path) -> tuple[int, int]:
    """(products, weights) of the int8 graph's weight matmuls: checks the count against the config.

    Args:
        path: an ONNX file.

    Returns:
        The number of `MatMulInteger` nodes with a constant right-hand side and their weights in all.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    sizes = {init.name: int(np.prod(init.dims)) for init in graph.initializer}
    weights = [
        sizes[node.input[1]] for node in graph.node if node.op_type == "MatMulInteger" and node.input[1] in sizes
    ]
    return len(weights), sum(weights)


def product_graph(dtype: str, batch: int, m: int, k: int, n: int):
    """One graph of PARALLEL_PRODUCTS independent products of one input with constant (int8) or second-input
    (attention) right-hand sides, so a call's fixed cost is spread over several products."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    lead = [batch] if batch > 1 else []
    nodes, outputs, initializers, inputs = [], [], [], []
    if dtype == "int8":
        inputs.append(helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k]))
        for index in range(PARALLEL_PRODUCTS):
            weight = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
            initializers.append(numpy_helper.from_array(weight, f"w{index}"))
            nodes.append(helper.make_node("MatMulInteger", ["a", f"w{index}"], [f"y{index}"]))
            outputs.append(helper.make_tensor_value_info(f"y{index}", TensorProto.INT32, [m, n]))
    else:
        inputs.append(helper.make_tensor_value_info("a", TensorProto.FLOAT, [*lead, m, k]))
        constant = batch == 1
        if not constant:
            inputs.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, [*lead, k, n]))
        for index in range(PARALLEL_PRODUCTS):
            right = "b"
            if constant:
                right = f"w{index}"
                weight = rng.standard_normal((k, n)).astype(np.float32)
                initializers.append(numpy_helper.from_array(weight, right))
            nodes.append(helper.make_node("MatMul", ["a", right], [f"y{index}"]))
            outputs.append(helper.make_tensor_value_info(f"y{index}", TensorProto.FLOAT, [*lead, m, n]))
    graph = helper.make_graph(nodes, "products", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def sustained(call: Callable[[], object], ops_per_call: float, seconds: float) -> float:
    """Giga-operations per second of `call`, best of five timed stretches after a warm-up."""
    return ops_per_call / best_seconds_per_call(call, seconds) / 1e9


def best_seconds_per_call(call: Callable[[], object], seconds: float) -> float:
    """Seconds per call of `call` run back to back: the best of five stretches of about `seconds` / 10 each."""
    for _ in range(3):
        call()
    calls = 1
    started = time.perf_counter()
    while time.perf_counter() - started < seconds / 10:
        call()
        calls += 1
    stretch = max(1, calls // 2)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(stretch):
            call()
        best = min(best, (time.perf_counter() - started) / stretch)
    return best


def ort_rate(dtype: str, batch: int, m: int, k: int, n: int, seconds: float) -> Rate:
    """One-thread ONNX Runtime throughput, with the served session's options."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = product_graph(dtype, batch, m, k, n)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    lead = (batch,) if batch > 1 else ()
    if dtype == "int8":
        feeds = {"a": rng.integers(0, 256, size=(m, k), dtype=np.uint8)}
    else:
        feeds = {"a": rng.standard_normal((*lead, m, k)).astype(np.float32)}
        if batch > 1:
            feeds["b"] = rng.standard_normal((*lead, k, n)).astype(np.float32)
    ops = 2.0 * batch * m * k * n * PARALLEL_PRODUCTS
    return Rate("onnxruntime", dtype, m, k, n, batch, sustained(lambda: session.run(None, feeds), ops, seconds))


def torch_rate(dtype: str, m: int, k: int, n: int, seconds: float) -> Rate:
    """One-thread torch throughput of the same product, for comparison."""
    import torch

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(2)
    if dtype == "int8":
        a = torch.randint(-127, 128, (m, k), dtype=torch.int8, generator=generator)
        b = torch.randint(-127, 128, (k, n), dtype=torch.int8, generator=generator)
        product = torch._int_mm
    else:
        a, b = torch.randn(m, k, generator=generator), torch.randn(k, n, generator=generator)
        product = torch.matmul
    with torch.inference_mode():
        gops = sustained(lambda: product(a, b), 2.0 * m * k * n, seconds)
    return Rate("torch", dtype, m, k, n, 1, gops)


def measure_rates(shapes: Shapes, rows: dict[str, int], seconds: float) -> list[Rate]:
    """Every runtime and type at every weight shape for each row count, plus fp32 attention products."""
    rates = []
    for m in rows.values():
        for k, n, _ in shapes.weight_products():
            for dtype in ("int8", "fp32"):
                rates.append(ort_rate(dtype, 1, m, k, n, seconds))
                rates.append(torch_rate(dtype, m, k, n, seconds))
    tokens = rows["one tweet"]
    rates.append(ort_rate("fp32", shapes.heads, tokens, shapes.head_size, tokens, seconds))  # Q K^T
    rates.append(ort_rate("fp32", shapes.heads, tokens, tokens, shapes.head_size, seconds))  # weights x V
    return rates


def ceiling_tweets_per_s(shapes: Shapes, lengths: list[int], rates: list[Rate], m: int) -> float:
    """Tweets/s per core if only the matmuls cost time, at the ONNX Runtime rates measured with `m` rows.

    The rates of `m` rows stand for every length (a call's rate changes little between nearby row
    counts); attention runs at the harmonic mean of its two fp32 products.
    """

    def int8_rate(k: int, n: int) -> float:
        key = ("onnxruntime", "int8", m, k, n, 1)
        return next(r.gops for r in rates if (r.runtime, r.dtype, r.m, r.k, r.n, r.batch) == key)

    attention_gops = statistics.harmonic_mean([r.gops for r in rates if r.runtime == "onnxruntime" and r.batch > 1])
    head_ops = shapes.weight_ops(0)
    seconds = []
    for tokens in lengths:
        giga = sum(
            2 * k * n * count * shapes.layers * tokens / int8_rate(k, n) for k, n, count in shapes.weight_products()
        )
        giga += head_ops / int8_rate(shapes.hidden, shapes.hidden) + shapes.attention_ops(tokens) / attention_gops
        seconds.append(giga / 1e9)
    return 1.0 / float(np.mean(seconds))


def load_champion(model_uri: str):
    """The pyfunc, its transformer classifier (ONNX backend required), its `hf_model` config and the
    local path of each logged artifact, by name."""
    import mlflow

    from pyfunc.transformer_model import HF_MODEL_ARTIFACT, OnnxBackend

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    model = mlflow.pyfunc.load_model(str(local))
    classifier = model.unwrap_python_model()
    if not isinstance(getattr(classifier, "backend", None), OnnxBackend):
        raise SystemExit(f"{model_uri} is not a transformer served through ONNX Runtime: no roofline to draw")
    flavor = mlflow.models.Model.load(str(local)).flavors["python_function"]
    artifacts = {name: local / spec["path"] for name, spec in (flavor.get("artifacts") or {}).items()}
    config = json.loads((artifacts[HF_MODEL_ARTIFACT] / "config.json").read_text())
    return model, classifier, config, artifacts


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def one_tweet_parts(model, classifier, texts: list[str]) -> dict[str, dict[str, float]]:
    """Median milliseconds of each part of a one-tweet request in this process, with its floor."""
    import pandas as pd
    from mlflow.pyfunc import scoring_server

    encoder, backend = classifier.encoder, classifier.backend
    schema = model.metadata.get_input_schema()
    parts: dict[str, list[float]] = {name: [] for name in ("normalise", "tokenise", "graph", "predict", "invocations")}
    floors: dict[str, list[float]] = {"text pass": [], "json": []}
    for text in texts:
        body = json.dumps(champion_body([text]))
        normalised = encoder.normalise([text])
        parts["normalise"].append(timed(lambda: encoder.normalise([text])))  # noqa: B023
        ids = np.array([encoder.tokenizer.encode_batch(normalised)[0].ids], dtype=np.int64)
        parts["tokenise"].append(timed(lambda: encoder.tokenizer.encode_batch(normalised)))  # noqa: B023
        parts["graph"].append(timed(lambda: backend.logits(ids, np.ones_like(ids))))  # noqa: B023
        frame = pd.DataFrame({"text": [text]})
        parts["predict"].append(timed(lambda: model.predict(frame)))  # noqa: B023
        parts["invocations"].append(
            timed(lambda: scoring_server.invocations(body, "application/json", model, schema))  # noqa: B023
        )
        floors["text pass"].append(timed(lambda: text.encode().lower()))  # noqa: B023
        floors["json"].append(timed(lambda: json.dumps(json.loads(body)) and json.loads(ONE_TWEET_ANSWER)))  # noqa: B023
    return {name: statistics.median(values) for name, values in (parts | floors).items()}


def graph_back_to_back_ms(backend, ids: list[list[int]], seconds: float) -> float:
    """Ms per tweet of the graph alone, one tweet per call over the real tweets, calls back to back.

    Timed as the ceiling's rates are (`best_seconds_per_call`: best of five stretches after a warm-up),
    so the two compare like for like; the parts table's graph median is one call between a request's
    other work, whose caches that work has cooled.
    """
    calls = [(np.array([row], dtype=np.int64), np.ones((1, len(row)), dtype=np.int64)) for row in ids]

    def one_pass() -> None:
        for row_ids, mask in calls:
            backend.logits(row_ids, mask)

    return best_seconds_per_call(one_pass, seconds) * 1000 / len(calls)


def batched_tweets_per_s(model, texts: list[str], seconds: float) -> float:
    """In-process throughput of 32-tweet predicts, one after another (the model's pool uses every core)."""
    import pandas as pd

    frames = [
        pd.DataFrame({"text": texts[i : i + BATCH_TWEETS]}) for i in range(0, len(texts) - BATCH_TWEETS, BATCH_TWEETS)
    ]
    model.predict(frames[0])
    done, calls, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        frame = frames[calls % len(frames)]
        model.predict(frame)
        done, calls = done + len(frame), calls + 1
    return done / (time.perf_counter() - started)


async def bare_app(scope, receive, send) -> None:
    """The floor of HTTP: uvicorn reading a request and answering a one-tweet answer, with nothing between."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ONE_TWEET_ANSWER)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ONE_TWEET_ANSWER})


def served_one_tweet_p50(server, texts: list[str], requests_count: int) -> float:
    drive(server, champion_body, texts, 1, 1, 8, 30)
    return drive(server, champion_body, texts, 1, 1, requests_count, 60).percentile(50)


def bare_http_p50(texts: list[str], requests_count: int) -> float:
    """One-tweet round trips to `bare_app` in uvicorn: what HTTP costs when the server does nothing."""
    from bench.serve_benchmark import Server

    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR.parent), "bench.roofline:bare_app"]
    command += [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
    ]
    server = Server("bare", command, server_env(), port, "/invocations").wait_ready()
    try:
        return served_one_tweet_p50(server, texts, requests_count)
    finally:
        server.stop()


def rates_table(rates: list[Rate]) -> str:
    lines = [
        "| product (M = tokens per call) | ORT int8 GOPS | ORT fp32 | torch int8 | torch fp32 |",
        "|---|---:|---:|---:|---:|",
    ]
    by_shape: dict[str, dict[str, float]] = {}
    for rate in rates:
        by_shape.setdefault(rate.label, {})[f"{rate.runtime} {rate.dtype}"] = rate.gops
    for label, row in by_shape.items():
        cells = [row.get(key) for key in ("onnxruntime int8", "onnxruntime fp32", "torch int8", "torch fp32")]
        lines.append(f"| {label} | " + " | ".join("" if c is None else f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines)


def parts_table(parts: dict[str, float], ceiling_ms: float, served_ms: float, bare_ms: float) -> list[dict]:
    """The one-tweet request split into parts, each with its floor (ms, medians)."""
    rest = parts["predict"] - parts["normalise"] - parts["tokenise"] - parts["graph"]
    return [
        {
            "part": "normalisation",
            "ms": parts["normalise"],
            "floor_ms": parts["text pass"],
            "floor": "one C pass over the text",
        },
        {
            "part": "tokenisation",
            "ms": parts["tokenise"],
            "floor_ms": parts["text pass"],
            "floor": "one C pass over the text",
        },
        {
            "part": "graph (int8, one call)",
            "ms": parts["graph"],
            "floor_ms": ceiling_ms,
            "floor": "matmuls at the measured int8 ceiling",
        },
        {
            "part": "pyfunc's own work",
            "ms": rest,
            "floor_ms": float("nan"),
            "floor": "calibration, the contract's frame",
        },
        {
            "part": "MLflow request handling",
            "ms": parts["invocations"] - parts["predict"],
            "floor_ms": parts["json"],
            "floor": "stdlib JSON parse and dump",
        },
        {
            "part": "HTTP (uvicorn, client)",
            "ms": served_ms - parts["invocations"],
            "floor_ms": bare_ms,
            "floor": "a bare ASGI app in uvicorn",
        },
        {"part": "served, one tweet (p50)", "ms": served_ms, "floor_ms": float("nan"), "floor": ""},
    ]


@click.command(help=__doc__)
@click.option("--model-uri", default=CHAMPION_URI, show_default=True, help="a transformer served through ONNX Runtime")
@click.option("--tweets", type=WHOLE_NUMBER, default=400, show_default=True, help="real tweets timed one at a time")
@click.option(
    "--lengths", type=WHOLE_NUMBER, default=4000, show_default=True, help="real tweets whose token lengths are counted"
)
@click.option("--seconds", type=float, default=2.0, show_default=True, help="time per product shape measured")
@click.option(
    "--requests", type=WHOLE_NUMBER, default=300, show_default=True, help="one-tweet requests sent to each server"
)
@click.option("--texts", default="", show_default=True, help="CSV/Parquet with a text column (empty = embedded tweets)")
@click.option("--json", default="", show_default=True, help="also write every figure to this JSON file")
@click.option("--seed", type=WHOLE_NUMBER, default=7, show_default=True, help="seed of the tweets' sample")
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    host, origin = machine(), provenance(args.model_uri)  # at start: the load before the benchmark's own
    print(f"machine: {host}", flush=True)
    if warning := busy_warning():
        print(warning, flush=True)
    from pyfunc.transformer_model import ONNX_ARTIFACT, cpu_count

    model, classifier, config, artifacts = load_champion(args.model_uri)
    onnx_path = artifacts[ONNX_ARTIFACT]
    shapes = Shapes.from_config(config)
    products, weights = graph_int8_parameters(onnx_path)
    texts = load_texts(args.texts, args.lengths, args.seed)
    lengths = [len(ids) for ids in classifier.encoder.encode(texts)]
    median = int(np.median(lengths))
    print(
        f"model: {shapes.layers} layers, hidden {shapes.hidden}, intermediate {shapes.intermediate}, "
        f"{shapes.heads} heads; "
        f"int8 graph: {products} weight matmuls, {weights:,} weights (config: {shapes.weight_parameters():,})"
    )
    mean_weight_ops = float(np.mean([shapes.weight_ops(n) for n in lengths]))
    mean_attention_ops = float(np.mean([shapes.attention_ops(n) for n in lengths]))
    print(
        f"tokens per tweet over {len(lengths)} tweets: median {median}, mean {np.mean(lengths):.1f}, p90 "
        f"{np.percentile(lengths, 90):.0f}, max {max(lengths)}; per tweet {mean_weight_ops / 1e6:.0f} M int8 ops in "
        f"weight matmuls, {mean_attention_ops / 1e6:.1f} M fp32 ops in attention",
        flush=True,
    )
    rows = {"one tweet": median, f"{BATCH_TWEETS} tweets": BATCH_TWEETS * median}
    rates = measure_rates(shapes, rows, args.seconds)
    print("\n" + rates_table(rates) + "\n", flush=True)
    ceilings = {name: ceiling_tweets_per_s(shapes, lengths, rates, m) for name, m in rows.items()}
    for name, value in ceilings.items():
        print(f"ceiling with {name} per call: {value:,.0f} tweets/s per core", flush=True)

    timed_texts = texts[: args.tweets]
    parts = one_tweet_parts(model, classifier, timed_texts)
    graph_ms = graph_back_to_back_ms(classifier.backend, classifier.encoder.encode(timed_texts), 10 * args.seconds)
    graph_tweets_per_s, graph_in_request_tweets_per_s = 1000 / graph_ms, 1000 / parts["graph"]
    in_process = batched_tweets_per_s(model, texts, 10.0)
    server = start_champion(args.model_uri, 1)
    try:
        served_ms = served_one_tweet_p50(server, timed_texts, args.requests)
        drive(server, champion_body, texts, 4, BATCH_TWEETS, 8, 30)
        served = drive(server, champion_body, texts, 4, BATCH_TWEETS, args.requests, 60)
    finally:
        server.stop()
    bare_ms = bare_http_p50(timed_texts, args.requests)
    ceiling_ms = 1000 / ceilings["one tweet"]
    table = parts_table(parts, ceiling_ms, served_ms, bare_ms)
    cores = cpu_count()

    print("\n### Where a one-tweet request's time goes (medians)\n")
    print("| part | ms | floor ms | x floor | floor |\n|---|---:|---:|---:|---|")
    for row in table:
        ratio = (
            row["ms"] / row["floor_ms"] if row["floor_ms"] == row["floor_ms"] and row["floor_ms"] > 0 else float("nan")
        )
        floor = "" if row["floor_ms"] != row["floor_ms"] else f"{row['floor_ms']:.3f}"
        times = "" if ratio != ratio else f"{ratio:.1f}"
        print(f"| {row['part']} | {row['ms']:.3f} | {floor} | {times} | {row['floor']} |")
    print("\n### Throughput, tweets/s\n")
    print(f"| measure | machine ({cores} cores) | per core |\n|---|---:|---:|")
    lines = {
        f"ceiling, one tweet per call ({median} tokens)": ceilings["one tweet"] * cores,
        f"ceiling, {BATCH_TWEETS} tweets per call": ceilings[f"{BATCH_TWEETS} tweets"] * cores,
        "in process: the graph alone, one tweet per call, back to back": graph_tweets_per_s * cores,
        "in process: the graph alone, one call inside each one-tweet request (median)": graph_in_request_tweets_per_s
        * cores,
        f"in process: the pyfunc, {BATCH_TWEETS}-tweet predicts": in_process,
        f"served: {BATCH_TWEETS}-tweet requests at concurrency 4": served.tweets_per_s,
    }
    for name, value in lines.items():
        print(f"| {name} | {value:,.0f} | {value / cores:,.0f} |")
    share = graph_tweets_per_s / ceilings["one tweet"]
    share_in_request = graph_in_request_tweets_per_s / ceilings["one tweet"]
    print(
        f"\nthe graph reaches {share:.0%} of the one-tweet int8 ceiling back to back, timed as the ceiling is "
        f"(goal >= 50%); {share_in_request:.0%} as one call inside a request"
    )
    if warning:
        print(f"\n{warning}")
    if served.errors:
        print(f"\nWARNING: {served.errors} requests failed, e.g. {served.first_error}")
    if args.json:
        figures = {
            "machine": host,
            "provenance": origin,
            "warning": warning,
            "shapes": asdict(shapes),
            "graph_int8_weight_matmuls": products,
            "tokens": {
                "median": median,
                "mean": float(np.mean(lengths)),
                "p90": float(np.percentile(lengths, 90)),
                "tweets": len(lengths),
            },
            "ops_per_tweet": {"weights_int8": mean_weight_ops, "attention_fp32": mean_attention_ops},
            "rates": [asdict(rate) for rate in rates],
            "ceiling_tweets_per_s_per_core": ceilings,
            "one_tweet_parts_ms": table,
            "throughput_tweets_per_s": lines,
            "graph_ms_back_to_back": graph_ms,
            "graph_share_of_ceiling": share,
            "graph_share_of_ceiling_inside_a_request": share_in_request,
        }
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
