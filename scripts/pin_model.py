"""CD's model step: resolve a registry URI to one version, once, and download exactly that version.


    python scripts/pin_model.py --model-uri models:/tweet-sentiment@champion --dest build/model --git-sha <sha>

An alias moves (`register` and `rollback` move it); everything CD does after this step names the
version number it printed, so the image, its tag and the smoke test all describe one model even if
the alias moves during the run. Writes `<dest>/../model_pin.json` (model name, version, run id, source,
image tag `<git sha>-m<version>`) and, under GitHub Actions, the same as step outputs. Exits 1 with one
line when the URI names nothing in the registry or the folder is not empty. Reads
MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_USERNAME/PASSWORD) like every MLflow client; no other secret.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


class PinError(Exception):
    """The URI names no model version this registry has."""


def resolve(model_uri: str, client: MlflowClient) -> dict[str, str]:
    """The version an alias (or a version URI) names right now, with the run it came from.

    Args:
        model_uri: `models:/<name>@<alias>` or `models:/<name>/<version>`.
        client: a client of the registry.

    Returns:
        `model_name`, `model_version`, `run_id`, `source` and the pinned `model_uri`.

    Raises:
        PinError: a malformed URI, or no such model, alias or version.
    """
    match = MODEL_URI.match(model_uri)
    if not match:
        raise PinError(f"model URI must be models:/<name>@<alias> or models:/<name>/<version>, got {model_uri!r}")
    name = match["name"]
    try:
        if match["alias"]:
            version = client.get_model_version_by_alias(name, match["alias"])
        else:
            version = client.get_model_version(name, match["version"])
    except MlflowException as error:
        raise PinError(f"{model_uri} is not in the registry at {client.tracking_uri}: {error.message}") from None
    return {
        "model_name": name,
        "model_version": str(version.version),
        "run_id": version.run_id or "",
        "source": version.source,
        "model_uri": f"models:/{name}/{version.version}",
    }


def image_tag(git_sha: str, model_version: str) -> str:
    """Code and model in one tag: a new champion on the same commit gets a tag of its own."""
    return f"{git_sha}-m{model_version}"


def write_outputs(pin: dict[str, str]) -> None:
    """GitHub Actions step outputs, so later steps read the pinned version instead of resolving again."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a") as outputs:
            outputs.writelines(f"{key}={value}\n" for key, value in pin.items())


@click.command(help=__doc__)
@click.option("--model-uri", default="models:/tweet-sentiment@champion", show_default=True, help="alias or version URI")
@click.option(
    "--dest", type=click.Path(path_type=Path), default=Path("build/model"), show_default=True, help="empty folder"
)
@click.option("--git-sha", envvar="GITHUB_SHA", default="local", show_default=True, help="the image's code commit")
def main(model_uri: str, dest: Path, git_sha: str) -> None:
    try:
        pin = resolve(model_uri, MlflowClient())
    except PinError as error:
        raise SystemExit(f"pin_model: {error}") from None
    pin["image_tag"] = image_tag(git_sha, pin["model_version"])
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"pin_model: {dest} is not empty: remove it first (a model is never mixed with another)")
    dest.mkdir(parents=True, exist_ok=True)
    download_artifacts(artifact_uri=pin["model_uri"], dst_path=str(dest))
    if not (dest / "MLmodel").is_file():
        raise SystemExit(f"pin_model: {pin['model_uri']} downloaded without an MLmodel file into {dest}")
    (dest.parent / "model_pin.json").write_text(json.dumps(pin, indent=2) + "\n")
    write_outputs(pin)
    click.echo(f"pinned {model_uri} -> {pin['model_uri']} (run {pin['run_id']}); image tag {pin['image_tag']}")


if __name__ == "__main__":
    main()
