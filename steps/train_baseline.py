"""`train_baseline`: TF-IDF n-grams + logistic regression, the bar every deep model must clear.

Input: a prepare_data run. Output: a candidate run with the pyfunc under `model/`. It learns from the
complaint training split; the sentiment corpus joins it only at `sentiment_weight` > 0, since on the
complaint validation split every weight above 0 scored lower (docs/design.md, "Complaints").
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

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
from steps.lib.operating_point import ThresholdPolicy
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


def build_pipeline(
    *, word_ngram_max: int, char_ngrams: bool, min_df: int, max_features: int, C: float, class_weight: str, seed: int
) -> Pipeline:
    """One scikit-learn pipeline: word (and optionally character) TF-IDF into logistic regression."""
    features = [
        (
            "word",
            TfidfVectorizer(
                ngram_range=(1, word_ngram_max),
                min_df=min_df,
                max_features=max_features or None,
                sublinear_tf=True,
                token_pattern=TOKEN_PATTERN,
                dtype="float32",
            ),
        )
    ]
    if char_ngrams:
        features.append(
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 5),
                    min_df=min_df,
                    max_features=max_features or None,
                    sublinear_tf=True,
                    dtype="float32",
                ),
            )
        )
    classifier = LogisticRegression(
        C=C,
        class_weight="balanced" if class_weight == "balanced" else None,
        max_iter=2000,
        solver="liblinear",
        random_state=seed,
    )
    return Pipeline([("features", FeatureUnion(features)), ("classifier", classifier)])


def training_rows(splits: dict[str, pd.DataFrame], sentiment_weight: float) -> tuple[pd.DataFrame, np.ndarray]:
    """The complaint training split (weight 1), with the sentiment corpus at `sentiment_weight` when above 0."""
    complaints = splits["train"]
    if sentiment_weight <= 0:
        return complaints, np.ones(len(complaints))
    rows = pd.concat([complaints, splits[SENTIMENT_SPLIT]], ignore_index=True)
    return rows, np.r_[np.ones(len(complaints)), np.full(len(rows) - len(complaints), sentiment_weight)]


def train(
    data_run_id: str,
    preprocessing: str,
    word_ngram_max: int,
    char_ngrams: bool,
    min_df: int,
    max_features: int,
    C: float,
    class_weight: str,
    sentiment_weight: float,
    seed: int,
    threshold_policy: str,
    cost_ratio: float,
    beta: float,
    min_precision: float,
) -> None:
    """Fit the pipeline on the prepared data run's training rows and log it as a candidate.

    The options are the click command's (`python -m steps.train_baseline --help` says what each means).
    """
    parameters = dict(locals())  # every option, as `log_step_params` records them
    if word_ngram_max < 1 or min_df < 1 or max_features < 0 or C <= 0:
        raise StepError("word_ngram_max and min_df must be >= 1, max_features >= 0 (0 = no limit), C > 0")
    if sentiment_weight < 0:
        raise StepError(f"sentiment_weight must be >= 0 (0 = complaints only), got {sentiment_weight}")
    policy = ThresholdPolicy(threshold_policy, cost_ratio, beta, min_precision).validate()
    log_step_params(parameters)
    _, splits = prepare_training(data_run_id)
    train_split, weights = training_rows(splits, sentiment_weight)
    print(f"training TF-IDF + logistic regression on {len(train_split)} tweets", flush=True)
    started = time.perf_counter()
    pipeline = build_pipeline(
        word_ngram_max=word_ngram_max,
        char_ngrams=char_ngrams,
        min_df=min_df,
        max_features=max_features,
        C=C,
        class_weight=class_weight,
        seed=seed,
    )
    texts = normalize_batch(train_split["text"], preprocessing)
    pipeline.fit(texts, train_split["label"], classifier__sample_weight=weights)
    train_seconds = time.perf_counter() - started
    vocabulary = sum(len(t.vocabulary_) for _, t in pipeline.named_steps["features"].transformer_list)
    mlflow.log_metric("vocabulary_size", vocabulary)

    model = SklearnTweetClassifier(preprocessing=preprocessing)
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
    run_step("train_baseline", lambda run: train(**options))


if __name__ == "__main__":
    main()
