"""Other exports of the champion's weights, timed beside its served graph and scored on its test split.

The roofline (`bench/roofline.py`) finds the served int8 graph far from the int8 matmul ceiling, with
hundreds of small kernels around an attention block no fusion recognised. This benchmark tries the
export that ONNX Runtime's transformer optimizer can fuse, on the champion's own `hf_model` weights:

- `served`: the champion's `onnx_model` artifact (TorchScript export, eager attention since the
  training step's export traces it, dynamic int8; a champion logged before that has SDPA's graph);
- `sdpa_int8`: the same export with SDPA attention (what the training step traced until eager paid), dynamic int8;
- `fused_int8`: the eager export (the pattern the optimizer knows) through
  `onnxruntime.transformers.optimizer` (Attention, SkipLayerNorm,
  BiasGelu and EmbedLayerNorm fusions), then dynamic int8 (`QAttention`, `DynamicQuantizeMatMul`);
- `fused_no_attention_int8`: the same, with every fusion but attention's, so the products stay
  `DynamicQuantizeMatMul` and the attention block stays fp32 as in the served graph, while the layer
  norms, GELUs and embeddings become one kernel each;
- `per_token_int8`: the served export and int8 weights, but each token's activations quantised with
  their own scale (symmetric, 255 levels, in front of every `MatMulInteger`) instead of one scale per
  call, so a tweet's score no longer depends on the tweets batched with it and the graph may batch;
- `static_int8`: the served export with every weight product quantised statically (QDQ): int8 weights
  per output channel, uint8 activation ranges calibrated once on training tweets and frozen, so no
  scale is computed at run time and no tweet's score depends on its neighbours.

Each variant runs as served: a one-thread session. The timing alternates between the variants round
after round (best round kept), so a drifting machine shifts all of them alike: one tweet per call (how
the dynamic-int8 graphs must be served), then length-sorted batches of 8 and 32 tweets (what a graph
whose scores do not depend on their neighbours could do). `batch dependence` is the largest change of
a tweet's P(negative) between scoring it alone and inside a 32-tweet batch of unsorted neighbours: 0
means the variant may batch. The scores are each variant's P(negative) on the champion's test split,
beside the served graph's: the largest difference and the change of ROC AUC.

\b
    python bench/graph_variants.py                                       # the champion
    python bench/graph_variants.py --model-uri models:/tweet-sentiment/2 --json graph_variants.json

Run it from the repository root with the project's virtual environment active and MLFLOW_TRACKING_URI
pointing at the store that holds the model, on a quiet machine.
"""

from __future__ import annotations

import collections
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.roofline import load_champion
from bench.serve_benchmark import busy_warning, load_texts, machine
from steps.lib.cli import WHOLE_NUMBER
from steps.lib.provenance import provenance
from steps.lib.registry import CHAMPION_URI

VARIANTS = ("served", "sdpa_int8", "fused_int8", "fused_no_attention_int8", "per_token_int8", "static_int8")
BATCHES = (1, 8, 32)
# ONNX Runtime 1.32 folds MatMulInteger -> Cast -> Mul -> Add(bias) into MatMulIntegerToFloat, which
# computes a biased product wrongly once the activation scale is one per row (tests/code/transformer/
# test_graph_variants.py; on the champion P(negative) moved up to 0.59 from the fp32 graph's, against
# 0.29 unfused), so the per-token graph runs without that rewrite.
PER_TOKEN_DISABLED_OPTIMIZERS = ("MatMulIntegerToFloatFusion",)


def export_weights(hf_dir: Path, path: Path, pad_id: int, max_length: int, attention: str) -> Path:
    """The champion's weights through the training step's own export, with the attention implementation
    named: `eager` is what the training step exports (and shows the optimizer the pattern it fuses,
    which SDPA's traced graph hides); `sdpa` is the export it replaced."""
    from transformers import AutoModelForSequenceClassification

    from steps.lib.onnx_export import export_onnx

    model = AutoModelForSequenceClassification.from_pretrained(hf_dir, local_files_only=True)
    return export_onnx(model, path, pad_id=pad_id, max_length=max_length, attention=attention)


def fuse(source: Path, target: Path, config: dict, attention: bool = True) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer on an fp32 export; returns the fused operators it made.

    The `bert` fusions cover BERT and DistilBERT encoders alike (DistilBERT's config names the sizes
    `n_heads` and `dim`). `attention=False` leaves the attention block unfused: dynamic int8 then
    has no `QAttention` to make, which quantises the attention inputs too."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    heads = int(config.get("num_attention_heads", config.get("n_heads", 0)))
    hidden = int(config.get("hidden_size", config.get("dim", 0)))
    options = FusionOptions("bert")
    options.enable_attention = attention
    optimized = optimizer.optimize_model(
        str(source), model_type="bert", num_heads=heads, hidden_size=hidden, optimization_options=options
    )
    optimized.save_model_to_file(str(target))
    return {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}


def quantize(source: Path, target: Path) -> Path:
    """Dynamic int8 as `steps.lib.onnx_export.quantize_int8`; fused operators carry no inferred output
    type, so the quantiser is told that unknown tensors are fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, extra_options=extra)
    return target


def per_token_scales(source: Path, target: Path) -> Path:
    """Replace each `DynamicQuantizeLinear` of a dynamic-int8 graph by a quantisation per token (per row).

    Per token t: scale_t = max|x_t| / 127 and q_t = round(x_t / scale_t) + 128 as uint8, with the zero
    point 128 for every row (`MatMulInteger` takes one zero point for A, so the rows share it and differ
    in scale only). The consumers of the old outputs keep working: the product of the activation scale
    and the weight scale now broadcasts over the rows ([..., tokens, 1]) instead of being one number.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1 / 127, dtype=np.float32), "per_token_inverse_127"),
            numpy_helper.from_array(np.array(1e-30, dtype=np.float32), "per_token_smallest_scale"),
            numpy_helper.from_array(np.array(128, dtype=np.float32), "per_token_offset"),
            numpy_helper.from_array(np.array(128, dtype=np.uint8), "per_token_zero_point"),
        ]
    )
    nodes, replaced = [], set()
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        x, (quantized, scale, zero_point), name = node.input[0], node.output, node.name or node.output[0]
        replaced.update(node.output)
        steps = [
            ("Abs", [x], {}),
            ("ReduceMax", [f"{name}/Abs"], {"axes": [-1], "keepdims": 1}),
            ("Mul", [f"{name}/ReduceMax", "per_token_inverse_127"], {}),
            ("Max", [f"{name}/Mul", "per_token_smallest_scale"], {"output": scale}),  # an all-zero row stays finite
            ("Div", [x, scale], {}),
            ("Round", [f"{name}/Div"], {}),
            ("Add", [f"{name}/Round", "per_token_offset"], {}),
            ("Cast", [f"{name}/Add"], {"to": TensorProto.UINT8, "output": quantized}),
            ("Identity", ["per_token_zero_point"], {"output": zero_point}),
        ]
        for op, inputs, attributes in steps:
            output = attributes.pop("output", f"{name}/{op}")
            nodes.append(helper.make_node(op, inputs, [output], name=f"{name}/{op}", **attributes))
    del graph.node[:]
    graph.node.extend(nodes)
    kept = [info for info in graph.value_info if info.name not in replaced]  # the scales are no longer scalars
    del graph.value_info[:]
    graph.value_info.extend(kept)
    onnx.save(model, str(target))
    return target


def weight_products(path: Path) -> list[str]:
    """The graph's `MatMul` nodes whose second input is a stored weight: the products dynamic int8
    quantises. The attention products multiply two activations and stay fp32 here as they do there."""
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {initializer.name for initializer in graph.initializer}
    return [node.name for node in graph.node if node.op_type == "MatMul" and node.input[1] in weights]


def static_scales(source: Path, target: Path, calibration_ids: list[list[int]]) -> Path:
    """Static int8 (QDQ) of an fp32 export: int8 weights per output channel, uint8 activations whose
    ranges (MinMax) are measured once on `calibration_ids` and then frozen in the graph.

    Each calibration tweet runs alone, unpadded: the ranges are those of real tokens only. Padded
    positions in a served batch may then clip, which changes nothing, since the mask keeps them out of
    every real token's attention and out of the pooled output.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from pyfunc.transformer_model import INPUT_NAMES

    class Tweets(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(calibration_ids)

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self.rows, None)
            return None if row is None else dict(zip(INPUT_NAMES, padded([row]), strict=True))

    quantize_static(
        str(source),
        str(target),
        Tweets(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=weight_products(source),
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return target


def kernels(path: Path, disabled_optimizers: tuple[str, ...] = ()) -> collections.Counter:
    """Operators of the graph ONNX Runtime runs (after its own `ORT_ENABLE_ALL` optimisations)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled_optimizers)
        )
        return collections.Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)


def build_variants(
    artifacts: dict[str, Path], config: dict, encoder, folder: Path, calibration_ids: list[list[int]]
) -> dict[str, dict]:
    """The graphs of the module docstring, with what fused in each and the rewrites each must run without.

    `calibration_ids`: training tweets' token ids, for the static graph's activation ranges."""
    from pyfunc.transformer_model import HF_MODEL_ARTIFACT, ONNX_ARTIFACT

    hf_dir, pad_id, max_length = artifacts[HF_MODEL_ARTIFACT], encoder.pad_id, encoder.max_length
    eager = export_weights(hf_dir, folder / "eager.onnx", pad_id, max_length, attention="eager")
    fused_stats = fuse(eager, folder / "fused.onnx", config)
    unfused_attention_stats = fuse(eager, folder / "fused_no_attention.onnx", config, attention=False)
    sdpa = export_weights(hf_dir, folder / "sdpa.onnx", pad_id, max_length, attention="sdpa")
    per_token = per_token_scales(artifacts[ONNX_ARTIFACT], folder / "per_token_int8.onnx")
    every_rewrite = {"fused": {}, "disabled_optimizers": ()}
    return {
        "served": every_rewrite | {"path": artifacts[ONNX_ARTIFACT]},
        "sdpa_int8": every_rewrite | {"path": quantize(sdpa, folder / "sdpa_int8.onnx")},
        "fused_int8": every_rewrite
        | {"path": quantize(folder / "fused.onnx", folder / "fused_int8.onnx"), "fused": fused_stats},
        "fused_no_attention_int8": every_rewrite
        | {
            "path": quantize(folder / "fused_no_attention.onnx", folder / "fused_no_attention_int8.onnx"),
            "fused": unfused_attention_stats,
        },
        "per_token_int8": {"path": per_token, "fused": {}, "disabled_optimizers": PER_TOKEN_DISABLED_OPTIMIZERS},
        "static_int8": every_rewrite | {"path": static_scales(eager, folder / "static_int8.onnx", calibration_ids)},
    }


def padded(rows: list[list[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ids and attention mask of rows padded to the longest, as the served model pads a batch."""
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return ids, mask


def batch_dependence(backend, ids: list[list[int]], batch: int = 32) -> float:
    """Largest change of a tweet's P(negative) between scoring it alone and among `batch` unsorted neighbours."""
    from pyfunc.transformer_model import negative_proba

    alone = np.concatenate([negative_proba(backend.logits(*padded([row]))) for row in ids])
    batched = np.concatenate(
        [negative_proba(backend.logits(*padded(ids[start : start + batch]))) for start in range(0, len(ids), batch)]
    )
    return float(np.max(np.abs(alone - batched)))


def interleaved_ms_per_tweet(backends: dict, ids: list[list[int]], rounds: int, batch: int = 1) -> dict[str, float]:
    """Best round's mean ms per tweet in length-sorted calls of `batch` tweets, the variants taking turns each round."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    calls = [padded([ids[i] for i in order[start : start + batch]]) for start in range(0, len(ids), batch)]
    for backend in backends.values():
        for row_ids, mask in calls[:20]:
            backend.logits(row_ids, mask)
    best = dict.fromkeys(backends, float("inf"))
    for _ in range(rounds):
        for name, backend in backends.items():
            started = time.perf_counter()
            for row_ids, mask in calls:
                backend.logits(row_ids, mask)
            best[name] = min(best[name], (time.perf_counter() - started) * 1000 / len(ids))
    return best


def champion_split(origin: dict[str, str], split: str, rows: int, seed: int):
    """A sample of one of the champion's splits (texts and labels), through its training run's `data_run_id`.

    Args:
        origin: the benchmark's provenance, which names a registered model's training run.
        split: `train` (the static graph's calibration tweets) or `test` (the scores compared).
        rows: tweets to sample.
        seed: the sample's seed.
    """
    from mlflow.tracking import MlflowClient

    from steps.lib.tracking import load_splits

    run_id = origin.get("model_run_id")
    if not run_id:
        raise SystemExit(f"{origin['model_uri']} is not a registered model version: its splits cannot be found")
    data_run_id = MlflowClient().get_run(run_id).data.params["data_run_id"]
    frame = load_splits(data_run_id)[split]
    return frame.sample(n=min(rows, len(frame)), random_state=seed)


def scores(classifier, backend, texts: list[str]) -> np.ndarray:
    """Uncalibrated P(negative) through the served classifier with `backend` in place of its own."""
    original = classifier.backend
    classifier.attach(classifier.encoder, backend)
    try:
        return classifier.raw_proba(texts)
    finally:
        classifier.attach(classifier.encoder, original)


@click.command(help=__doc__)
@click.option("--model-uri", default=CHAMPION_URI, show_default=True, help="a transformer served through ONNX Runtime")
@click.option("--tweets", type=WHOLE_NUMBER, default=300, show_default=True, help="real tweets timed per round")
@click.option("--rounds", type=WHOLE_NUMBER, default=8, show_default=True, help="timing rounds per variant")
@click.option("--score-rows", type=WHOLE_NUMBER, default=2000, show_default=True, help="test tweets scored per variant")
@click.option(
    "--calibration-tweets", type=WHOLE_NUMBER, default=256, show_default=True, help="training tweets for static int8"
)
@click.option("--json", default="", show_default=True, help="also write every figure to this JSON file")
@click.option("--seed", type=WHOLE_NUMBER, default=7, show_default=True, help="seed of the tweets' samples")
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    host, origin = machine(), provenance(args.model_uri)
    print(f"machine: {host}", flush=True)
    if warning := busy_warning():
        print(warning, flush=True)
    from sklearn.metrics import roc_auc_score

    from pyfunc.transformer_model import OnnxBackend

    _, classifier, config, artifacts = load_champion(args.model_uri)
    test = champion_split(origin, "test", args.score_rows, args.seed)
    calibration = champion_split(origin, "train", args.calibration_tweets, args.seed)["text"].tolist()
    texts = load_texts("", args.tweets, args.seed)
    ids = classifier.encoder.encode(texts)
    with tempfile.TemporaryDirectory() as tmp:
        variants = build_variants(
            artifacts, config, classifier.encoder, Path(tmp), classifier.encoder.encode(calibration)
        )
        backends = {
            name: OnnxBackend(str(variant["path"]), threads=1, disabled_optimizers=variant["disabled_optimizers"])
            for name, variant in variants.items()
        }
        counted = {name: kernels(variant["path"], variant["disabled_optimizers"]) for name, variant in variants.items()}
    timing = {}
    for batch in BATCHES:
        print(f"timing {len(ids)} real tweets, {batch} per call, {args.rounds} rounds, taking turns", flush=True)
        timing[batch] = interleaved_ms_per_tweet(backends, ids, args.rounds, batch)
    dependence = {name: batch_dependence(backend, ids) for name, backend in backends.items()}
    test_texts, labels = test["text"].tolist(), test["label"].to_numpy()
    proba = {name: scores(classifier, backend, test_texts) for name, backend in backends.items()}
    served_auc = roc_auc_score(labels, proba["served"])
    rows = []
    for name in VARIANTS:
        auc = roc_auc_score(labels, proba[name])
        rows.append(
            {
                "variant": name,
                "ms_per_tweet": timing[1][name],
                "vs_served": timing[1][name] / timing[1]["served"],
                "ms_per_tweet_by_batch": {str(batch): timing[batch][name] for batch in BATCHES},
                "batch_dependence": dependence[name],
                "disabled_optimizers": list(variants[name]["disabled_optimizers"]),
                "kernels": sum(counted[name].values()),
                "top_kernels": dict(counted[name].most_common(6)),
                "fused": variants[name]["fused"],
                "max_abs_proba_diff": float(np.max(np.abs(proba[name] - proba["served"]))),
                "test_roc_auc": float(auc),
                "auc_change": float(auc - served_auc),
            }
        )
    print(
        "\n| variant | ms/tweet, 1 per call | x served | 8 per call | 32 per call | batch dependence | kernels | "
        f"max |P diff| | test ROC AUC ({len(labels)} tweets) | change |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        by_batch = row["ms_per_tweet_by_batch"]
        print(
            f"| {row['variant']} | {row['ms_per_tweet']:.2f} | {row['vs_served']:.2f} | {by_batch['8']:.2f} | "
            f"{by_batch['32']:.2f} | {row['batch_dependence']:.2g} | {row['kernels']} | "
            f"{row['max_abs_proba_diff']:.4f} | {row['test_roc_auc']:.4f} | {row['auc_change']:+.4f} |"
        )
    for row in rows:
        print(f"{row['variant']}: fused {row['fused'] or 'nothing'}; top kernels {row['top_kernels']}")
    if warning:
        print(f"\n{warning}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": host, "provenance": origin, "warning": warning, "variants": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
