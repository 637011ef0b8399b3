"""`main`: chain the steps as MLflow runs nested under one parent, reusing finished ones.

Each step runs through `mlflow.projects.run`, as in MLflow's multistep workflow example: its outputs
are artifacts that the next step takes by run id. A finished run of the same entry point with the
same parameters, code digest (commit plus uncommitted changes, recorded by the step itself) and input
digest is reused instead of recomputed (`use_cache`; steps.lib.run_cache says what the key covers and
docs/design.md, "Candidate runs", what stops a planted run).
"""

from __future__ import annotations

import click
import mlflow
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_PROJECT_ENTRY_POINT

from steps.lib.cli import FLAG, WHOLE_NUMBER, policy_options, seed_option
from steps.lib.datasets import SOURCES
from steps.lib.lstm_arms import lstm_candidates
from steps.lib.operating_point import ThresholdPolicy
from steps.lib.pretrained import LABEL_SCHEMES, LR_SCHEDULERS
from steps.lib.registry import CHAMPION_URI, MODEL_NAME, current_champion
from steps.lib.run_cache import CODE_DIGEST_TAG, INPUT_DIGEST_TAG, code_version, input_digest
from steps.lib.tracking import PROJECT_ROOT, run_step

# The transformer's defaults here: every training tweet (0 = all) for one epoch at learning rate
# 1e-4, the best validation AUC of the trials that fit the main job's budget (docs/design.md, "Main
# job budget"; the trials are in docs/article.md, "A stronger champion").
TRANSFORMER_MAX_TRAIN_SAMPLES = 0
TRANSFORMER_EPOCHS = 1.0
TRANSFORMER_LEARNING_RATE = 1e-4
# main's `transformer_<name>` options, passed to train_bert as `<name>`.
TRANSFORMER_FORWARDED = ("epochs", "max_train_samples", "max_length", "pretrained", "label_scheme")
TRANSFORMER_FORWARDED += ("learning_rate", "lr_scheduler")
FILE_PARAMETERS = ("path", "feedback_db")  # parameters naming files whose bytes a reused run must share


def find_finished(
    client: MlflowClient, entry_point: str, parameters: dict[str, str], depends_on: dict[str, str], experiment_id: str
) -> str | None:
    """A finished run of this project's step `entry_point` with these parameters and the same dependency key.

    The step's own tags decide: `step` (written by `run_step`) must name the entry point, and the code
    digest it recorded must be `depends_on`'s (steps.lib.run_cache).
    """
    query = f"tags.step = '{entry_point}' and attributes.status = 'FINISHED'"
    for run in client.search_runs([experiment_id], query, order_by=["attributes.start_time DESC"]):
        if any(run.data.tags.get(tag) != value for tag, value in depends_on.items()):
            continue
        if all(run.data.params.get(name) == value for name, value in parameters.items()):
            return run.info.run_id
    return None


class Pipeline:
    """Runs steps one after another under the parent run, numbering them for the log."""

    def __init__(self, total_steps: int, use_cache: bool) -> None:
        self.total_steps = total_steps
        self.done = 0
        self.use_cache = use_cache
        parent = mlflow.active_run()
        self.parent_run_id = parent.info.run_id
        self.experiment_id = parent.info.experiment_id
        self.git_commit = MlflowClient().get_run(self.parent_run_id).data.tags.get(MLFLOW_GIT_COMMIT)
        self.code_version = code_version(PROJECT_ROOT)

    def dependency_key(self, entry_point: str, parameters: dict[str, str]) -> dict[str, str]:
        """What a reusable run must share besides its parameters: the code, and the bytes of its file inputs."""
        key = {CODE_DIGEST_TAG: self.code_version}
        files = [parameters[name] for name in FILE_PARAMETERS if name in parameters]
        if files:
            key[INPUT_DIGEST_TAG] = ",".join(input_digest(path) for path in files)
        return key

    def step(self, entry_point: str, parameters: dict[str, object], reusable: bool = True) -> str:
        """Run (or reuse) one entry point and return its run id.

        `reusable=False` for steps whose outcome depends on state outside their parameters (the registry).
        """
        self.done += 1
        parameters = {key: str(value) for key, value in parameters.items()}
        banner = f"[{self.done}/{self.total_steps}] {entry_point}"
        client = MlflowClient()
        depends_on = self.dependency_key(entry_point, parameters)
        cached = (
            reusable
            and self.use_cache
            and find_finished(client, entry_point, parameters, depends_on, self.experiment_id)
        )
        if cached:
            print(f"==> {banner}: reusing finished run {cached}", flush=True)
            return cached
        print(f"==> {banner} {parameters}", flush=True)
        # With a given run_id, mlflow.projects.run logs neither the entry point nor the parameters:
        # record them here, as `mlflow run` would, so the UI and the cache lookup can see them.
        # The code digest is left to the step: only a step that ran records the code it ran.
        inputs = {key: value for key, value in depends_on.items() if key != CODE_DIGEST_TAG}
        tags = {MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_PROJECT_ENTRY_POINT: entry_point, **inputs}
        if self.git_commit:
            tags[MLFLOW_GIT_COMMIT] = self.git_commit
        child = client.create_run(self.experiment_id, tags=tags, run_name=entry_point)
        for key, value in parameters.items():
            client.log_param(child.info.run_id, key, value)
        submitted = mlflow.projects.run(
            str(PROJECT_ROOT),
            entry_point=entry_point,
            parameters=parameters,
            env_manager="local",
            experiment_id=self.experiment_id,
            run_id=child.info.run_id,
            synchronous=True,
        )
        return submitted.run_id


def run_pipeline(
    source: str,
    path: str,
    feedback_db: str,
    max_rows: int,
    seed: int,
    use_cache: bool,
    lstm_epochs: int,
    lstm_learned_control: bool,
    transformer_pretrained: str,
    transformer_max_train_samples: int,
    transformer_max_length: int,
    transformer_epochs: float,
    transformer_label_scheme: str,
    transformer_learning_rate: float,
    transformer_lr_scheduler: str,
    threshold_policy: str,
    cost_ratio: float,
    beta: float,
    min_precision: float,
) -> None:
    """prepare_data -> baseline -> LSTM comparisons -> transformer -> evaluate each candidate -> register.

    The options are the click command's (`python -m steps.main --help` says what each means); each
    `transformer_<name>` is passed to train_bert as `<name>` (`TRANSFORMER_FORWARDED`).
    """
    options = dict(locals())
    # one policy for every family; a bad parameter fails here
    policy = ThresholdPolicy(threshold_policy, cost_ratio, beta, min_precision).validate().params()
    expected_candidates = 1 + (3 + lstm_learned_control) + 1
    steps = Pipeline(total_steps=4 + expected_candidates + 1, use_cache=use_cache)
    data_run_id = steps.step(
        "prepare_data",
        {"source": source, "path": path, "max_rows": max_rows, "seed": seed, "feedback_db": feedback_db},
    )
    common = {"data_run_id": data_run_id, "seed": seed}
    candidates = [steps.step("train_baseline", common | policy)]
    lstm = {"epochs": lstm_epochs, "learned_control": lstm_learned_control}
    compare = steps.step("compare_lstm", common | policy | lstm)
    candidates += lstm_candidates(compare)
    transformer = {name: options[f"transformer_{name}"] for name in TRANSFORMER_FORWARDED}
    candidates.append(steps.step("train_bert", common | policy | transformer))
    steps.total_steps = steps.done + len(candidates) + 1
    for run_id in candidates:
        steps.step("evaluate", {"model_uri": f"runs:/{run_id}/model"})
    steps.step("register", common, reusable=False)
    print_summary(candidates, steps.experiment_id)


def print_summary(candidate_run_ids: list[str], experiment_id: str) -> None:
    """Where to look once the pipeline is done: candidates, experiment, the UI command."""
    client = MlflowClient()
    print("\n==> done. Candidates:", flush=True)
    for run_id in candidate_run_ids:
        run = client.get_run(run_id)
        family, metrics = run.data.tags.get("model_family"), run.data.metrics
        behaviour = metrics.get("behaviour_failure_rate", float("nan"))
        print(
            f"  {family:<12} run {run_id}  val_macro_f1={metrics['val_macro_f1']:.4f}"
            f"  false_alarm_rate={metrics['val_false_alarm_rate']:.3f}  miss_rate={metrics['val_miss_rate']:.3f}"
            f"  val_roc_auc={metrics['val_roc_auc']:.4f}  behaviour_failure_rate={behaviour:.3f}"
        )
    champion = current_champion(client, MODEL_NAME)
    if champion is None:
        print("  no champion registered")
    else:
        print(f"  champion: {MODEL_NAME} version {champion.version} (run {champion.run_id})")
        print(f"  serve it: mlflow models serve -m {CHAMPION_URI} -p 5001 --env-manager local")
    print(f"  experiment {experiment_id} in {mlflow.get_tracking_uri()}")
    print("  compare the runs: mlflow ui --port 5000   (then open http://127.0.0.1:5000)")


@click.command(help=__doc__)
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="embedded",
    show_default=True,
    help="prepare_data's source (see its --help)",
)
@click.option("--path", default="", help="file, folder or URL for the non-embedded sources")
@click.option(
    "--feedback-db", default="", help="the dashboard's feedback SQLite file: verdicts join training (empty = none)"
)
@click.option("--max-rows", type=WHOLE_NUMBER, default=0, show_default=True, help="stratified sample size (0 = all)")
@seed_option
@click.option("--use-cache", type=FLAG, default=True, show_default=True, help="reuse finished runs of the same step")
@click.option("--lstm-epochs", type=WHOLE_NUMBER, default=5, show_default=True, help="upper bound per LSTM arm")
@click.option(
    "--lstm-learned-control", type=FLAG, default=True, show_default=True, help="4th LSTM arm: learned embeddings"
)
@click.option("--transformer-pretrained", default="", help="hub id or local folder (empty = train_bert's default)")
@click.option(
    "--transformer-max-train-samples",
    type=WHOLE_NUMBER,
    default=TRANSFORMER_MAX_TRAIN_SAMPLES,
    show_default=True,
    help="stratified sample of the training split (0 = all)",
)
@click.option("--transformer-max-length", type=WHOLE_NUMBER, default=64, show_default=True, help="tokens per tweet")
@click.option("--transformer-epochs", type=float, default=TRANSFORMER_EPOCHS, show_default=True, help="passes")
@click.option(
    "--transformer-label-scheme",
    type=click.Choice(tuple(LABEL_SCHEMES)),
    default="binary",
    show_default=True,
    help="binary or three_class (the corpus's own labels; serves P(negative))",
)
@click.option(
    "--transformer-learning-rate",
    type=float,
    default=TRANSFORMER_LEARNING_RATE,
    show_default=True,
    help="peak learning rate, after warmup",
)
@click.option(
    "--transformer-lr-scheduler",
    type=click.Choice(LR_SCHEDULERS),
    default="linear",
    show_default=True,
    help="decay after warmup",
)
@policy_options
def main(**options: object) -> None:
    run_step("main", lambda run: run_pipeline(**options))


if __name__ == "__main__":
    main()
