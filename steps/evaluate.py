"""`evaluate`: behavioural suite, error analysis and calibration report for one candidate model.

The results are logged onto the EVALUATED candidate's run (where `register` and the MLflow UI look for
them, next to its accuracy figures), and summarised on this step's own run. Calibration is fitted at
training time (`steps/lib/candidate.py`); here it is only reported.
"""

from __future__ import annotations

import re
import time
from functools import partial

import click
import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import get_model_info
from mlflow.tracking import MlflowClient

from steps.lib import error_analysis
from steps.lib.behaviour import (
    SUITE_PATH,
    SuiteError,
    failure_rates,
    generate_cases,
    load_suite,
    run_suite,
    summarise_tests,
)
from steps.lib.cli import WHOLE_NUMBER
from steps.lib.registry import CHAMPION_URI
from steps.lib.scoring import predict_in_chunks
from steps.lib.service_traffic import (
    ServiceTrafficError,
    errors_by_kind,
    load_service_traffic,
    score_service_traffic,
    service_traffic_metrics,
)
from steps.lib.tracking import StepError, log_step_params, run_step

PREDICT_BATCH = 256
PREDICTIONS_ARTIFACT = "predictions/test.json"  # logged by steps.lib.candidate.log_candidate
CALIBRATION_KEYS = ("val_ece_raw", "val_ece", "test_ece", "temperature")
FAILING_COLUMNS = ["test", "capability", "type", "expect", "text", "label", "proba_negative"]
FAILING_COLUMNS += ["variant", "variant_label", "variant_proba_negative", "reason"]


def candidate_run_id(model_uri: str) -> str:
    """The training run behind a model URI: runs:/, models:/name@alias, models:/name/version, models:/m-id."""
    try:
        info = get_model_info(model_uri)
    except (MlflowException, OSError) as error:
        message = getattr(error, "message", str(error))
        hint = "run `mlflow run . -e register` first, or " if model_uri == CHAMPION_URI else ""
        raise StepError(
            f"cannot load model {model_uri}: {message}; {hint}pass -P model_uri=runs:/<run id>/model"
        ) from None
    if not info.run_id:
        raise StepError(f"model {model_uri} was not logged by a tracked run: nowhere to log its evaluation")
    return info.run_id


def pyfunc_predictor(model_uri: str):
    """Score texts through the model's pyfunc `predict`, the code path `mlflow models serve` runs.

    The returned `predict(texts, desc="scoring")` scores `PREDICT_BATCH` tweets at a time, with a
    progress bar labelled `desc` on stderr.
    """
    model = mlflow.pyfunc.load_model(model_uri)

    def predict(texts: list[str], desc: str = "scoring") -> pd.DataFrame:
        return predict_in_chunks(model, texts, PREDICT_BATCH, desc)

    return predict


def replace_table(client: MlflowClient, run_id: str, table: pd.DataFrame, artifact_file: str) -> None:
    """Log a table, replacing an earlier one: `log_table` appends, which would double a re-evaluation.

    The first write goes through `log_table` (the MLflow UI then lists it as a table); later writes
    overwrite the file in the same `orient="split"` JSON that `log_table` and `load_table` use.
    """
    folder = artifact_file.rpartition("/")[0] or None
    if artifact_file not in {item.path for item in client.list_artifacts(run_id, folder)}:
        client.log_table(run_id, table, artifact_file)
        return
    client.log_text(run_id, table.to_json(orient="split", index=False, date_format="iso"), artifact_file)


def log_on_run(run_id: str, metrics: dict[str, float], tables: dict[str, pd.DataFrame]) -> None:
    """Metrics and tables onto another (usually finished) run, e.g. the evaluated candidate's."""
    client, now = MlflowClient(), int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()])
    for artifact_file, table in tables.items():
        replace_table(client, run_id, table, artifact_file)


def behaviour(predict, suite_path: str, run_id: str) -> tuple[dict[str, float], pd.DataFrame, dict]:
    """Run the suite through the pyfunc; log rates, the per-test summary and failing cases on the candidate."""
    try:
        suite = load_suite(suite_path or SUITE_PATH)
        cases = generate_cases(suite)
    except (SuiteError, OSError) as error:
        raise StepError(str(error)) from None
    print(f"behaviour suite {suite['digest']}: {len(cases)} cases, {cases['test'].nunique()} tests", flush=True)
    results = run_suite(cases, predict)
    rates = failure_rates(results)
    summary = summarise_tests(results)
    failing = results.loc[~results["passed"], FAILING_COLUMNS].reset_index(drop=True)
    log_on_run(run_id, rates, {"behaviour/failing_cases.json": failing, "behaviour/tests.json": summary})
    MlflowClient().set_tag(run_id, "behaviour_suite", f"{suite.get('version', 0)}:{suite['digest']}")
    return rates, results, {"digest": suite["digest"], "cases": len(cases)}


def score_traffic(predict, path: str, run_id: str) -> dict:
    """Score the hand-written service-traffic set at the served threshold; log rates and rows on the candidate.

    Reported only: nothing trains, picks a threshold or ranks on it (docs/design.md).
    """
    try:
        frame, digest = load_service_traffic(path) if path else load_service_traffic()
    except ServiceTrafficError as error:
        raise StepError(str(error)) from None
    scored = score_service_traffic(frame, predict)
    metrics = service_traffic_metrics(scored)
    by_kind = errors_by_kind(scored)
    tables = {"service_traffic/predictions.json": scored, "service_traffic/errors_by_kind.json": by_kind}
    log_on_run(run_id, metrics, tables)
    MlflowClient().set_tag(run_id, "service_traffic_set", digest)
    print(
        f"service traffic ({len(scored)} tweets, set {digest}): accuracy {metrics['service_traffic_accuracy']:.3f}, "
        f"false alarms {metrics['service_traffic_false_alarm_rate']:.3f}, "
        f"missed complaints {metrics['service_traffic_miss_rate']:.3f}\n" + by_kind.round(3).to_string(index=False),
        flush=True,
    )
    return {"digest": digest, "metrics": metrics, "by_kind": by_kind.to_dict(orient="records")}


def _metric_suffix(value: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", value).strip("_").lower()


def errors(run_id: str, worst: int) -> dict:
    """Error analysis of the candidate's logged test predictions, logged on the candidate."""
    try:
        logged = mlflow.artifacts.load_dict(f"runs:/{run_id}/{PREDICTIONS_ARTIFACT}")
    except (MlflowException, OSError):
        print(f"run {run_id} has no {PREDICTIONS_ARTIFACT}: error analysis skipped", flush=True)
        return {}
    predictions = pd.DataFrame(logged.get("data", []), columns=logged.get("columns"))
    try:
        frame = error_analysis.check_predictions(predictions)
    except ValueError as error:
        raise StepError(f"run {run_id}: {error}") from None
    length, topic = error_analysis.by_length(frame), error_analysis.by_topic(frame)
    false_negatives, false_positives = error_analysis.worst_errors(frame, worst)
    metrics = {
        f"test_error_rate_{_metric_suffix(t)}": r for t, r in zip(topic["topic"], topic["error_rate"], strict=True)
    }
    tables = {
        "error_analysis/error_rate_by_length.json": length,
        "error_analysis/error_rate_by_topic.json": topic,
        "error_analysis/worst_false_negatives.json": false_negatives,
        "error_analysis/worst_false_positives.json": false_positives,
    }
    log_on_run(run_id, metrics, tables)
    figure = error_analysis.error_rate_figure(length, topic)
    MlflowClient().log_figure(run_id, figure, "plots/test_error_rates.png")
    plt.close(figure)
    print("test error rate by topic:\n" + topic.to_string(index=False), flush=True)
    print("test error rate by length:\n" + length.to_string(index=False), flush=True)
    return {
        "test_rows": len(frame),
        "by_topic": topic.to_dict(orient="records"),
        "by_length": length.to_dict(orient="records"),
        "worst_false_negatives": len(false_negatives),
        "worst_false_positives": len(false_positives),
    }


def calibration(run_id: str) -> dict:
    """ECE before and after temperature scaling, as the training step measured them."""
    run = MlflowClient().get_run(run_id)
    report = {key: run.data.metrics.get(key) for key in CALIBRATION_KEYS}
    report["method"] = run.data.tags.get("calibration", "unknown")
    if report["val_ece_raw"] is None:
        print(f"run {run_id} logged no calibration metrics", flush=True)
    else:
        print(
            f"calibration ({report['method']}): val ECE {report['val_ece_raw']:.4f} raw -> {report['val_ece']:.4f}"
            f" (temperature {report['temperature']:.3f}), test ECE {report['test_ece']:.4f}",
            flush=True,
        )
        if report["val_ece"] > report["val_ece_raw"]:
            print("  warning: temperature scaling RAISED validation ECE on this run (see the reliability diagram)")
    return report


def print_rates(results: pd.DataFrame) -> None:
    """Failure rates by capability and by test type, as a reader compares candidates."""
    failed = ~results["passed"]
    for column in ("capability", "type"):
        table = failed.groupby(results[column]).agg(["size", "sum", "mean"])
        table.columns = ["cases", "failures", "failure_rate"]
        print(f"behavioural failures by {column}:\n{table.round(3).to_string()}", flush=True)
    print(f"overall failure rate {failed.mean():.3f} on {len(results)} cases", flush=True)


def evaluate(model_uri: str, suite: str, service_traffic: str, worst_errors: int) -> None:
    """Behaviour suite, service traffic, error analysis and calibration of one model, logged on its run.

    Args:
        model_uri: runs:/<id>/model, models:/<name>@<alias> or models:/<name>/<version>.
        suite: behaviour suite YAML (empty = steps/behaviour_suite.yaml).
        service_traffic: service-traffic CSV (empty = steps/service_traffic.csv).
        worst_errors: false negatives and positives listed per kind.
    """
    if worst_errors < 1:
        raise StepError(f"worst_errors must be >= 1, got {worst_errors}")
    log_step_params(
        {"model_uri": model_uri, "suite": suite, "service_traffic": service_traffic, "worst_errors": worst_errors}
    )
    run_id = candidate_run_id(model_uri)
    candidate = MlflowClient().get_run(run_id)
    family = candidate.data.tags.get("model_family", "unknown")
    mlflow.set_tags({"evaluated_run_id": run_id, "evaluated_model_family": family})
    print(f"evaluating {model_uri} (run {run_id}, family {family})", flush=True)

    predict = pyfunc_predictor(model_uri)
    rates, results, suite_report = behaviour(partial(predict, desc="scoring behaviour cases"), suite, run_id)
    print_rates(results)
    traffic = score_traffic(partial(predict, desc="scoring service traffic"), service_traffic, run_id)
    error_report = errors(run_id, worst_errors)
    calibration_report = calibration(run_id)
    MlflowClient().set_tag(run_id, "evaluated_by", mlflow.active_run().info.run_id)

    mlflow.log_metrics(rates | traffic["metrics"])
    mlflow.log_metrics({f"calibration_{k}": v for k, v in calibration_report.items() if isinstance(v, float)})
    mlflow.log_table(results, "behaviour/cases.json")
    mlflow.log_dict(
        {
            "model_uri": model_uri,
            "evaluated_run_id": run_id,
            "model_family": family,
            "behaviour": {"suite": suite_report, "failure_rates": rates},
            "service_traffic": traffic,
            "error_analysis": error_report,
            "calibration": calibration_report,
        },
        "evaluation_summary.json",
    )
    print(f"logged onto candidate run {run_id}: behaviour_* metrics, behaviour/, error_analysis/", flush=True)


@click.command(help=__doc__)
@click.option(
    "--model-uri",
    default=CHAMPION_URI,
    show_default=True,
    help="runs:/<id>/model or models:/<name>@<alias> or /<version>",
)
@click.option("--suite", default="", help="behaviour suite YAML (empty = steps/behaviour_suite.yaml)")
@click.option("--service-traffic", default="", help="service-traffic CSV (empty = steps/service_traffic.csv)")
@click.option(
    "--worst-errors", type=WHOLE_NUMBER, default=20, show_default=True, help="false negatives/positives listed per kind"
)
def main(**options: object) -> None:
    run_step("evaluate", lambda run: evaluate(**options))


if __name__ == "__main__":
    main()
