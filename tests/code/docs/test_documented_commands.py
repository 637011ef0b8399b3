"""Every `mlflow run` and `python -m` command the README and docs show works, as written, on tiny data.

The test walks the docs as a new user would, in an order that builds what the next command needs
(prepared data, candidates, a champion, verdicts), on a store of its own. A documented command runs
exactly as shown, with three kinds of change only: a placeholder or an example location becomes a
real one on this machine (`WHERE`), parameters the command leaves at their defaults get small values
(`TINY`), and a command that serves until stopped is stopped once it has shown it works. A command
added to the docs and not walked here fails `test_every_documented_command_is_walked`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from dashboard.feedback import Feedback, FeedbackStore, record_feedback
from steps.lib.complaint_labels import load_complaint_labels
from steps.lib.datasets import load_embedded
from steps.lib.registry import CHALLENGER_ALIAS, CHAMPION_ALIAS, model_version_for, move_champion
from tests.code.docs.documented import documented_commands
from tests.code.transformer.conftest import build_tiny_distilbert
from tests.conftest import REPO, Tracking, new_tracking, run_id_of

MODEL_NAME = "tweet-sentiment"  # the docs' commands use the default registered model
EXPERIMENT = "tweet-reaction-prediction"  # README: export MLFLOW_EXPERIMENT_NAME=tweet-reaction-prediction
LSTM_TINY = {"epochs": 1, "vocab_size": 500, "max_length": 12, "embedding_dim": 8, "units": 4, "w2v_epochs": 1}
BERT_TINY = {"max_length": 16, "batch_size": 16, "complaint_epochs": 1}
# Small values for parameters a documented command leaves at their defaults, by entry point (`{tiny_bert}`
# is the tiny DistilBERT built for the walk). A command's own values always win.
TINY: dict[str, dict[str, object]] = {
    "main": {
        "max_rows": 600,
        "lstm_epochs": 1,
        "lstm_learned_control": "false",
        "transformer_pretrained": "{tiny_bert}",
        "transformer_max_train_samples": 200,
        "transformer_max_length": 16,
    },
    "prepare_data": {"max_rows": 600},
    "train_baseline": {"min_df": 1},
    "train_lstm": LSTM_TINY,
    "compare_lstm": {**LSTM_TINY, "learned_control": "false"},
    "train_bert": {**BERT_TINY, "pretrained": "{tiny_bert}", "max_train_samples": 200},
    "register": {"bootstrap_samples": 50},
    "adapt": {"epochs": 1, "replay": 20, "bootstrap_samples": 50, "batch_size": 16},
}
# The same command on this machine: a placeholder or an example location, and what stands for it.
WHERE = {
    "<run id>": "{candidate_run_id}",
    "<prepare_data run id>": "{prepared_run_id}",
    "<file>": "{work}/feedback.db",
    "$PWD/": "{work}/",
    "/data/": "{work}/data/",
    "spark://host:7077": "local[1]",
    "spark://spark-master:7077": "local[1]",
    "abfss://tweets@<account>.dfs.core.windows.net/2026/11/25/": "{work}/lake/tweets/",
    "abfss://scores@<account>.dfs.core.windows.net/2026/11/25/": "{work}/lake/scores/",
    "input=... ": "input={work}/tweets.csv ",
    "output=...": "output={work}/scored_on_spark.parquet",
}


@dataclass(frozen=True)
class Walk:
    """One documented command as the walk runs it."""

    command: str
    # Extra arguments for a `python -m` command that would otherwise write into the repository or run for hours.
    extra_args: tuple[str, ...] = ()
    # Seconds a command that serves until stopped must stay up; 0 = it must finish with exit code 0.
    serves_for: float = 0
    prepare: tuple[str, ...] = field(default=())  # names of `Walker` methods that set the stage first
    # Names of `Walker` methods that check what the command made, given its finished process.
    checks: tuple[str, ...] = field(default=())


# In walking order: each command finds what the commands before it made.
WALKS = (
    Walk("python -m steps.<step>"),
    Walk("python -m steps.<step> ..."),
    Walk("python -m steps.train_bert --help"),
    Walk("python -m scripts.generate_mlproject --check"),
    Walk("python -m scripts.generate_mlproject", extra_args=("--mlproject", "{work}/MLproject")),
    Walk("mlflow run . -e prepare_data --env-manager local -P source=txt_dir -P path=/data/sentiment140_100k"),
    Walk(
        "mlflow run . -e prepare_data --env-manager local -P source=sentiment140 "
        "-P path=/data/training.1600000.processed.noemoticon.csv"
    ),
    Walk("mlflow run . -e prepare_data --env-manager local -P source=airline -P path=$PWD/Tweets.csv -P max_rows=5000"),
    Walk("mlflow run . -e prepare_data --env-manager local"),
    Walk("mlflow run . -e train_baseline --env-manager local -P char_ngrams=true"),
    Walk("mlflow run . -e train_lstm --env-manager local -P preprocessing=stem -P embeddings=fasttext"),
    Walk("mlflow run . -e compare_lstm --env-manager local"),
    Walk("mlflow run . -e train_bert --env-manager local -P max_train_samples=16000"),
    Walk(
        "mlflow run . -e train_bert --env-manager local -P data_run_id=<prepare_data run id> "
        "-P max_train_samples=0 -P batch_size=64"
    ),
    Walk("mlflow run . -e evaluate --env-manager local -P model_uri=runs:/<run id>/model"),
    Walk("mlflow run . -e register --env-manager local -P metric=val_roc_auc"),
    Walk("mlflow run . -e score_batch --env-manager local -P input=$PWD/tweets.csv -P output=$PWD/scored.parquet"),
    Walk(
        "mlflow run . -e score_batch --env-manager local -P model_uri=runs:/<run id>/model "
        "-P input=$PWD/tweets.parquet -P output=$PWD/scored.parquet -P threshold=0.3 -P overwrite=true"
    ),
    Walk("SPARK_MASTER=spark://host:7077 mlflow run . -e score_batch --env-manager local -P input=... -P output=..."),
    Walk(
        "mlflow run . -e score_batch --env-manager local -P spark_master=spark://spark-master:7077 "
        "-P input=abfss://tweets@<account>.dfs.core.windows.net/2026/11/25/ "
        "-P output=abfss://scores@<account>.dfs.core.windows.net/2026/11/25/ -P partitions=64"
    ),
    Walk("mlflow run . -e monitor --env-manager local -P input=$PWD/recent_tweets.csv"),
    Walk("mlflow run . --env-manager local", checks=("every_step_ran_and_a_champion_passed_the_gate",)),
    Walk("mlflow run . --env-manager local -P feedback_db=$PWD/feedback.db"),
    Walk(
        "mlflow run . -e adapt --env-manager local -P verdicts=$PWD/feedback.db",
        prepare=("make_a_transformer_champion",),
    ),
    Walk("mlflow run . -e adapt --env-manager local -P verdicts=<file>"),
    Walk("mlflow run . -e shadow --env-manager local -P input=$PWD/feedback.db", prepare=("name_a_challenger",)),
    Walk(
        "mlflow run . -e label_queue --env-manager local -P input=$PWD/recent_tweets.csv -P labelled=$PWD/feedback.db"
    ),
    Walk('mlflow run . -e rollback --env-manager local -P reason="v7 flags every question"'),
    Walk('mlflow run . -e rollback --env-manager local -P reason="flags every refund question"'),
    Walk("python -m monitoring.alerts --db feedback.db"),
    Walk("python -m monitoring.alerts"),
    Walk(
        "python -m monitoring.alerts --db feedback.db --watch 30 --webhook-url https://hooks.example.com/...",
        serves_for=5,
    ),
    Walk("python -m harness.appinsights_capture --record envelopes.jsonl", serves_for=5),
    Walk("python -m bench.scaling --replot", extra_args=("--out", "{work}/scaling"), prepare=("copy_scaling_results",)),
    Walk("python -m bench.scaling", extra_args=("--sizes", "400", "--slow-model-rows", "50", "--no-spark", "{bench}")),
    Walk(
        'python -m bench.scaling --extra-step "train_baseline:--char-ngrams true"',
        extra_args=("--sizes", "400", "--slow-model-rows", "50", "--no-spark", "{bench}"),
    ),
)
# Documented commands the walk does not run, and why: each is run by CI itself.
NOT_WALKED = {
    ".venv/bin/python -m pytest": "the suite this test is part of: .ci/run runs exactly this",
    "python -m pytest tests/code/telemetry": "a part of the suite this test is part of",
    '.venv/bin/python -m pytest -m "not slow"': "the suite's fast lane, a part of the suite this test is part of",
}


def test_every_documented_command_is_walked():
    documented = set(documented_commands())
    walked = {walk.command for walk in WALKS}
    assert sorted(documented - walked - set(NOT_WALKED)) == [], "documented but not walked: add it to WALKS"
    assert sorted(walked - documented) == [], "walked but no longer documented: remove it from WALKS"
    assert not set(NOT_WALKED) - documented


@pytest.fixture(scope="module")
def walker(tmp_path_factory) -> Walker:
    return Walker(tmp_path_factory.mktemp("walk"))


@pytest.mark.integration
@pytest.mark.parametrize("walk", WALKS, ids=[walk.command[:80] for walk in WALKS])
def test_documented_command_works(walker: Walker, walk: Walk):
    for stage in walk.prepare:
        getattr(walker, stage)()
    result = walker.run(walk)
    for check in walk.checks:
        getattr(walker, check)(result)


class Walker:
    """A user's machine for the walk: a store of its own, the files the docs name, and the tiny encoder."""

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        self.work.mkdir()
        self.tracking: Tracking = new_tracking(root / "store")
        self.tiny_bert = build_tiny_distilbert(root / "tiny-bert")
        write_user_files(self.work)

    @property
    def env(self) -> dict[str, str]:
        env = {key: value for key, value in self.tracking.env.items() if key != "MLFLOW_EXPERIMENT_ID"}
        return {**env, "MLFLOW_EXPERIMENT_NAME": EXPERIMENT, "PYTHONPATH": str(REPO)}

    def values(self) -> dict[str, str]:
        """What the placeholders stand for now: the newest runs of the walk's own store."""
        client = MlflowClient(self.tracking.uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        newest: dict[str, str] = {}
        if experiment:
            for run in client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'"):
                if run.data.tags.get("candidate") == "true":
                    newest.setdefault("candidate_run_id", run.info.run_id)
                if run.data.tags.get("step") == "prepare_data":
                    newest.setdefault("prepared_run_id", run.info.run_id)
        bench = f"--out {self.work / 'scaling'} --champion-tracking-uri {self.tracking.uri} --workdir {self.work}/b"
        return {"work": str(self.work), "tiny_bert": str(self.tiny_bert), "bench": bench, **newest}

    def argv(self, walk: Walk) -> tuple[list[str], dict[str, str]]:
        """The command as the walk runs it, and its environment."""
        values = self.values()
        command = walk.command
        for shown, here in WHERE.items():
            command = command.replace(shown, here)
        command = command.replace("python -m steps.<step> ...", "python -m steps.prepare_data --help")
        command = command.replace("python -m steps.<step>", "python -m steps.train_baseline --help")
        words = [word.format(**values) for word in shlex.split(command)]
        env = dict(self.env)
        while "=" in words[0]:
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        if words[:2] == ["mlflow", "run"]:
            words[2] = str(REPO)
            entry_point = words[words.index("-e") + 1] if "-e" in words else "main"
            given = {words[i + 1].split("=", 1)[0] for i, word in enumerate(words) if word == "-P"}
            for name, value in TINY.get(entry_point, {}).items():
                if name not in given:
                    words += ["-P", f"{name}={str(value).format(**values)}"]
        else:
            words[0] = sys.executable
            for extra in walk.extra_args:
                words += shlex.split(extra.format(**values))
        return words, env

    def run(self, walk: Walk) -> subprocess.CompletedProcess | None:
        """Run the command as documented; a finished command's process is returned for the walk's checks."""
        argv, env = self.argv(walk)
        cwd = REPO if argv[:2] == ["mlflow", "run"] else self.work
        if walk.serves_for:
            self.serve_briefly(argv, env, cwd, walk.serves_for)
            return None
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, f"{shlex.join(argv)}\n{result.stdout[-3000:]}\n{what_went_wrong(result.stderr)}"
        return result

    def serve_briefly(self, argv: list[str], env: dict[str, str], cwd: Path, seconds: float) -> None:
        """Start a command that runs until stopped, check it is still up after `seconds`, then stop it."""
        log = self.work / "serving.log"
        with log.open("w") as out:
            process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            time.sleep(seconds)
            assert process.poll() is None, f"{shlex.join(argv)} stopped:\n{log.read_text()[-4000:]}"
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        assert "Traceback" not in log.read_text(), log.read_text()[-4000:]

    def every_step_ran_and_a_champion_passed_the_gate(self, result: subprocess.CompletedProcess) -> None:
        """The main job chained every step (nested under its run, or reused from an identical finished one),
        every candidate ran the behaviour suite, and the champion it names is a candidate run that passed the gate."""
        client = MlflowClient(self.tracking.uri)
        parent = run_id_of(result)
        assert "==> [1/" in result.stdout, result.stdout[-2000:]
        experiment = client.get_experiment_by_name(EXPERIMENT)
        children = client.search_runs([experiment.experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'")
        reused = [
            client.get_run(run_id) for run_id in re.findall(r"reusing finished run ([0-9a-f]{32})", result.stdout)
        ]
        steps = sorted(run.data.tags.get("mlflow.project.entryPoint") for run in children + reused)
        expected = ["prepare_data", "train_baseline", "compare_lstm", "train_bert", "register"] + ["evaluate"] * 5
        assert steps == sorted(expected), result.stdout[-3000:]
        assert all(run.info.status == "FINISHED" for run in children)
        steps_runs = children + reused
        comparisons = [
            run.info.run_id for run in steps_runs if run.data.tags.get("mlflow.project.entryPoint") == "compare_lstm"
        ]
        arms = client.search_runs([experiment.experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{comparisons[0]}'")
        candidates = [run for run in steps_runs + arms if run.data.tags.get("candidate") == "true"]
        families = sorted(run.data.tags["model_family"] for run in candidates)
        assert families == ["baseline", "lstm", "lstm", "lstm", "transformer"], families
        assert all("behaviour_failure_rate" in run.data.metrics for run in candidates)
        # The walk registered a champion before this job; the gate keeps it unless a candidate beats it.
        champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
        assert client.get_run(champion.run_id).data.tags.get("candidate") == "true"
        assert champion.tags["gate.passed"] == "true"
        assert f"champion: {MODEL_NAME} version {champion.version}" in result.stdout

    def copy_scaling_results(self) -> None:
        """The measured CSVs `--replot` redraws from, in the folder the walk gives it instead of docs/."""
        (self.work / "scaling").mkdir(exist_ok=True)
        for measured in ("scaling_steps.csv", "scaling_scoring.csv"):
            shutil.copy(REPO / "docs" / measured, self.work / "scaling" / measured)

    def make_a_transformer_champion(self) -> None:
        """The newest transformer candidate as `@champion`, as when the main job's transformer wins on real data.

        `adapt` fine-tunes a transformer champion; on the walk's tiny data the gate may keep another family.
        """
        client = MlflowClient(self.tracking.uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        query = "tags.model_family = 'transformer' and attributes.status = 'FINISHED'"
        newest = client.search_runs([experiment.experiment_id], query, max_results=1)[0]
        store_before = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.tracking.uri)  # registered as `register` does, in the walk's store
        try:
            version, _ = model_version_for(client, MODEL_NAME, newest.info.run_id)
            move_champion(client, MODEL_NAME, version, "the documented-commands walk needs a transformer to adapt")
        finally:
            mlflow.set_tracking_uri(store_before)

    def name_a_challenger(self) -> None:
        """The champion's previous version as `@challenger`, as `register` leaves a candidate that lost the gate."""
        client = MlflowClient(self.tracking.uri)
        champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
        others = [v for v in client.search_model_versions(f"name = '{MODEL_NAME}'") if v.version != champion.version]
        client.set_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS, others[0].version)


def write_user_files(work: Path) -> None:
    """The files the docs' commands name, from the project's own real tweets, in each documented format."""
    corpus = load_embedded()
    negative = corpus[corpus["sentiment"] == "negative"].head(150)
    positive = corpus[corpus["sentiment"] == "positive"].head(150)
    texts = pd.concat([negative, positive])["text"]
    txt_dir = work / "data" / "sentiment140_100k"
    txt_dir.mkdir(parents=True)
    (txt_dir / "negative.txt").write_text("\n".join(negative["text"].str.replace("\n", " ")))
    (txt_dir / "positive.txt").write_text("\n".join(positive["text"].str.replace("\n", " ")))
    polarity = [0] * len(negative) + [4] * len(positive)
    sentiment140 = pd.DataFrame(
        {"polarity": polarity, "id": range(len(texts)), "date": "Mon Apr 06 22:19:45 PDT 2009"}
    ).assign(query="NO_QUERY", user="someone", text=texts.to_numpy())
    sentiment140.to_csv(work / "data" / "training.1600000.processed.noemoticon.csv", header=False, index=False)
    airline = pd.DataFrame({"airline_sentiment": ["negative"] * 150 + ["positive"] * 150, "text": texts.to_numpy()})
    airline.to_csv(work / "Tweets.csv", index=False)
    tweets = pd.DataFrame({"text": texts.to_numpy()})
    tweets.to_csv(work / "tweets.csv", index=False)
    tweets.to_csv(work / "recent_tweets.csv", index=False)
    tweets.to_parquet(work / "tweets.parquet")
    (work / "lake" / "tweets").mkdir(parents=True)
    tweets.to_parquet(work / "lake" / "tweets" / "part-0.parquet")
    write_verdicts(work / "feedback.db")


def write_verdicts(path: Path) -> None:
    """A dashboard feedback store holding a team's verdicts on 120 real tweets of the complaint set's test split."""
    labelled, _ = load_complaint_labels()
    test = labelled[labelled["split"] == "test"]
    rows = pd.concat([test[test["label"] == 1].head(50), test[test["label"] == 0].head(70)])
    store = FeedbackStore(path)
    for text, label in zip(rows["text"], rows["label"], strict=True):
        truth = "negative" if label == 1 else "not_negative"
        decided = Feedback(text, "not_negative", 0.4, 0.5, truth, "transformer:walk", user_name="rita", role="reviewer")
        record_feedback(store, decided)  # a reviewer's decision: an agreed verdict


def what_went_wrong(stderr: str) -> str:
    """The error lines of a failed command's log (its progress bars and warnings can fill the tail)."""
    lines = stderr.splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith("Traceback") or re.match(r"^[\w.]+: error: ", line)]
    shown = lines[marks[0] : marks[0] + 60] if marks else lines[-60:]
    return "\n".join(shown)
