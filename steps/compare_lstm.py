"""`compare_lstm`: the study's two LSTM comparisons, as child runs of this run, on one split.

1. Stemming vs lemmatisation, both with the same embeddings (`embeddings`, word2vec by default).
2. Word2Vec vs FastText vectors (gensim, training split only) with the preprocessing that won 1.
   The arm that 1 already trained is reused, not retrained: same parameters, same seed, same run.
Plus, unless `learned_control=false`, a control with randomly initialised (learned) embeddings and
the winning preprocessing: it says whether the gensim vectors pay for themselves at all.

Every choice is made on validation ROC AUC (the metric `register` ranks by) and written down with its
figures and a paired bootstrap 95% interval of the difference on the same validation tweets; test
figures are reported, never used to choose. The table, a chart and the decisions are artifacts here.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from pyfunc.transformer_model import cpu_count
from steps.lib.cli import FLAG, WHOLE_NUMBER, data_run_option, policy_options, seed_option
from steps.lib.gate import Scored, bootstrap_difference
from steps.lib.lstm_arms import (
    CURVE_NAMES,
    DECISION_METRIC,
    EMBEDDINGS,
    FORWARDED,
    LstmArm,
    arm_options,
    validate_arm,
)
from steps.lib.operating_point import POLICY_ARGUMENTS, ThresholdPolicy
from steps.lib.tracking import (
    PROJECT_ROOT,
    StepError,
    log_step_params,
    record_data_run_id,
    resolve_data_run_id,
    run_step,
)

BOOTSTRAP_SAMPLES = 1000
# What every train_lstm child gets unchanged from this run: the arm knobs, the seed and the policy.
FORWARDED_TO_ARMS = ("seed", *FORWARDED, *POLICY_ARGUMENTS)
TABLE_COLUMNS = [
    "arm",
    "preprocessing",
    "embeddings",
    "val_roc_auc",
    "val_f1",
    "val_pr_auc",
    "val_precision",
    "val_recall",
    "test_roc_auc",
    "test_f1",
    "train_seconds",
    "sentiment_epochs_trained",
    "complaints_epochs_trained",
    "complaints_best_epoch",
    "model_size_mb",
    "predict_ms_per_1k",
    "embedding_coverage",
    "val_oov_rate",
    "run_id",
]


@dataclass
class Decision:
    """One comparison's outcome: the winner by validation ROC AUC and how sure the split lets us be."""

    title: str
    winner: str
    loser: str
    winner_auc: float
    loser_auc: float
    ci_low: float
    ci_high: float

    @property
    def difference(self) -> float:
        return self.winner_auc - self.loser_auc

    def markdown(self, rows: int) -> str:
        verdict = (
            "The interval includes 0: on this split the two are not distinguishable; the rule keeps the higher one."
            if self.ci_low <= 0 <= self.ci_high
            else "The interval excludes 0: the difference is larger than the split's sampling noise."
        )
        return (
            f"**Decision: {self.winner}.** Validation ROC AUC {self.winner_auc:.4f} vs {self.loser_auc:.4f} "
            f"({self.loser}): difference {self.difference:+.4f}, paired bootstrap 95% interval "
            f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}] over the same {rows} validation tweets. {verdict}"
        )


class Arms:
    """Launches train_lstm children under the active run, once per (preprocessing, embeddings)."""

    def __init__(self, forwarded: dict[str, object], data_run_id: str, parallel_arms: int) -> None:
        """Arms of the active run.

        Args:
            forwarded: what every arm is given unchanged, by `FORWARDED_TO_ARMS` name.
            data_run_id: the prepare_data run every arm trains on.
            parallel_arms: arms trained side by side (0 = one per core).
        """
        self.forwarded = forwarded
        self.data_run_id = data_run_id
        self.parent = mlflow.active_run().info
        self.run_ids: dict[str, str] = {}
        self.parallel = max(1, parallel_arms or cpu_count())

    def run_together(self, arms: list[tuple[str, str]]) -> list[str]:
        """Train the arms not trained yet side by side, `parallel` at a time, and return every arm's run id.

        Each arm trains on one thread (`train_lstm --threads 1`), so on N cores N arms finish in
        about the time of one; the results are the same as one after the other (seeded, one thread).
        """
        pending = [arm for arm in dict.fromkeys(arms) if f"{arm[0]}+{arm[1]}" not in self.run_ids]
        for start in range(0, len(pending), self.parallel):
            submitted = [(arm, self._submit(*arm)) for arm in pending[start : start + self.parallel]]
            failed = [(arm, run) for arm, run in submitted if not run.wait()]
            if failed:
                labels = ", ".join(f"{p}+{e} (run {run.run_id})" for (p, e), run in failed)
                raise StepError(f"arm(s) {labels} failed; the error is printed above")
            for (preprocessing, embeddings), run in submitted:
                self.run_ids[f"{preprocessing}+{embeddings}"] = run.run_id
        for preprocessing, embeddings in arms:
            if (preprocessing, embeddings) not in pending:
                label = f"{preprocessing}+{embeddings}"
                print(f"==> compare_lstm: reusing arm {label} (run {self.run_ids[label]})", flush=True)
        return [self.run_ids[f"{preprocessing}+{embeddings}"] for preprocessing, embeddings in arms]

    def _submit(self, preprocessing: str, embeddings: str):
        """Start one arm as a child run (asynchronously); returns MLflow's SubmittedRun."""
        label = f"{preprocessing}+{embeddings}"
        parameters = {key: str(self.forwarded[key]) for key in FORWARDED_TO_ARMS}
        parameters |= {"data_run_id": self.data_run_id, "preprocessing": preprocessing, "embeddings": embeddings}
        child = MlflowClient().create_run(
            self.parent.experiment_id,
            run_name=f"lstm-{preprocessing}-{embeddings}",
            tags={MLFLOW_PARENT_RUN_ID: self.parent.run_id, "lstm_arm": label},
        )
        print(f"==> compare_lstm: training arm {label} (run {child.info.run_id})", flush=True)
        # An asynchronous run is a `mlflow run --experiment-id ...` child process, which refuses an
        # MLFLOW_EXPERIMENT_NAME in its environment as a second experiment option (the README sets it).
        name = os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
        try:
            return mlflow.projects.run(
                str(PROJECT_ROOT),
                entry_point="train_lstm",
                parameters=parameters,
                env_manager="local",
                experiment_id=self.parent.experiment_id,
                run_id=child.info.run_id,
                synchronous=False,
            )
        finally:
            if name is not None:
                os.environ["MLFLOW_EXPERIMENT_NAME"] = name


def validation_predictions(run_id: str) -> pd.DataFrame:
    """The validation predictions table every candidate logs (`predictions/val.json`)."""
    client = MlflowClient()
    return client.load_table(client.get_run(run_id).info.experiment_id, "predictions/val.json", run_ids=[run_id])


def paired_auc_interval(run_a: str, run_b: str, seed: int) -> tuple[float, float]:
    """Bootstrap 95% interval of AUC(a) - AUC(b), resampling the same validation tweets for both (the gate's)."""
    a, b = validation_predictions(run_a), validation_predictions(run_b)
    if len(a) != len(b) or not (a["text"].to_numpy() == b["text"].to_numpy()).all():
        raise StepError(f"runs {run_a} and {run_b} were not scored on the same validation rows")
    # ROC AUC does not depend on the threshold: any one will do.
    first, second = (Scored(run["proba_negative"].to_numpy(dtype=float), 0.5) for run in (a, b))
    labels = a["label"].to_numpy()
    return bootstrap_difference(DECISION_METRIC, labels, first, second, BOOTSTRAP_SAMPLES, seed, desc="arm bootstrap")


def decide(title: str, arms: dict[str, str], seed: int) -> Decision:
    """Pick the arm with the higher validation ROC AUC (arms: label -> run id)."""
    client = MlflowClient()
    auc = {label: client.get_run(run_id).data.metrics[DECISION_METRIC] for label, run_id in arms.items()}
    winner, loser = sorted(auc, key=lambda label: -auc[label])
    low, high = paired_auc_interval(arms[winner], arms[loser], seed)
    return Decision(title, winner, loser, auc[winner], auc[loser], low, high)


def comparison_table(run_ids: dict[str, str]) -> pd.DataFrame:
    """One row per arm with the figures the decisions and the report quote."""
    client = MlflowClient()
    rows = []
    for label, run_id in run_ids.items():
        run = client.get_run(run_id)
        row = {"arm": label, "run_id": run_id, **run.data.metrics}
        row |= {key: run.data.params.get(key) for key in ("preprocessing", "embeddings")}
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)


def comparison_chart(table: pd.DataFrame) -> plt.Figure:
    """Validation ROC AUC / F1 per arm next to each arm's validation AUC per epoch."""
    client = MlflowClient()
    figure, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.5))
    positions = np.arange(len(table))
    for offset, (metric, name) in zip((-0.2, 0.2), (("val_roc_auc", "ROC AUC"), ("val_f1", "F1")), strict=True):
        drawn = bars.barh(positions + offset, table[metric], height=0.4, label=f"validation {name}")
        bars.bar_label(drawn, fmt="%.3f", padding=2, fontsize=8)
    bars.set_yticks(positions, table["arm"])
    bars.invert_yaxis()  # best arm (first row) on top
    low = float(np.nanmin(table[["val_roc_auc", "val_f1"]].to_numpy()))
    bars.set_xlim(max(0.0, low - 0.05), 1.0)
    bars.set_title("Validation figures per arm (same split)")
    bars.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=2, fontsize=8)
    for label, run_id in zip(table["arm"], table["run_id"], strict=True):
        history = sorted(client.get_metric_history(run_id, CURVE_NAMES["val_auc"]), key=lambda metric: metric.step)
        curves.plot([m.step + 1 for m in history], [m.value for m in history], marker="o", label=label)
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.set_xlabel("epoch")
    curves.set_ylabel("validation AUC (Keras)")
    curves.set_title("Training curves (early stopping restores the best epoch)")
    curves.legend(fontsize=8)
    figure.tight_layout()
    return figure


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (pandas' `to_markdown` needs `tabulate`, not a dependency here)."""

    def cell(value) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def decisions_markdown(
    seed: int, epochs: int, data_run_id: str, decisions: list[Decision], table: pd.DataFrame, rows: int
) -> str:
    """The record a reader needs: setting, the table, each decision with its figures."""
    shown = table.drop(columns=["run_id"])
    lines = [
        "# LSTM comparisons",
        "",
        f"Prepared data run `{data_run_id}`, seed {seed}, at most {epochs} epochs with early stopping "
        f"on validation AUC. Every arm trains and is scored on the same split; decisions use validation ROC AUC "
        f"only, test figures are for the record.",
        "",
        markdown_table(shown),
        "",
    ]
    for number, decision in enumerate(decisions, start=1):
        lines += [f"## {number}. {decision.title}", "", decision.markdown(rows), ""]
    return "\n".join(lines)


def compare(
    data_run_id: str,
    embeddings: str,
    learned_control: bool,
    parallel_arms: int,
    seed: int,
    arm: LstmArm,
    policy: ThresholdPolicy,
) -> None:
    """Train the arms of both comparisons (and the control) as child runs; decide each on validation ROC AUC.

    Args:
        data_run_id: the prepare_data run (empty = the newest finished one).
        embeddings: the embeddings of comparison 1 (stemming vs lemmatisation).
        learned_control: also train the arm with learned embeddings.
        parallel_arms: arms trained side by side (0 = one per core).
        seed: every arm's seed, and the bootstrap's.
        arm: what every arm is given: the `FORWARDED` knobs, the others at train_lstm's defaults
            (preprocessing and embeddings are set per arm).
        policy: every arm's operating-point policy.
    """
    validate(parallel_arms, arm, policy)
    data_run_id = resolve_data_run_id(data_run_id)
    options = {"data_run_id": data_run_id, "embeddings": embeddings, "learned_control": learned_control}
    options |= {"parallel_arms": parallel_arms, "seed": seed}
    options |= {name: getattr(arm, name) for name in FORWARDED} | policy.params()
    log_step_params(options)
    record_data_run_id(data_run_id)
    arms = Arms({key: options[key] for key in FORWARDED_TO_ARMS}, data_run_id, parallel_arms)

    variants = ("stem", "lemma")
    first = dict(zip(variants, arms.run_together([(variant, embeddings) for variant in variants]), strict=True))
    preprocessing = decide(f"Stemming vs lemmatisation (embeddings: {embeddings})", first, seed)
    best = preprocessing.winner
    # The second comparison and the control both use the winning preprocessing: train them side by side.
    round_two = [(best, vectors) for vectors in ("word2vec", "fasttext")]
    round_two += [(best, "learned")] if learned_control else []
    trained = dict(zip((vectors for _, vectors in round_two), arms.run_together(round_two), strict=True))
    second = {vectors: trained[vectors] for vectors in ("word2vec", "fasttext")}
    word_vectors = decide(f"Word2Vec vs FastText (preprocessing: {best})", second, seed)
    decisions = [preprocessing, word_vectors]
    if learned_control:
        control = {"pretrained": second[word_vectors.winner], "learned": trained["learned"]}
        decisions.append(decide(f"Control: {word_vectors.winner} vectors vs learned embeddings", control, seed))

    table = comparison_table(arms.run_ids).sort_values(DECISION_METRIC, ascending=False)
    rows = len(validation_predictions(first["stem"]))
    with tempfile.TemporaryDirectory() as tmp:
        table.to_csv(Path(tmp) / "table.csv", index=False)
        record = decisions_markdown(seed, arm.epochs, data_run_id, decisions, table, rows)
        Path(tmp, "decisions.md").write_text(record)
        mlflow.log_artifacts(tmp, artifact_path="comparison")
    mlflow.log_table(table, "comparison/table.json")
    chart = comparison_chart(table)
    mlflow.log_figure(chart, "comparison/chart.png")
    plt.close(chart)
    best_run = table.iloc[0]
    mlflow.set_tags(
        {
            "decision.preprocessing": preprocessing.winner,
            "decision.embeddings": word_vectors.winner,
            "best_lstm_run_id": best_run["run_id"],
        }
    )
    mlflow.log_metrics({f"best_{DECISION_METRIC}": best_run[DECISION_METRIC], "arms": len(table)})
    for decision in decisions:
        print(f"{decision.title}: {decision.winner} ({decision.winner_auc:.4f} vs {decision.loser_auc:.4f})")


def validate(parallel_arms: int, arm: LstmArm, policy: ThresholdPolicy) -> None:
    """Comparison-level checks, then the arm checks on what every arm will get, before any arm starts."""
    if parallel_arms < 0:
        raise StepError(f"parallel_arms must be >= 0 (0 = one per core), got {parallel_arms}")
    validate_arm(arm, policy)


@click.command(help=__doc__)
@data_run_option
@click.option(
    "--embeddings",
    type=click.Choice(EMBEDDINGS),
    default="word2vec",
    show_default=True,
    help="embeddings of comparison 1 (stemming vs lemmatisation)",
)
@click.option(
    "--learned-control", type=FLAG, default=True, show_default=True, help="add the arm with learned embeddings"
)
@click.option(
    "--parallel-arms",
    type=WHOLE_NUMBER,
    default=0,
    show_default=True,
    help="arms trained side by side, one thread each (0 = one per core)",
)
@seed_option
@arm_options(FORWARDED)
@policy_options
def main(
    data_run_id: str,
    embeddings: str,
    learned_control: bool,
    parallel_arms: int,
    seed: int,
    threshold_policy: str,
    cost_ratio: float,
    beta: float,
    min_precision: float,
    **forwarded: object,
) -> None:
    arm, policy = LstmArm.of(forwarded), ThresholdPolicy(threshold_policy, cost_ratio, beta, min_precision)
    run_step(
        "compare_lstm",
        lambda run: compare(data_run_id, embeddings, learned_control, parallel_arms, seed, arm, policy),
    )


if __name__ == "__main__":
    main()
