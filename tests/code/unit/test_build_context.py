"""The images' build contexts hold what the Dockerfiles copy and none of the files that hold secrets.

The context is listed as Docker lists it, from each .dockerignore (docker-py's `exclude_paths`, the
client's own matcher), over a folder holding every file the deploy guide and the tracking server
script write secrets to, beside the files the images need (docs/deploy.md, "In Azure").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

REPO = Path(__file__).resolve().parents[3]
# What scripts/tracking_server.sh keeps under TRACKING_SERVER_HOME (default .tracking-server/) and .gitignore's .env.
SERVER_SECRETS = [
    f".tracking-server/secrets/{name}"
    for name in (
        "admin_password",
        "pipeline_password",
        "postgres_password",
        "pgpass",
        "azurite_key",
        "flask_secret_key",
    )
] + [".env"]


def secret_files_of_the_deploy_guide() -> list[str]:
    """Every file docs/deploy.md has the operator write to (a shell redirect, or a Python `path = "..."`)."""
    text = (REPO / "docs" / "deploy.md").read_text()
    return sorted(set(re.findall(r'(?:>\s*|path = ")((?:build|\.tracking-server)/[\w./-]+)', text)))


def context(root: Path, files: list[str]) -> set[str]:
    """The files Docker would send from `root`, with `files` created there and the real .dockerignore."""
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    patterns = (root / ".dockerignore").read_text().splitlines()
    return {path for path in exclude_paths(str(root), patterns) if (root / path).is_file()}


def test_the_deploy_guide_writes_its_secrets_where_this_test_looks():
    assert "build/tracking.parameters.json" in secret_files_of_the_deploy_guide()


@pytest.mark.parametrize(
    ("folder", "needed"),
    [
        (
            ".",
            [
                "Dockerfile",
                "requirements.lock",
                "docker/serve.sh",
                "build/model/MLmodel",
                "build/model/requirements.txt",
                "build/ca-bundle.pem",
                "build/wheels/torch-2.13.0-cp311-none-linux_x86_64.whl",
            ],
        ),
        (
            "deploy/tracking",
            ["Dockerfile", "entrypoint.sh", "requirements.txt", "no-extra-ca.pem", "build/ca-bundle.pem"],
        ),
    ],
)
def test_a_build_context_holds_what_the_image_needs_and_no_secret(tmp_path, folder, needed):
    (tmp_path / ".dockerignore").write_text((REPO / folder / ".dockerignore").read_text())
    secrets = secret_files_of_the_deploy_guide() + SERVER_SECRETS
    sent = context(tmp_path, needed + secrets + ["mlflow.db", "mlruns/0/meta.yaml", "build/model_pin.json"])
    assert set(needed) <= sent, sorted(set(needed) - sent)
    assert not sent & set(secrets), f"secrets in the build context: {sorted(sent & set(secrets))}"
    assert sent <= set(needed) | {".dockerignore"}, f"more than the image needs: {sorted(sent - set(needed))}"
