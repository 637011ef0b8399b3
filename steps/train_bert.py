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
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

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
from steps.lib.operating_point import ThresholdPolicy
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

if TYPE_CHECKING:  # steps.lib.fine_tune imports transformers and torch: only `train` loads it
    from steps.lib.fine_tune import FineTuning

ONNX_PACKAGES = (
    "mlflow",
    "onnxruntime",
    "tokenizers",
    "numpy",
    "joblib",
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


def validate(
    policy: ThresholdPolicy,
    settings: FineTuning,
    max_length: int,
    max_train_samples: int,
    complaint_epochs: float,
    complaint_learning_rate: float,
) -> None:
    """Parameter checks that need no model; the max_length limit is checked once the model is loaded.

    Args:
        policy: the operating-point policy, checked first.
        settings: the Trainer settings of the command (its epochs and learning rate are the sentiment stage's).
        max_length: tokens per tweet.
        max_train_samples: the sentiment corpus's sample size (0 = all).
        complaint_epochs: the complaint stage's epochs.
        complaint_learning_rate: the complaint stage's learning rate.
    """
    policy.validate()
    if max_length < MIN_LENGTH:
        raise StepError(f"max_length must be at least {MIN_LENGTH} tokens, got {max_length}")
    if settings.epochs <= 0 or settings.batch_size < 1 or settings.learning_rate <= 0:
        raise StepError("epochs and learning_rate must be > 0 and batch_size >= 1")
    if not 0 <= settings.warmup_ratio < 1 or settings.weight_decay < 0 or max_train_samples < 0:
        raise StepError("warmup_ratio must be in [0, 1), weight_decay >= 0, max_train_samples >= 0 (0 = all)")
    if complaint_epochs <= 0 or complaint_learning_rate <= 0:
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
    classifier: TransformerTweetClassifier,
    model,
    workdir: Path,
    val: pd.DataFrame,
    export_onnx: bool,
    quantize: bool,
) -> dict[str, str]:
    """Score validation with torch, then with each export; serve the fastest one that keeps the AUC.

    `export_onnx` offers the fp32 ONNX graph (at the classifier's max_length), `quantize` its int8
    version as well; torch serves when neither is kept.

    Dynamic int8 quantises activations with one scale per call, so in a batch a tweet's score would
    depend on its neighbours (and their padding). The int8 graph is therefore served one tweet per
    call: still cheaper than fp32 in batches (docs/serving.md), and a tweet always gets the same probability.
    """
    from steps.lib import onnx_export  # the module, not its export_onnx: the flag of the same name decides

    texts, y_val = val["text"].tolist(), val["label"].to_numpy()
    reference = predict_in_batches(classifier, texts, "validation (torch)")
    torch_auc = float(roc_auc_score(y_val, reference))
    metrics: dict[str, float] = {"val_roc_auc_torch": torch_auc}
    artifacts: dict[str, str] = {}
    backend = "torch"
    if export_onnx:
        started = time.perf_counter()
        fp32 = onnx_export.export_onnx(model, workdir / "model.onnx", classifier.encoder.pad_id, classifier.max_length)
        metrics["onnx_export_seconds"] = time.perf_counter() - started
        use_onnx(classifier, fp32, DEFAULT_BATCH_SIZE)
        scored = predict_in_batches(classifier, texts, "validation (onnx)")
        metrics |= onnx_export.parity("onnx", reference, scored, y_val)
        artifacts[ONNX_ARTIFACT], backend = str(fp32), "onnx"
        if quantize:  # int8 applies to the ONNX graph: without export there is nothing to quantise
            int8 = onnx_export.quantize_int8(fp32, workdir / "model_int8.onnx")
            use_onnx(classifier, int8, batch_size=1)
            metrics |= onnx_export.parity(
                "onnx_int8", reference, predict_in_batches(classifier, texts, "validation (onnx int8)"), y_val
            )
            if onnx_export.keeps_auc(torch_auc, metrics["val_roc_auc_onnx_int8"]):
                artifacts[ONNX_ARTIFACT], backend = str(int8), "onnx_int8"
            else:
                print(f"int8 dropped: val AUC {metrics['val_roc_auc_onnx_int8']:.4f} vs torch {torch_auc:.4f}")
                use_onnx(classifier, fp32, DEFAULT_BATCH_SIZE)
    metrics["inference_batch_size"] = classifier.batch_size
    mlflow.log_metrics(metrics)
    mlflow.set_tag("inference_backend", backend)
    print(f"serving backend: {backend}; " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items()), flush=True)
    return artifacts


def describe_training_data(
    dataset: list[dict], stage: str, resolution: Resolution, settings: FineTuning, max_length: int
) -> None:
    """Log one stage's token statistics and print what it is about to train, on which hardware settings."""
    import torch

    from steps.lib.fine_tune import resolve_bf16

    lengths = np.array([len(row["input_ids"]) for row in dataset])
    truncated = float(np.mean(lengths >= max_length))
    mlflow.log_metrics({f"{stage}_tokens_mean": float(lengths.mean()), f"{stage}_truncated_share": truncated})
    mlflow.set_tag("bf16_autocast", str(resolve_bf16(settings.bf16)).lower())
    print(
        f"{stage}: fine-tuning {resolution.resolved} on {len(dataset)} tweets ({lengths.mean():.1f} tokens on "
        f"average, {truncated:.2%} truncated at {max_length}): {settings.epochs:g} epoch(s) of batches of "
        f"{settings.batch_size} at {settings.learning_rate:g}, bf16 autocast {resolve_bf16(settings.bf16)}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )


def training_stages(
    splits: dict[str, pd.DataFrame],
    recipe: str,
    settings: FineTuning,
    complaint_epochs: float,
    complaint_learning_rate: float,
    max_train_samples: int,
    label_scheme: str,
) -> list[tuple[str, pd.DataFrame, np.ndarray, FineTuning]]:
    """The recipe as stages: a name, the rows, their class ids, and the stage's Trainer settings.

    The sentiment corpus is sampled by `max_train_samples` and labelled by `label_scheme`; a complaint
    is class 1 (`negative`, what the model serves) under both schemes, anything else class 0. The
    sentiment stage (and a mixture) trains with `settings`, the complaint stage with its own epochs
    and learning rate.
    """
    complaints = splits["train"]
    at_complaint_rate = replace(settings, epochs=complaint_epochs, learning_rate=complaint_learning_rate)
    if recipe == "complaints_only":
        return [("complaints", complaints, complaints["label"].to_numpy(), at_complaint_rate)]
    sentiment = subsample(splits[SENTIMENT_SPLIT], max_train_samples, settings.seed)
    sentiment_targets = training_targets(sentiment, label_scheme)
    if recipe == "mixture":
        copies = max(1, round(complaint_epochs))
        rows = pd.concat([sentiment, *[complaints] * copies], ignore_index=True)
        targets = np.concatenate([sentiment_targets, *[complaints["label"].to_numpy()] * copies])
        return [("mixture", rows, targets, settings)]
    return [
        ("sentiment", sentiment, sentiment_targets, settings),
        ("complaints", complaints, complaints["label"].to_numpy(), at_complaint_rate),
    ]


def train(
    data_run_id: str,
    pretrained: str,
    preprocessing: str,
    max_length: int,
    recipe: str,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    complaint_epochs: float,
    complaint_learning_rate: float,
    lr_scheduler: str,
    label_scheme: str,
    warmup_ratio: float,
    weight_decay: float,
    max_train_samples: int,
    bf16: str,
    export_onnx: bool,
    quantize: bool,
    seed: int,
    threshold_policy: str,
    cost_ratio: float,
    beta: float,
    min_precision: float,
) -> None:
    """Fine-tune the pretrained transformer by the recipe, choose its served graph, log it as a candidate.

    The options are the click command's (`python -m steps.train_bert --help` says what each means);
    the Trainer's are gathered once, as `FineTuning` (the complaint stage replaces epochs and rate).
    """
    parameters = dict(locals())  # every option, as `log_step_params` records them
    import torch
    from transformers import set_seed

    from steps.lib.fine_tune import FineTuning, fine_tune, save_hf_model

    policy = ThresholdPolicy(threshold_policy, cost_ratio, beta, min_precision)
    settings = FineTuning(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler=lr_scheduler,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        bf16=bf16,
        seed=seed,
    )
    validate(policy, settings, max_length, max_train_samples, complaint_epochs, complaint_learning_rate)
    torch.set_num_threads(cpu_count())
    log_step_params(parameters)
    _, splits = prepare_training(data_run_id)
    if splits["train"].empty:
        raise StepError("the complaint training split is empty: nothing to fine-tune on (check the prepare_data run)")
    stages = training_stages(
        splits, recipe, settings, complaint_epochs, complaint_learning_rate, max_train_samples, label_scheme
    )
    set_seed(seed)  # before loading: the classification head is initialised at load time
    load = partial(load_pretrained, label_scheme=label_scheme)
    (tokenizer, model), resolution = resolve_and_load(pretrained, load)
    log_resolution(resolution)
    limit = position_limit(tokenizer, model.config)
    if max_length > limit:
        raise StepError(f"max_length {max_length} exceeds the limit of {resolution.resolved} ({limit} tokens)")

    encoder = served_encoder(tokenizer, max_length, preprocessing)
    train_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for stage, rows, targets, settings in stages:
            dataset = encode_dataset(encoder, rows["text"].tolist(), targets)
            describe_training_data(dataset, stage, resolution, settings, max_length)
            model, figures = fine_tune(model, tokenizer, dataset, settings, str(workdir / stage), stage)
            train_seconds += figures.pop("train_seconds")
            mlflow.log_metrics({f"{stage}_{key}": value for key, value in figures.items()})
        model = model.float().eval()
        hf_dir = save_hf_model(model, tokenizer, workdir / HF_MODEL_ARTIFACT)
        classifier = TransformerTweetClassifier(preprocessing, max_length)
        classifier.attach(encoder, TorchBackend(model))
        artifacts = {HF_MODEL_ARTIFACT: str(hf_dir)}
        artifacts |= choose_backend(classifier, model, workdir, splits["val"], export_onnx, quantize)
        log_candidate(
            classifier,
            "transformer",
            splits,
            train_seconds,
            artifacts,
            serving_requirements(ONNX_ARTIFACT in artifacts),
            policy,
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
    run_step("train_bert", lambda run: train(**options))


if __name__ == "__main__":
    main()
