"""Why a tweet was flagged: each word's contribution to P(negative), by leaving it out (docs/design.md, "Explanations").

A word is a run of non-space characters of the raw tweet, as the client sent it, so a page can mark
the very words it shows. Its contribution is P(negative) of the whole tweet less P(negative) of the
tweet without that word: positive words pushed the tweet towards `negative`, negative ones away.
The tweets without one word each go through the served model's own `predict_proba` (its normaliser,
graph and temperature), in one batched call for the whole request, so the method is the same for
every family and explains exactly the probability the response carries. A tweet of n words costs
n more tweets to score; only the first `MAX_EXPLAINED_WORDS` words of a tweet are explained.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import islice
from typing import Any

import numpy as np

# Every word of any real tweet (280 characters hold about 60 words); a longer text's later words go unexplained.
MAX_EXPLAINED_WORDS = 64
_WORD = re.compile(r"\S+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Start and end of each explained word of `text`, in order, at most `MAX_EXPLAINED_WORDS`."""
    return [match.span() for match in islice(_WORD.finditer(text), MAX_EXPLAINED_WORDS)]


def without_each_word(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """The text once per word, that word cut out and the rest as sent."""
    return [text[:start] + text[end:] for start, end in spans]


def explain(
    texts: list[str], proba_negative: np.ndarray, predict_proba: Callable[[list[str]], np.ndarray]
) -> list[list[dict[str, Any]]]:
    """Each word's contribution to each text's P(negative), by leaving it out.

    Args:
        texts: the request's tweets, as sent.
        proba_negative: the served P(negative) of each whole tweet.
        predict_proba: the served model's scoring (raw tweets in, calibrated P(negative) out),
            called once with every text-less-one-word of the request.

    Returns:
        Per text, `{"word", "contribution"}` per word in text order (a tweet's first
        `MAX_EXPLAINED_WORDS` words).
    """
    spans = [word_spans(text) for text in texts]
    variants = [cut for text, spans_of in zip(texts, spans, strict=True) for cut in without_each_word(text, spans_of)]
    scored = predict_proba(variants) if variants else np.empty(0)
    explanations, offset = [], 0
    for text, text_spans, whole in zip(texts, spans, np.asarray(proba_negative, dtype=np.float64), strict=True):
        left_out = scored[offset : offset + len(text_spans)]
        offset += len(text_spans)
        explanations.append(
            [
                {"word": text[start:end], "contribution": float(whole - without)}
                for (start, end), without in zip(text_spans, left_out, strict=True)
            ]
        )
    return explanations
