"""Drift of the inputs and the score against a reference profile logged with every candidate.

At training, `reference_profile` describes the validation split as the model saw it: the score
histogram, the text length, the share of words the training split never had, and how many tweets
carry a URL, a mention or an emoji. `monitor` describes recent traffic in the same bins and compares
with the population stability index, PSI = sum((a - e) * ln(a / e)) over the bins (docs/design.md,
"Drift"). The surface features come from `pyfunc.normalize.surface_features`, which the served
model's telemetry emits too, so train, serve and monitor agree on what a URL or an emoji is.
"""

from __future__ import annotations

import numpy as np

from pyfunc.normalize import normalize_batch, surface_features

PROFILE_ARTIFACT = "monitoring/reference_profile.json"
PSI_ALERT = 0.2  # the usual reading: < 0.1 stable, 0.1-0.2 moderate, > 0.2 a shift worth acting on
# Without any drift, PSI over k bins of n and m rows is about (k - 1) * (1/n + 1/m): with 10 bins,
# 200 recent tweets already bring 0.05 of noise. Fewer tweets say too little to alert on.
MIN_ROWS = 200
SCORE_BINS = 10
QUANTILE_BINS = 10
VOCABULARY_LIMIT = 50_000
EPSILON = 1e-4  # an empty bin on either side would make ln(a / e) infinite


def text_features(texts: list[str], vocabulary: set[str]) -> dict[str, np.ndarray]:
    """Per tweet: the served model's surface features (length, URL, mention, emoji) and the out-of-vocabulary share.

    Args:
        texts: raw tweets.
        vocabulary: the training split's words (after normalisation).

    Returns:
        One array per feature, aligned with `texts`.
    """
    words = [text.split() for text in normalize_batch(texts)]
    features = {name: np.asarray(values) for name, values in surface_features(texts).items()}
    features["oov_share"] = np.array(
        [sum(word not in vocabulary for word in tweet) / len(tweet) if tweet else 0.0 for tweet in words]
    )
    return features


def training_vocabulary(texts: list[str]) -> list[str]:
    """The most frequent normalised words of the training split (the profile keeps at most `VOCABULARY_LIMIT`)."""
    words, counts = np.unique([word for text in normalize_batch(texts) for word in text.split()], return_counts=True)
    order = np.lexsort((words, -counts))
    return words[order][:VOCABULARY_LIMIT].tolist()


def _edges(values: np.ndarray, name: str) -> list[float]:
    """Bin edges: fixed for the score and the 0/1 features, reference quantiles for the rest."""
    if name == "proba":
        return np.linspace(0.0, 1.0, SCORE_BINS + 1).tolist()
    if name.startswith("has_"):
        return [-0.5, 0.5, 1.5]
    inner = np.unique(np.quantile(values, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]))
    return [-np.inf, *inner.tolist(), np.inf]


def shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """The share of values in each bin: right-open bins, values beyond the outer edges in the outer bins."""
    bins = len(edges) - 1
    index = np.searchsorted(np.asarray(edges[1:-1], dtype=float), np.asarray(values, dtype=float), side="right")
    return (np.bincount(index, minlength=bins) / max(1, len(values))).tolist()


def reference_profile(train_texts: list[str], val_texts: list[str], val_proba: np.ndarray) -> dict:
    """What `monitor` compares recent traffic with, computed on validation as the model scored it.

    Args:
        train_texts: the training split's tweets (for the vocabulary).
        val_texts: the validation split's tweets.
        val_proba: the model's calibrated P(negative) on them.

    Returns:
        A JSON-ready profile: the vocabulary, and per feature its bin edges and reference shares.
    """
    vocabulary = training_vocabulary(train_texts)
    values = text_features(val_texts, set(vocabulary)) | {"proba": np.asarray(val_proba, dtype=float)}
    bins = {}
    for name, column in values.items():
        edges = _edges(column, name)
        bins[name] = {"edges": [_json_number(edge) for edge in edges], "shares": shares(column, edges)}
    return {"rows": len(val_texts), "psi_alert": PSI_ALERT, "vocabulary": vocabulary, "features": bins}


def _json_number(value: float) -> float | str:
    return value if np.isfinite(value) else ("inf" if value > 0 else "-inf")


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two binned distributions (shares over the same bins)."""
    e = np.clip(np.asarray(expected, dtype=float), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=float), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def binned(profile: dict, texts: list[str], proba: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """Per feature, the reference's bin edges and shares beside recent traffic's shares in the same bins.

    Args:
        profile: `reference_profile`'s output, as logged.
        texts: recent tweets.
        proba: the model's P(negative) on them.

    Returns:
        `{feature: {"edges": [...], "reference": [...], "recent": [...]}}`, the score as `proba`.
    """
    values = text_features(texts, set(profile["vocabulary"])) | {"proba": np.asarray(proba, dtype=float)}
    result = {}
    for name, reference in profile["features"].items():
        edges = [float(edge) for edge in reference["edges"]]
        result[name] = {"edges": edges, "reference": reference["shares"], "recent": shares(values[name], edges)}
    return result


def drift(bins: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """PSI of the score and of every input feature of recent traffic against the reference.

    Args:
        bins: `binned`'s output.

    Returns:
        `psi_proba` and one `psi_<feature>` per input feature.
    """
    return {f"psi_{name}": psi(shares["reference"], shares["recent"]) for name, shares in bins.items()}
