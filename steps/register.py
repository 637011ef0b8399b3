"""`register`: rank the candidates of one data run, register the best, move `champion` through a gate.

Ranking uses one declared validation metric over FINISHED runs tagged `candidate=true` that were
trained on the same prepared data (steps.lib.ranking). The gate then scores the best candidate and
the current champion on the same validation rows, the ones neither could have trained on, and moves
the alias when the candidate's point estimate is at least the champion's (steps.lib.gate); the
bootstrap interval of the difference is reported beside it. Test figures are reported, never used
to choose.
"""

from __future__ import annotations

import sys

import click
import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from steps.lib.cli import WHOLE_NUMBER, data_run_option, seed_option
from steps.lib.fair_comparison import MIN_GATE_ROWS
from steps.lib.gate import GateSettings, compare_with_champion
from steps.lib.model_card import CARD_ARTIFACT, publish_model_card
from steps.lib.ranking import BEHAVIOUR_METRIC, DECISION_METRIC, RANKABLE, rank_candidates
from steps.lib.registry import (
    CHALLENGER_ALIAS,
    MODEL_NAME,
    current_champion,
    model_version_for,
    move_champion,
    record_artifact_digest,
    record_gate,
    set_challenger,
)
from steps.lib.registry import CHAMPION_ALIAS as ALIAS
from steps.lib.tracking import StepError, log_step_params, record_data_run_id, resolve_data_run_id, run_step


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


def validate(
    model_name: str, min_gate_rows: int, bootstrap_samples: int, max_behaviour_failure_rate: str
) -> float | None:
    """The range checks; returns the behavioural ceiling (None = off)."""
    if min_gate_rows < 1:
        raise StepError(f"min_gate_rows must be >= 1, got {min_gate_rows}")
    if bootstrap_samples < 1:
        raise StepError(f"bootstrap_samples must be >= 1, got {bootstrap_samples}")
    if not model_name.strip():
        raise StepError("model_name must not be empty")
    return parse_ceiling(max_behaviour_failure_rate)


def resolve_data_run(data_run_id: str) -> str:
    """The data run whose candidates compete, recorded on this run as param and tag."""
    resolved = resolve_data_run_id(data_run_id)
    record_data_run_id(resolved)
    return resolved


def first_line(text: str) -> str:
    """An MLflow error's first line, bounded: the one-line error must stay one line."""
    return (text.strip().splitlines() or ["?"])[0][:300]


def pick_best(client: MlflowClient, data_run_id: str, metric: str, ceiling: float | None) -> pd.Series:
    """Rank, log and print the candidates; the best eligible one, or a one-line error saying why none."""
    experiments = {mlflow.active_run().info.experiment_id, client.get_run(data_run_id).info.experiment_id}
    ranking = rank_candidates(client, sorted(experiments), data_run_id, metric, ceiling)
    try:
        mlflow.log_table(ranking, "ranking.json")  # the step's first artifact write
    except MlflowException as error:
        raise StepError(
            f"cannot log the ranking to the artifact store: {first_line(error.message)}; nothing was registered"
        ) from None
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


def decide_gate(
    client: MlflowClient, model_name: str, settings: GateSettings, version: ModelVersion, data_run_id: str
) -> dict | None:
    """Score the candidate against the current champion and record the verdict on the version.

    Returns:
        The gate's result, or None when the version already is the champion (nothing to decide).
    """
    champion = current_champion(client, model_name)
    if champion is not None and str(champion.version) == str(version.version):
        print(f"version {version.version} is already @{ALIAS}: nothing to move", flush=True)
        return None
    result = compare_with_champion(client, model_name, version, champion, data_run_id, settings)
    record_gate(client, model_name, version, result)
    report_gate(version, champion, result)
    result["first_champion"] = champion is None
    return result


def apply_gate(client: MlflowClient, model_name: str, version: ModelVersion, result: dict | None) -> str:
    """Move the aliases as the gate decided: registry writes only, so nothing here needs the artifact store.

    Returns:
        The outcome tag: already_champion, first_champion, promoted, kept_champion or no_fair_comparison.
    """
    if result is None:
        return "already_champion"
    outcome = ("first_champion" if result["first_champion"] else "promoted") if result["passed"] else "kept_champion"
    if result.get("rows_basis") == "no_fair_comparison":
        outcome = "no_fair_comparison"
    if result["passed"]:
        move_champion(client, model_name, version, f"{outcome}: gate on {result['metric']} passed")
        set_challenger(client, model_name, None)  # no standing challenger to a new champion
    else:
        set_challenger(client, model_name, version)
        print(
            f"  v{version.version} is @{CHALLENGER_ALIAS}: `mlflow run . -e evaluate -P model_uri=models:/"
            f"{model_name}@{CHALLENGER_ALIAS}` evaluates it as the champion is",
            flush=True,
        )
    return outcome


def prepare_version(
    client: MlflowClient,
    model_name: str,
    settings: GateSettings,
    version: ModelVersion,
    data_run_id: str,
    family: str,
) -> dict | None:
    """Everything a version needs before any alias may point at it: tags, its artifacts' digest, the gate's
    verdict, its model card.

    These steps read and write the artifact store (both models are scored, the card is logged on the run);
    the aliases move only after all of them succeeded (docs/design.md, "Champion, challenger and rollback").
    """
    for key, value in {"model_family": family, "data_run_id": data_run_id}.items():
        client.set_model_version_tag(model_name, version.version, key, value)
    record_artifact_digest(client, version)  # before the gate scores it: the files judged are the files recorded
    result = decide_gate(client, model_name, settings, version, data_run_id)
    publish_model_card(client, version)
    print(f"model card: {CARD_ARTIFACT} on run {version.run_id}, and the description of v{version.version}", flush=True)
    return result


def withdraw_version(client: MlflowClient, version: ModelVersion) -> str:
    """Delete a version this run created and could not finish, so no half-registered version stays behind.

    Returns:
        What became of it, in words for the error line.
    """
    try:
        client.delete_model_version(version.name, version.version)
    except MlflowException as error:  # the registry itself is gone: say so, the operator deletes it
        return f"v{version.version} could not be withdrawn ({first_line(error.message)}): delete it by hand"
    return f"v{version.version}, registered by this run, was withdrawn"


def register(
    metric: str,
    data_run_id: str,
    model_name: str,
    bootstrap_samples: int,
    min_gate_rows: int,
    seed: int,
    max_behaviour_failure_rate: str,
) -> None:
    """Rank the data run's candidates by `metric`, register the best, and let the gate move `@champion`.

    The options are the click command's (`python -m steps.register --help` says what each means).
    """
    parameters = dict(locals())  # every option, as `log_step_params` records them
    ceiling = validate(model_name, min_gate_rows, bootstrap_samples, max_behaviour_failure_rate)
    log_step_params(parameters)
    mlflow.set_tag("behaviour_gate", "off" if ceiling is None else f"{BEHAVIOUR_METRIC} <= {ceiling}")
    client = MlflowClient()
    data_run_id = resolve_data_run(data_run_id)
    best = pick_best(client, data_run_id, metric, ceiling)

    version, created = model_version_for(client, model_name, best["run_id"])
    action = "registered" if created else "reusing"
    print(f"{action} {model_name} version {version.version} (run {best['run_id']})", flush=True)
    settings = GateSettings(metric, min_gate_rows, bootstrap_samples, seed)
    try:
        result = prepare_version(client, model_name, settings, version, data_run_id, best["model_family"])
    except BaseException as error:
        fate = withdraw_version(client, version) if created else f"v{version.version} existed before and is kept"
        if isinstance(error, MlflowException):
            reason = first_line(error.message)
            raise StepError(f"registering stopped before any alias moved: {reason}; {fate}") from None
        print(f"register: {fate}", file=sys.stderr, flush=True)
        raise
    mlflow.set_tag("registered_version", version.version)
    mlflow.set_tag("outcome", apply_gate(client, model_name, version, result))

    final = current_champion(client, model_name)
    mlflow.set_tag("champion_version", final.version)
    print(f"\n@{ALIAS} is {model_name} version {final.version} (run {final.run_id}). Serve it with:")
    print(f"  mlflow models serve -m models:/{model_name}@{ALIAS} -p 5001 --env-manager local", flush=True)


def report_gate(version: ModelVersion, champion: ModelVersion | None, result: dict) -> None:
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
    if result.get("report_test_champion_value") is not None:
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


@click.command(help=__doc__)
@click.option(
    "--metric",
    type=click.Choice(RANKABLE),
    default=DECISION_METRIC,
    show_default=True,
    help="validation metric that ranks the candidates and decides the gate",
)
@data_run_option
@click.option("--model-name", default=MODEL_NAME, show_default=True, help="registered model to add the version to")
@click.option(
    "--bootstrap-samples",
    type=WHOLE_NUMBER,
    default=1000,
    show_default=True,
    help="resamples of the reported interval of the difference",
)
@click.option(
    "--min-gate-rows",
    type=WHOLE_NUMBER,
    default=MIN_GATE_ROWS,
    show_default=True,
    help="fewest validation rows neither model trained on for a fair gate (champion from another data run)",
)
@seed_option
@click.option(
    "--max-behaviour-failure-rate",
    default="",
    help=f"empty = off; else a candidate whose {BEHAVIOUR_METRIC} exceeds it (or never evaluated) is not eligible",
)
def main(**options: object) -> None:
    run_step("register", lambda run: register(**options))


if __name__ == "__main__":
    main()
