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


def job_steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def index_of(steps: list[dict], fragment: str) -> int:
    """The first step whose name or command holds `fragment`."""
    matches = [i for i, step in enumerate(steps) if fragment in step.get("name", "") + step.get("run", "")]
    assert matches, f"no step runs {fragment!r}"
    return matches[0]


def test_cd_builds_only_after_ci_passed_on_main_and_by_hand_only_redeploys():
    ci, cd = load("ci.yml"), load("cd.yml")
    assert set(cd["on"]) == {"workflow_run", "workflow_dispatch"}, "any other trigger would deploy without CI"
    trigger = cd["on"]["workflow_run"]
    assert trigger["workflows"] == [ci["name"]]
    assert trigger["types"] == ["completed"]
    assert trigger["branches"] == ["main"]
    assert set(cd["on"]["workflow_dispatch"]["inputs"]) == {"image_tag"}, "by hand: an image CD already built"
    build = cd["jobs"]["build"]
    assert "github.event.workflow_run.conclusion == 'success'" in build["if"]
    assert "github.event_name == 'workflow_run'" in build["if"], "a dispatch must never build from a branch"
    deploy = cd["jobs"]["deploy"]
    assert deploy["needs"] == "build" and "needs.build.result == 'success'" in deploy["if"]
    assert not [step for step in deploy["steps"] if re.search(r"docker build\s", step.get("run", ""))]
    [checkout] = [step for step in build["steps"] if "actions/checkout" in step.get("uses", "")]
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}", (
        "CD must build the commit CI tested, not whatever main points to now"
    )


def test_cd_pins_builds_pushes_then_stages_smokes_swaps_checks_and_swaps_back():
    cd = load("cd.yml")
    build = job_steps(cd, "build")
    fragments = ("scripts.pin_model", "docker build", "smoke_test.py http://127.0.0.1", "docker push")
    order = [index_of(build, fragment) for fragment in fragments]
    assert order == sorted(order), dict(zip(fragments, order, strict=True))
    deploy = job_steps(cd, "deploy")
    fragments = ("Deploy to the staging slot", "Smoke-test the staging slot", "--action preview", "Check production")
    order = [index_of(deploy, fragment) for fragment in (*fragments, "Swap back")]
    assert order == sorted(order), order
    swap_back = deploy[index_of(deploy, "Swap back")]
    assert swap_back["if"] == "failure() && steps.check.outcome == 'failure'"
    assert "slot swap" in swap_back["run"]
    closing = [step for step in deploy if "access-restriction remove" in step.get("run", "")]
    assert closing and all(step.get("if") == "always()" for step in closing), "the runner's access must be removed"


def test_cd_opens_the_tracking_server_to_the_runner_for_the_pin_step_only():
    """The tracking server admits an allow list; the hosted runner is let in around the pin and out again."""
    build = job_steps(load("cd.yml"), "build")
    opened, pinned = (
        index_of(build, "Let this runner reach the tracking server"),
        index_of(build, "scripts.pin_model"),
    )
    closed, built = index_of(build, "Close the tracking server"), index_of(build, "docker build")
    assert index_of(build, "Azure login") < opened < pinned < closed < built
    assert "access-restriction add" in build[opened]["run"] and "access-restriction remove" in build[closed]["run"]
    rule = re.search(r"--rule-name \"([^\"]+)\"", build[opened]["run"]).group(1)
    assert f'--rule-name "{rule}"' in build[closed]["run"], "the rule that was added is the one removed"
    assert build[closed]["if"].startswith("always()"), "the runner's access must be removed whatever happened"


def test_cd_tags_by_code_and_model_never_overwrites_and_deploys_by_digest():
    cd = load("cd.yml")
    build = job_steps(cd, "build")
    docker_build = build[index_of(build, "docker build")]
    assert docker_build["env"]["IMAGE_TAG"] == "${{ steps.pin.outputs.image_tag }}"
    assert '-t "$REGISTRY/$REPOSITORY:$IMAGE_TAG"' in docker_build["run"]
    labels = set(re.findall(r"--label \"?([\w.-]+)=", docker_build["run"]))
    assert labels >= {
        "org.opencontainers.image.revision",
        "tweet-reaction-prediction.model.name",
        "tweet-reaction-prediction.model.version",
        "tweet-reaction-prediction.model.run-id",
    }
    push = build[index_of(build, "docker push")]["run"]
    assert push.index("already exists") < push.index("docker push"), "an existing tag is never overwritten"
    assert "RepoDigests" in push
    deploy = job_steps(cd, "deploy")
    staged = deploy[index_of(deploy, "Deploy to the staging slot")]
    assert staged["env"]["IMAGE"] == "${{ steps.image.outputs.image }}"
    assert "--slot staging" in staged["run"] and "DOCKER|$IMAGE" in staged["run"]
    smokes = [step["run"] for step in [*build, *deploy] if "smoke_test.py" in step.get("run", "")]
    assert len(smokes) == 3 and all("--expect-run-id" in command for command in smokes), "each check names the model"


def test_cd_gives_the_registry_credentials_to_the_pin_step_only():
    cd = load("cd.yml")
    holders = [
        step.get("name", job_name)
        for job_name, job in cd["jobs"].items()
        for step in [job, *job["steps"]]
        if any("MLFLOW_TRACKING" in key for key in step.get("env", {}))
    ]
    assert holders == ["Pin the model to one registry version and download it"]
    assert not any("MLFLOW" in key for key in cd.get("env", {}))


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


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml"])
def test_every_action_is_pinned_by_commit_sha_with_its_tag_beside_it(name):
    """A tag can be moved to other code by whoever controls the action's repository; a commit cannot."""
    uses = re.findall(r"^\s*(?:- )?uses: (\S+)(.*)$", (WORKFLOWS / name).read_text(), flags=re.MULTILINE)
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{action} is not pinned by commit SHA"
        assert re.fullmatch(r"\s+# v\d+(\.\d+)*", comment), f"{action}: keep the tag in a comment"


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml"])
def test_no_expression_is_pasted_into_a_shell_script(name):
    """`${{ }}` in `run:` is pasted into the script before the shell parses it: a value holding a quote
    or `$(...)` would run as code. Values reach scripts through `env:` instead."""
    pasted = [step.get("name", step["run"][:40]) for step in all_steps(load(name)) if "${{" in step.get("run", "")]
    assert not pasted, f"steps pasting expressions into shell: {pasted}"


def test_what_reaches_production_waits_for_a_reviewer_of_the_production_environment():
    """Both CD jobs run in `production`: the build pushes the image production will run, the deploy swaps it in.
    GitHub cannot be configured from here, so docs/deploy.md carries the command that makes a reviewer required."""
    cd = load("cd.yml")
    assert {name: job.get("environment") for name, job in cd["jobs"].items()} == {
        "build": "production",
        "deploy": "production",
    }
    docs = (REPO / "docs" / "deploy.md").read_text()
    [setup] = [line for line in docs.splitlines() if "repos/$REPO/environments/production" in line]
    assert "reviewers" in setup and "prevent_self_review" in setup, setup
