"""`rollback`: move `@champion` back to the previous champion (or to a named version), and say why.

The previous champion is read from the handover tags `register` writes whenever the alias moves
(`champion.previous_version` on the current champion), so a rollback never guesses. The rollback is
itself a handover: the restored version records whom it replaced, when and why, so rolling back
twice returns to where it started. A version that does not exist, no champion, or no previous
champion is a one-line error that changes nothing. The serving side does not move by itself: the
step prints what to restart or redeploy.
"""

from __future__ import annotations

import click
import mlflow
from mlflow.tracking import MlflowClient

from steps.lib.registry import (
    CHAMPION_ALIAS,
    MODEL_NAME,
    PREVIOUS_CHAMPION_TAG,
    current_champion,
    move_champion,
    version_or_none,
)
from steps.lib.tracking import StepError, log_step_params, run_step


def target_version(client: MlflowClient, model_name: str, to_version: str) -> tuple:
    """The current champion and the version to restore, both checked before anything moves."""
    champion = current_champion(client, model_name)
    if champion is None:
        raise StepError(f"{model_name} has no @{CHAMPION_ALIAS}: there is nothing to roll back")
    wanted = to_version.strip() or champion.tags.get(PREVIOUS_CHAMPION_TAG, "none")
    if wanted == "none":
        raise StepError(
            f"{model_name} v{champion.version} has no previous champion on record: "
            "name the version to restore with -P to_version=<version>"
        )
    if not wanted.isdigit():
        raise StepError(f"to_version must be a registered version number, got {to_version!r}")
    if wanted == str(champion.version):
        raise StepError(f"{model_name} v{wanted} is already @{CHAMPION_ALIAS}: nothing to roll back")
    target = version_or_none(client, model_name, wanted)
    if target is None:
        raise StepError(f"{model_name} has no version {wanted}: @{CHAMPION_ALIAS} stays on v{champion.version}")
    return champion, target


def rollback(model_name: str, to_version: str, reason: str) -> None:
    """Move `@champion` back and record why; print what to restart or redeploy.

    Args:
        model_name: the registered model whose champion moves.
        to_version: the version to restore (empty = the previous champion on record).
        reason: why, in words; recorded on both versions.
    """
    if not reason.strip():
        raise StepError("reason must say why the champion is rolled back (it is recorded on both versions)")
    log_step_params({"model_name": model_name, "to_version": to_version, "reason": reason})
    client = MlflowClient()
    champion, target = target_version(client, model_name, to_version)
    move_champion(client, model_name, target, f"rollback: {reason.strip()}")
    client.set_model_version_tag(model_name, champion.version, "champion.rolled_back", "true")
    mlflow.set_tags({"outcome": "rolled_back", "from_version": champion.version, "to_version": target.version})
    print(f"@{CHAMPION_ALIAS} of {model_name}: v{champion.version} -> v{target.version} ({reason.strip()})")
    print("next:")
    print(
        f"  a local server serves the alias as it was at start: restart it (mlflow models serve -m "
        f"models:/{model_name}@{CHAMPION_ALIAS} -p 5001 --env-manager local)"
    )
    print(f"  Azure: rerun CD with MODEL_URI=models:/{model_name}/{target.version} (docs/deploy.md)", flush=True)


@click.command(help=__doc__)
@click.option("--model-name", default=MODEL_NAME, show_default=True, help="registered model whose champion moves")
@click.option("--to-version", default="", help="version to restore (empty = the previous champion on record)")
@click.option("--reason", required=True, help="why, in words; recorded on both versions")
def main(**options: object) -> None:
    run_step("rollback", lambda run: rollback(**options))


if __name__ == "__main__":
    main()
