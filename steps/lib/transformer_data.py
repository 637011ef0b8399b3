"""What the transformer trains on: a stratified sample, the class ids of a label scheme, the served token ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pyfunc.transformer_model import TextEncoder
from steps.lib.pretrained import LABEL_SCHEMES
from steps.lib.tracking import StepError


def encode_dataset(encoder: TextEncoder, texts: list[str], labels: np.ndarray) -> list[dict]:
    """Token ids (through the served encoder) and labels, one dict per tweet, unpadded.

    Args:
        encoder: as `served_encoder` returns it.
        texts: raw tweets.
        labels: the class id of each.

    Returns:
        `input_ids`, `attention_mask` (all ones) and `labels` per tweet; the collator pads each batch.
    """
    return [
        {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": int(label)}
        for ids, label in zip(encoder.encode(texts), labels, strict=True)
    ]


def subsample(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A stratified sample of `size` rows (0 or more than available = all): same class balance, fewer steps.

    Args:
        frame: the rows to sample.
        size: rows to keep.
        seed: the sampling seed.

    Returns:
        The sample; a plain random one when a class is too rare to stratify at this size.
    """
    if size <= 0 or size >= len(frame):
        return frame
    try:
        sample, _ = train_test_split(frame, train_size=size, stratify=frame["label"], random_state=seed)
    except ValueError:  # a class too rare to stratify at this size
        sample = frame.sample(n=size, random_state=seed)
    return sample


def training_targets(frame: pd.DataFrame, label_scheme: str) -> np.ndarray:
    """Class ids to train on: the binary label, or the corpus's own three sentiments.

    Three-class training teaches the encoder that a neutral question and praise differ from a
    complaint in different ways; the model still serves P(negative).

    Args:
        frame: the training rows.
        label_scheme: `binary` or `three_class`.

    Returns:
        One class id per row (`negative` is 1 in both schemes).

    Raises:
        StepError: `three_class` without a known sentiment on every row, or with a class absent.
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


def served_encoder(tokenizer, max_length: int, preprocessing: str) -> TextEncoder:
    """The encoder the pyfunc will use, built from a copy of the training tokenizer's Rust backend.

    Training encodes through it too, so the ids the model learns from are the ids it is served.

    Args:
        tokenizer: the training (fast) tokenizer.
        max_length: tokens kept per tweet, special tokens included.
        preprocessing: the normalisation variant.

    Returns:
        The encoder.
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    return TextEncoder(backend, max_length, preprocessing, tokenizer.pad_token_id or 0)
