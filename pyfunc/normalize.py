"""Tweet normalisation shared by training and serving.

Every model (TF-IDF, LSTM, transformer) calls `normalize` both when it is trained and inside its
served pyfunc, so the text a model sees in production is built by exactly the code it was trained
on. Signal that matters for complaints (negations, emoticons, emoji, elongation, exclamation) is
mapped to plain tokens rather than stripped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from functools import lru_cache

import emoji

VARIANTS = ("none", "stem", "lemma")

URL_TOKEN = "xxurl"
USER_TOKEN = "xxuser"
NUMBER_TOKEN = "xxnum"

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_USER = re.compile(r"(?<!\w)@\w{1,30}")
_HASHTAG = re.compile(r"(?<!\w)#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_ELONGATED = re.compile(r"(\w)\1{2,}")
_REPEATED_PUNCT = re.compile(r"([!?.])\1+")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*(?![\w])")
_WHITESPACE = re.compile(r"\s+")

# Western emoticons, longest first so ":-((" is not read as ":-(" plus "(".
_EMOTICONS = {
    "xxsmile": [":-)", ":)", ":-]", ":]", "=)", ":-d", ":d", "=d", "xd", ":p", ":-p", ";)", ";-)", "<3", "^^", "^_^"],
    "xxsad": [":-((", ":((", ":-(", ":(", ":-[", ":[", "=(", ":'(", ":'-(", "d:", "</3"],
    "xxannoyed": [":-/", ":/", ":-\\", ":\\", ":-|", ":|", "-_-", ">:(", ">:-("],
}
_EMOTICON = re.compile(
    "|".join(
        rf"(?<!\S){re.escape(face)}(?!\S)"
        for face in sorted((f for faces in _EMOTICONS.values() for f in faces), key=len, reverse=True)
    ),
    re.IGNORECASE,
)
_EMOTICON_TOKEN = {face: token for token, faces in _EMOTICONS.items() for face in faces}

# Negations must survive every variant: stemming "not"/"never"/"n't" away would flip meanings.
NEGATIONS = frozenset(
    {"not", "no", "never", "nor", "none", "nobody", "nothing", "nowhere", "neither", "cannot", "without"}
)


def _emoticon_to_token(match: re.Match[str]) -> str:
    return f" {_EMOTICON_TOKEN[match.group(0).lower()]} "


def _hashtag_to_words(match: re.Match[str]) -> str:
    """#NeverAgain -> "never again": the words carry the sentiment, the '#' does not."""
    return " " + _CAMEL.sub(" ", match.group(1)) + " "


def _emoji_to_token(chars: str, data: dict) -> str:
    """😡 -> "emoji_enraged_face": keeps the emoji as one token every tokenizer can read."""
    name = data["en"].strip(":").lower()
    return " emoji_" + re.sub(r"[^a-z0-9]+", "_", name).strip("_") + " "


def clean(text: str) -> str:
    """Variant-independent cleaning: the `none` variant, and the first stage of the others.

    Args:
        text: a raw tweet.

    Returns:
        Lower-cased text with URLs, users and numbers as placeholder tokens, hashtags split into words,
        emoticons and emoji as tokens, elongations and repeated punctuation shortened.
    """
    text = html.unescape(text)
    text = _URL.sub(f" {URL_TOKEN} ", text)
    text = _USER.sub(f" {USER_TOKEN} ", text)
    text = _HASHTAG.sub(_hashtag_to_words, text)
    text = _EMOTICON.sub(_emoticon_to_token, text)
    if not text.isascii():  # every emoji has a code point above 127; emoji's scan is Python, char by char
        text = emoji.replace_emoji(text, replace=_emoji_to_token)
    text = text.lower()
    text = _ELONGATED.sub(r"\1\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    text = _NUMBER.sub(f" {NUMBER_TOKEN} ", text)
    return _WHITESPACE.sub(" ", text).strip()


_TOKEN = re.compile(r"\w+(?:'\w+)?|[!?]")


def tokenize(text: str) -> list[str]:
    """Word tokens of cleaned text; contractions ("don't") stay whole so negation stays visible.

    Args:
        text: cleaned (or normalised) text.

    Returns:
        Its words, `!` and `?` as tokens of their own.
    """
    return _TOKEN.findall(text)


def _is_protected(token: str) -> bool:
    return token in NEGATIONS or token.endswith("n't") or token.startswith(("xx", "emoji_")) or not token.isalpha()


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.snowball import SnowballStemmer

    return SnowballStemmer("english", ignore_stopwords=False)


@lru_cache(maxsize=200_000)
def _stem(token: str) -> str:
    return token if _is_protected(token) else _stemmer().stem(token)


@lru_cache(maxsize=200_000)
def _lemma(token: str) -> str:
    """Dictionary lemma without a POS tagger (NLTK's tagger data cannot be downloaded offline).

    Verbs first: complaint tweets are dominated by verbs of events ("cancelled", "waiting", "lost").
    """
    if _is_protected(token):
        return token
    from lemminflect import getAllLemmas

    lemmas = getAllLemmas(token)
    for upos in ("VERB", "NOUN", "ADJ", "ADV", "AUX"):
        if upos in lemmas:
            return lemmas[upos][0].lower()
    return token


def normalize(text: str, variant: str = "none") -> str:
    """Normalise one tweet with the named variant (`none`, `stem` or `lemma`).

    Args:
        text: a raw tweet.
        variant: one of `VARIANTS`.

    Returns:
        The normalised text; `stem` and `lemma` leave negations and placeholder tokens as they are.

    Raises:
        ValueError: an unknown variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown preprocessing {variant!r}; valid choices: {', '.join(VARIANTS)}")
    cleaned = clean(text)
    if variant == "none":
        return cleaned
    reduce = _stem if variant == "stem" else _lemma
    return " ".join(reduce(token) for token in tokenize(cleaned))


def normalize_batch(texts: Iterable[str], variant: str = "none") -> list[str]:
    """Normalise many tweets; one entry point so callers never loop with a different variant.

    Args:
        texts: raw tweets.
        variant: one of `VARIANTS`, checked once before any text.

    Returns:
        The normalised texts, in order.

    Raises:
        ValueError: an unknown variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown preprocessing {variant!r}; valid choices: {', '.join(VARIANTS)}")
    return [normalize(text, variant) for text in texts]


SURFACE_FEATURES = ("url", "mention", "emoji")


def surface_features(texts: Iterable[str]) -> dict[str, list[float]]:
    """Per tweet, what drift monitoring watches without a vocabulary: its length and whether it has a URL,
    a mention or an emoji.

    The patterns are the ones normalisation replaces by `xxurl`, `xxuser` and `emoji_*`, so the served
    model's telemetry and the training profile mean the same by each (docs/design.md, "Drift").

    Args:
        texts: raw tweets.

    Returns:
        `length` (characters) and `has_url`, `has_mention`, `has_emoji` (0 or 1), one value per tweet.
    """
    texts = list(texts)
    return {
        "length": [float(len(text)) for text in texts],
        "has_url": [float(_URL.search(text) is not None) for text in texts],
        "has_mention": [float(_USER.search(text) is not None) for text in texts],
        "has_emoji": [float(not text.isascii() and emoji.emoji_count(text) > 0) for text in texts],
    }
