"""`train_bert`: fine-tune a pretrained transformer and log it as the custom pyfunc.

Defaults are sized for the embedded dataset on 2 CPU cores (bench/bert_step_time.py measures them):
one epoch over the whole training split (28,762 tweets) in batches of 32, 64 tokens (longer than
99.9% of the normalised tweets), bfloat16 autocast where the CPU has AMX/AVX512-BF16, then an int8
ONNX graph if it keeps validation ROC AUC within 0.005 of torch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial
from pathlib import Path

# Before torch loads OpenMP: idle worker threads sleep instead of spinning. On the shared 2-core
# machines a spinning thread burns the core its sibling needs; measured under the same load, one
# epoch ran at 0.76 s/step with PASSIVE and 2.6-3.6 s/step with the default. Set it to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from pyfunc.contract import LABELS
from pyfunc.normalize import VARIANTS
from pyfunc.transformer_model import (
    DEFAULT_BATCH_SIZE,
    HF_MODEL_ARTIFACT,
    ONNX_ARTIFACT,
    OnnxBackend,
    TextEncoder,
    TorchBackend,
    TransformerTweetClassifier,
    cpu_count,
)
from steps.candidate import log_candidate, score
from steps.operating_point import add_policy_arguments, policy_from_args
from steps.pretrained import DEFAULT_PRETRAINED, Resolution, resolve_and_load
from steps.tracking import StepError, log_step_params, pinned, prepare_training, run_step

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
LR_SCHEDULERS = ("linear", "cosine", "constant_with_warmup")  # transformers' names, passed to TrainingArguments
# Class ids per label scheme; `negative` is class 1 in both, which is what the pyfunc serves.
LABEL_SCHEMES = {
    "binary": LABELS,
    "three_class": {0: "neutral", 1: "negative", 2: "positive"},
}
MIN_LENGTH = 8


def _flag(value: str) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _count(value: str) -> int:
    """MLproject passes numbers as typed ("64" or "64.0"): both mean 64."""
    return int(float(value))


def validate(args: argparse.Namespace) -> None:
    """Parameter checks that need no model; the max_length limit is checked once the model is loaded."""
    policy_from_args(args)
    if args.preprocessing not in VARIANTS:
        raise StepError(f"unknown preprocessing {args.preprocessing!r}; valid choices: {', '.join(VARIANTS)}")
    if args.max_length < MIN_LENGTH:
        raise StepError(f"max_length must be at least {MIN_LENGTH} tokens, got {args.max_length}")
    if args.epochs <= 0 or args.batch_size < 1 or args.learning_rate <= 0:
        raise StepError("epochs and learning_rate must be > 0 and batch_size >= 1")
    if not 0 <= args.warmup_ratio < 1 or args.weight_decay < 0 or args.max_train_samples < 0:
        raise StepError("warmup_ratio must be in [0, 1), weight_decay >= 0, max_train_samples >= 0 (0 = all)")
    if args.label_scheme not in LABEL_SCHEMES:
        raise StepError(f"label_scheme must be one of {', '.join(LABEL_SCHEMES)}, got {args.label_scheme!r}")
    if args.lr_scheduler not in LR_SCHEDULERS:
        raise StepError(f"lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}, got {args.lr_scheduler!r}")
    if args.bf16 not in ("auto", "true", "false"):
        raise StepError(f"bf16 must be auto, true or false, got {args.bf16!r}")


def subsample(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A stratified sample of `size` rows (0 or more than available = all): same class balance, fewer steps."""
    if size <= 0 or size >= len(frame):
        return frame
    try:
        sample, _ = train_test_split(frame, train_size=size, stratify=frame["label"], random_state=seed)
    except ValueError:  # a class too rare to stratify at this size
        sample = frame.sample(n=size, random_state=seed)
    return sample


def load_pretrained(name: str, local_files_only: bool, label_scheme: str = "binary"):
    """Tokenizer and a classification head on the encoder; class 1 is `negative` in every scheme."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    id2label = LABEL_SCHEMES[label_scheme]
    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
    if not tokenizer.is_fast:
        raise ValueError(f"{name} has no fast (Rust) tokenizer, which the served model needs")
    model = AutoModelForSequenceClassification.from_pretrained(
        name,
        num_labels=len(id2label),
        id2label=dict(id2label),
        label2id={label: index for index, label in id2label.items()},
        local_files_only=local_files_only,
    )
    return tokenizer, model


def training_targets(frame: pd.DataFrame, label_scheme: str) -> np.ndarray:
    """Class ids to train on: the binary label, or the corpus's own three sentiments.

    Three-class training teaches the encoder that a neutral question and praise differ from a
    complaint in different ways; the model still serves P(negative).
    """
    if label_scheme == "binary":
        return frame["label"].to_numpy()
    classes = {label: index for index, label in LABEL_SCHEMES[label_scheme].items()}
    if "sentiment" not in frame.columns or not frame["sentiment"].isin(list(classes)).all():
        found = sorted(frame["sentiment"].dropna().unique()) if "sentiment" in frame.columns else "no sentiment column"
        raise StepError(
            f"label_scheme three_class needs a sentiment of {', '.join(classes)} on every training row "
            f"(found {found}): prepare the data again, or use label_scheme binary"
        )
    if frame["sentiment"].nunique() < len(classes):
        raise StepError(f"label_scheme three_class needs all of {', '.join(classes)} in the training split")
    return frame["sentiment"].map(classes).to_numpy()


def position_limit(tokenizer, config) -> int:
    """Longest input the model accepts: its position embeddings (and the tokenizer's declared limit)."""
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    return min(int(limit) for limit in limits if limit and limit < 1_000_000)


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
    classifier: TransformerTweetClassifier, model, workdir: Path, val: pd.DataFrame, args: argparse.Namespace
) -> dict[str, str]:
    """Score validation with torch, then with each export; serve the fastest one that keeps the AUC.

    Dynamic int8 quantises activations with one scale per call, so in a batch a tweet's score would
    depend on its neighbours (and their padding). The int8 graph is therefore served one tweet per
    call: still about 3x less CPU than fp32 in batches, and a tweet always gets the same probability.
    """
    from steps.onnx_export import export_onnx, keeps_auc, parity, quantize_int8

    texts, y_val = val["text"].tolist(), val["label"].to_numpy()
    reference = score(classifier, texts, "validation (torch)")
    torch_auc = float(roc_auc_score(y_val, reference))
    metrics: dict[str, float] = {"val_roc_auc_torch": torch_auc}
    artifacts: dict[str, str] = {}
    backend = "torch"
    if args.export_onnx:
        started = time.perf_counter()
        fp32 = export_onnx(model, workdir / "model.onnx", classifier.encoder.pad_id, args.max_length)
        metrics["onnx_export_seconds"] = time.perf_counter() - started
        use_onnx(classifier, fp32, DEFAULT_BATCH_SIZE)
        metrics |= parity("onnx", reference, score(classifier, texts, "validation (onnx)"), y_val)
        artifacts[ONNX_ARTIFACT], backend = str(fp32), "onnx"
        if args.quantize:  # int8 applies to the ONNX graph: without export there is nothing to quantise
            int8 = quantize_int8(fp32, workdir / "model_int8.onnx")
            use_onnx(classifier, int8, batch_size=1)
            metrics |= parity("onnx_int8", reference, score(classifier, texts, "validation (onnx int8)"), y_val)
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


def served_encoder(tokenizer, args: argparse.Namespace) -> TextEncoder:
    """The encoder the pyfunc will use, built from a copy of the training tokenizer's Rust backend."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    return TextEncoder(backend, args.max_length, args.preprocessing, tokenizer.pad_token_id or 0)


def describe_training_data(dataset: list[dict], resolution: Resolution, args: argparse.Namespace) -> None:
    """Log the token statistics and print what is about to be trained, on which hardware settings."""
    import torch

    from steps.fine_tune import resolve_bf16

    lengths = np.array([len(row["input_ids"]) for row in dataset])
    truncated = float(np.mean(lengths >= args.max_length))
    mlflow.log_metrics({"train_tokens_mean": float(lengths.mean()), "train_truncated_share": truncated})
    mlflow.set_tag("bf16_autocast", str(resolve_bf16(args.bf16)).lower())
    print(
        f"fine-tuning {resolution.resolved} on {len(dataset)} tweets ({lengths.mean():.1f} tokens on average, "
        f"{truncated:.2%} truncated at {args.max_length}): {args.epochs:g} epoch(s) of batches of {args.batch_size}, "
        f"bf16 autocast {resolve_bf16(args.bf16)}, {torch.get_num_threads()} threads",
        flush=True,
    )


def train(args: argparse.Namespace) -> None:
    import torch
    from transformers import set_seed

    from steps.fine_tune import encode_dataset, fine_tune, save_hf_model

    validate(args)
    torch.set_num_threads(cpu_count())
    log_step_params(vars(args))
    _, splits = prepare_training(args.data_run_id)
    train_split = subsample(splits["train"], args.max_train_samples, args.seed)
    if train_split.empty:
        raise StepError("the training split is empty: nothing to fine-tune on (check the prepare_data run)")
    set_seed(args.seed)  # before loading: the classification head is initialised at load time
    targets = training_targets(train_split, args.label_scheme)
    load = partial(load_pretrained, label_scheme=args.label_scheme)
    (tokenizer, model), resolution = resolve_and_load(args.pretrained, load)
    log_resolution(resolution)
    limit = position_limit(tokenizer, model.config)
    if args.max_length > limit:
        raise StepError(f"max_length {args.max_length} exceeds the limit of {resolution.resolved} ({limit} tokens)")

    encoder = served_encoder(tokenizer, args)
    dataset = encode_dataset(encoder, train_split["text"].tolist(), targets)
    describe_training_data(dataset, resolution, args)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model, figures = fine_tune(model, tokenizer, dataset, args, str(workdir / "trainer"))
        mlflow.log_metrics({key: value for key, value in figures.items() if key != "train_seconds"})
        model = model.float().eval()
        hf_dir = save_hf_model(model, tokenizer, workdir / HF_MODEL_ARTIFACT)
        classifier = TransformerTweetClassifier(args.preprocessing, args.max_length)
        classifier.attach(encoder, TorchBackend(model))
        artifacts = {HF_MODEL_ARTIFACT: str(hf_dir)} | choose_backend(classifier, model, workdir, splits["val"], args)
        log_candidate(
            classifier,
            "transformer",
            splits,
            figures["train_seconds"],
            artifacts,
            serving_requirements(ONNX_ARTIFACT in artifacts),
            policy_from_args(args),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-run-id", default="", help="prepare_data run (empty = newest finished)")
    parser.add_argument(
        "--pretrained",
        default="",
        help=f"hub id or local directory; empty = {DEFAULT_PRETRAINED}, which alone may fall back offline",
    )
    parser.add_argument("--preprocessing", default="none", help=f"one of {', '.join(VARIANTS)}")
    parser.add_argument("--max-length", type=_count, default=64)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=_count, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="peak, after warmup")
    parser.add_argument(
        "--lr-scheduler", default="linear", help=f"learning-rate schedule after warmup: {', '.join(LR_SCHEDULERS)}"
    )
    parser.add_argument(
        "--label-scheme",
        default="binary",
        help="binary (negative or not) or three_class (the corpus's neutral/negative/positive; serves P(negative))",
    )
    parser.add_argument("--warmup-ratio", type=float, default=0.06)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-train-samples", type=_count, default=0, help="stratified sample; 0 = all")
    parser.add_argument("--bf16", default="auto", help="bfloat16 autocast: auto (= if the CPU has it), true, false")
    parser.add_argument("--export-onnx", type=_flag, default=True)
    parser.add_argument("--quantize", type=_flag, default=True, help="int8, kept only if val AUC holds")
    parser.add_argument("--seed", type=_count, default=42)
    add_policy_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_step("train_bert", lambda run: train(args))


if __name__ == "__main__":
    main()
