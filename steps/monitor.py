"""`monitor`: has recent traffic drifted from what the model was validated on?

Scores the traffic with the model through its pyfunc and compares the score and each input feature
(length, out-of-vocabulary share, URLs, mentions, emoji) with the reference profile the model's
training run logged, by the population stability index (steps.lib.drift). Logs `psi_proba` and one
`psi_<feature>` each, sets the tag `drift.alert` to `true` when any PSI exceeds `psi_alert` (on at
least `MIN_ROWS` tweets: fewer carry too much sampling noise), prints a one-line verdict and exits 0
either way: drift is a finding, not a failure of the step. Beside each PSI, a chart of the reference's
and the traffic's shares in the same bins: `drift/histogram_<feature>.png` (`proba` for the score).
"""

from __future__ import annotations

import json

import click
import matplotlib.pyplot as plt
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import get_model_info

from steps.lib.drift import MIN_ROWS, PROFILE_ARTIFACT, PSI_ALERT, binned, drift
from steps.lib.gate import score_splits
from steps.lib.monitoring_charts import drift_histogram
from steps.lib.registry import CHAMPION_URI
from steps.lib.tracking import StepError, log_step_params, run_step
from steps.lib.traffic import read_traffic

HISTOGRAM_FOLDER = "drift"


def load_profile(model_uri: str) -> tuple[str, dict]:
    """The model's training run and the reference profile it logged, or a one-line error saying what is missing."""
    try:
        run_id = get_model_info(model_uri).run_id
    except Exception as error:  # MlflowException, OSError: nothing loadable at that URI
        raise StepError(f"model_uri {model_uri} cannot be loaded: {str(error).splitlines()[0]}") from None
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=PROFILE_ARTIFACT)
    except (MlflowException, OSError):
        raise StepError(
            f"{model_uri} (run {run_id}) has no reference profile ({PROFILE_ARTIFACT}): it was logged before "
            "monitoring existed; retrain it to monitor it"
        ) from None
    with open(path, encoding="utf-8") as handle:
        return run_id, json.load(handle)


def log_histograms(bins: dict, values: dict[str, float], reference_rows: int, rows: int) -> None:
    """One chart per feature, reference beside recent in the PSI's own bins: `drift/histogram_<feature>.png`."""
    for name, shares in bins.items():
        figure = drift_histogram(name, shares, values[f"psi_{name}"], reference_rows, rows)
        mlflow.log_figure(figure, f"{HISTOGRAM_FOLDER}/histogram_{name}.png")
        plt.close(figure)


def monitor(model_uri: str, input: str, psi_alert: float) -> None:
    """Score the traffic, log each PSI against the model's reference profile, tag and print the verdict.

    Args:
        model_uri: the served model (any MLflow model URI).
        input: the recent tweets (.csv/.parquet with `text`, scored rows, or a feedback.db).
        psi_alert: a PSI above this sets `drift.alert=true`.
    """
    if not psi_alert > 0:
        raise StepError(f"psi_alert must be > 0, got {psi_alert}")
    traffic = read_traffic(input)
    run_id, profile = load_profile(model_uri)
    log_step_params({"model_uri": model_uri, "input": input, "psi_alert": psi_alert})
    mlflow.set_tags({"model_run_id": run_id, "input_source": traffic.source})
    scored = score_splits(model_uri, {"traffic": traffic.texts})["traffic"]
    bins = binned(profile, traffic.texts, scored.proba)
    values = drift(bins)
    mlflow.log_metrics(values | {"rows": float(len(traffic.texts)), "rows_skipped": float(traffic.skipped)})
    log_histograms(bins, values, profile["rows"], len(traffic.texts))
    drifted = sorted(name.removeprefix("psi_") for name, value in values.items() if value > psi_alert)
    enough = len(traffic.texts) >= MIN_ROWS
    alert = bool(drifted) and enough
    mlflow.set_tags({"drift.alert": str(alert).lower(), "drift.features": ",".join(drifted) or "none"})
    worst = max(values, key=values.get)
    verdict = f"DRIFT in {', '.join(drifted)}" if alert else "no drift"
    if not enough:
        mlflow.set_tag("drift.note", f"too few tweets: {len(traffic.texts)} < {MIN_ROWS}")
        verdict = f"too few tweets to tell ({len(traffic.texts)} < {MIN_ROWS}), no alert"
    print(
        f"{verdict}: {len(traffic.texts)} tweets vs the {profile['rows']} validation tweets of run {run_id}; "
        f"largest {worst}={values[worst]:.3f} (alert above {psi_alert:g})",
        flush=True,
    )


@click.command(help=__doc__)
@click.option("--model-uri", default=CHAMPION_URI, show_default=True, help="the served model (any MLflow model URI)")
@click.option(
    "--input", "input", default="", help="recent tweets: .csv/.parquet with `text`, scored rows, or a feedback.db"
)
@click.option(
    "--psi-alert", type=float, default=PSI_ALERT, show_default=True, help="a PSI above this sets drift.alert=true"
)
def main(**options: object) -> None:
    run_step("monitor", lambda run: monitor(**options))


if __name__ == "__main__":
    main()
