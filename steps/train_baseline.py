"""`train_baseline`: TF-IDF n-grams + logistic regression, the bar every deep model must clear.

Input: a prepare_data run. Output: a candidate run with the pyfunc under `model/`. It learns from the
complaint training split; the sentiment corpus joins it only at `sentiment_weight` > 0, since on the
complaint validation split every weight above 0 scored lower (docs/design.md, "Complaints").
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import click
import joblib
import mlflow
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from pyfunc.normalize import VARIANTS, normalize_batch
from pyfunc.sklearn_model import PIPELINE_ARTIFACT, SklearnTweetClassifier
from steps.lib.candidate import log_candidate
from steps.lib.cli import FLAG, WHOLE_NUMBER, data_run_option, policy_options, seed_option
from steps.lib.operating_point import policy_from_args
from steps.lib.tracking import SENTIMENT_SPLIT, StepError, log_step_params, pinned, prepare_training, run_step

CLASS_WEIGHTS = ("balanced", "none")
# Words, the placeholders (xxurl, emoji_...) and "!"/"?" which carry complaint intensity.
TOKEN_PATTERN = r"(?u)\b\w+(?:'\w+)?\b|[!?]"
SERVING_PACKAGES = (
    "mlflow",
    "scikit-learn",
    "numpy",
    "pandas",
    "joblib",
    "emoji",
    "nltk",
    "lemminflect",
    "azure-monitor-opentelemetry",
)


def build_pipeline(args: SimpleNamespace) -> Pipeline:
    """One scikit-learn pipeline: word (and optionally character) TF-IDF into logistic regression."""
    features = [
        (
            "word",
            TfidfVectorizer(
                ngram_range=(1, args.word_ngram_max),
                min_df=args.min_df,
                max_features=args.max_features or None,
                sublinear_tf=True,
                token_pattern=TOKEN_PATTERN,
                dtype="float32",
            ),
        )
    ]
    if args.char_ngrams:
        features.append(
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 5),
                    min_df=args.min_df,
                    max_features=args.max_features or None,
                    sublinear_tf=True,
                    dtype="float32",
                ),
            )
        )
    classifier = LogisticRegression(
        C=args.C,
        class_weight="balanced" if args.class_weight == "balanced" else None,
        max_iter=2000,
        solver="liblinear",
        random_state=args.seed,
    )
    return Pipeline([("features", FeatureUnion(features)), ("classifier", classifier)])


def validate(args: SimpleNamespace) -> None:
    if args.word_ngram_max < 1 or args.min_df < 1 or args.max_features < 0 or args.C <= 0:
        raise StepError("word_ngram_max and min_df must be >= 1, max_features >= 0 (0 = no limit), C > 0")
    if args.sentiment_weight < 0:
        raise StepError(f"sentiment_weight must be >= 0 (0 = complaints only), got {args.sentiment_weight}")


def training_rows(splits: dict[str, pd.DataFrame], sentiment_weight: float) -> tuple[pd.DataFrame, np.ndarray]:
    """The complaint training split (weight 1), with the sentiment corpus at `sentiment_weight` when above 0."""
    complaints = splits["train"]
    if sentiment_weight <= 0:
        return complaints, np.ones(len(complaints))
    rows = pd.concat([complaints, splits[SENTIMENT_SPLIT]], ignore_index=True)
    return rows, np.r_[np.ones(len(complaints)), np.full(len(rows) - len(complaints), sentiment_weight)]


def train(args: SimpleNamespace) -> None:
    validate(args)
    policy = policy_from_args(args)
    log_step_params(vars(args))
    _, splits = prepare_training(args.data_run_id)
    train_split, weights = training_rows(splits, args.sentiment_weight)
    print(f"training TF-IDF + logistic regression on {len(train_split)} tweets", flush=True)
    started = time.perf_counter()
    pipeline = build_pipeline(args)
    texts = normalize_batch(train_split["text"], args.preprocessing)
    pipeline.fit(texts, train_split["label"], classifier__sample_weight=weights)
    train_seconds = time.perf_counter() - started
    vocabulary = sum(len(t.vocabulary_) for _, t in pipeline.named_steps["features"].transformer_list)
    mlflow.log_metric("vocabulary_size", vocabulary)

    model = SklearnTweetClassifier(preprocessing=args.preprocessing)
    model.pipeline = pipeline
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.joblib"
        joblib.dump(pipeline, path)
        log_candidate(
            model,
            "baseline",
            splits,
            train_seconds,
            {PIPELINE_ARTIFACT: str(path)},
            pinned(*SERVING_PACKAGES),
            policy,
        )


@click.command(help=__doc__)
@data_run_option
@click.option("--preprocessing", type=click.Choice(VARIANTS), default="none", show_default=True, help="text variant")
@click.option("--word-ngram-max", type=WHOLE_NUMBER, default=2, show_default=True, help="longest word n-gram")
@click.option("--char-ngrams", type=FLAG, default=False, show_default=True, help="add character 2-5-grams")
@click.option("--min-df", type=WHOLE_NUMBER, default=2, show_default=True, help="ignore n-grams in fewer tweets")
@click.option(
    "--max-features", type=WHOLE_NUMBER, default=200_000, show_default=True, help="per vectoriser; 0 = no limit"
)
@click.option("--C", "C", type=float, default=4.0, show_default=True, help="inverse regularisation strength")
@click.option(
    "--class-weight",
    type=click.Choice(CLASS_WEIGHTS),
    default="balanced",
    show_default=True,
    help="balanced: each class weighs as much in total; none: each tweet weighs 1",
)
@click.option(
    "--sentiment-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="weight of a sentiment-corpus tweet beside a complaint-labelled one's 1 (0 = complaints only)",
)
@seed_option
@policy_options
def main(**options: object) -> None:
    args = SimpleNamespace(**options)
    run_step("train_baseline", lambda run: train(args))


if __name__ == "__main__":
    main()
