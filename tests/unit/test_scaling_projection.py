"""The scaling benchmark's projection recovers known growth laws (it extrapolates; it must not invent)."""

import numpy as np
import pytest

from bench.scaling import project

SIZES = np.array([10_000, 30_000, 50_000, 100_000])


@pytest.mark.parametrize(("fixed", "scale", "exponent"), [(20.0, 0.5, 1.0), (15.0, 0.02, 1.5), (0.0, 3.0, 1.0)])
def test_projection_recovers_fixed_cost_and_growth(fixed, scale, exponent):
    seconds = fixed + scale * (SIZES / 1000) ** exponent
    result = project(SIZES, seconds, target=1_600_000)
    assert result["exponent"] == pytest.approx(exponent, abs=0.011)
    assert result["fixed"] == pytest.approx(fixed, abs=0.5)
    assert result["projected"] == pytest.approx(fixed + scale * 1600**exponent, rel=0.03)


def test_sublinear_noise_is_read_as_linear_growth():
    """Every step touches every tweet: a concave series projects as a line, never flatter."""
    result = project(np.array([10_000, 30_000, 100_000]), np.array([14.0, 29.0, 39.0]))
    assert result["exponent"] == 1.0
    assert result["projected"] == pytest.approx(result["linear"], rel=1e-6)
