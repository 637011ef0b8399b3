"""Demanding but valid input gets predictions: a 100 kB text, a batch at the row limit, any script and emoji."""

from __future__ import annotations

import itertools
import json

import pandas as pd
import pytest

from pyfunc.limits import DEFAULT_MAX_ROWS

pytestmark = pytest.mark.integration

MULTILINGUAL = [
    "Рейс задержали на пять часов, ужасный сервис 😡",  # Russian
    "航班又延误了，行李也丢了",  # Chinese
    "الرحلة تأخرت ثلاث ساعات ✈️",  # Arabic (right-to-left)
    "फ्लाइट फिर से लेट है",  # Hindi (combining marks)
    "最高のフライトでした！ありがとう🙏",  # Japanese
    "😡😡😡",  # emoji only
    "👨‍👩‍👧‍👦 family trip ruined 🇺🇸➡️🇬🇧",  # ZWJ sequence and flags
    "𝓽𝓱𝓪𝓷𝓴 𝔂𝓸𝓾 @united",  # mathematical alphanumerics (outside the BMP)
    "Cafe\u0301 au lait on board was great",  # combining acute accent
    "mixed Ελληνικά, עברית and English: lost my bag",  # Greek, Hebrew, Latin
]


def served_predictions(response) -> pd.DataFrame:
    assert response.status_code == 200, response.text[:2000]
    return pd.DataFrame(response.json()["predictions"])


def assert_matches_reference(served: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert served["label"].tolist() == expected["label"].tolist()
    assert served["proba_negative"].tolist() == pytest.approx(expected["proba_negative"].tolist(), abs=1e-9)


def test_100_kb_text_gets_a_prediction(server, reference, still_serving):
    sentence = "My flight was delayed again and nobody at the gate could tell us why. "
    text = (sentence * (100_000 // len(sentence) + 1))[:100_000]
    served = served_predictions(server.invocations({"dataframe_records": [{"text": text}, {"text": "ok thanks"}]}))
    assert_matches_reference(served, reference([text, "ok thanks"]))
    still_serving()


def test_a_batch_at_the_row_limit_keeps_its_order(server, reference):
    subjects = ["my bag", "the crew", "the wifi", "flight 1234", "the refund", "customer service", "the seat"]
    verdicts = ["is great", "was lost", "never answered", "made my day", "is a joke", "was fine", "😡", "🙏"]
    pairs = itertools.cycle(itertools.product(subjects, verdicts))
    texts = [f"{subject} {verdict} #{i}" for i, (subject, verdict) in zip(range(DEFAULT_MAX_ROWS), pairs, strict=False)]
    assert len(texts) == DEFAULT_MAX_ROWS
    body = {"dataframe_split": {"columns": ["text"], "data": [[text] for text in texts]}}
    assert_matches_reference(served_predictions(server.invocations(body)), reference(texts))


def test_any_script_and_emoji_get_predictions(server, reference):
    expected = reference(MULTILINGUAL)
    # JSON with \\u escapes (surrogate pairs for emoji) and as raw UTF-8 bytes: both are valid JSON.
    escaped = {"inputs": {"text": MULTILINGUAL}}
    raw = json.dumps({"dataframe_records": [{"text": text} for text in MULTILINGUAL]}, ensure_ascii=False).encode()
    csv = pd.DataFrame({"text": MULTILINGUAL}).to_csv(index=False).encode()
    for body, content_type in ((escaped, "application/json"), (raw, "application/json"), (csv, "text/csv")):
        assert_matches_reference(served_predictions(server.invocations(body, content_type=content_type)), expected)
