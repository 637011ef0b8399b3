"""Loaders of every source format, cleaning, splitting without leakage, and the one-line errors."""

import pandas as pd
import pytest

from pyfunc.normalize import normalize_batch
from steps.lib.complaint_labels import load_complaint_labels, prepared_splits, without_texts
from steps.lib.datasets import (
    check_classes,
    clean_dataset,
    load_airline,
    load_sentiment140,
    load_txt_dir,
    repair_text,
    sample_rows,
)
from steps.lib.tracking import StepError


def test_sentiment140_polarity_zero_is_negative(tmp_path):
    file = tmp_path / "s140.csv"
    file.write_text(
        '"0","1","Mon Apr 06","NO_QUERY","u1","my flight got cancelled"\n'
        '"4","2","Mon Apr 06","NO_QUERY","u2","great crew today"\n'
        '"2","3","Mon Apr 06","NO_QUERY","u3","on the plane"\n',
        encoding="latin-1",
    )
    frame = load_sentiment140(str(file))
    assert frame["label"].tolist() == [1, 0, 0]
    assert frame["text"].tolist()[0] == "my flight got cancelled"


def test_airline_format_maps_negative_sentiment(tmp_path):
    file = tmp_path / "Tweets.csv"
    pd.DataFrame(
        {"tweet_id": [1, 2, 3], "airline_sentiment": ["negative", "neutral", "positive"], "text": ["a", "b", "c"]}
    ).to_csv(file, index=False)
    assert load_airline(str(file))["label"].tolist() == [1, 0, 0]


def test_txt_dir_reads_one_tweet_per_line(tmp_path):
    (tmp_path / "negative.txt").write_text("bad service\nlost my bag\n")
    (tmp_path / "positive.txt").write_text("lovely flight\n")
    frame = load_txt_dir(str(tmp_path))
    assert frame["label"].tolist() == [1, 1, 0]


@pytest.mark.parametrize(
    ("loader", "content", "message"),
    [
        (load_airline, "airline_sentiment,tweet\nnegative,x\n", "has no column text"),
        (load_sentiment140, None, "file not found"),
        (load_txt_dir, None, "txt_dir needs"),
    ],
)
def test_bad_sources_fail_with_one_line_naming_the_file(tmp_path, loader, content, message):
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(StepError, match=message) as error:
        loader(str(path))
    assert "\n" not in str(error.value)


def test_txt_dir_without_negative_file_names_it(tmp_path):
    (tmp_path / "positive.txt").write_text("nice\n")
    with pytest.raises(StepError, match=r"negative\.txt"):
        load_txt_dir(str(tmp_path))


def test_a_source_with_one_class_is_rejected():
    frame = pd.DataFrame({"text": ["a", "b"], "label": [0, 0], "source": "x"})
    with pytest.raises(StepError, match="negative class empty"):
        check_classes(frame, "positive-only.csv")


def test_repair_fixes_mojibake_and_drops_undecodable_runs():
    assert repair_text("I can\u00e2\u20ac\u2122t wait") == "I can't wait"
    assert repair_text("Google\u00d5\u00a2_\u008a\u00ce_\u0086\u00a2s cars") == "Google s cars"


def test_cleaning_drops_empty_duplicate_and_conflicting_texts():
    frame = pd.DataFrame(
        {
            "text": [
                "Lost my bag!!!",
                "lost my bag!",
                "   ",
                None,
                "great crew",
                "GREAT crew",
                "ok flight",
                "Ok flight",
            ],
            "label": [1, 1, 0, 0, 0, 0, 1, 0],
            "source": "x",
        }
    )
    cleaned, counts = clean_dataset(frame)
    assert sorted(cleaned["text"]) == ["Lost my bag!!!", "great crew"]
    assert counts["rows_empty_dropped"] == 2
    assert counts["rows_duplicates_dropped"] == 2
    assert counts["rows_conflicting_labels_dropped"] == 2


WORDS = ["delay", "bag", "crew", "seat", "gate", "meal", "wifi", "refund", "pilot", "lounge", "app", "queue"]


def _toy_corpus(rows: int = 400) -> pd.DataFrame:
    texts = [f"{WORDS[i % 12]} {WORDS[(i // 12) % 12]} {WORDS[(i // 144) % 12]}" for i in range(rows)]
    labels = [int(i % 3 == 0) for i in range(rows)]
    return pd.DataFrame({"text": texts, "label": labels, "source": "toy"})


def test_held_out_texts_leave_the_sentiment_corpus_whatever_their_case_spacing_or_entities():
    corpus = _toy_corpus()
    echoes = corpus.head(50).assign(text=lambda f: "  " + f["text"].str.upper().str.replace(" ", " &#32;") + "  ")
    kept, removed = without_texts(corpus, echoes["text"])
    assert removed == 50 and len(kept) == 350
    assert not set(normalize_batch(kept["text"])) & set(normalize_batch(echoes["text"]))


def test_max_rows_cuts_each_stored_split_to_its_share_and_never_draws_a_new_split():
    labelled, _ = load_complaint_labels()
    full = prepared_splits(labelled, max_rows=0, seed=1)
    small = prepared_splits(labelled, max_rows=800, seed=1)
    assert {name: len(part) for name, part in small.items()} == {"train": 626, "val": 87, "test": 87}
    for name, part in small.items():
        assert set(part["text"]) <= set(full[name]["text"])  # a test tweet stays a test tweet
        assert part["label"].mean() == pytest.approx(full[name]["label"].mean(), abs=0.01)
    assert prepared_splits(labelled, max_rows=800, seed=1)["test"].equals(small["test"])


def test_max_rows_samples_with_the_class_balance():
    sample = sample_rows(_toy_corpus(), 100, seed=1)
    assert len(sample) == 100
    assert sample["label"].mean() == pytest.approx(_toy_corpus()["label"].mean(), abs=0.02)
    assert len(sample_rows(_toy_corpus(), 0, seed=1)) == 400
