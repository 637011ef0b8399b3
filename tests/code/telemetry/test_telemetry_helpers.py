"""Pure helpers of pyfunc.telemetry (no exporter involved)."""

from __future__ import annotations

import numpy as np
import pytest

from pyfunc.telemetry import HISTOGRAM_SAMPLE, _histogram_sample, model_dimensions, proba_bin, send_text

BINS = [(0.0, "0.0-0.1"), (0.0999, "0.0-0.1"), (0.1, "0.1-0.2"), (0.95, "0.9-1.0"), (1.0, "0.9-1.0")]


@pytest.mark.parametrize(("proba", "expected"), BINS)
def test_proba_bins_are_deciles_with_one_in_the_last(proba, expected):
    assert proba_bin(proba) == expected


def test_model_dimensions_split_family_and_keep_the_full_version():
    dimensions = model_dimensions("transformer:abc123")
    assert dimensions == {"model_name": "transformer", "model_version": "transformer:abc123"}
    assert model_dimensions("unlogged") == {"model_name": "unlogged", "model_version": "unlogged"}


def test_histogram_sample_keeps_small_batches_and_the_extremes_of_big_ones():
    small = np.array([0.3, 0.1])
    assert _histogram_sample(small) is small
    big = np.random.default_rng(0).random(10_000)
    sample = _histogram_sample(big)
    assert len(sample) == HISTOGRAM_SAMPLE
    assert (sample.min(), sample.max()) == (big.min(), big.max())
    assert np.median(sample) == pytest.approx(np.median(big), abs=0.01)


# Opt-in: the text is sent only when asked for; unset, empty, "false" or anything unknown keeps it out.
SWITCH = [
    (None, False),
    ("", False),
    ("false", False),
    ("0", False),
    ("OFF", False),
    ("maybe", False),
    ("true", True),
    (" TRUE ", True),
    ("1", True),
    ("yes", True),
    ("on", True),
]


@pytest.mark.parametrize(("value", "sends"), SWITCH)
def test_privacy_switch_values(monkeypatch, value, sends):
    if value is None:
        monkeypatch.delenv("TELEMETRY_SEND_TEXT", raising=False)
    else:
        monkeypatch.setenv("TELEMETRY_SEND_TEXT", value)
    assert send_text() is sends
