"""Fine-tuning with the transformers `Trainer`: dataset, arguments and the MLflow loss callback."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

FLUSH_EVERY = 50  # per-step metrics are sent in batches: one store write per step would slow training
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class FineTuning:
    """One training stage's Trainer settings: what `train_bert` and `adapt` choose, typed once.

    Attributes:
        epochs: passes over the stage's rows (a fraction ends the last pass early).
        batch_size: tweets per optimiser step.
        learning_rate: peak rate, after warmup.
        lr_scheduler: decay after warmup, a transformers name (`steps.lib.pretrained.LR_SCHEDULERS`).
        warmup_ratio: share of the steps warming up, in [0, 1).
        weight_decay: AdamW weight decay.
        bf16: bfloat16 autocast, `auto`, `true` or `false` (`resolve_bf16`).
        seed: the Trainer's seed and data seed.
    """

    epochs: float
    batch_size: int
    learning_rate: float
    lr_scheduler: str
    warmup_ratio: float
    weight_decay: float
    bf16: str
    seed: int


def cpu_has_bf16() -> bool:
    """Native bfloat16 matrix units (AMX or AVX512-BF16): there autocast is faster; elsewhere it is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_bf16(setting: str) -> bool:
    """`auto` = bfloat16 autocast exactly where the CPU computes it natively.

    Args:
        setting: `auto`, `true`, or anything else for fp32.

    Returns:
        Whether to train under bfloat16 autocast.
    """
    return cpu_has_bf16() if setting == "auto" else setting == "true"


class MlflowStepLogger(TrainerCallback):
    """Training loss and learning rate at every optimiser step, as MLflow metric histories."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = f"{prefix}_" if prefix else ""
        self.client = MlflowClient()
        self.run_id = mlflow.active_run().info.run_id
        self.pending: list[Metric] = []
        self.losses: list[tuple[int, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        now = int(time.time() * 1000)
        self.losses.append((state.global_step, float(logs["loss"])))
        self.pending.append(Metric(f"{self.prefix}train_loss", float(logs["loss"]), now, state.global_step))
        if "learning_rate" in logs:
            rate = Metric(f"{self.prefix}learning_rate", float(logs["learning_rate"]), now, state.global_step)
            self.pending.append(rate)
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def on_train_end(self, args, state, control, **kwargs):
        self.flush()

    def flush(self) -> None:
        if self.pending:
            self.client.log_batch(self.run_id, metrics=self.pending, synchronous=True)
            self.pending = []


class LossInProgressBar(ProgressCallback):
    """Trainer's tqdm bar, with the latest loss as its postfix instead of one printed line per step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)


def training_arguments(settings: FineTuning, output_dir: str) -> TrainingArguments:
    """Warmup then the chosen decay, batches of similar length, no checkpoints, no third-party reporters.

    Args:
        settings: the stage's epochs, batch size, rates, schedule, autocast and seed.
        output_dir: the Trainer's working folder (no checkpoints are saved).

    Returns:
        CPU training arguments that log the loss at every optimiser step.
    """
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=float(settings.warmup_ratio),  # a float in [0, 1) is a ratio of the total steps
        weight_decay=settings.weight_decay,
        train_sampling_strategy="group_by_length",
        bf16=resolve_bf16(settings.bf16),
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_pin_memory=False,
        seed=settings.seed,
        data_seed=settings.seed,
        disable_tqdm=False,
    )


def fine_tune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: list[dict],
    settings: FineTuning,
    output_dir: str,
    stage: str = "",
) -> tuple[PreTrainedModel, dict[str, float]]:
    """Train; return the plain fine-tuned model and the figures worth logging (time, steps, mean loss).

    Call it inside the run: loss and learning rate are logged per step, the loss curve at the end.

    Args:
        model: the pretrained model with its classification head.
        tokenizer: its tokenizer, which pads each batch.
        dataset: as `steps.lib.transformer_data.encode_dataset` returns it.
        settings: the stage's Trainer settings.
        output_dir: the Trainer's working folder.
        stage: prefixes the loss and rate histories and names the curve, when training goes in stages.

    Returns:
        The fp32 model without its mixed-precision wrapper, and `train_seconds`, `train_steps`,
        `train_seconds_per_step`, `train_loss_mean` and `train_samples`.
    """
    logger = MlflowStepLogger(stage)
    trainer = Trainer(
        model=model,
        args=training_arguments(settings, output_dir),
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        callbacks=[logger],
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(LossInProgressBar())
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    log_loss_curve(logger.losses, stage)
    # Mixed precision wraps `forward` in autocast: unwrap, so export and inference see the plain fp32 model.
    trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    return trained, {
        "train_seconds": seconds,
        "train_steps": float(result.global_step),
        "train_seconds_per_step": seconds / max(1, result.global_step),
        "train_loss_mean": float(result.training_loss),
        "train_samples": float(len(dataset)),
    }


def log_loss_curve(losses: list[tuple[int, float]], stage: str = "") -> None:
    """Per-step loss with a moving average: the picture of one run without opening the metric view."""
    if not losses:
        return
    steps, values = np.array(losses).T
    window = max(1, len(values) // 20)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(steps, values, alpha=0.35, label="per step")
    ax.plot(steps[window - 1 :], smooth, label=f"moving average ({window} steps)")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title(stage or None)
    ax.legend()
    mlflow.log_figure(fig, f"plots/{stage + '_' if stage else ''}train_loss_curve.png")
    plt.close(fig)


def save_hf_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: Path) -> Path:
    """`save_pretrained` weights and tokenizer: the `hf_model` artifact (also the naive benchmark's input).

    Args:
        model: the fine-tuned model.
        tokenizer: its tokenizer.
        directory: where to write both.

    Returns:
        The directory.
    """
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
