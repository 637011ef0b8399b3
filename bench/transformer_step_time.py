"""Measure `train_bert`'s cost on this machine and project the full step: seconds per training step and
tweets/s of each scoring backend, from a few dozen real batches of the prepared training split.

\b
    python bench/transformer_step_time.py --steps 40 --batch-size 32 --max-length 64 [--data-run-id ID]

Wall time on a shared machine includes the other tenants' load, so process CPU time is reported too
(CPU seconds / threads = the wall time an idle machine would need, if the threads scale perfectly).
Scoring is measured as train_bert serves it: torch and fp32 ONNX in batches, int8 one tweet per call.
Nothing is logged to MLflow; the prepared data is read from the tracking store.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train_bert sets it, before torch loads OpenMP

import click
import numpy as np
import torch
from mlflow.tracking import MlflowClient
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, set_seed

from pyfunc.transformer_model import OnnxBackend, TorchBackend, TransformerTweetClassifier, cpu_count
from steps.lib.cli import WHOLE_NUMBER, data_run_option, seed_option
from steps.lib.fine_tune import FineTuning, training_arguments
from steps.lib.pretrained import DEFAULT_PRETRAINED, load_pretrained, resolve_and_load
from steps.lib.tracking import configure_tracking, load_splits, newest_prepared_run_id
from steps.lib.transformer_data import encode_dataset, served_encoder, subsample

SKIPPED_STEPS = 3  # first steps pay for lazy initialisation and allocator warm-up
# Tweets train_bert scores after training, per backend: validation once with torch and fp32 ONNX,
# then with int8, which (when kept) also scores val+test for the metrics and 1,000 for the timing.
SCORED = {"torch": 3_596, "onnx": 3_596, "onnx_int8": 3_596 + 7_192 + 1_000}


class StepClock(TrainerCallback):
    """Wall and process-CPU seconds of every optimiser step."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._start = (time.perf_counter(), time.process_time())

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = (time.perf_counter(), time.process_time())

    def on_step_end(self, args, state, control, **kwargs):
        self.wall.append(time.perf_counter() - self._start[0])
        self.cpu.append(time.process_time() - self._start[1])


def newest_prepared_run() -> str:
    experiment_ids = [experiment.experiment_id for experiment in MlflowClient().search_experiments()]
    run_id = newest_prepared_run_id(experiment_ids)
    if run_id is None:
        sys.exit("no finished prepare_data run in the tracking store: run prepare_data first")
    return run_id


def measure_training(settings: FineTuning, steps: int, model, tokenizer, dataset):
    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        arguments = training_arguments(settings, tmp)
        arguments.max_steps = steps + SKIPPED_STEPS
        arguments.disable_tqdm = True
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=dataset,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[clock],
        )
        trainer.train()
    return clock, trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)


def measure_scoring(classifier: TransformerTweetClassifier, texts: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds per tweet, scored as the classifier's batch size says."""
    classifier.raw_proba(texts[:64])
    wall, cpu = time.perf_counter(), time.process_time()
    classifier.raw_proba(texts)
    return (time.perf_counter() - wall) / len(texts), (time.process_time() - cpu) / len(texts)


@click.command(help=__doc__)
@data_run_option
@click.option(
    "--pretrained",
    default="",
    show_default=True,
    help=f"hub id or local folder, as train_bert takes it (empty = {DEFAULT_PRETRAINED})",
)
@click.option("--steps", type=WHOLE_NUMBER, default=40, show_default=True, help="timed optimiser steps")
@click.option("--batch-size", type=WHOLE_NUMBER, default=32, show_default=True, help="tweets per training step")
@click.option("--max-length", type=WHOLE_NUMBER, default=64, show_default=True, help="tokenizer max length")
@click.option(
    "--bf16",
    type=click.Choice(("auto", "true", "false")),
    default="auto",
    show_default=True,
    help="bfloat16 autocast, as train_bert: auto (where the CPU has it), true, false",
)
@click.option("--threads", type=WHOLE_NUMBER, default=0, show_default=True, help="torch threads (0 = cpu_count())")
@click.option(
    "--score-sample", type=WHOLE_NUMBER, default=512, show_default=True, help="validation tweets scored per backend"
)
@seed_option
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    settings = FineTuning(
        epochs=1.0,
        batch_size=args.batch_size,
        learning_rate=5e-5,
        lr_scheduler="linear",
        warmup_ratio=0.06,
        weight_decay=0.01,
        bf16=args.bf16,
        seed=args.seed,
    )
    threads = args.threads or cpu_count()
    torch.set_num_threads(threads)
    configure_tracking()
    splits = load_splits(args.data_run_id or newest_prepared_run())
    set_seed(args.seed)
    (tokenizer, model), resolution = resolve_and_load(args.pretrained, load_pretrained)
    print(f"model: {resolution.note}\nthreads: {threads}, load average before: {os.getloadavg()}")

    encoder = served_encoder(tokenizer, args.max_length, "none")
    sample = subsample(splits["train"], (args.steps + SKIPPED_STEPS) * args.batch_size * 4, args.seed)
    dataset = encode_dataset(encoder, sample["text"].tolist(), sample["label"].to_numpy())

    clock, model = measure_training(settings, args.steps, model, tokenizer, dataset)
    wall, cpu = np.array(clock.wall[SKIPPED_STEPS:]), np.array(clock.cpu[SKIPPED_STEPS:])
    print(
        f"training: {len(wall)} steps of {args.batch_size} (max_length {args.max_length}, bf16={args.bf16}): "
        f"wall s/step median {np.median(wall):.3f} mean {wall.mean():.3f}; "
        f"CPU s/step median {np.median(cpu):.3f} (/ {threads} threads = {np.median(cpu) / threads:.3f})"
    )
    texts = splits["val"]["text"].tolist()[: args.score_sample]
    classifier = TransformerTweetClassifier("none", args.max_length)
    classifier.attach(encoder, TorchBackend(model.float().eval()))
    scoring = {"torch": measure_scoring(classifier, texts)}
    with tempfile.TemporaryDirectory() as tmp:
        from steps.lib.onnx_export import export_onnx, quantize_int8

        fp32 = export_onnx(model, Path(tmp) / "model.onnx", 0, args.max_length)
        classifier.attach(encoder, OnnxBackend(str(fp32), threads))
        scoring["onnx"] = measure_scoring(classifier, texts)
        classifier.batch_size = 1
        classifier.attach(encoder, OnnxBackend(str(quantize_int8(fp32, Path(tmp) / "int8.onnx")), threads))
        scoring["onnx_int8"] = measure_scoring(classifier, texts)
    for name, (wall_per, cpu_per) in scoring.items():
        print(f"scoring {name}: {1 / wall_per:.0f} tweets/s wall, {threads / cpu_per:.0f} tweets/s from CPU time")
    print(f"load average after: {os.getloadavg()}")

    step_idle = float(np.median(cpu)) / threads
    scoring_seconds = sum(SCORED[name] * cpu / threads for name, (_, cpu) in scoring.items())
    total_train = len(splits["train"])
    print("projection on an idle machine (CPU time / threads), 1 epoch:")
    for size in (15_000, 16_000, 20_000, total_train):
        steps = math.ceil(size / args.batch_size)
        train = steps * step_idle
        print(
            f"  {size:>6} tweets: {steps} steps x {step_idle:.2f} s = {train / 60:.1f} min training"
            f" + ~{scoring_seconds / 60:.1f} min scoring = {(train + scoring_seconds) / 60:.1f} min"
        )


if __name__ == "__main__":
    main()
