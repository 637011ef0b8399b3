"""Placeholder for the monitoring helper's telemetry module (the lead keeps that version at merge).

Only the function the dashboard calls lives here, with the agreed keyword-only signature, so the
dashboard runs and is tested on this branch without Application Insights.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def emit_wrong_prediction(
    *, text: str, predicted_label: str, proba_negative: float, true_label: str, model_version: str
) -> None:
    """Report a tester-flagged wrong prediction; a debug log line until telemetry is configured."""
    logger.debug(
        "wrong prediction: predicted=%s proba_negative=%.4f true=%s model=%s text=%r",
        predicted_label,
        proba_negative,
        true_label,
        model_version,
        text,
    )
