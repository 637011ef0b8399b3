"""What CD may release: the gate's verdict and the registered files' digest decide (steps.lib.release, pin_model)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scripts import pin_model
from scripts.pin_model import PinError, output_lines
from steps.lib.release import ARTIFACT_DIGEST_TAG, folder_digest, release_refusal

PASSED = {"gate.metric": "val_macro_f1", "gate.candidate_value": "0.9", "gate.champion_value": "none"}


def model_folder(root, **files: bytes):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_the_digest_follows_every_byte_and_every_name(tmp_path):
    first = folder_digest(model_folder(tmp_path / "a", MLmodel=b"flavors: {}", **{"model/weights.bin": b"\x00" * 64}))
    assert first == folder_digest(
        model_folder(tmp_path / "b", MLmodel=b"flavors: {}", **{"model/weights.bin": b"\x00" * 64})
    )
    assert len(first) == 64
    changed = model_folder(tmp_path / "c", MLmodel=b"flavors: {}", **{"model/weights.bin": b"\x00" * 63 + b"\x01"})
    renamed = model_folder(tmp_path / "d", MLmodel=b"flavors: {}", **{"model/weights.pkl": b"\x00" * 64})
    added = model_folder(tmp_path / "e", MLmodel=b"flavors: {}", extra=b"", **{"model/weights.bin": b"\x00" * 64})
    moved = model_folder(tmp_path / "f", MLmodel=b"flavors: {}\x00", **{"model/weights.bin": b"\x00" * 63})
    assert len({first, *(folder_digest(folder) for folder in (changed, renamed, added, moved))}) == 5


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({}, "carries no gate verdict (gate.metric, gate.candidate_value, gate.champion_value, gate.passed missing)"),
        ({**PASSED}, "gate.passed missing"),
        ({**PASSED, "gate.passed": "false"}, "its gate did not pass (gate.passed=false)"),
        ({**PASSED, "gate.passed": "true"}, f"no {ARTIFACT_DIGEST_TAG} recorded at registration"),
        ({**PASSED, "gate.passed": "true", ARTIFACT_DIGEST_TAG: "0" * 64}, "differs from the 0000000000000000..."),
    ],
)
def test_a_version_without_a_passed_gate_or_with_other_files_is_refused(tags, reason):
    refusal = release_refusal(tags, "f" * 64)
    assert refusal is not None and reason in refusal and "\n" not in refusal


def test_a_passed_version_with_its_registered_files_is_released():
    assert release_refusal({**PASSED, "gate.passed": "true", ARTIFACT_DIGEST_TAG: "f" * 64}, "f" * 64) is None


def github_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT as the runner reads it: `key=value` lines and `key<<DELIMITER` blocks."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            value = []
            for body in lines:
                if body == delimiter:
                    break
                value.append(body)
            outputs[key] = "\n".join(value)
        else:
            key, value = line.split("=", 1)
            outputs[key] = value
    return outputs


def test_a_registry_value_cannot_add_step_outputs_of_its_own():
    pin = {"model_version": "3", "run_id": "a" * 32, "source": "models:/m-1\nmodel_version=99\nrun_id=planted"}
    assert github_outputs(output_lines(pin, "ghadelimiter_1234")) == pin
    with pytest.raises(PinError, match="delimiter"):
        output_lines({"source": "x\nghadelimiter_1234\nrun_id=planted"}, "ghadelimiter_1234")


@pytest.mark.parametrize("git_sha", ["abc 123", "abc\nmodel_version=9", "a" * 121, "-leading-dash"])
def test_a_commit_id_that_cannot_start_an_image_tag_is_refused_before_the_registry_is_asked(git_sha):
    result = CliRunner().invoke(
        pin_model.main, ["--git-sha", git_sha], env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    )
    assert result.exit_code == 2
    assert "Invalid value for '--git-sha': must be at most 120 letters" in result.output
