"""`adapt`: fine-tune the champion on a team's verdicts; register the result through a gate judged on held-out verdicts.

Input: `verdicts`, a CSV or Parquet file with `text` and `label` (1 = the team must answer) or the
dashboard's `feedback.db`, and the registered model's `@champion` (a transformer). Output: this run,
a candidate whose `data/` holds what it learned from (`train`: most verdicts plus a replay sample of
the champion's own training tweets), the held-out verdicts that judge it (`val`) and the champion's
complaint test split (`test`, reported: what it may have forgotten); a new model version that
becomes `@champion` only when its macro F1 on the held-out verdicts is at least the champion's
there, else `@challenger`. The champion's threshold and calibration are kept: nothing is fitted on
the verdicts that judge it (docs/design.md, "Learning from verdicts").
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train_bert: idle OpenMP threads sleep

import click
import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from pyfunc.transformer_model import HF_MODEL_ARTIFACT, ONNX_ARTIFACT
from steps.lib.adaptation import adaptation_settings, download_transformer, fine_tune_registered, learning_rows
from steps.lib.candidate import log_candidate
from steps.lib.cli import WHOLE_NUMBER, seed_option
from steps.lib.fine_tune import FineTuning, save_hf_model
from steps.lib.gate import GateSettings, champion_data_run
from steps.lib.ranking import DECISION_METRIC
from steps.lib.registry import CHAMPION_ALIAS, MODEL_NAME, current_champion, model_version_for
from steps.lib.tracking import SPLITS, StepError, load_splits, log_dataset_inputs, log_step_params, run_step
from steps.lib.verdicts import HELD_OUT_FRACTION, hold_out, load_verdicts
from steps.register import apply_gate, prepare_version, withdraw_version
from steps.train_bert import choose_backend, serving_requirements

MIN_GATE_ROWS = 20  # the held-out verdicts the champion never trained on, at the fewest (2 x 10 per label)


def validate(verdicts: str, settings: FineTuning, replay: int, model_name: str) -> None:
    if not verdicts:
        raise StepError(
            "adapt needs -P verdicts=<.csv or .parquet with text and label, or the dashboard's feedback.db>"
        )
    if settings.epochs <= 0 or settings.learning_rate <= 0 or settings.batch_size < 1:
        raise StepError("epochs and learning_rate must be > 0 and batch_size >= 1")
    if replay < 0:
        raise StepError(f"replay must be >= 0 (0 = no replay), got {replay}")
    if not model_name.strip():
        raise StepError("model_name must not be empty")


def champion_splits(client: MlflowClient, champion: ModelVersion) -> dict[str, pd.DataFrame]:
    """The champion's complaint splits (its training split replays, its test split is reported), or StepError."""
    data_run = champion_data_run(client, champion)
    if data_run is None:
        raise StepError(f"{version_uri(champion)} names no data run: its training tweets cannot be replayed")
    return load_splits(data_run)


def version_uri(version: ModelVersion) -> str:
    return f"models:/{version.name}/{version.version}"


def log_prepared(splits: dict[str, pd.DataFrame], verdicts: pd.DataFrame, source: str) -> None:
    """This run's data laid out as a prepare_data run's (the gate reads `val` here); the verdicts as an input."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in SPLITS:
            splits[name].to_parquet(Path(tmp) / f"{name}.parquet", index=False)
        mlflow.log_artifacts(tmp, artifact_path="data")
    dataset = mlflow.data.from_pandas(verdicts.drop(columns="key"), source=source, name="verdicts", targets="label")
    mlflow.log_input(dataset, context="adaptation")
    run_id = mlflow.active_run().info.run_id
    log_dataset_inputs({name: splits[name] for name in SPLITS}, run_id)
    mlflow.log_metrics({f"{name}_rows": len(splits[name]) for name in SPLITS})  # as prepare_data: the model card
    mlflow.set_tag("data_run_id", run_id)  # the gate scores this run's own `val`: the held-out verdicts


def adapt(
    verdicts: str,
    model_name: str,
    epochs: float,
    learning_rate: float,
    replay: int,
    batch_size: int,
    bootstrap_samples: int,
    seed: int,
) -> None:
    """Fine-tune the champion on the verdicts, log the result as a candidate and register it through the gate.

    The options are the click command's (`python -m steps.adapt --help` says what each means); a
    relative `verdicts` path is read from the current directory and logged as an absolute one.
    """
    verdicts = str(Path(verdicts).expanduser().resolve()) if verdicts else verdicts
    settings = adaptation_settings(epochs, learning_rate, batch_size, seed)
    validate(verdicts, settings, replay, model_name)
    options = {"verdicts": verdicts, "model_name": model_name, "replay": replay, "bootstrap_samples": bootstrap_samples}
    log_step_params(options | asdict(settings))  # the Trainer's settings too, those fixed to train_bert's included
    given = load_verdicts(verdicts)
    learn, judged = hold_out(given, seed)
    client = MlflowClient()
    champion = current_champion(client, model_name)
    if champion is None:
        raise StepError(f"{model_name} has no @{CHAMPION_ALIAS} to adapt: run the main job first")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        registered = download_transformer(version_uri(champion), workdir / "champion")  # refuses a non-transformer
        base = champion_splits(client, champion)
        rows = learning_rows(learn, base["train"], replay, seed)
        splits = {
            "train": rows[["text", "label"]].assign(source=rows["origin"]),
            "val": judged[["text", "label"]].assign(source="held_out_verdict"),
            "test": base["test"],
        }
        print(
            f"verdicts {verdicts}: {len(given):,} distinct tweets; learning from {len(learn):,} "
            f"(+{int((rows['origin'] == 'replay').sum()):,} replayed from v{champion.version}'s training split), "
            f"judged on {len(judged):,} held out ({HELD_OUT_FRACTION:.0%})",
            flush=True,
        )
        log_prepared(splits, given, verdicts)
        mlflow.log_metrics({"verdicts": len(given), "verdicts_learned": len(learn), "verdicts_held_out": len(judged)})
        mlflow.set_tags({"adapted_from": version_uri(champion), "model_name": model_name})
        classifier, model, tokenizer, seconds = fine_tune_registered(registered, rows, settings, workdir)
        # The served graph is chosen on the champion's validation split: the held-out verdicts only judge.
        artifacts = {HF_MODEL_ARTIFACT: str(save_hf_model(model, tokenizer, workdir / HF_MODEL_ARTIFACT))}
        artifacts |= choose_backend(classifier, model, workdir, base["val"], export_onnx=True, quantize=True)
        requirements = serving_requirements(ONNX_ARTIFACT in artifacts)
        log_candidate(classifier, "transformer", splits, seconds, artifacts, requirements, policy=None)
    register_through_gate(client, model_name, GateSettings(DECISION_METRIC, MIN_GATE_ROWS, bootstrap_samples, seed))


def register_through_gate(client: MlflowClient, model_name: str, gate: GateSettings) -> None:
    """Register this run's model; the gate (on the held-out verdicts) decides whether it becomes the champion."""
    run_id = mlflow.active_run().info.run_id
    version, _ = model_version_for(client, model_name, run_id)
    print(f"registered {model_name} version {version.version} (run {run_id})", flush=True)
    try:
        result = prepare_version(client, model_name, gate, version, run_id, "transformer")
    except BaseException:
        print(f"adapt: {withdraw_version(client, version)}", flush=True)
        raise
    outcome = apply_gate(client, model_name, version, result)
    mlflow.set_tags({"registered_version": version.version, "outcome": outcome})


@click.command(help=__doc__)
@click.option("--verdicts", default="", help=".csv or .parquet with text and label (1 = must answer), or feedback.db")
@click.option("--model-name", default=MODEL_NAME, show_default=True, help="the registered model whose champion adapts")
@click.option("--epochs", type=float, default=4.0, show_default=True, help="passes over the verdicts and the replay")
@click.option(
    "--learning-rate",
    type=float,
    default=5e-5,
    show_default=True,
    help="peak rate: a few hundred verdicts need more than the training's 3e-5 to move a decision",
)
@click.option(
    "--replay",
    type=WHOLE_NUMBER,
    default=250,
    show_default=True,
    help="tweets of the champion's own training split mixed in against forgetting (0 = none); more of "
    "them outvote a team whose definition differs",
)
@click.option("--batch-size", type=WHOLE_NUMBER, default=32, show_default=True, help="tweets per optimiser step")
@click.option("--bootstrap-samples", type=WHOLE_NUMBER, default=1000, show_default=True, help="for the gate's interval")
@seed_option
def main(**options: object) -> None:
    run_step("adapt", lambda run: adapt(**options))


if __name__ == "__main__":
    main()
