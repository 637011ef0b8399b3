"""`adapt`: a team's verdicts fine-tune the champion, and the gate, judged on held-out verdicts, decides.

The champion is a tiny DistilBERT trained by `train_bert` on the session's prepared data and
registered under this module's own model name; the verdicts are real tweets of the complaint set.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from steps import adapt
from steps.lib import adaptation
from steps.lib.cli import parse
from steps.lib.complaint_labels import load_complaint_labels
from steps.lib.registry import CHALLENGER_ALIAS, CHAMPION_ALIAS
from steps.lib.verdicts import HELD_OUT_FRACTION
from tests.code.transformer.conftest import build_tiny_distilbert
from tests.conftest import mlflow_run, run_id_of

pytestmark = pytest.mark.integration
ONE_LABEL_ONLY = "text,label\n" + "".join(f"@united bag {a}{b} lost,1\n" for a in "abcde" for b in "abcdefgh")


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory) -> Path:
    return build_tiny_distilbert(tmp_path_factory.mktemp("tiny-distilbert"))


@pytest.fixture(scope="module")
def champion(registry_tracking, prepared_run_id, tiny_pretrained, model_name):
    """A tiny transformer, registered as `@champion` of this module's model name with its data run."""
    run_id = run_id_of(
        mlflow_run(
            registry_tracking,
            "train_bert",
            data_run_id=prepared_run_id,
            pretrained=str(tiny_pretrained),
            max_length=32,
            batch_size=16,
            max_train_samples=200,
            complaint_epochs=1,
            learning_rate=0.001,
            complaint_learning_rate=0.001,
            seed=3,
        )
    )
    client = MlflowClient()
    version = mlflow.register_model(f"runs:/{run_id}/model", model_name)
    client.set_model_version_tag(model_name, version.version, "data_run_id", prepared_run_id)
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version.version)
    return client.get_model_version(model_name, version.version)


@pytest.fixture(scope="module")
def verdict_file(tmp_path_factory) -> str:
    """120 real tweets of the complaint set's test split with their adjudicated labels, as a team would send them."""
    labelled, _ = load_complaint_labels()
    test = labelled[labelled["split"] == "test"]
    rows = pd.concat([test[test["label"] == 1].head(50), test[test["label"] == 0].head(70)])
    path = tmp_path_factory.mktemp("verdicts") / "verdicts.csv"
    rows[["text", "label"]].to_csv(path, index=False)
    return str(path)


def adapt_in_process(tracking, monkeypatch, model_name: str, verdicts: str) -> str:
    """`adapt` in this process (so a test may replace a part), inside a run of the module's experiment."""
    argv = ["--verdicts", verdicts, "--model-name", model_name, "--replay", "40", "--epochs", "1"]
    options = parse(adapt.main, [*argv, "--learning-rate", "0.001"])
    monkeypatch.setattr(adaptation, "FIXED_SETTINGS", adaptation.FIXED_SETTINGS | {"bf16": "false"})
    with mlflow.start_run(experiment_id=tracking.experiment_id) as run:
        adapt.adapt(**options)
    return run.info.run_id


def test_verdicts_fine_tune_the_champion_and_the_gate_decides_on_held_out_verdicts(
    registry_tracking, champion, verdict_file, model_name
):
    result = mlflow_run(
        registry_tracking,
        "adapt",
        verdicts=verdict_file,
        model_name=model_name,
        replay=40,
        epochs=1,
        learning_rate=0.001,
    )
    run_id = run_id_of(result)
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["candidate"] == "true" and tags["model_family"] == "transformer" and tags["data_run_id"] == run_id
    assert tags["adapted_from"] == f"models:/{model_name}/{champion.version}"
    assert metrics["verdicts"] == 120 and metrics["verdicts_held_out"] == round(HELD_OUT_FRACTION * 120)
    judged = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/data/val.parquet"))
    learned = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/data/train.parquet"))
    assert len(judged) == 36 and not set(judged["text"]) & set(learned["text"])  # judged only on what it never saw
    assert (learned["source"] == "replay").sum() == 40 and (learned["source"] == "verdict").sum() == 84
    champion_run = client.get_run(champion.run_id).data.metrics  # nothing is fitted on the verdicts that judge it
    assert (metrics["threshold"], metrics["temperature"]) == (champion_run["threshold"], champion_run["temperature"])
    assert {i.dataset.name for i in run.inputs.dataset_inputs} >= {"verdicts", "train", "val", "test"}

    version = client.get_model_version(model_name, tags["registered_version"])
    gate = version.tags
    assert gate["gate.metric"] == "val_macro_f1"
    passed = gate["gate.passed"] == "true"
    assert passed == (float(gate["gate.candidate_value"]) >= float(gate["gate.champion_value"]))
    aliases = client.get_registered_model(model_name).aliases
    if passed:
        assert aliases[CHAMPION_ALIAS] == version.version and tags["outcome"] == "promoted"
        client.set_registered_model_alias(model_name, CHAMPION_ALIAS, champion.version)  # the next test's champion
    else:
        assert aliases[CHAMPION_ALIAS] == champion.version and aliases[CHALLENGER_ALIAS] == version.version


class WrongOnEveryVerdict:
    """Scores that contradict every held-out verdict: a candidate worse than any real champion can be."""

    def __init__(self, verdicts: pd.DataFrame) -> None:
        self.answers = dict(zip(verdicts["text"], verdicts["label"], strict=True))

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.array([1.0 - self.answers.get(text, 0.5) for text in texts])


def test_a_candidate_that_got_worse_is_registered_but_never_promoted(
    registry_tracking, champion, verdict_file, model_name, monkeypatch
):
    """The fine-tuned model is replaced by one wrong on every verdict: macro F1 0 where the champion scores more."""
    original = adapt.fine_tune_registered

    def worst(*args, **kwargs):
        classifier, model, tokenizer, seconds = original(*args, **kwargs)
        classifier.raw_proba = WrongOnEveryVerdict(pd.read_csv(verdict_file))
        return classifier, model, tokenizer, seconds

    monkeypatch.setattr(adapt, "fine_tune_registered", worst)
    # serve the torch weights; the scores above win
    monkeypatch.setattr(adapt, "choose_backend", lambda *args, **kwargs: {})
    client = MlflowClient()
    before = client.get_registered_model(model_name).aliases[CHAMPION_ALIAS]
    run_id = adapt_in_process(registry_tracking, monkeypatch, model_name, verdict_file)
    run = client.get_run(run_id)
    version = client.get_model_version(model_name, run.data.tags["registered_version"])
    assert version.tags["gate.passed"] == "false"
    assert float(version.tags["gate.candidate_value"]) == 0.0 < float(version.tags["gate.champion_value"])
    aliases = client.get_registered_model(model_name).aliases
    assert aliases[CHAMPION_ALIAS] == before and aliases[CHALLENGER_ALIAS] == version.version
    assert run.data.tags["outcome"] == "kept_champion"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("text,label\n", "(0 rows, none with a text)"),
        (ONE_LABEL_ONLY, "40 verdicts with label 1 and 0 with label 0; adapt needs at least 34 of each"),
        ("text,verdict\nbag lost,1\n", "has no `label` column"),
        ("text,label\nbag lost,2\n", "label of row 0 is '2'"),
    ],
)
def test_bad_verdicts_fail_the_run_in_one_line_and_register_nothing(
    registry_tracking, champion, model_name, tmp_path, content, message
):
    path = tmp_path / "verdicts.csv"
    if content is not None:
        path.write_text(content)
    versions_before = len(MlflowClient().search_model_versions(f"name = '{model_name}'"))
    result = mlflow_run(registry_tracking, "adapt", check=False, verdicts=str(path), model_name=model_name)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("adapt: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    run = MlflowClient().get_run(run_id_of(result))
    assert run.info.status == "FAILED"
    assert len(MlflowClient().search_model_versions(f"name = '{model_name}'")) == versions_before


def test_a_champion_that_is_not_a_transformer_is_refused_by_name(
    registry_tracking, baseline_run_id, verdict_file, model_name
):
    name = f"{model_name}-baseline"
    client = MlflowClient()
    version = mlflow.register_model(f"runs:/{baseline_run_id}/model", name)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
    result = mlflow_run(registry_tracking, "adapt", check=False, verdicts=verdict_file, model_name=name)
    errors = [line for line in result.stderr.splitlines() if line.startswith("adapt: error:")]
    assert result.returncode != 0 and len(errors) == 1
    assert f"models:/{name}/{version.version} is not a transformer (no hf_model artifact)" in errors[0]
    assert len(client.search_model_versions(f"name = '{name}'")) == 1  # nothing registered
