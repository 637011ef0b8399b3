"""The request/response contract every candidate model serves, whatever its family.

`TweetClassifier` owns validation, the threshold and the response shape; subclasses only turn
normalised texts into probabilities. That is what lets the baseline, an LSTM or a transformer
become the champion without a client noticing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array, Object, Property

from pyfunc.explain import explain
from pyfunc.limits import ServingLimits
from pyfunc.scoring_server_shim import in_scoring_server, install_request_guard
from pyfunc.telemetry import MODEL_SERVICE, configure_telemetry, record_failure, record_predictions

T = TypeVar("T")
TEXT_COLUMN = "text"
EXPLAIN_PARAM = "explain"
EXPLANATION_COLUMN = "explanation"
LABELS = {1: "negative", 0: "not_negative"}
INPUT_EXAMPLE = pd.DataFrame(
    {TEXT_COLUMN: ["@united lost my bag again, worst airline ever", "Thanks for the smooth flight :)"]}
)


class InvalidInput(MlflowException):
    """A client error: MLflow's scoring server answers it with a 400 and this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class ModelArtifactError(RuntimeError):
    """A logged model file is missing or damaged: the server must refuse to start, naming the file."""


def load_artifact(artifacts: dict[str, str], name: str, loader: Callable[[str], T]) -> T:
    """Load one logged artifact, or stop naming it and its path rather than with the loader's bare error.

    A pickle or ONNX reader that meets a damaged file says "pickle data was truncated" or "invalid
    literal for int()"; an operator on call needs the file.

    Args:
        artifacts: local path of each logged artifact, by name.
        name: the artifact to load.
        loader: reads the artifact's path.

    Returns:
        What `loader` returns.

    Raises:
        ModelArtifactError: the artifact is not in the model, its path does not exist, or `loader` fails.
    """
    path = artifacts.get(name)
    if not path or not os.path.exists(path):
        raise ModelArtifactError(f"model artifact '{name}' is missing: {path or 'not in the model'}")
    try:
        return loader(path)
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0][:300]
        raise ModelArtifactError(
            f"model artifact '{name}' at {path} cannot be loaded ({type(error).__name__}: {reason}); "
            "the model's files are damaged: download or log the model again"
        ) from error


def validate_texts(model_input: Any, limits: ServingLimits | None = None, explained: bool = False) -> list[str]:
    """Return the texts to score, or raise naming the first offending row.

    Args:
        model_input: the request as MLflow passes it: a DataFrame, or a dict of columns.
        limits: the scoring server's limits; a batch over its row limit is refused before any row is read.
        explained: whether the request asks for explanations (held to the lower explained-rows limit).

    Returns:
        The `text` column as a list of non-blank strings.

    Raises:
        InvalidInput: not a table, no `text` column, no rows, or a row whose text is null, not a
            string, or blank.
        LimitExceeded: more rows than `limits` allows (explained or not), or a text over its per-text bound.
    """
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if not isinstance(model_input, pd.DataFrame):
        raise InvalidInput(f"expected a table with a '{TEXT_COLUMN}' column, got {type(model_input).__name__}")
    if TEXT_COLUMN not in model_input.columns:
        found = ", ".join(map(str, model_input.columns)) or "none"
        raise InvalidInput(f"missing required column '{TEXT_COLUMN}' (columns found: {found})")
    if len(model_input) == 0:
        raise InvalidInput("empty batch: send at least one row with a 'text' value")
    if limits is not None:
        limits.check_rows(len(model_input), explained)
    texts = model_input[TEXT_COLUMN].tolist()
    for row, text in enumerate(texts):
        if text is None or (isinstance(text, float) and math.isnan(text)):
            raise InvalidInput(f"row {row}: text is null")
        if not isinstance(text, str):
            raise InvalidInput(f"row {row}: text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise InvalidInput(f"row {row}: text is empty")
        if limits is not None:
            limits.check_text_length(row, text)
    return texts


def resolve_threshold(params: dict[str, Any] | None, stored: float) -> float:
    """The request's `params.threshold` if given (MLflow fills in the default otherwise).

    Args:
        params: the request's params (None when it sends none).
        stored: the model's own threshold.

    Returns:
        The threshold to decide with, in [0, 1].

    Raises:
        InvalidInput: a threshold that is not a number, or lies outside [0, 1].
    """
    value = (params or {}).get("threshold", stored)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"params.threshold must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= value <= 1.0:
        raise InvalidInput(f"params.threshold must be between 0 and 1, got {value}")
    return value


def resolve_explain(params: dict[str, Any] | None) -> bool:
    """Whether the request asked for each word's contribution (`params.explain`, false unless sent).

    MLflow's signature check refuses a non-boolean before the model runs; this holds the same rule
    for callers that call the PythonModel directly.

    Args:
        params: the request's params (None when it sends none).

    Returns:
        True only for `explain: true`.

    Raises:
        InvalidInput: `explain` is not true or false.
    """
    value = (params or {}).get(EXPLAIN_PARAM, False)
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInput(f"params.explain must be true or false, got {value!r}")
    return bool(value)


def at_curve(curve: dict[str, np.ndarray] | None, threshold: float) -> tuple[float, float]:
    """Validation precision and recall at the grid point of the model's operating curve nearest `threshold`.

    The model stores the curve as arrays, so `np.asarray` copies nothing and a request only searches
    it; lists (the logged JSON) work too.

    Args:
        curve: the model's operating curve (`thresholds`, `precision`, `recall`), or None.
        threshold: the threshold in use.

    Returns:
        Validation precision and recall there; both NaN without a curve.
    """
    if not curve:
        return math.nan, math.nan
    index = int(np.argmin(np.abs(np.asarray(curve["thresholds"]) - threshold)))
    return float(curve["precision"][index]), float(curve["recall"][index])


def format_predictions(
    proba_negative: np.ndarray, threshold: float, model_version: str, curve: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """One row per input: the response contract (docs/design.md, "Serving contract").

    With an operating curve (every model logged with a threshold policy ships one), each row also
    says what the threshold in use means on the model's validation split: `val_precision` (of the
    flagged tweets, the share that are complaints) and `val_recall` (of the complaints, the share flagged).

    Args:
        proba_negative: calibrated P(negative) per input.
        threshold: the threshold in use; `label` is `negative` at or above it.
        model_version: the model's version string (`family:run_id` once logged).
        curve: the model's operating curve, or None.

    Returns:
        `label`, `proba_negative`, `threshold` and `model_version` per row, plus `val_precision` and
        `val_recall` with a curve.
    """
    proba = np.asarray(proba_negative, dtype=np.float64)
    columns = {
        "label": np.where(proba >= threshold, LABELS[1], LABELS[0]),
        "proba_negative": proba,
        "threshold": np.full(len(proba), threshold),
        "model_version": np.full(len(proba), model_version, dtype=object),
    }
    if curve:
        precision, recall = at_curve(curve, threshold)
        columns |= {"val_precision": np.full(len(proba), precision), "val_recall": np.full(len(proba), recall)}
    return pd.DataFrame(columns)  # built once: adding columns afterwards cost a one-tweet request 0.2 ms


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling on the logit: monotonic, so rankings (and AUC) are unchanged.

    Args:
        proba: uncalibrated P(negative).
        temperature: the fitted temperature (1.0 = unchanged).

    Returns:
        The calibrated probabilities, as float64.
    """
    if temperature == 1.0:
        return np.asarray(proba, dtype=np.float64)
    clipped = np.clip(np.asarray(proba, dtype=np.float64), 1e-7, 1 - 1e-7)
    logits = np.log(clipped / (1 - clipped))
    return 1.0 / (1.0 + np.exp(-logits / temperature))


def signature(threshold: float) -> ModelSignature:
    """Signature shared by every candidate; the stored threshold is the params default.

    `text` stays a `string` column (CSV and Spark UDFs need a concrete type). Note that MLflow's
    parser casts the column-oriented `inputs`/`instances` JSON forms to that type before the model
    runs (JSON null arrives as "None"); the `dataframe_*` forms and CSV reach `validate_texts` as sent.

    Args:
        threshold: the model's stored threshold.

    Returns:
        The signature: a `text` input, the response columns (`explanation` only when asked for), and
        `threshold` and `explain` as optional params.
    """
    word_contribution = Object([Property("word", "string"), Property("contribution", "double")])
    return ModelSignature(
        inputs=Schema([ColSpec("string", TEXT_COLUMN)]),
        outputs=Schema(
            [
                ColSpec("string", "label"),
                ColSpec("double", "proba_negative"),
                ColSpec("double", "threshold"),
                ColSpec("string", "model_version"),
                ColSpec("double", "val_precision", required=False),
                ColSpec("double", "val_recall", required=False),
                ColSpec(Array(word_contribution), EXPLANATION_COLUMN, required=False),
            ]
        ),
        params=ParamSchema(
            [ParamSpec("threshold", "double", float(threshold)), ParamSpec(EXPLAIN_PARAM, "boolean", False)]
        ),
    )


class TweetClassifier(PythonModel):
    """Base pyfunc: validation, threshold and response shape; subclasses score normalised text."""

    def __init__(self, preprocessing: str, threshold: float = 0.5, model_version: str = "unlogged") -> None:
        self.preprocessing = preprocessing
        self.threshold = threshold
        self.model_version = model_version
        self.temperature = 1.0
        # Validation precision/recall by threshold (steps.lib.operating_point.operating_curve), set at logging.
        self.operating_curve: dict[str, np.ndarray] | None = None

    # Attributes rebuilt by `load_context` from the model's artifacts, never pickled with the class.
    runtime_attributes: tuple[str, ...] = ()
    # Set by `load_context` inside the scoring server only (docs/design.md, "Serving limits").
    serving_limits: ServingLimits | None = None

    def __getstate__(self) -> dict[str, Any]:
        skipped = (*self.runtime_attributes, "serving_limits")
        return {key: value for key, value in self.__dict__.items() if key not in skipped}

    def load_context(self, context) -> None:
        """MLflow calls this once when the model is loaded (server start, spark_udf, load_model).

        Telemetry and the request guard first: MLflow's scoring server builds its FastAPI app only
        after loading the model, so both reach the app's HTTP requests from here. The serving limits
        are read once, so a wrong value stops the server at start rather than failing requests.

        Args:
            context: MLflow's model context; `context.artifacts` maps artifact names to local paths.

        Raises:
            ValueError: a serving limit in the environment that is not a whole number >= 1.
        """
        configure_telemetry(MODEL_SERVICE)
        if in_scoring_server():
            self.serving_limits = ServingLimits.from_env()
            install_request_guard(self.serving_limits)
        self.load_artifacts(context.artifacts)

    def load_artifacts(self, artifacts: dict[str, str]) -> None:
        """Rebuild the runtime attributes from the logged artifacts; implemented by each family.

        Args:
            artifacts: local path of each logged artifact, by name.
        """
        raise NotImplementedError

    def raw_proba(self, texts: list[str]) -> np.ndarray:
        """Uncalibrated P(negative) for raw texts; implemented by each model family.

        Args:
            texts: raw tweets; each family normalises them with the model's variant.

        Returns:
            One probability per text, in order.
        """
        raise NotImplementedError

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Calibrated P(negative): the family's probability through the fitted temperature.

        Args:
            texts: raw tweets.

        Returns:
            One probability per text, in order: what the served `proba_negative` holds.
        """
        return apply_temperature(self.raw_proba(texts), getattr(self, "temperature", 1.0))

    def score(self, texts: list[str]) -> np.ndarray:
        """`predict_proba`, in the scoring server stopped once the request outlives its timeout.

        Args:
            texts: raw tweets.

        Returns:
            Calibrated P(negative) per text, in order.

        Raises:
            RequestAbandoned: in the scoring server, the request outlived its timeout.
        """
        limits = self.serving_limits
        if limits is None:
            return self.predict_proba(texts)
        return limits.score_before_deadline(self.predict_proba, texts)

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Answer a request in the response contract; telemetry counts it, failed or not.

        Args:
            context: unused (MLflow's pyfunc signature).
            model_input: the request's table, with a `text` column.
            params: the request's params; `threshold` overrides the stored one, `explain: true` adds
                the `explanation` column (docs/design.md, "Explanations").

        Returns:
            As `format_predictions` returns it, plus `explanation` when asked for: per row, each word's
            `{"word", "contribution"}` to P(negative), in text order.

        Raises:
            InvalidInput: a malformed request or threshold (MLflow's server answers 400). Any error is
                recorded by telemetry, then raised again.
            LimitExceeded: in the scoring server, more rows than its limit, or than its explained-rows
                limit when explanations are asked for (a 400 naming it).
            RequestAbandoned: in the scoring server, the request outlived its timeout (the client has a 504).
        """
        try:
            limits = self.serving_limits
            explained = resolve_explain(params)
            texts = validate_texts(model_input, limits, explained)
            threshold = resolve_threshold(params, self.threshold)
            curve = getattr(self, "operating_curve", None)  # models logged before the curve existed have none
            proba = self.score(texts)
            predictions = format_predictions(proba, threshold, self.model_version, curve)
            if explained:
                predictions[EXPLANATION_COLUMN] = explain(texts, proba, self.score)
        except Exception as error:
            record_failure(self.model_version, error)
            raise
        record_predictions(self.model_version, predictions["label"], predictions["proba_negative"], texts)
        return predictions
