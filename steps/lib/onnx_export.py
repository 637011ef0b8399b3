"""Export the fine-tuned classifier to ONNX (optionally int8) and measure what the export changed.

The served pyfunc runs the exported graph in ONNX Runtime without torch; the export is kept only
with its parity figures logged, and int8 only if validation ROC AUC stays within `AUC_TOLERANCE`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from pyfunc.transformer_model import INPUT_NAMES, OUTPUT_NAME

OPSET = 17
AUC_TOLERANCE = 0.005
SERVED_ATTENTION = "eager"


class _LogitsOnly(torch.nn.Module):
    """The classifier with tensors in and logits out: the graph the served model runs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(
    model: torch.nn.Module, path: Path, pad_id: int, max_length: int, attention: str = SERVED_ATTENTION
) -> Path:
    """TorchScript-based export (dynamo=False), opset 17, dynamic batch and sequence axes.

    The example batch holds a padded row, so the traced graph keeps the attention-mask path
    (a mask of all ones could let the model skip masking at trace time). The graph is traced with
    eager attention whatever the model trains with: ONNX Runtime runs it in 247 kernels a call
    instead of SDPA's 331, 9% faster one tweet per call on the Intel Xeon and 1-6% on the AMD EPYC,
    with the same test ROC AUC (docs/research_log.md, "The limit: a roofline of the served transformer").

    Args:
        model: the fine-tuned sequence classifier (put in eval mode); its attention implementation is
            switched for the trace and restored after it.
        path: the `.onnx` file to write.
        pad_id: the tokenizer's padding id, for the example's padded row.
        max_length: the served length, which caps the example's width.
        attention: the attention implementation traced (`eager` or `sdpa`).

    Returns:
        The path.
    """
    width = min(16, max_length)
    input_ids = torch.full((2, width), 1000, dtype=torch.long)
    attention_mask = torch.ones((2, width), dtype=torch.long)
    input_ids[1, width // 2 :] = pad_id
    attention_mask[1, width // 2 :] = 0
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES} | {OUTPUT_NAME: {0: "batch"}}
    trained_with = model.config._attn_implementation
    model.set_attn_implementation(attention)
    try:
        _trace(model, path, (input_ids, attention_mask), axes)
    finally:
        model.set_attn_implementation(trained_with)
    return path


def _trace(model: torch.nn.Module, path: Path, example: tuple[torch.Tensor, torch.Tensor], axes: dict) -> None:
    """`torch.onnx.export` of the logits-only wrapper, quiet about the tracer's known false alarms."""
    # The tracer warns about two Python branches in the mask code; for an encoder they are constants
    # (mask as long as the sequence, attention never causal). It also warns that advanced indexing is
    # wrong for negative indices; the mask code indexes with positions, never negative. The parity
    # figures check the exported graph against torch on every validation tweet.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            _LogitsOnly(model.eval()),
            example,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def quantize_int8(source: Path, target: Path) -> Path:
    """ONNX Runtime dynamic quantisation: int8 weights, activations quantised per batch at run time.

    Because activation scales come from each call's batch, the served int8 model scores one tweet per
    call (`pyfunc/transformer_model.py`), so no tweet's score depends on its neighbours.

    Args:
        source: the fp32 graph.
        target: the int8 graph to write.

    Returns:
        The target path.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target


def parity(name: str, reference: np.ndarray, candidate: np.ndarray, y_true: np.ndarray) -> dict[str, float]:
    """Largest and mean probability difference to the torch model, and the candidate's validation ROC AUC.

    Args:
        name: the export's name in the keys (`onnx`, `onnx_int8`).
        reference: the torch model's validation P(negative).
        candidate: the export's validation P(negative), same rows.
        y_true: validation labels.

    Returns:
        `{name}_parity_max_abs_diff`, `{name}_parity_mean_abs_diff` and `val_roc_auc_{name}`.
    """
    difference = np.abs(candidate - reference)
    return {
        f"{name}_parity_max_abs_diff": float(np.max(difference)),
        f"{name}_parity_mean_abs_diff": float(np.mean(difference)),
        f"val_roc_auc_{name}": float(roc_auc_score(y_true, candidate)),
    }


def keeps_auc(reference_auc: float, candidate_auc: float) -> bool:
    """The export may move validation ROC AUC by at most AUC_TOLERANCE (either way: it must be the same model).

    Args:
        reference_auc: the torch model's validation ROC AUC.
        candidate_auc: the export's.

    Returns:
        Whether the export may be kept.
    """
    return abs(reference_auc - candidate_auc) <= AUC_TOLERANCE
