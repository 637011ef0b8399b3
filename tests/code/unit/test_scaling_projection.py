"""The scaling benchmark's projection recovers known growth laws (it extrapolates; it must not invent)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.scaling import main, project, report
from steps.lib.cli import parse
from steps.lib.registry import CHAMPION_URI

SIZES = np.array([10_000, 30_000, 50_000, 100_000])


def test_the_command_line_reads_as_documented():
    """docs/scaling.md's spellings: comma-separated --sizes, repeated --extra-step, bare flags."""
    defaults = parse(main)
    assert (defaults["sizes"], defaults["extra_step"], defaults["champion_uri"]) == (
        (10_000, 30_000, 50_000, 100_000),
        (),
        CHAMPION_URI,
    )
    assert (defaults["no_spark"], defaults["replot"]) == (False, False)
    argv = [
        "--sizes",
        "2000,5000",
        "--no-spark",
        "--extra-step",
        "train_lstm",
        "--extra-step",
        "train_bert:--max-train-samples 5000",
    ]
    options = parse(main, argv)
    assert (options["sizes"], options["no_spark"]) == ((2000, 5000), True)
    assert options["extra_step"] == ("train_lstm", "train_bert:--max-train-samples 5000")
    assert parse(main, ["--replot"])["replot"] is True


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


def test_every_written_csv_carries_the_runs_provenance(tmp_path, capsys):
    docs = Path(__file__).resolve().parents[3] / "docs"
    steps, scoring = pd.read_csv(docs / "scaling_steps.csv"), pd.read_csv(docs / "scaling_scoring.csv")
    origin = {"provenance_git_commit": "0123abc", "provenance_cpu": "Test CPU", "provenance_load_at_start": "0.10"}
    report(steps, scoring, tmp_path, origin)
    for name in ("scaling_steps.csv", "scaling_projection.csv", "scaling_scoring.csv"):
        written = pd.read_csv(tmp_path / name)
        assert set(written["provenance_git_commit"]) == {"0123abc"}, name
        assert set(written["provenance_cpu"]) == {"Test CPU"}, name
