"""The GitHub Actions workflows are valid, CI runs the README's test command, and CD cannot run before CI passed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
WORKFLOWS = REPO / ".github" / "workflows"


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def all_steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def run_commands(workflow: dict) -> list[str]:
    return [step.get("run", "") for step in all_steps(workflow)]


def step_index(workflow: dict, fragment: str) -> int:
    commands = run_commands(workflow)
    matches = [index for index, command in enumerate(commands) if fragment in command]
    assert matches, f"no step runs {fragment!r}"
    return matches[0]


def test_workflows_match_github_schema():
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert {Path(file).name for file in files} >= {"ci.yml", "cd.yml"}
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command_on_push_and_pull_request():
    ci = load("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    assert "bash .ci/run" in run_commands(ci)


def test_cd_runs_only_after_ci_passed_on_main():
    ci, cd = load("ci.yml"), load("cd.yml")
    assert set(cd["on"]) == {"workflow_run"}, "any other trigger would deploy without CI"
    trigger = cd["on"]["workflow_run"]
    assert trigger["workflows"] == [ci["name"]]
    assert trigger["types"] == ["completed"]
    assert trigger["branches"] == ["main"]
    for name, job in cd["jobs"].items():
        gated = "github.event.workflow_run.conclusion == 'success'" in job.get("if", "")
        assert gated or job.get("needs"), f"CD job {name} runs even when CI failed"
    checkouts = [step for step in all_steps(cd) if "actions/checkout" in step.get("uses", "")]
    assert checkouts, "CD checks out no code"
    for checkout in checkouts:
        assert checkout.get("with", {}).get("ref") == "${{ github.event.workflow_run.head_sha }}", (
            "CD must deploy the commit CI tested, not whatever main points to now"
        )


def test_cd_builds_pushes_deploys_then_smoke_tests_the_deployed_url():
    cd = load("cd.yml")
    build = step_index(cd, "docker build")
    local_smoke = step_index(cd, "scripts/smoke_test.py http://127.0.0.1")
    push = step_index(cd, "docker push")
    deploy = step_index(cd, "--linux-fx-version")
    remote_smoke = step_index(cd, 'scripts/smoke_test.py "https://')
    assert build < local_smoke < push < deploy < remote_smoke
    assert "--expect" in run_commands(cd)[remote_smoke], "the deployed answer must equal the tested image's"
    closing = [step for step in all_steps(cd) if "access-restriction remove" in step.get("run", "")]
    assert closing and all(step.get("if") == "always()" for step in closing), "the runner's access must be removed"


def test_cd_takes_names_and_credentials_from_the_repository_as_docs_deploy_explains():
    text = (WORKFLOWS / "cd.yml").read_text()
    used = set(re.findall(r"\$\{\{\s*(?:secrets|vars)\.([A-Z_]+)", text))
    assert used >= {"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "ACR_NAME", "WEBAPP_NAME"}
    docs = (REPO / "docs" / "deploy.md").read_text()
    undocumented = sorted(name for name in used if name not in docs)
    assert not undocumented, f"docs/deploy.md does not say how to set {undocumented}"
    assert not re.search(r"[a-z0-9]+\.azurecr\.io", text.replace("${{ vars.ACR_NAME }}.azurecr.io", "")), (
        "registry names come from repository variables"
    )


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml"])
def test_workflows_grant_least_privilege(name):
    permissions = load(name).get("permissions")
    assert permissions is not None, "without a permissions block the token gets the repository default"
    assert permissions.get("contents") == "read"
    # Only CD's OpenID Connect token may be written (azure/login exchanges it); nothing else.
    assert {key for key, value in permissions.items() if value == "write"} <= {"id-token"}
