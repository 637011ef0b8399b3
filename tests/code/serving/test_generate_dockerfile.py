"""The MLflow way to an image stays valid: `mlflow models generate-dockerfile` on a candidate this project logs.

The repository's own Dockerfile is what CD builds (docs/serving.md); `mlflow models build-docker` is the
documented alternative. Both rest on the model directory MLflow writes, so this test runs MLflow's
generator (the same code path as build-docker, without a Docker daemon) and checks what the image would
hold: the model, its pinned requirements with the telemetry distro among them, and MLflow's server on 8080.
"""

from __future__ import annotations

import subprocess

import mlflow
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generated(tracking, baseline_run_id, tmp_path_factory):
    out = tmp_path_factory.mktemp("dockerfile")
    command = ["mlflow", "models", "generate-dockerfile", "-m", f"runs:/{baseline_run_id}/model", "-d", str(out)]
    result = subprocess.run(command, env=tracking.env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_generated_dockerfile_bakes_the_model_in_and_serves_it_with_mlflow(generated):
    dockerfile = (generated / "Dockerfile").read_text()
    assert f"pip install mlflow=={mlflow.__version__}" in dockerfile
    assert "COPY model_dir/model /opt/ml/model" in dockerfile
    assert "C._install_pyfunc_deps('/opt/ml/model', install_mlflow=False, env_manager='local')" in dockerfile
    assert dockerfile.rstrip().endswith(
        'ENTRYPOINT ["python", "-c", "from mlflow.models import container as C; C._serve(\'local\')"]'
    )


def test_the_baked_model_carries_its_code_and_pins_the_telemetry_distro(generated):
    """The custom pyfunc imports `pyfunc/` from the model's code; without the distro, telemetry is off."""
    model_dir = generated / "model_dir" / "model"
    assert (model_dir / "MLmodel").is_file() and (model_dir / "code" / "pyfunc" / "telemetry.py").is_file()
    requirements = dict(line.split("==", 1) for line in (model_dir / "requirements.txt").read_text().splitlines())
    locked = dict(line.split("==", 1) for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line)
    assert {"mlflow", "scikit-learn", "azure-monitor-opentelemetry"} <= requirements.keys()
    assert requirements["azure-monitor-opentelemetry"] == locked["azure-monitor-opentelemetry"]
    assert requirements["mlflow"] == mlflow.__version__


def test_the_repository_image_installs_the_telemetry_distro_whatever_the_model_lists():
    """The CD image: a baked model logged without the distro must not serve with telemetry silently off."""
    dockerfile = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    [install] = [line for line in dockerfile.splitlines() if '-r "$requirements"' in line]
    command = install[install.index('-r "$requirements"') :].split(";")[0]
    assert "azure-monitor-opentelemetry" in command.split(), command
    assert "-c /tmp/build/requirements.lock" in install, "its version comes from the lock"
