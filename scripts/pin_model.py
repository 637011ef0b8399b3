"""CD's model step: resolve a registry URI to one version, once, and download exactly that version.


    python scripts/pin_model.py --model-uri models:/tweet-sentiment@champion --dest build/model --git-sha <sha>
    python -m scripts.pin_model ...    (from the repository root, where the project is not installed: CD)

An alias moves (`register` and `rollback` move it); everything CD does after this step names the
version number it printed, so the image, its tag and the smoke test all describe one model even if
the alias moves during the run. Writes `<dest>/../model_pin.json` (model name, version, run id, source,
image tag `<git sha>-m<version>`) and, under GitHub Actions, the same as step outputs, each value
between delimiters no registry text can forge. Refuses, with exit 1 and one line, a URI that names
nothing in the registry, a folder that is not empty, and a version that the gate did not pass or whose
downloaded files differ from the digest recorded at registration (steps.lib.release); a refused
version's files are deleted, never left where the image build would find them. Reads
MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_USERNAME/PASSWORD) like every MLflow client; no other secret.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import click
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from steps.lib.release import folder_digest, release_refusal

IMAGE_TAG_PART = re.compile(r"\w[\w.-]{0,119}")  # a Docker tag's characters, room left for `-m<version>`
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


class PinError(Exception):
    """The URI names no model version this registry has."""


def resolve(model_uri: str, client: MlflowClient) -> tuple[dict[str, str], dict[str, str]]:
    """The version an alias (or a version URI) names right now, with the run it came from.

    Args:
        model_uri: `models:/<name>@<alias>` or `models:/<name>/<version>`.
        client: a client of the registry.

    Returns:
        `model_name`, `model_version`, `run_id`, `source` and the pinned `model_uri`; and the version's tags.

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
    pin = {
        "model_name": name,
        "model_version": str(version.version),
        "run_id": version.run_id or "",
        "source": version.source,
        "model_uri": f"models:/{name}/{version.version}",
    }
    return pin, dict(version.tags or {})


def image_tag(git_sha: str, model_version: str) -> str:
    """Code and model in one tag: a new champion on the same commit gets a tag of its own."""
    return f"{git_sha}-m{model_version}"


def output_lines(pin: dict[str, str], delimiter: str) -> str:
    """Step outputs in GitHub's multi-line form, `key<<DELIMITER`, value, `DELIMITER`.

    A `key=value` line ends at the value's first newline, so a registry text holding one (a version's
    `source` is whatever its registrant wrote) could add outputs of its own; a random delimiter that
    no value contains cannot be closed early.
    """
    if any(delimiter in value for value in pin.values()):
        raise PinError("a registry value holds the output delimiter: refusing to write step outputs")
    return "".join(f"{key}<<{delimiter}\n{value}\n{delimiter}\n" for key, value in pin.items())


def write_outputs(pin: dict[str, str]) -> None:
    """GitHub Actions step outputs, so later steps read the pinned version instead of resolving again."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        lines = output_lines(pin, f"ghadelimiter_{uuid.uuid4()}")
        with open(path, "a") as outputs:
            outputs.write(lines)


def download_verified(pin: dict[str, str], tags: dict[str, str], dest: Path) -> None:
    """Download the pinned version beside `dest` and move it there only once it may be released.

    Raises:
        PinError: no MLmodel, no passed gate, or files other than those registered; nothing is left behind.
    """
    staging = dest.with_name(f".{dest.name}.download")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        download_artifacts(artifact_uri=pin["model_uri"], dst_path=str(staging))
        if not (staging / "MLmodel").is_file():
            raise PinError(f"{pin['model_uri']} downloaded without an MLmodel file")
        refusal = release_refusal(tags, folder_digest(staging))
        if refusal:
            raise PinError(f"refusing {pin['model_uri']} (run {pin['run_id']}): {refusal}")
        if dest.exists():
            dest.rmdir()  # checked empty before the download
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def tag_safe(context: click.Context, parameter: click.Parameter, value: str) -> str:
    """A commit id that can start an image tag: it travels into `docker build -t` and the step outputs."""
    if not IMAGE_TAG_PART.fullmatch(value):
        raise click.BadParameter(
            f"must be at most 120 letters, digits, '_', '.' or '-' (an image tag's), got {value!r}"
        )
    return value


@click.command(help=__doc__)
@click.option("--model-uri", default="models:/tweet-sentiment@champion", show_default=True, help="alias or version URI")
@click.option(
    "--dest", type=click.Path(path_type=Path), default=Path("build/model"), show_default=True, help="empty folder"
)
@click.option(
    "--git-sha",
    envvar="GITHUB_SHA",
    default="local",
    show_default=True,
    callback=tag_safe,
    help="the image's code commit",
)
def main(model_uri: str, dest: Path, git_sha: str) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise SystemExit(f"pin_model: {dest} is not empty: remove it first (a model is never mixed with another)")
    try:
        pin, tags = resolve(model_uri, MlflowClient())
        pin["image_tag"] = image_tag(git_sha, pin["model_version"])
        download_verified(pin, tags, dest)
        write_outputs(pin)
    except PinError as error:
        raise SystemExit(f"pin_model: {error}") from None
    (dest.parent / "model_pin.json").write_text(json.dumps(pin, indent=2) + "\n")
    click.echo(f"pinned {model_uri} -> {pin['model_uri']} (run {pin['run_id']}); image tag {pin['image_tag']}")


if __name__ == "__main__":
    main()
