"""`rollback` on a real registry: there and back, an explicit version, and every error changing nothing."""

from __future__ import annotations

import contextlib
import io
import uuid

import pytest
from mlflow import MlflowClient

from steps import rollback
from steps.lib.registry import CHAMPION_ALIAS, PREVIOUS_CHAMPION_TAG, move_champion
from tests.conftest import mlflow_run


@pytest.fixture
def three_versions(registry_tracking, monkeypatch):
    """A registered model with v1, v2, v3 (no artifacts needed) and v1 -> v2 moved as register moves it."""
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", registry_tracking.experiment_id)
    client, name = MlflowClient(), f"rollback-test-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    run = client.create_run(registry_tracking.experiment_id)
    versions = [client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id) for _ in range(3)]
    move_champion(client, name, versions[0], "first_champion: gate on val_roc_auc passed")
    move_champion(client, name, versions[1], "promoted: gate on val_roc_auc passed")
    return name


def champion(name: str):
    return MlflowClient().get_model_version_by_alias(name, CHAMPION_ALIAS)


def tags_by_version(name: str) -> dict[str, dict[str, str]]:
    return {version.version: version.tags for version in MlflowClient().search_model_versions(f"name = '{name}'")}


def run_rollback(name: str, *argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rollback.main.main(["--model-name", name, *argv], standalone_mode=False)
    return out.getvalue()


def test_register_style_moves_record_who_replaced_whom(three_versions):
    client = MlflowClient()
    first, second = client.get_model_version(three_versions, "1"), champion(three_versions)
    assert str(second.version) == "2" and second.tags[PREVIOUS_CHAMPION_TAG] == "1"
    assert first.tags[PREVIOUS_CHAMPION_TAG] == "none" and first.tags["champion.replaced_by"] == "2"
    assert second.tags["champion.reason"] == "promoted: gate on val_roc_auc passed"


def test_rollback_restores_the_previous_champion_and_back_again(three_versions):
    printed = run_rollback(three_versions, "--reason", "v2 flags every question")
    restored = champion(three_versions)
    assert str(restored.version) == "1"
    assert restored.tags[PREVIOUS_CHAMPION_TAG] == "2"
    assert restored.tags["champion.reason"] == "rollback: v2 flags every question"
    replaced = MlflowClient().get_model_version(three_versions, "2")
    assert replaced.tags["champion.rolled_back"] == "true" and replaced.tags["champion.replaced_by"] == "1"
    assert "v2 -> v1" in printed and f"MODEL_URI=models:/{three_versions}/1" in printed
    assert "restart it" in printed

    run_rollback(three_versions, "--reason", "fixed: back to v2")
    assert str(champion(three_versions).version) == "2"
    assert champion(three_versions).tags[PREVIOUS_CHAMPION_TAG] == "1"


def test_rollback_to_a_named_version(three_versions):
    run_rollback(three_versions, "--to-version", "3", "--reason", "v3 was retrained on feedback")
    assert str(champion(three_versions).version) == "3"
    assert champion(three_versions).tags[PREVIOUS_CHAMPION_TAG] == "2"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to-version", "9", "--reason", "x"], "has no version 9: @champion stays on v2"),
        (["--to-version", "2", "--reason", "x"], "v2 is already @champion: nothing to roll back"),
        (["--to-version", "latest", "--reason", "x"], "to_version must be a registered version number, got 'latest'"),
        (["--reason", "  "], "reason must say why the champion is rolled back"),
    ],
)
def test_bad_rollbacks_are_one_line_and_change_nothing(three_versions, capsys, argv, message):
    before = {
        version.version: version.tags for version in MlflowClient().search_model_versions(f"name = '{three_versions}'")
    }
    with pytest.raises(SystemExit) as stopped:
        run_rollback(three_versions, *argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("rollback: error: ") and message in error[0]
    after = {
        version.version: version.tags for version in MlflowClient().search_model_versions(f"name = '{three_versions}'")
    }
    assert after == before and str(champion(three_versions).version) == "2"


def test_no_previous_champion_on_record_is_an_error(registry_tracking, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", registry_tracking.experiment_id)
    client, name = MlflowClient(), f"rollback-first-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    run = client.create_run(registry_tracking.experiment_id)
    move_champion(client, name, client.create_model_version(name, "runs:/x/model", run.info.run_id), "first")
    with pytest.raises(SystemExit):
        run_rollback(name, "--reason", "x")
    assert "has no previous champion on record" in capsys.readouterr().err
    assert str(champion(name).version) == "1"


def test_no_champion_at_all_is_an_error(registry_tracking, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", registry_tracking.experiment_id)
    with pytest.raises(SystemExit):
        run_rollback(f"never-registered-{uuid.uuid4().hex[:8]}", "--reason", "x")
    assert "has no @champion: there is nothing to roll back" in capsys.readouterr().err


@pytest.mark.integration
def test_the_entry_point_runs_through_mlflow_run(registry_tracking, three_versions):
    result = mlflow_run(registry_tracking, "rollback", model_name=three_versions, reason="smoke via mlflow run")
    assert "v2 -> v1" in result.stdout
    assert str(champion(three_versions).version) == "1"
    missing = mlflow_run(registry_tracking, "rollback", check=False, model_name=three_versions)
    assert missing.returncode != 0 and "reason" in missing.stderr
