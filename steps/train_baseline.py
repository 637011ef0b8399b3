"""`train_baseline`: TF-IDF n-grams + logistic regression, the bar every deep model must clear."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import joblib
import mlflow
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from pyfunc.normalize import VARIANTS, normalize_batch
from pyfunc.sklearn_model import PIPELINE_ARTIFACT, SklearnTweetClassifier
from steps.candidate import log_candidate
from steps.operating_point import add_policy_arguments, policy_from_args
from steps.tracking import StepError, log_step_params, pinned, prepare_training, run_step

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


def build_pipeline(args: argparse.Namespace) -> Pipeline:
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


def validate(args: argparse.Namespace) -> None:
    if args.preprocessing not in VARIANTS:
        raise StepError(f"unknown preprocessing {args.preprocessing!r}; valid choices: {', '.join(VARIANTS)}")
    if args.word_ngram_max < 1 or args.min_df < 1 or args.max_features < 0 or args.C <= 0:
        raise StepError("word_ngram_max and min_df must be >= 1, max_features >= 0 (0 = no limit), C > 0")
    if args.class_weight not in ("balanced", "none"):
        raise StepError(f"unknown class_weight {args.class_weight!r}; valid choices: balanced, none")


def train(args: argparse.Namespace) -> None:
    validate(args)
    policy = policy_from_args(args)
    log_step_params(vars(args))
    _, splits = prepare_training(args.data_run_id)
    train_split = splits["train"]
    print(f"training TF-IDF + logistic regression on {len(train_split)} tweets", flush=True)
    started = time.perf_counter()
    pipeline = build_pipeline(args)
    pipeline.fit(normalize_batch(train_split["text"], args.preprocessing), train_split["label"])
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-run-id", default="", help="prepare_data run (empty = newest finished)")
    parser.add_argument("--preprocessing", default="none", help=f"one of {', '.join(VARIANTS)}")
    parser.add_argument("--word-ngram-max", type=int, default=2)
    parser.add_argument("--char-ngrams", type=lambda v: v.lower() in ("1", "true", "yes"), default=False)
    parser.add_argument("--min-df", type=int, default=2)
    parser.add_argument("--max-features", type=int, default=200_000, help="per vectoriser; 0 = no limit")
    parser.add_argument("--C", type=float, default=4.0, help="inverse regularisation strength")
    parser.add_argument("--class-weight", default="balanced", help="balanced or none")
    parser.add_argument("--seed", type=int, default=42)
    add_policy_arguments(parser)
    args = parser.parse_args(argv)
    run_step("train_baseline", lambda run: train(args))


if __name__ == "__main__":
    main()
