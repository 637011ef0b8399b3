"""`main`: chain the steps as MLflow runs nested under one parent, reusing finished ones.

Each step runs through `mlflow.projects.run`, as in MLflow's multistep workflow example: its outputs
are artifacts that the next step takes by run id. A finished run of the same entry point with the
same parameters, code version (commit plus uncommitted changes) and input digest is reused instead
of recomputed (`use_cache`; steps.run_cache says what the key covers).
"""

from __future__ import annotations

import argparse

import mlflow
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_PROJECT_ENTRY_POINT

from steps.compare_lstm import lstm_candidates
from steps.operating_point import add_policy_arguments, policy_from_args
from steps.run_cache import CODE_VERSION_TAG, INPUT_DIGEST_TAG, code_version, input_digest
from steps.tracking import PROJECT_ROOT, run_step

MODEL_NAME = "tweet-sentiment"
# Every training tweet (0 = all; 28,762 on the embedded corpus) for one epoch at learning rate 1e-4:
# the best validation AUC of the trials that fit the main job's 40 minutes on the slower 2-core
# machines (docs/article.md, "A stronger champion"; docs/design.md, "Main job budget").
BERT_MAX_TRAIN_SAMPLES = 0
BERT_EPOCHS = 1.0
BERT_LEARNING_RATE = 1e-4


def find_finished(
    client: MlflowClient, entry_point: str, parameters: dict[str, str], depends_on: dict[str, str], experiment_id: str
) -> str | None:
    """A finished run of this entry point with these parameters and the same dependency key (steps.run_cache)."""
    query = f"tags.`{MLFLOW_PROJECT_ENTRY_POINT}` = '{entry_point}' and attributes.status = 'FINISHED'"
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
        """What a reusable run must share besides its parameters: the code, and the bytes of a file input."""
        key = {CODE_VERSION_TAG: self.code_version}
        if "path" in parameters:
            key[INPUT_DIGEST_TAG] = input_digest(parameters["path"])
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
        tags = {MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_PROJECT_ENTRY_POINT: entry_point, **depends_on}
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


def run_pipeline(args: argparse.Namespace) -> None:
    """prepare_data -> baseline -> LSTM comparisons -> transformer -> evaluate each candidate -> register."""
    policy = policy_from_args(args).params()  # one policy for every family; a bad parameter fails here
    expected_candidates = 1 + (3 + args.lstm_learned_control) + 1
    steps = Pipeline(total_steps=4 + expected_candidates + 1, use_cache=args.use_cache)
    data_run_id = steps.step(
        "prepare_data", {"source": args.source, "path": args.path, "max_rows": args.max_rows, "seed": args.seed}
    )
    common = {"data_run_id": data_run_id, "seed": args.seed}
    candidates = [steps.step("train_baseline", common | policy)]
    lstm = {"epochs": args.lstm_epochs, "learned_control": args.lstm_learned_control}
    compare = steps.step("compare_lstm", common | policy | lstm)
    candidates += lstm_candidates(compare)
    bert = {"epochs": args.bert_epochs, "max_train_samples": args.bert_max_train_samples}
    bert |= {"max_length": args.bert_max_length, "pretrained": args.bert_pretrained}
    bert |= {"label_scheme": args.bert_label_scheme, "learning_rate": args.bert_learning_rate}
    bert |= {"lr_scheduler": args.bert_lr_scheduler}
    candidates.append(steps.step("train_bert", common | policy | bert))
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
            f"  {family:<12} run {run_id}  val_roc_auc={metrics['val_roc_auc']:.4f}  val_f1={metrics['val_f1']:.4f}"
            f"  behaviour_failure_rate={behaviour:.3f}"
        )
    try:
        champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
        print(f"  champion: {MODEL_NAME} version {champion.version} (run {champion.run_id})")
        print(f"  serve it: mlflow models serve -m models:/{MODEL_NAME}@champion -p 5001 --env-manager local")
    except mlflow.exceptions.MlflowException:
        print("  no champion registered")
    print(f"  experiment {experiment_id} in {mlflow.get_tracking_uri()}")
    print("  compare the runs: mlflow ui --port 5000   (then open http://127.0.0.1:5000)")


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", default="embedded")
    parser.add_argument("--path", default="")
    parser.add_argument("--max-rows", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--use-cache", type=_flag, default=True)
    parser.add_argument("--lstm-epochs", type=int, default=5)
    parser.add_argument("--lstm-learned-control", type=_flag, default=True, help="4th LSTM arm: learned embeddings")
    parser.add_argument("--bert-pretrained", default="", help="empty = distilbert-base-uncased (offline fallback)")
    parser.add_argument(
        "--bert-max-train-samples", type=int, default=BERT_MAX_TRAIN_SAMPLES, help="stratified sample; 0 = all"
    )
    parser.add_argument("--bert-max-length", type=int, default=64)
    parser.add_argument("--bert-epochs", type=float, default=BERT_EPOCHS)
    parser.add_argument("--bert-label-scheme", default="binary", help="binary or three_class (serves P(negative))")
    parser.add_argument("--bert-learning-rate", type=float, default=BERT_LEARNING_RATE)
    parser.add_argument("--bert-lr-scheduler", default="linear", help="linear, cosine or constant_with_warmup")
    add_policy_arguments(parser)
    args = parser.parse_args(argv)
    run_step("main", lambda run: run_pipeline(args))


if __name__ == "__main__":
    main()
