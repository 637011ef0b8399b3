"""What `train_lstm` and `compare_lstm` share: arm options and checks, curve names, the arms a comparison trained.

`compare_lstm` forwards a subset of the arm options to every `train_lstm` child; both read them from
here, so a default or a check is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import click
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from pyfunc.normalize import VARIANTS
from steps.lib.cli import FLAG, WHOLE_NUMBER, stack
from steps.lib.operating_point import ThresholdPolicy
from steps.lib.tracking import StepError

EMBEDDINGS = ("learned", "word2vec", "fasttext")
DECISION_METRIC = "val_roc_auc"  # what the arm comparisons decide by: threshold-free, paired by row
POSITIVE_SIZES = ("epochs", "vocab_size", "max_length", "embedding_dim", "units", "batch_size", "threads")
POSITIVE_GENSIM = ("window", "min_count", "w2v_epochs", "fasttext_bucket")
# Keras history key -> the training-curve metric logged per epoch. Named apart from the candidate
# metric keys (`val_roc_auc`, ...) so the MLflow comparison view shows no curve as a NaN column
# of the other families; `epoch_val_auc` is Keras' own AUC (trapezoids over 200 thresholds).
CURVE_NAMES = {
    "loss": "epoch_train_loss",
    "auc": "epoch_train_auc",
    "val_loss": "epoch_val_loss",
    "val_auc": "epoch_val_auc",
}

# name -> (type, default, help): one arm's knobs, in the order `--help` lists them.
ARM_OPTIONS: dict[str, tuple[click.ParamType | type, object, str]] = {
    "epochs": (WHOLE_NUMBER, 5, "upper bound; early stopping usually ends sooner"),
    "patience": (WHOLE_NUMBER, 1, "epochs without a better validation AUC before stopping"),
    "preprocessing": (click.Choice(VARIANTS), "stem", "text variant"),
    "embeddings": (click.Choice(EMBEDDINGS), "word2vec", "initial vectors"),
    "trainable_embeddings": (FLAG, True, "fine-tune the initial vectors"),
    "vocab_size": (WHOLE_NUMBER, 10_000, "word ids, padding and out-of-vocabulary included"),
    "max_length": (WHOLE_NUMBER, 32, "tokens kept per tweet (the rest truncated)"),
    "embedding_dim": (WHOLE_NUMBER, 100, "embedding width"),
    "units": (WHOLE_NUMBER, 64, "LSTM units per direction"),
    "dropout": (float, 0.3, "dropout before the output layer, in [0, 1)"),
    "batch_size": (WHOLE_NUMBER, 256, "tweets per optimiser step"),
    "learning_rate": (float, 3e-3, "Adam learning rate"),
    "threads": (WHOLE_NUMBER, 1, "backend intra-op threads (arms train side by side, one thread each)"),
    "sg": (WHOLE_NUMBER, 0, "gensim: 1 = skip-gram, 0 = CBOW"),
    "window": (WHOLE_NUMBER, 5, "gensim context window"),
    "min_count": (WHOLE_NUMBER, 2, "gensim: ignore rarer tokens"),
    "w2v_epochs": (WHOLE_NUMBER, 5, "gensim training epochs"),
    "fasttext_bucket": (WHOLE_NUMBER, 100_000, "FastText n-gram hash buckets"),
}
# The knobs compare_lstm forwards unchanged to every arm (it sets preprocessing and embeddings itself).
FORWARDED = ("epochs", "patience", "vocab_size", "max_length", "embedding_dim", "units", "batch_size")
FORWARDED += ("learning_rate", "w2v_epochs", "min_count")


def arm_options(names: Iterable[str] = tuple(ARM_OPTIONS)) -> Callable[[Callable], Callable]:
    """The named arm options as click options, with their defaults and help.

    Args:
        names: keys of `ARM_OPTIONS`, in the order `--help` lists them (default: all).

    Returns:
        One decorator adding them.
    """
    return stack(
        *(
            click.option(
                f"--{name.replace('_', '-')}",
                type=ARM_OPTIONS[name][0],
                default=ARM_OPTIONS[name][1],
                show_default=True,
                help=ARM_OPTIONS[name][2],
            )
            for name in names
        )
    )


@dataclass(frozen=True)
class LstmArm:
    """One arm's knobs, typed: the `ARM_OPTIONS` (which hold their defaults and help), in their order."""

    epochs: int
    patience: int
    preprocessing: str
    embeddings: str
    trainable_embeddings: bool
    vocab_size: int
    max_length: int
    embedding_dim: int
    units: int
    dropout: float
    batch_size: int
    learning_rate: float
    threads: int
    sg: int
    window: int
    min_count: int
    w2v_epochs: int
    fasttext_bucket: int

    @classmethod
    def of(cls, options: Mapping[str, object]) -> LstmArm:
        """The arm these options describe, any arm option not among them at its default.

        Args:
            options: option values by name; names that are not arm options are ignored.

        Returns:
            The arm (not checked: `validate_arm` does).
        """
        return cls(**{name: options.get(name, spec[1]) for name, spec in ARM_OPTIONS.items()})


def validate_arm(arm: LstmArm, policy: ThresholdPolicy) -> None:
    """Every arm parameter checked before anything is logged, so a typo never leaves a half-made candidate.

    Args:
        arm: the arm's knobs.
        policy: its operating-point policy, checked first.

    Raises:
        StepError: naming the first bad parameter and its value.
    """
    policy.validate()
    for name in POSITIVE_SIZES + POSITIVE_GENSIM:
        if getattr(arm, name) <= 0:
            raise StepError(f"{name} must be a positive integer, got {getattr(arm, name)}")
    if arm.vocab_size < 3:
        raise StepError(f"vocab_size must be at least 3 (padding, out-of-vocabulary, a word), got {arm.vocab_size}")
    if arm.patience < 0:
        raise StepError(f"patience must be >= 0, got {arm.patience}")
    if not 0.0 <= arm.dropout < 1.0:
        raise StepError(f"dropout must be in [0, 1), got {arm.dropout}")
    if arm.learning_rate <= 0:
        raise StepError(f"learning_rate must be positive, got {arm.learning_rate}")
    if arm.sg not in (0, 1):
        raise StepError(f"sg must be 0 (CBOW) or 1 (skip-gram), got {arm.sg}")
    if arm.embeddings == "learned" and not arm.trainable_embeddings:
        raise StepError("trainable_embeddings=false freezes random vectors: use it with word2vec or fasttext")


def lstm_candidates(compare_run_id: str) -> list[str]:
    """The finished candidate runs a compare_lstm run trained, best validation ROC AUC first.

    Args:
        compare_run_id: the compare_lstm run (the arms are its child runs).

    Returns:
        Run ids of the arms that finished as candidates.
    """
    client = MlflowClient()
    experiment_id = client.get_run(compare_run_id).info.experiment_id
    query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{compare_run_id}' and tags.candidate = 'true'"
    query += " and attributes.status = 'FINISHED'"
    children = client.search_runs([experiment_id], query, order_by=[f"metrics.{DECISION_METRIC} DESC"])
    return [child.info.run_id for child in children]
