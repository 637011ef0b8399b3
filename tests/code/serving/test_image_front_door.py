"""The serving image's front door without a Docker engine: its entry point under its own defaults.

The image runs `docker/serve.sh` (`mlflow models serve` on the model) with the limits the Dockerfile
sets as ENV (docs/design.md, "Serving limits"). These tests start that same script with exactly those
values read from the Dockerfile, so a default changed in one place and not the other fails here, and
send what a hostile client would send the image: a 50 MB body. `scripts/build_image.sh` repeats the
50 MB check on the built image where an engine runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.servers import ServerProcess, free_port
from pyfunc.limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS
from tests.conftest import Tracking

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
FIFTY_MB = 50 * 1024 * 1024


def dockerfile_env() -> dict[str, str]:
    """The `KEY=value` pairs of the Dockerfile's ENV instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            pairs.update(re.findall(r'(\w+)=("[^"]*"|\S*)', line[len("ENV ") :]))
    return {key: value.strip('"') for key, value in pairs.items()}


class ImageEntryPoint(ServerProcess):
    name = "image entry point (docker/serve.sh)"


@pytest.fixture(scope="module")
def front_door(champion: str, tracking: Tracking, tmp_path_factory) -> Iterator[str]:
    image_env = dockerfile_env()
    port = free_port()
    env = tracking.env | {key: image_env[key] for key in ("MAX_ROWS_PER_REQUEST", "MAX_REQUEST_BYTES", "WORKERS")}
    env |= {"PORT": str(port), "MODEL_URI": champion}
    log_path = tmp_path_factory.mktemp("image") / "serve.log"
    server = ImageEntryPoint(["sh", str(ROOT / "docker" / "serve.sh")], env, log_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_until_ok(f"{url}/ping", timeout=120)
        assert f"serve-model: serving {champion} on 0.0.0.0:{port} with 1 worker(s)" in server.log()
        yield url
    finally:
        server.stop()


def test_the_image_sets_the_documented_limits():
    image_env = dockerfile_env()
    assert int(image_env["MAX_ROWS_PER_REQUEST"]) == DEFAULT_MAX_ROWS
    assert int(image_env["MAX_REQUEST_BYTES"]) == DEFAULT_MAX_BYTES


def test_a_50_mb_body_gets_a_413_naming_the_limit_and_the_next_request_is_served(front_door):
    body = '{"inputs": {"text": ["' + "x" * FIFTY_MB + '"]}}'
    refused = requests.post(
        f"{front_door}/invocations", data=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert refused.status_code == 413
    assert f"at most {DEFAULT_MAX_BYTES:,} (MAX_REQUEST_BYTES)" in refused.json()["message"]

    answered = requests.post(
        f"{front_door}/invocations",
        data=json.dumps({"inputs": {"text": ["@united lost my bag again"]}}),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert answered.status_code == 200
    assert len(answered.json()["predictions"]) == 1
