"""`register`: rank the candidates of one data run, register the best, move `champion` through a gate.

Ranking uses one declared validation metric over FINISHED runs tagged `candidate=true` that were
trained on the same prepared data. The gate then scores the best candidate and the current champion
on the SAME rows (the candidate's validation split) and moves the alias only if the candidate is at
least as good; the bootstrap interval of the difference says how sure that comparison is. Test
figures are reported on this run, never used to choose.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from steps.fair_comparison import MIN_GATE_ROWS, GateRows, gate_rows
from steps.tracking import StepError, load_splits, log_step_params, resolve_data_run_id, run_step

ALIAS = "champion"
BEHAVIOUR_METRIC = "behaviour_failure_rate"  # overall rate logged by `evaluate` on the candidate's run
SCORING_BATCH = 512
# Same definitions as steps.metrics.classification_metrics (threshold-dependent ones at the model's threshold).
METRIC_FUNCTIONS = {
    "accuracy": lambda y, p, t: accuracy_score(y, p >= t),
    "precision": lambda y, p, t: precision_score(y, p >= t, zero_division=0),
    "recall": lambda y, p, t: recall_score(y, p >= t, zero_division=0),
    "f1": lambda y, p, t: f1_score(y, p >= t, zero_division=0),
    "roc_auc": lambda y, p, t: roc_auc_score(y, p),
    "pr_auc": lambda y, p, t: average_precision_score(y, p),
}
RANKABLE = tuple(f"val_{name}" for name in METRIC_FUNCTIONS)


@dataclass
class Scored:
    """A model's P(negative) on some rows and the threshold it decides with."""

    proba: np.ndarray
    threshold: float

    def on(self, rows: np.ndarray) -> Scored:
        """The same model's scores on a subset of the rows."""
        return Scored(self.proba[rows], self.threshold)


def metric_value(metric: str, labels: np.ndarray, scored: Scored) -> float:
    """The named metric (split prefix ignored) for one model on the given rows."""
    return float(METRIC_FUNCTIONS[metric.split("_", 1)[1]](labels, scored.proba, scored.threshold))


def rank_candidates(
    client: MlflowClient, experiment_ids: list[str], data_run_id: str, metric: str, ceiling: float | None
) -> pd.DataFrame:
    """Every FINISHED candidate of this data run, best first, with why any is not eligible.

    FAILED, KILLED and RUNNING runs are never listed: only finished runs have a complete model.
    """
    query = f"tags.candidate = 'true' and tags.data_run_id = '{data_run_id}' and attributes.status = 'FINISHED'"
    runs = client.search_runs(experiment_ids, query, max_results=5000)
    rows = [_ranking_row(run, metric, ceiling) for run in runs]
    columns = ["run_id", "run_name", "model_family", metric, "test_" + metric.split("_", 1)[1], BEHAVIOUR_METRIC]
    table = pd.DataFrame(rows, columns=[*columns, "start_time", "eligible", "reason"])
    table = table.sort_values([metric, "start_time"], ascending=[False, True], na_position="last")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.drop(columns="start_time").reset_index(drop=True)


def _ranking_row(run: Run, metric: str, ceiling: float | None) -> list:
    metrics = run.data.metrics
    value = metrics.get(metric)
    behaviour = metrics.get(BEHAVIOUR_METRIC)
    reason = ""
    if value is None or math.isnan(value):
        reason = f"no {metric} logged"
    elif ceiling is not None and behaviour is None:
        reason = "not evaluated (run `evaluate` on it): the behaviour ceiling is set"
    elif ceiling is not None and behaviour > ceiling:
        reason = f"{BEHAVIOUR_METRIC} {behaviour:.3f} > ceiling {ceiling:.3f}"
    test_metric = "test_" + metric.split("_", 1)[1]
    return [
        run.info.run_id,
        run.info.run_name,
        run.data.tags.get("model_family", "unknown"),
        value,
        metrics.get(test_metric),
        behaviour,
        run.info.start_time,
        not reason,
        reason,
    ]


def model_version_for(client: MlflowClient, model_name: str, run_id: str) -> tuple[ModelVersion, bool]:
    """The registered version of this run's model, creating it only if none exists yet."""
    existing = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    if existing:
        return min(existing, key=lambda version: int(version.version)), False
    try:
        return mlflow.register_model(f"runs:/{run_id}/model", model_name), True
    except MlflowException as error:
        raise StepError(f"cannot register the model of run {run_id}: {error.message}") from None


def current_champion(client: MlflowClient, model_name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(model_name, ALIAS)
    except MlflowException:
        return None  # no registered model or no alias yet


def score(model_uri: str, splits: dict[str, list[str]]) -> dict[str, Scored]:
    """P(negative) and threshold per split through the registered pyfunc, exactly what the server answers."""
    model = mlflow.pyfunc.load_model(model_uri)
    scored = {}
    for split, texts in splits.items():
        batches = [texts[start : start + SCORING_BATCH] for start in range(0, len(texts), SCORING_BATCH)]
        output = pd.concat([model.predict(pd.DataFrame({"text": batch})) for batch in batches], ignore_index=True)
        scored[split] = Scored(output["proba_negative"].to_numpy(dtype=float), float(output["threshold"].iloc[0]))
    return scored


def bootstrap_difference(
    metric: str, labels: np.ndarray, candidate: Scored, champion: Scored, samples: int, seed: int
) -> tuple[float, float]:
    """95% percentile interval of metric(candidate) - metric(champion), resampling the same rows for both.

    Stratified by class, so every resample keeps the split's class balance and AUC stays defined.
    """
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == value) for value in (0, 1)]
    differences = np.empty(samples)
    for i in range(samples):
        rows = np.concatenate([rng.choice(members, size=len(members), replace=True) for members in by_class])
        resampled = labels[rows]
        differences[i] = metric_value(metric, resampled, Scored(candidate.proba[rows], candidate.threshold))
        differences[i] -= metric_value(metric, resampled, Scored(champion.proba[rows], champion.threshold))
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(low), float(high)


def champion_data_run(client: MlflowClient, champion: ModelVersion) -> str | None:
    """The prepare_data run the champion trained on: its version tag, else its training run's."""
    if champion.tags.get("data_run_id"):
        return champion.tags["data_run_id"]
    try:
        run = client.get_run(champion.run_id)
    except MlflowException:
        return None
    return run.data.tags.get("data_run_id") or run.data.params.get("data_run_id")


def rows_for_champion(
    client: MlflowClient, champion: ModelVersion, data_run_id: str, splits: dict[str, pd.DataFrame], min_rows: int
) -> dict[str, GateRows]:
    """Per split, the candidate's rows the champion could not have trained on (steps.fair_comparison)."""
    theirs = champion_data_run(client, champion)
    training = None
    if theirs and theirs != data_run_id:
        try:
            training = load_splits(theirs)["train"]
        except StepError:
            theirs = None  # its data can no longer be read: treated as unknown
    return {split: gate_rows(splits[split], data_run_id, theirs, training, min_rows) for split in ("val", "test")}


def gate(
    client: MlflowClient,
    args: argparse.Namespace,
    version: ModelVersion,
    champion: ModelVersion | None,
    data_run_id: str,
) -> dict:
    """Score candidate and champion on validation rows neither could have trained on; decide; report test.

    The decision is the point estimate: the candidate passes when its metric is at least the
    champion's on the same rows. The bootstrap interval of the difference is reported beside it
    and takes no part in the decision (docs/design.md, "The gate").
    """
    splits = load_splits(data_run_id)
    texts = {split: splits[split]["text"].tolist() for split in ("val", "test")}
    labels = {split: splits[split]["label"].to_numpy() for split in ("val", "test")}
    candidate = score(f"models:/{args.model_name}/{version.version}", texts)
    test_metric = "test_" + args.metric.split("_", 1)[1]
    result = {
        "metric": args.metric,
        "rows": len(labels["val"]),
        "candidate_value": metric_value(args.metric, labels["val"], candidate["val"]),
        "report_test_candidate_value": metric_value(test_metric, labels["test"], candidate["test"]),
    }
    if champion is None:
        return result | {"passed": True, "champion_value": None, "rows_basis": "first_champion"}
    rows = rows_for_champion(client, champion, data_run_id, splits, args.min_gate_rows)
    result |= {"rows_basis": rows["val"].basis, "rows_note": rows["val"].note, "rows": int(rows["val"].mask.sum())}
    if not rows["val"].fair:
        return result | {"passed": False, "champion_value": None}
    incumbent = score(f"models:/{args.model_name}/{champion.version}", texts)
    val, test = rows["val"].mask, rows["test"].mask
    mine, theirs = candidate["val"].on(val), incumbent["val"].on(val)
    low, high = bootstrap_difference(args.metric, labels["val"][val], mine, theirs, args.bootstrap_samples, args.seed)
    result |= {
        "candidate_value": metric_value(args.metric, labels["val"][val], mine),
        "champion_value": metric_value(args.metric, labels["val"][val], theirs),
        "diff_ci_low": low,
        "diff_ci_high": high,
    }
    if rows["test"].fair:  # test is reported on rows the champion never trained on, too
        result["report_test_candidate_value"] = metric_value(
            test_metric, labels["test"][test], candidate["test"].on(test)
        )
        result["report_test_champion_value"] = metric_value(
            test_metric, labels["test"][test], incumbent["test"].on(test)
        )
    result["passed"] = result["candidate_value"] >= result["champion_value"]
    return result


def _tag_value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def record_gate(client: MlflowClient, args: argparse.Namespace, version: ModelVersion, result: dict) -> None:
    """Gate tags on the model version (names in docs/design.md, "The gate"), metrics on this register run."""
    tags = {f"gate.{key}": _tag_value(result[key]) for key in ("metric", "candidate_value", "champion_value", "passed")}
    for key in ("diff_ci_low", "diff_ci_high", "rows", "rows_basis", "rows_note"):
        if key in result:
            tags[f"gate.{key}"] = _tag_value(result[key])
    tags["gate.register_run_id"] = mlflow.active_run().info.run_id
    for key, value in tags.items():
        client.set_model_version_tag(args.model_name, version.version, key, value)
    numbers = {key: value for key, value in result.items() if type(value) in (int, float)}  # not bool: passed
    mlflow.log_metrics({f"gate_{key}": float(value) for key, value in numbers.items()})
    mlflow.log_metric("gate_passed", float(result["passed"]))


def parse_ceiling(value: str) -> float | None:
    """Empty (the default) turns the behavioural gate off; otherwise a failure rate in [0, 1]."""
    if value in ("", "none", "off"):
        return None
    try:
        ceiling = float(value)
    except ValueError:
        raise StepError(
            f"max_behaviour_failure_rate must be empty (off) or a number in [0, 1], got {value!r}"
        ) from None
    if not 0.0 <= ceiling <= 1.0:
        raise StepError(f"max_behaviour_failure_rate must be in [0, 1], got {ceiling}")
    return ceiling


def validate(args: argparse.Namespace) -> float | None:
    if args.metric not in RANKABLE:
        raise StepError(f"unknown metric {args.metric!r}; valid choices: {', '.join(RANKABLE)}")
    if args.min_gate_rows < 1:
        raise StepError(f"min_gate_rows must be >= 1, got {args.min_gate_rows}")
    if args.bootstrap_samples < 1:
        raise StepError(f"bootstrap_samples must be >= 1, got {args.bootstrap_samples}")
    if not args.model_name.strip():
        raise StepError("model_name must not be empty")
    return parse_ceiling(args.max_behaviour_failure_rate)


def resolve_data_run(data_run_id: str) -> str:
    """The data run whose candidates compete, recorded on this run as param and tag."""
    resolved = resolve_data_run_id(data_run_id)
    mlflow.set_tag("data_run_id", resolved)
    if "data_run_id" not in mlflow.get_run(mlflow.active_run().info.run_id).data.params:
        mlflow.log_param("data_run_id", resolved)
    return resolved


def pick_best(client: MlflowClient, data_run_id: str, metric: str, ceiling: float | None) -> pd.Series:
    """Rank, log and print the candidates; the best eligible one, or a one-line error saying why none."""
    experiments = {mlflow.active_run().info.experiment_id, client.get_run(data_run_id).info.experiment_id}
    ranking = rank_candidates(client, sorted(experiments), data_run_id, metric, ceiling)
    mlflow.log_table(ranking, "ranking.json")
    print(f"candidates on data run {data_run_id}, ranked by {metric}:", flush=True)
    print(ranking.to_string(index=False) if len(ranking) else "  (none)", flush=True)
    eligible = ranking[ranking["eligible"]]
    mlflow.log_metrics({"candidates": len(ranking), "eligible_candidates": len(eligible)})
    if eligible.empty:
        raise StepError(
            f"no eligible candidate among {len(ranking)} finished candidate run(s) of data run {data_run_id}: "
            "train one (e.g. `mlflow run . -e train_baseline --env-manager local`)"
            + (" and evaluate it, or raise max_behaviour_failure_rate" if ceiling is not None else "")
        )
    best = eligible.iloc[0]
    mlflow.set_tags({"best_run_id": best["run_id"], "best_model_family": best["model_family"]})
    return best


def promote_through_gate(
    client: MlflowClient, args: argparse.Namespace, version: ModelVersion, data_run_id: str
) -> None:
    """Run the gate against the current champion and move the alias only if it passes."""
    champion = current_champion(client, args.model_name)
    if champion is not None and str(champion.version) == str(version.version):
        mlflow.set_tag("outcome", "already_champion")
        print(f"version {version.version} is already @{ALIAS}: nothing to move", flush=True)
        return
    result = gate(client, args, version, champion, data_run_id)
    record_gate(client, args, version, result)
    report_gate(args, version, champion, result)
    if result["passed"]:
        client.set_registered_model_alias(args.model_name, ALIAS, version.version)
    outcome = ("first_champion" if champion is None else "promoted") if result["passed"] else "kept_champion"
    if result.get("rows_basis") == "no_fair_comparison":
        outcome = "no_fair_comparison"
    mlflow.set_tag("outcome", outcome)


def register(args: argparse.Namespace) -> None:
    ceiling = validate(args)
    log_step_params(vars(args))
    mlflow.set_tag("behaviour_gate", "off" if ceiling is None else f"{BEHAVIOUR_METRIC} <= {ceiling}")
    client = MlflowClient()
    data_run_id = resolve_data_run(args.data_run_id)
    best = pick_best(client, data_run_id, args.metric, ceiling)

    version, created = model_version_for(client, args.model_name, best["run_id"])
    action = "registered" if created else "reusing"
    print(f"{action} {args.model_name} version {version.version} (run {best['run_id']})", flush=True)
    for key, value in {"model_family": best["model_family"], "data_run_id": data_run_id}.items():
        client.set_model_version_tag(args.model_name, version.version, key, value)
    mlflow.set_tag("registered_version", version.version)
    promote_through_gate(client, args, version, data_run_id)

    final = current_champion(client, args.model_name)
    mlflow.set_tag("champion_version", final.version)
    print(f"\n@{ALIAS} is {args.model_name} version {final.version} (run {final.run_id}). Serve it with:")
    print(f"  mlflow models serve -m models:/{args.model_name}@{ALIAS} -p 5001 --env-manager local", flush=True)


def report_gate(args: argparse.Namespace, version: ModelVersion, champion: ModelVersion | None, result: dict) -> None:
    """Say what the gate compared and decided, in one block a user can read in the console."""
    if champion is None:
        print(f"gate on {result['rows']} validation rows, metric {result['metric']}:")
        print(f"  candidate v{version.version}: {result['candidate_value']:.4f}")
        print(f"  no {ALIAS} yet: version {version.version} becomes {ALIAS}", flush=True)
        return
    if result["rows_basis"] == "no_fair_comparison":
        print(f"gate: no fair comparison with {ALIAS} v{champion.version}: {result['rows_note']}.")
        print(
            f"  {ALIAS} stays on v{champion.version}. Retrain the champion's family on the candidate's data run, "
            "or lower min_gate_rows if fewer rows are acceptable.",
            flush=True,
        )
        return
    print(f"gate on {result['rows']} validation rows ({result['rows_basis']}), metric {result['metric']}:")
    if result["rows_basis"] == "rows_neither_saw":
        print(f"  {result['rows_note']}")
    print(f"  candidate v{version.version}: {result['candidate_value']:.4f}")
    print(f"  {ALIAS}   v{champion.version}: {result['champion_value']:.4f}")
    diff = result["candidate_value"] - result["champion_value"]
    print(
        f"  difference {diff:+.4f}, bootstrap 95% interval "
        f"[{result['diff_ci_low']:+.4f}, {result['diff_ci_high']:+.4f}] (reported; the point estimate decides)"
    )
    if result["report_test_champion_value"] is not None:
        print(
            f"  test (reported, not used): candidate {result['report_test_candidate_value']:.4f}, "
            f"{ALIAS} {result['report_test_champion_value']:.4f}"
        )
    verdict = (
        f"passed: {ALIAS} moves to v{version.version}"
        if result["passed"]
        else f"failed: {ALIAS} stays on v{champion.version}"
    )
    print(f"  gate {verdict}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--metric", default="val_roc_auc", help=f"ranking and gate metric, one of {', '.join(RANKABLE)}"
    )
    parser.add_argument("--data-run-id", default="", help="prepare_data run (empty = newest finished)")
    parser.add_argument("--model-name", default="tweet-sentiment")
    parser.add_argument("--bootstrap-samples", type=int, default=1000, help="resamples of the reported interval")
    parser.add_argument(
        "--min-gate-rows",
        type=int,
        default=MIN_GATE_ROWS,
        help="fewest validation rows neither model trained on for a fair gate (champion from another data run)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--max-behaviour-failure-rate",
        default="",
        help=f"empty = off; else a candidate whose {BEHAVIOUR_METRIC} exceeds it (or never evaluated) is not eligible",
    )
    args = parser.parse_args(argv)
    run_step("register", lambda run: register(args))


if __name__ == "__main__":
    main()
