"""`train_bert`: fine-tune a pretrained transformer for complaints and log it as the custom pyfunc.

Input: a prepare_data run (`data/sentiment.parquet`, `data/train|val|test.parquet`). Output: a
candidate run with the pyfunc under `model/`. Defaults are sized for the embedded data on 2 CPU cores
(docs/design.md, "Main job budget"; bench/transformer_step_time.py measures a step): one epoch over
the sentiment corpus, then three over the complaint training split at a lower rate, in batches of 32,
at most 64 tokens (longer than nearly every normalised tweet), bfloat16 autocast where the CPU has
AMX/AVX512-BF16, then an int8 ONNX graph if it keeps validation ROC AUC close to torch's.
"""

from __future__ import annotations

import os
import tempfile
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

# Before torch loads OpenMP: idle worker threads sleep instead of spinning, which on a shared 2-core
# machine would burn the core the other process needs (docs/design.md, "Known traps"). Set it to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click
import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pyfunc.normalize import VARIANTS
from pyfunc.transformer_model import (
    DEFAULT_BATCH_SIZE,
    HF_MODEL_ARTIFACT,
    ONNX_ARTIFACT,
    OnnxBackend,
    TorchBackend,
    TransformerTweetClassifier,
    cpu_count,
)
from steps.lib.candidate import log_candidate, predict_in_batches
from steps.lib.cli import FLAG, WHOLE_NUMBER, data_run_option, policy_options, seed_option
from steps.lib.operating_point import policy_from_args
from steps.lib.pretrained import (
    DEFAULT_PRETRAINED,
    LABEL_SCHEMES,
    LR_SCHEDULERS,
    Resolution,
    load_pretrained,
    position_limit,
    resolve_and_load,
)
from steps.lib.tracking import SENTIMENT_SPLIT, StepError, log_step_params, pinned, prepare_training, run_step
from steps.lib.transformer_data import encode_dataset, served_encoder, subsample, training_targets

ONNX_PACKAGES = (
    "mlflow",
    "onnxruntime",
    "tokenizers",
    "numpy",
    "pandas",
    "emoji",
    "nltk",
    "lemminflect",
    "azure-monitor-opentelemetry",
)
TORCH_PACKAGES = (*ONNX_PACKAGES[:1], "torch", "transformers", *ONNX_PACKAGES[2:])
TORCH_CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
# How the encoder meets the two labelled sets (docs/design.md, "Complaints"): the sentiment corpus, then
# the complaint training split at a lower rate (the default, the best on validation); the complaint split
# alone; or one shuffled pass over both, the complaint split repeated `complaint_epochs` times.
RECIPES = ("sentiment_then_complaints", "complaints_only", "mixture")
MIN_LENGTH = 8
BF16 = ("auto", "true", "false")


def validate(args: SimpleNamespace) -> None:
    """Parameter checks that need no model; the max_length limit is checked once the model is loaded."""
    policy_from_args(args)
    if args.max_length < MIN_LENGTH:
        raise StepError(f"max_length must be at least {MIN_LENGTH} tokens, got {args.max_length}")
    if args.epochs <= 0 or args.batch_size < 1 or args.learning_rate <= 0:
        raise StepError("epochs and learning_rate must be > 0 and batch_size >= 1")
    if not 0 <= args.warmup_ratio < 1 or args.weight_decay < 0 or args.max_train_samples < 0:
        raise StepError("warmup_ratio must be in [0, 1), weight_decay >= 0, max_train_samples >= 0 (0 = all)")
    if args.complaint_epochs <= 0 or args.complaint_learning_rate <= 0:
        raise StepError("complaint_epochs and complaint_learning_rate must be > 0")


def log_resolution(resolution: Resolution) -> None:
    """Print where the weights came from; log param and tag `resolved_pretrained_model`.

    The name is fixed in docs/design.md ("Candidate runs"): users and scripts rely on it.
    """
    print(f"pretrained model: {resolution.note}", flush=True)
    mlflow.log_params({"resolved_pretrained_model": resolution.resolved, "pretrained_source": resolution.source})
    tags = {
        "resolved_pretrained_model": resolution.resolved,
        "pretrained_source": resolution.source,
        "pretrained_path": resolution.path,
    }
    if resolution.source == "packaged_fallback":
        tags["pretrained_fallback"] = resolution.note
    mlflow.set_tags(tags)


def serving_requirements(onnx: bool) -> list[str]:
    """Minimal pins: ONNX Runtime + tokenizers, or CPU torch + transformers when there is no graph."""
    if onnx:
        return pinned(*ONNX_PACKAGES)
    return [TORCH_CPU_INDEX, *pinned(*TORCH_PACKAGES)]


def use_onnx(classifier: TransformerTweetClassifier, path: Path, batch_size: int) -> None:
    """Point the classifier at an ONNX graph, with the batch size that graph is served with."""
    classifier.batch_size = batch_size
    classifier.attach(classifier.encoder, OnnxBackend(str(path), threads=1))  # as served


def choose_backend(
    classifier: TransformerTweetClassifier, model, workdir: Path, val: pd.DataFrame, args: SimpleNamespace
) -> dict[str, str]:
    """Score validation with torch, then with each export; serve the fastest one that keeps the AUC.

    Dynamic int8 quantises activations with one scale per call, so in a batch a tweet's score would
    depend on its neighbours (and their padding). The int8 graph is therefore served one tweet per
    call: still cheaper than fp32 in batches (docs/serving.md), and a tweet always gets the same probability.
    """
    from steps.lib.onnx_export import export_onnx, keeps_auc, parity, quantize_int8

    texts, y_val = val["text"].tolist(), val["label"].to_numpy()
    reference = predict_in_batches(classifier, texts, "validation (torch)")
    torch_auc = float(roc_auc_score(y_val, reference))
    metrics: dict[str, float] = {"val_roc_auc_torch": torch_auc}
    artifacts: dict[str, str] = {}
    backend = "torch"
    if args.export_onnx:
        started = time.perf_counter()
        fp32 = export_onnx(model, workdir / "model.onnx", classifier.encoder.pad_id, args.max_length)
        metrics["onnx_export_seconds"] = time.perf_counter() - started
        use_onnx(classifier, fp32, DEFAULT_BATCH_SIZE)
        metrics |= parity("onnx", reference, predict_in_batches(classifier, texts, "validation (onnx)"), y_val)
        artifacts[ONNX_ARTIFACT], backend = str(fp32), "onnx"
        if args.quantize:  # int8 applies to the ONNX graph: without export there is nothing to quantise
            int8 = quantize_int8(fp32, workdir / "model_int8.onnx")
            use_onnx(classifier, int8, batch_size=1)
            metrics |= parity(
                "onnx_int8", reference, predict_in_batches(classifier, texts, "validation (onnx int8)"), y_val
            )
            if keeps_auc(torch_auc, metrics["val_roc_auc_onnx_int8"]):
                artifacts[ONNX_ARTIFACT], backend = str(int8), "onnx_int8"
            else:
                print(f"int8 dropped: val AUC {metrics['val_roc_auc_onnx_int8']:.4f} vs torch {torch_auc:.4f}")
                use_onnx(classifier, fp32, DEFAULT_BATCH_SIZE)
    metrics["inference_batch_size"] = classifier.batch_size
    mlflow.log_metrics(metrics)
    mlflow.set_tag("inference_backend", backend)
    print(f"serving backend: {backend}; " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items()), flush=True)
    return artifacts


def describe_training_data(dataset: list[dict], stage: str, resolution: Resolution, args: SimpleNamespace) -> None:
    """Log one stage's token statistics and print what it is about to train, on which hardware settings."""
    import torch

    from steps.lib.fine_tune import resolve_bf16

    lengths = np.array([len(row["input_ids"]) for row in dataset])
    truncated = float(np.mean(lengths >= args.max_length))
    mlflow.log_metrics({f"{stage}_tokens_mean": float(lengths.mean()), f"{stage}_truncated_share": truncated})
    mlflow.set_tag("bf16_autocast", str(resolve_bf16(args.bf16)).lower())
    print(
        f"{stage}: fine-tuning {resolution.resolved} on {len(dataset)} tweets ({lengths.mean():.1f} tokens on "
        f"average, {truncated:.2%} truncated at {args.max_length}): {args.epochs:g} epoch(s) of batches of "
        f"{args.batch_size} at {args.learning_rate:g}, bf16 autocast {resolve_bf16(args.bf16)}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )


def training_stages(
    splits: dict[str, pd.DataFrame], args: SimpleNamespace
) -> list[tuple[str, pd.DataFrame, np.ndarray, SimpleNamespace]]:
    """The recipe as stages: a name, the rows, their class ids, and the stage's epochs and learning rate.

    The sentiment corpus is sampled by `max_train_samples` and labelled by `label_scheme`; a complaint
    is class 1 (`negative`, what the model serves) under both schemes, anything else class 0.
    """
    complaints = splits["train"]
    at_complaint_rate = SimpleNamespace(
        **vars(args) | {"epochs": args.complaint_epochs, "learning_rate": args.complaint_learning_rate}
    )
    if args.recipe == "complaints_only":
        return [("complaints", complaints, complaints["label"].to_numpy(), at_complaint_rate)]
    sentiment = subsample(splits[SENTIMENT_SPLIT], args.max_train_samples, args.seed)
    sentiment_targets = training_targets(sentiment, args.label_scheme)
    if args.recipe == "mixture":
        copies = max(1, round(args.complaint_epochs))
        rows = pd.concat([sentiment, *[complaints] * copies], ignore_index=True)
        targets = np.concatenate([sentiment_targets, *[complaints["label"].to_numpy()] * copies])
        return [("mixture", rows, targets, args)]
    return [
        ("sentiment", sentiment, sentiment_targets, args),
        ("complaints", complaints, complaints["label"].to_numpy(), at_complaint_rate),
    ]


def train(args: SimpleNamespace) -> None:
    import torch
    from transformers import set_seed

    from steps.lib.fine_tune import fine_tune, save_hf_model

    validate(args)
    torch.set_num_threads(cpu_count())
    log_step_params(vars(args))
    _, splits = prepare_training(args.data_run_id)
    if splits["train"].empty:
        raise StepError("the complaint training split is empty: nothing to fine-tune on (check the prepare_data run)")
    stages = training_stages(splits, args)
    set_seed(args.seed)  # before loading: the classification head is initialised at load time
    load = partial(load_pretrained, label_scheme=args.label_scheme)
    (tokenizer, model), resolution = resolve_and_load(args.pretrained, load)
    log_resolution(resolution)
    limit = position_limit(tokenizer, model.config)
    if args.max_length > limit:
        raise StepError(f"max_length {args.max_length} exceeds the limit of {resolution.resolved} ({limit} tokens)")

    encoder = served_encoder(tokenizer, args.max_length, args.preprocessing)
    train_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for stage, rows, targets, settings in stages:
            dataset = encode_dataset(encoder, rows["text"].tolist(), targets)
            describe_training_data(dataset, stage, resolution, settings)
            model, figures = fine_tune(model, tokenizer, dataset, settings, str(workdir / stage), stage)
            train_seconds += figures.pop("train_seconds")
            mlflow.log_metrics({f"{stage}_{key}": value for key, value in figures.items()})
        model = model.float().eval()
        hf_dir = save_hf_model(model, tokenizer, workdir / HF_MODEL_ARTIFACT)
        classifier = TransformerTweetClassifier(args.preprocessing, args.max_length)
        classifier.attach(encoder, TorchBackend(model))
        artifacts = {HF_MODEL_ARTIFACT: str(hf_dir)} | choose_backend(classifier, model, workdir, splits["val"], args)
        log_candidate(
            classifier,
            "transformer",
            splits,
            train_seconds,
            artifacts,
            serving_requirements(ONNX_ARTIFACT in artifacts),
            policy_from_args(args),
        )


@click.command(help=__doc__)
@data_run_option
@click.option(
    "--pretrained",
    default="",
    help=f"hub id or local folder (empty = {DEFAULT_PRETRAINED}, which alone may fall back offline)",
)
@click.option("--preprocessing", type=click.Choice(VARIANTS), default="none", show_default=True, help="text variant")
@click.option("--max-length", type=WHOLE_NUMBER, default=64, show_default=True, help="tokens per tweet, at most")
@click.option(
    "--recipe",
    type=click.Choice(RECIPES),
    default=RECIPES[0],
    show_default=True,
    help="how the two labelled sets are learned",
)
@click.option("--epochs", type=float, default=1.0, show_default=True, help="passes over the sentiment corpus")
@click.option("--batch-size", type=WHOLE_NUMBER, default=32, show_default=True, help="tweets per optimiser step")
@click.option("--learning-rate", type=float, default=1e-4, show_default=True, help="peak, after warmup")
@click.option(
    "--complaint-epochs", type=float, default=3.0, show_default=True, help="passes over the complaint training split"
)
@click.option(
    "--complaint-learning-rate",
    type=float,
    default=3e-5,
    show_default=True,
    help="peak rate on the complaint split, lower than the sentiment stage's so it refines rather than forgets",
)
@click.option(
    "--lr-scheduler",
    type=click.Choice(LR_SCHEDULERS),
    default="linear",
    show_default=True,
    help="learning-rate decay after warmup",
)
@click.option(
    "--label-scheme",
    type=click.Choice(tuple(LABEL_SCHEMES)),
    default="binary",
    show_default=True,
    help="the sentiment stage's classes: binary (negative or not) or three_class (neutral/negative/positive)",
)
@click.option("--warmup-ratio", type=float, default=0.06, show_default=True, help="share of the steps, in [0, 1)")
@click.option("--weight-decay", type=float, default=0.01, show_default=True, help="AdamW weight decay")
@click.option(
    "--max-train-samples",
    type=WHOLE_NUMBER,
    default=0,
    show_default=True,
    help="stratified sample of the sentiment corpus (0 = all)",
)
@click.option(
    "--bf16",
    type=click.Choice(BF16),
    default="auto",
    show_default=True,
    help="bfloat16 autocast: auto (where the CPU has it), true, false",
)
@click.option("--export-onnx", type=FLAG, default=True, show_default=True, help="serve an ONNX graph")
@click.option(
    "--quantize", type=FLAG, default=True, show_default=True, help="int8 graph, kept only if validation AUC holds"
)
@seed_option
@policy_options
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    run_step("train_bert", lambda run: train(args))


if __name__ == "__main__":
    main()
