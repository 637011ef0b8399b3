"""The threshold policies: known probabilities and labels give a known threshold for each policy."""

from __future__ import annotations

import click
import numpy as np
import pytest

from pyfunc.contract import at_curve, format_predictions
from steps.lib.cli import policy_options
from steps.lib.operating_point import (
    PolicyError,
    ThresholdPolicy,
    at_threshold,
    choose_threshold,
    empirical_min_cost_threshold,
    expected_cost,
    operating_curve,
)
from steps.lib.tracking import StepError

# Ten validation tweets, sorted by score; four complaints (label 1).
Y = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0, 0])
P = np.array([0.95, 0.85, 0.70, 0.60, 0.45, 0.40, 0.30, 0.20, 0.10, 0.05])


def test_cost_policy_is_the_bayes_decision_for_calibrated_probabilities():
    # A missed complaint costs 2 false alarms: flag when 2 p >= 1 - p, i.e. p >= 1/3, whatever the rows.
    assert choose_threshold(Y, P, ThresholdPolicy("cost", cost_ratio=2)) == pytest.approx(1 / 3)
    assert choose_threshold(Y, P, ThresholdPolicy("cost", cost_ratio=0.5)) == pytest.approx(2 / 3)
    assert choose_threshold(Y, P, ThresholdPolicy("cost", cost_ratio=9)) == pytest.approx(0.1)


def test_the_empirical_minimiser_logged_beside_it_finds_the_cheapest_validation_cut():
    # Flag >= 0.40: 4 complaints caught, 2 false alarms -> cost 2/10. Flag >= 0.60: 1 missed (x2) + 1 FA = 3/10.
    # Flag >= 0.85: 2 missed (x2) = 4/10. Nothing lower is cheaper (every extra flag is a false alarm).
    assert empirical_min_cost_threshold(Y, P, cost_ratio=2) == pytest.approx(0.40)
    assert expected_cost(Y, P, np.array([0.40, 0.60, 0.85]), 2) == pytest.approx([0.2, 0.3, 0.4])
    # A false alarm costing twice a miss: >= 0.85 costs 0.5 x 2 = 1/10, better than 0.40's 2/10.
    assert empirical_min_cost_threshold(Y, P, cost_ratio=0.5) == pytest.approx(0.85)
    # Equal cost (ratio 1: >= 0.9 misses one, >= 0.5 one false alarm): the lower one, more complaints caught.
    assert empirical_min_cost_threshold(np.array([1, 0, 1, 0]), np.array([0.9, 0.6, 0.5, 0.1]), 1) == pytest.approx(0.5)


def test_f_beta_policy_maximises_f_beta():
    # F1: >= 0.60 gives P 3/4, R 3/4 (0.75); >= 0.40 gives P 4/6, R 1 (0.8): 0.40 wins.
    assert choose_threshold(Y, P, ThresholdPolicy("f_beta", beta=1)) == pytest.approx(0.40)
    # beta 0.3 weighs precision: >= 0.85 (P 1, R 0.5) beats 0.40 and 0.60.
    assert choose_threshold(Y, P, ThresholdPolicy("f_beta", beta=0.3)) == pytest.approx(0.85)


def test_precision_floor_catches_the_most_complaints_at_that_precision():
    # Precision at >= 0.60 is 3/4, at >= 0.40 it is 4/6: a floor of 0.75 stops at 0.60.
    assert choose_threshold(Y, P, ThresholdPolicy("precision_floor", min_precision=0.75)) == pytest.approx(0.60)
    assert choose_threshold(Y, P, ThresholdPolicy("precision_floor", min_precision=0.6)) == pytest.approx(0.40)
    assert choose_threshold(Y, P, ThresholdPolicy("precision_floor", min_precision=1.0)) == pytest.approx(0.85)


def test_a_floor_no_threshold_reaches_is_a_one_line_error():
    y, p = np.array([0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6])
    with pytest.raises(PolicyError, match=r"min_precision 0.9 is not reached on validation .*best precision 0.500"):
        choose_threshold(y, p, ThresholdPolicy("precision_floor", min_precision=0.9))
    assert issubclass(PolicyError, StepError)  # a step reports it in one line and fails its run


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (ThresholdPolicy("max_f2"), "threshold_policy must be one of cost, f_beta, precision_floor, got 'max_f2'"),
        (ThresholdPolicy(cost_ratio=0), "cost_ratio must be > 0, got 0"),
        (ThresholdPolicy(cost_ratio=-1.5), "cost_ratio must be > 0, got -1.5"),
        (ThresholdPolicy(beta=0), "beta must be > 0, got 0"),
        (ThresholdPolicy(min_precision=0), r"min_precision must be in \(0, 1\], got 0"),
        (ThresholdPolicy(min_precision=1.2), r"min_precision must be in \(0, 1\], got 1.2"),
    ],
)
def test_bad_policy_parameters_name_the_parameter_and_value(policy, message):
    with pytest.raises(PolicyError, match=message):
        policy.validate()


@click.command()
@policy_options
def policy_command(threshold_policy: str, cost_ratio: float, beta: float, min_precision: float) -> ThresholdPolicy:
    """A command with only the policy options, as every training step has them, building the policy as they do."""
    return ThresholdPolicy(threshold_policy, cost_ratio, beta, min_precision).validate()


def test_policy_arguments_parse_to_a_validated_policy():
    default = policy_command.main([], standalone_mode=False)
    assert default == ThresholdPolicy("cost", 2.0, 2.0, 0.8)
    assert default.params() == {"threshold_policy": "cost", "cost_ratio": 2.0, "beta": 2.0, "min_precision": 0.8}
    with pytest.raises(PolicyError, match="cost_ratio must be > 0"):
        policy_command.main(["--cost-ratio", "0"], standalone_mode=False)


def test_what_a_threshold_means_on_validation():
    point = at_threshold(Y, P, 0.40)
    assert point == pytest.approx({"precision": 4 / 6, "recall": 1.0, "flagged_share": 0.6})


def test_operating_curve_holds_the_chosen_threshold_exactly_and_a_grid_around_it():
    curve = operating_curve(Y, P, 0.4237)
    assert 0.4237 in curve["thresholds"] and len(curve["thresholds"]) == 202
    at = curve["thresholds"].index(0.4237)
    # >= 0.4237 flags 0.95, 0.85, 0.70, 0.60 and 0.45: three of the four complaints among five flagged.
    assert curve["precision"][at] == pytest.approx(3 / 5) and curve["recall"][at] == pytest.approx(3 / 4)
    # Above every score nothing is flagged: precision carries its last defined value, recall is 0.
    assert curve["precision"][-1] == pytest.approx(1.0) and curve["recall"][-1] == 0.0
    assert curve["flagged_share"][0] == 1.0 and curve["flagged_share"][-1] == 0.0


def test_served_rows_say_what_the_threshold_in_use_means():
    curve = operating_curve(Y, P, 0.40)
    rows = format_predictions(np.array([0.9, 0.1]), 0.40, "baseline:abc", curve)
    assert rows["val_precision"].tolist() == pytest.approx([4 / 6] * 2)
    assert rows["val_recall"].tolist() == pytest.approx([1.0] * 2)
    # An overridden threshold reads the nearest grid point: >= 0.6 flags three of four complaints.
    assert at_curve(curve, 0.601) == pytest.approx((0.75, 0.75))
    legacy = format_predictions(np.array([0.9]), 0.5, "baseline:abc")
    assert list(legacy.columns) == ["label", "proba_negative", "threshold", "model_version"]
