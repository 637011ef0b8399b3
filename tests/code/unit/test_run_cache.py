"""`main` reuses a finished run only when its code and inputs are the same: commit, edits, file bytes."""

from __future__ import annotations

import subprocess

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PROJECT_ENTRY_POINT

from steps.lib.run_cache import CODE_DIGEST_TAG, INPUT_DIGEST_TAG, code_version, input_digest
from steps.lib.tracking import PROJECT_ROOT, run_step
from steps.main import find_finished
from tests.conftest import new_tracking


def git(repo, *args: str) -> str:
    command = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args]
    return subprocess.run(command, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "step.py").write_text("print('v1')\n")
    (root / ".gitignore").write_text("mlflow.db\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1")
    return root


def test_a_clean_tree_is_its_commit_and_every_edit_changes_the_version(repo):
    commit = git(repo, "rev-parse", "HEAD")
    assert code_version(repo) == commit
    (repo / "mlflow.db").write_text("ignored files do not count")
    assert code_version(repo) == commit

    (repo / "step.py").write_text("print('v2')\n")  # an uncommitted edit
    edited = code_version(repo)
    assert edited.startswith(f"{commit}+dirty.")
    (repo / "step.py").write_text("print('v3')\n")
    assert code_version(repo) not in (edited, commit)  # another edit, another version

    (repo / "step.py").write_text("print('v1')\n")
    (repo / "new_step.py").write_text("print('new')\n")  # an untracked file
    untracked = code_version(repo)
    assert untracked.startswith(f"{commit}+dirty.") and untracked != edited
    (repo / "new_step.py").write_text("print('changed')\n")
    assert code_version(repo) != untracked

    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v2")
    assert code_version(repo) == git(repo, "rev-parse", "HEAD") != commit


def test_input_digest_follows_the_bytes_at_the_path(tmp_path):
    file = tmp_path / "tweets.csv"
    file.write_text("text,label\nhello,0\n")
    first = input_digest(str(file))
    assert input_digest(str(file)) == first
    file.write_text("text,label\nhello,1\n")  # same path, other content
    assert input_digest(str(file)) != first

    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "negative.txt").write_text("bad\n")
    (folder / "positive.txt").write_text("good\n")
    before = input_digest(str(folder))
    (folder / "positive.txt").write_text("great\n")
    assert input_digest(str(folder)) != before
    assert input_digest("") == "" and input_digest("https://example.org/t.csv") == "url:https://example.org/t.csv"


def test_find_finished_reuses_only_a_run_with_the_same_parameters_code_and_input(tmp_path):
    tracking = new_tracking(tmp_path)
    client = MlflowClient(tracking.uri)
    key = {CODE_DIGEST_TAG: "abc123", INPUT_DIGEST_TAG: "d1"}
    run = client.create_run(tracking.experiment_id, tags={"step": "prepare_data", **key})
    client.log_param(run.info.run_id, "max_rows", "900")
    client.set_terminated(run.info.run_id)
    params = {"max_rows": "900"}

    assert find_finished(client, "prepare_data", params, key, tracking.experiment_id) == run.info.run_id
    assert find_finished(client, "prepare_data", {"max_rows": "901"}, key, tracking.experiment_id) is None
    other_code = {**key, CODE_DIGEST_TAG: "abc123+dirty.0123456789ab"}
    assert find_finished(client, "prepare_data", params, other_code, tracking.experiment_id) is None
    other_input = {**key, INPUT_DIGEST_TAG: "d2"}
    assert find_finished(client, "prepare_data", params, other_input, tracking.experiment_id) is None
    assert find_finished(client, "train_baseline", params, key, tracking.experiment_id) is None


def test_only_a_run_whose_own_step_recorded_the_code_is_reused(tmp_path):
    """`main` tags the entry point and inputs when it creates a run; the step tag and code digest come from the step."""
    tracking = new_tracking(tmp_path)
    client = MlflowClient(tracking.uri)
    key = {CODE_DIGEST_TAG: "abc123"}

    def finished(tags: dict[str, str]) -> str:
        run = client.create_run(tracking.experiment_id, tags=tags)
        client.log_param(run.info.run_id, "max_rows", "900")
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    finished({MLFLOW_PROJECT_ENTRY_POINT: "prepare_data", **key})  # no step ran: no `step` tag
    finished({"step": "prepare_data"})  # a step that recorded no code digest
    assert find_finished(client, "prepare_data", {"max_rows": "900"}, key, tracking.experiment_id) is None


def test_run_step_records_the_step_and_the_code_it_runs(tmp_path, monkeypatch):
    tracking = new_tracking(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", tracking.experiment_id)
    seen: list[str] = []
    session_uri = mlflow.get_tracking_uri()  # a process-wide URI set by another test outranks the variable
    mlflow.set_tracking_uri(tracking.uri)
    try:
        run_step("prepare_data", lambda run: seen.append(run.info.run_id))
    finally:
        mlflow.set_tracking_uri(session_uri)
    tags = MlflowClient(tracking.uri).get_run(seen[0]).data.tags
    assert tags["step"] == "prepare_data" and tags[CODE_DIGEST_TAG] == code_version(PROJECT_ROOT)
