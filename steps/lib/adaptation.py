"""Fine-tuning a registered transformer on a team's verdicts: its weights, the replay sample, the training.

`adapt` and `bench/adaptation.py` call the same functions, so the learning curves in the docs measure
exactly what the step does (docs/design.md, "Learning from verdicts").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd

from pyfunc.transformer_model import HF_MODEL_ARTIFACT, TorchBackend, TransformerTweetClassifier
from steps.lib.tracking import StepError
from steps.lib.transformer_data import encode_dataset, served_encoder, subsample

if TYPE_CHECKING:
    from steps.lib.fine_tune import FineTuning

# train_bert's schedule, warmup, weight decay and autocast: adapt changes only the rate, the epochs and the data.
FIXED_SETTINGS = {"lr_scheduler": "linear", "warmup_ratio": 0.06, "weight_decay": 0.01, "bf16": "auto"}


def adaptation_settings(epochs: float, learning_rate: float, batch_size: int, seed: int) -> FineTuning:
    """What adapt fine-tunes with: its own epochs, rate, batch size and seed, and `FIXED_SETTINGS`.

    Args:
        epochs: passes over the verdicts and the replay.
        learning_rate: peak rate.
        batch_size: tweets per optimiser step.
        seed: the Trainer's seed.

    Returns:
        The Trainer settings.
    """
    from steps.lib.fine_tune import FineTuning

    return FineTuning(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed, **FIXED_SETTINGS)


@dataclass
class RegisteredTransformer:
    """A logged transformer pyfunc, downloaded: its fine-tuned weights and its decision rule."""

    uri: str
    weights: Path
    classifier: TransformerTweetClassifier  # preprocessing, max_length, temperature, threshold, operating curve


def download_transformer(model_uri: str, into: Path) -> RegisteredTransformer:
    """The model's `hf_model` weights and its pickled classifier, from any model URI.

    Args:
        model_uri: `models:/name@alias`, `models:/name/version` or `runs:/id/model`.
        into: where to download it.

    Returns:
        The weights' folder and the classifier (runtime attributes not loaded).

    Raises:
        StepError: the model cannot be downloaded, or it has no `hf_model` (not a transformer).
    """
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(into)))
    except mlflow.exceptions.MlflowException as error:
        raise StepError(f"cannot download {model_uri}: {error.message.splitlines()[0]}") from None
    flavor = mlflow.models.Model.load(str(local)).flavors.get("python_function", {})
    artifacts = {name: spec["path"] for name, spec in (flavor.get("artifacts") or {}).items()}
    if HF_MODEL_ARTIFACT not in artifacts:
        raise StepError(f"{model_uri} is not a transformer (no {HF_MODEL_ARTIFACT} artifact): adapt fine-tunes one")
    classifier = mlflow.pyfunc.load_model(str(local)).unwrap_python_model()
    return RegisteredTransformer(model_uri, local / artifacts[HF_MODEL_ARTIFACT], classifier)


def learning_rows(verdicts: pd.DataFrame, replay: pd.DataFrame, replay_size: int, seed: int) -> pd.DataFrame:
    """The verdicts, plus a stratified sample of the champion's own training tweets against forgetting.

    Args:
        verdicts: `text` and `label` to learn.
        replay: the complaint training split the champion learned from.
        replay_size: how many of its tweets to mix in (0 = none).
        seed: the sample's seed.

    Returns:
        `text`, `label` and `origin` (`verdict` or `replay`), shuffled.
    """
    parts = [verdicts[["text", "label"]].assign(origin="verdict")]
    if replay_size > 0 and not replay.empty:
        parts.append(subsample(replay, replay_size, seed)[["text", "label"]].assign(origin="replay"))
    rows = pd.concat(parts, ignore_index=True)
    return rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def fine_tune_registered(
    registered: RegisteredTransformer, rows: pd.DataFrame, settings: FineTuning | None, workdir: Path
) -> tuple[TransformerTweetClassifier, object, object, float]:
    """Continue training the registered weights on `rows`; the decision rule stays the registered one.

    Args:
        registered: as `download_transformer` returns it.
        rows: `text` and `label` (1 = the team must answer).
        settings: the Trainer's (`adaptation_settings`); unused without rows: the registered model as it is.
        workdir: the Trainer's working folder.

    Returns:
        The classifier (same preprocessing, length, temperature, threshold and operating curve, new
        weights, torch backend), the model, its tokenizer, and the training seconds.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    from steps.lib.fine_tune import fine_tune

    old = registered.classifier
    tokenizer = AutoTokenizer.from_pretrained(registered.weights)
    model = AutoModelForSequenceClassification.from_pretrained(registered.weights)
    encoder = served_encoder(tokenizer, old.max_length, old.preprocessing)
    started = time.perf_counter()
    if len(rows):
        set_seed(settings.seed)
        dataset = encode_dataset(encoder, rows["text"].tolist(), rows["label"].to_numpy())
        model, _ = fine_tune(model, tokenizer, dataset, settings, str(workdir / "adapt"), "adapt")
    seconds = time.perf_counter() - started
    model = model.float().eval()
    classifier = TransformerTweetClassifier(old.preprocessing, old.max_length)
    classifier.temperature, classifier.threshold = old.temperature, old.threshold
    classifier.operating_curve = old.operating_curve
    classifier.attach(encoder, TorchBackend(model))
    return classifier, model, tokenizer, seconds


def decision_figures(labels: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    """Macro F1, false alarm rate and miss rate of decisions already made (the learning curves' figures)."""
    from sklearn.metrics import f1_score

    labels, flagged = np.asarray(labels), np.asarray(flagged, dtype=bool)
    return {
        "macro_f1": float(f1_score(labels, flagged, average="macro", zero_division=0)),
        "false_alarm_rate": float(flagged[labels == 0].mean()),
        "miss_rate": float((~flagged[labels == 1]).mean()),
    }
