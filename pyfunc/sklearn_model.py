"""Served form of the TF-IDF + logistic-regression baseline."""

from __future__ import annotations

import joblib
import numpy as np

from pyfunc.contract import TweetClassifier, load_artifact
from pyfunc.normalize import normalize_batch

PIPELINE_ARTIFACT = "pipeline"


class SklearnTweetClassifier(TweetClassifier):
    """Wraps a fitted scikit-learn pipeline whose input is normalised text."""

    runtime_attributes = ("pipeline",)
    pipeline = None

    def load_artifacts(self, artifacts: dict[str, str]) -> None:
        """Load the fitted pipeline.

        Args:
            artifacts: local path of the `pipeline` artifact (a joblib file).
        """
        self.pipeline = load_artifact(artifacts, PIPELINE_ARTIFACT, joblib.load)

    def raw_proba(self, texts: list[str]) -> np.ndarray:
        """Uncalibrated P(negative): the pipeline's class-1 probability on the normalised texts.

        Args:
            texts: raw tweets.

        Returns:
            One probability per text, in order.
        """
        normalised = normalize_batch(texts, self.preprocessing)
        return self.pipeline.predict_proba(normalised)[:, 1]
