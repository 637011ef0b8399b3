"""The operating point: which P(negative) flags a tweet, chosen on validation by an explicit policy.

Every model family goes through `choose_threshold`, so a threshold always means the same thing:
- `cost` (default): the Bayes decision for a missed complaint costing `cost_ratio` false alarms,
  flag when P(negative) >= 1 / (1 + cost_ratio), applied to the calibrated probabilities every
  candidate serves. The empirical minimiser of the cost on validation is logged beside it
  (`threshold_empirical_min_cost`) but not used: the cost curve is flat near its minimum, so that
  minimiser moves a lot between resamples of the same validation rows (docs/design.md, "Operating
  point"), while the closed form does not move at all. A wide gap between the two shows
  miscalibration near the operating point.
- `f_beta`: the threshold that maximises F-beta of the negative class (beta > 1 favours recall).
- `precision_floor`: the lowest threshold whose validation precision is at least `min_precision`,
  i.e. the most complaints caught while at least that share of flagged tweets are complaints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import precision_recall_curve

from steps.lib.tracking import StepError

POLICIES = ("cost", "f_beta", "precision_floor")
CURVE_STEP = 0.005  # the operating curve shipped with the model: precision and recall every 0.005


class PolicyError(StepError):
    """A policy parameter a user got wrong, or a floor no threshold reaches: one line naming it."""


@dataclass(frozen=True)
class ThresholdPolicy:
    """How the decision threshold is chosen; the same parameters on every training step and on `main`."""

    name: str = "cost"
    cost_ratio: float = 2.0
    beta: float = 2.0
    min_precision: float = 0.8

    def validate(self) -> ThresholdPolicy:
        """Raise `PolicyError` naming the parameter and its value; return self when valid.

        Returns:
            This policy, so construction and check read as one expression.

        Raises:
            PolicyError: an unknown policy name, or a parameter out of its range.
        """
        if self.name not in POLICIES:
            raise PolicyError(f"threshold_policy must be one of {', '.join(POLICIES)}, got {self.name!r}")
        if not self.cost_ratio > 0:
            raise PolicyError(f"cost_ratio must be > 0, got {self.cost_ratio}")
        if not self.beta > 0:
            raise PolicyError(f"beta must be > 0, got {self.beta}")
        if not 0 < self.min_precision <= 1:
            raise PolicyError(f"min_precision must be in (0, 1], got {self.min_precision}")
        return self

    def describe(self) -> str:
        """The rule in words, logged as the `threshold_rule` param.

        Returns:
            One sentence naming the policy and its parameter.
        """
        if self.name == "cost":
            return (
                f"minimum expected cost for calibrated probabilities, a missed complaint costing {self.cost_ratio:g} "
                f"false alarms: flag when proba_negative >= 1/(1+{self.cost_ratio:g})"
            )
        if self.name == "f_beta":
            return f"maximum F{self.beta:g} of the negative class on validation"
        return f"lowest threshold with validation precision >= {self.min_precision:g} (most complaints caught)"

    def params(self) -> dict[str, str | float]:
        """The policy as run params (`threshold_policy`, `cost_ratio`, `beta`, `min_precision`).

        Returns:
            The four values by param name, whichever policy is in use.
        """
        values = asdict(self)
        return {"threshold_policy": values.pop("name"), **values}


def _candidate_thresholds(proba: np.ndarray) -> np.ndarray:
    """Every distinct score (flag when proba >= t), plus one above the maximum (flag nothing)."""
    scores = np.unique(np.asarray(proba, dtype=np.float64))
    return np.append(scores, np.nextafter(scores[-1], np.inf)) if len(scores) else np.array([0.5])


def confusion_counts(y_true: np.ndarray, proba: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """True and false positives (flagged complaints, flagged non-complaints) at each threshold."""
    y_true, proba = np.asarray(y_true).astype(int), np.asarray(proba, dtype=np.float64)
    order = np.argsort(proba)
    sorted_proba, sorted_true = proba[order], y_true[order]
    # Rows with proba >= t are those from the first index where sorted_proba >= t.
    first = np.searchsorted(sorted_proba, thresholds, side="left")
    positives_from = np.concatenate([np.cumsum(sorted_true[::-1])[::-1], [0]])
    true_positives = positives_from[first]
    flagged = len(proba) - first
    return true_positives, flagged - true_positives


def expected_cost(y_true: np.ndarray, proba: np.ndarray, thresholds: np.ndarray, cost_ratio: float) -> np.ndarray:
    """Cost per tweet at each threshold: (cost_ratio x missed complaints + false alarms) / rows.

    Args:
        y_true: labels, 1 = complaint.
        proba: P(negative) per row.
        thresholds: where to evaluate (flag when proba >= threshold).
        cost_ratio: what a missed complaint costs, in false alarms.

    Returns:
        The cost at each threshold.
    """
    true_positives, false_positives = confusion_counts(y_true, proba, thresholds)
    missed = int(np.sum(y_true)) - true_positives
    return (cost_ratio * missed + false_positives) / max(1, len(y_true))


def empirical_min_cost_threshold(y_true: np.ndarray, proba: np.ndarray, cost_ratio: float) -> float:
    """The lowest validation threshold of minimum cost (at equal cost, the one that catches more complaints).

    A diagnostic logged beside the closed form, never used to decide (see the module docstring).

    Args:
        y_true: validation labels, 1 = complaint.
        proba: calibrated validation P(negative).
        cost_ratio: what a missed complaint costs, in false alarms.

    Returns:
        The threshold, one of the validation scores (or just above the highest: flag nothing).
    """
    thresholds = _candidate_thresholds(proba)
    cost = expected_cost(y_true, proba, thresholds, cost_ratio)
    return float(thresholds[int(np.argmin(cost))])


def closed_form_threshold(cost_ratio: float) -> float:
    """Flag when P(negative) * cost_ratio >= 1 - P(negative): the threshold 1 / (1 + cost_ratio)."""
    return 1.0 / (1.0 + cost_ratio)


def _max_f_beta(y_true: np.ndarray, proba: np.ndarray, beta: float) -> float:
    precision, recall, thresholds = precision_recall_curve(y_true, proba)
    precision, recall = precision[:-1], recall[:-1]
    denominator = beta**2 * precision + recall
    f_beta = np.divide(
        (1 + beta**2) * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(thresholds[int(np.argmax(f_beta))])


def _precision_floor(y_true: np.ndarray, proba: np.ndarray, min_precision: float) -> float:
    thresholds = _candidate_thresholds(proba)[:-1]
    true_positives, false_positives = confusion_counts(y_true, proba, thresholds)
    flagged = true_positives + false_positives
    precision = np.divide(true_positives, flagged, out=np.zeros(len(thresholds)), where=flagged > 0)
    reaching = np.flatnonzero(precision >= min_precision)
    if not len(reaching):
        raise PolicyError(
            f"min_precision {min_precision:g} is not reached on validation at any threshold "
            f"(best precision {precision.max():.3f}): lower min_precision or use another threshold_policy"
        )
    return float(thresholds[reaching[0]])


def choose_threshold(y_true: np.ndarray, proba: np.ndarray, policy: ThresholdPolicy) -> float:
    """The validation threshold the policy picks (a tweet is flagged when proba_negative >= it).

    Args:
        y_true: validation labels (1 = complaint).
        proba: calibrated validation P(negative), as the served model computes it.
        policy: a validated `ThresholdPolicy`.

    Returns:
        The threshold in [0, 1].

    Raises:
        PolicyError: `precision_floor` with a floor that no threshold reaches.
    """
    y_true, proba = np.asarray(y_true).astype(int), np.asarray(proba, dtype=np.float64)
    if policy.name == "cost":
        return closed_form_threshold(policy.cost_ratio)
    if policy.name == "f_beta":
        return _max_f_beta(y_true, proba, policy.beta)
    return _precision_floor(y_true, proba, policy.min_precision)


def at_threshold(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and flagged share at one threshold: what the operating point means.

    Args:
        y_true: labels, 1 = complaint.
        proba: P(negative) per row.
        threshold: flag when proba >= threshold.

    Returns:
        `precision` (NaN when nothing is flagged), `recall` (NaN without complaints) and `flagged_share`.
    """
    true_positives, false_positives = confusion_counts(y_true, proba, np.array([threshold]))
    flagged = int(true_positives[0] + false_positives[0])
    complaints = int(np.sum(y_true))
    return {
        "precision": true_positives[0] / flagged if flagged else float("nan"),
        "recall": true_positives[0] / complaints if complaints else float("nan"),
        "flagged_share": flagged / max(1, len(y_true)),
    }


def operating_curve(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, list[float]]:
    """Validation precision, recall and flagged share on a threshold grid (and at the chosen one), shipped in the model.

    Where nothing is flagged precision is undefined: it carries the last defined value, so a client
    always reads a number ("of 100 flagged tweets, about N are complaints").

    Args:
        y_true: validation labels, 1 = complaint.
        proba: calibrated validation P(negative).
        threshold: the chosen threshold, added to the grid.

    Returns:
        `thresholds` (every `CURVE_STEP` from 0 to 1, plus the chosen one), `precision`, `recall` and
        `flagged_share` at each, as lists ready for JSON.
    """
    grid = np.union1d(np.round(np.arange(0.0, 1.0 + CURVE_STEP / 2, CURVE_STEP), 6), [threshold])
    true_positives, false_positives = confusion_counts(y_true, proba, grid)
    flagged = true_positives + false_positives
    precision = np.divide(true_positives, flagged, out=np.full(len(grid), np.nan), where=flagged > 0)
    defined = np.flatnonzero(~np.isnan(precision))
    if len(defined):
        precision[defined[-1] + 1 :] = precision[defined[-1]]
    recall = true_positives / max(1, int(np.sum(y_true)))
    return {
        "thresholds": grid.tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "flagged_share": (flagged / max(1, len(proba))).tolist(),
    }


POLICY_ARGUMENTS = ("threshold_policy", "cost_ratio", "beta", "min_precision")
