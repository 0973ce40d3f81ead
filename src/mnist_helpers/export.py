"""Export a trained model to ONNX, so that it runs without PyTorch: in onnxruntime, or in a web page.

A checkpoint needs PyTorch and this library to be used. An ONNX file is a self-contained graph of standard
operators that many runtimes execute: onnxruntime in Python or C++, and onnxruntime-web in a browser (the
book's draw-a-digit page). Chapter 12 writes the export out once with ``torch.onnx.export``; this module
keeps that recipe, plus the checks that make an export trustworthy: the same predictions as the PyTorch
model on the whole test set, and how far apart the two sets of logits are.

The exported graph includes the input normalization the model was trained with, so the file takes what
MNIST stores (28x28 grey levels 0..255, white ink on black) and nobody using it has to know the mean and
standard deviation. The graph does the exact arithmetic of :func:`mnist_helpers.data.normalize`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import Tensor, nn

from mnist_helpers.atomic import atomic_write
from mnist_helpers.data import normalize
from mnist_helpers.evaluation import batched_logits

INPUT_NAME = (
    "pixels"  # (batch, 1, 28, 28) float32 grey levels 0..255, white ink on black
)
OUTPUT_NAME = "logits"  # (batch, 10) float32, what the PyTorch model returns


class WithNormalization(nn.Module):
    """``model`` preceded by its training normalization: 0..255 pixels in, the model's logits out."""

    def __init__(self, model: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, pixels: Tensor) -> Tensor:
        return self.model(normalize(pixels, self.mean, self.std))


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    mean: float,
    std: float,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` (with its normalization ``mean``/``std`` built in) to ``path`` as one ONNX file.

    Uses the ``torch.export``-based exporter (``dynamo=True``), PyTorch's default since 2.9; the older
    TorchScript exporter still works but warns that it will be removed. The batch dimension stays
    dynamic, so one file serves one image or a thousand. The weights go inside the file
    (``external_data=False``): a web page fetches one URL. The exporter's per-node debugging notes are
    dropped: they hold stack traces with this machine's file paths, which a published file should not
    carry, and without them the same weights give the same bytes on any machine. ``metadata`` (strings,
    e.g. where the weights came from) is stored in the file's ``metadata_props``. The write is atomic,
    like a checkpoint's.
    """
    model = (
        copy.deepcopy(getattr(model, "_orig_mod", model)).cpu().eval()
    )  # leave the caller's model alone
    wrapped = WithNormalization(model, mean, std).eval()
    example = torch.zeros(2, 1, 28, 28)
    program = torch.onnx.export(
        wrapped,
        (example,),
        dynamo=True,
        external_data=False,
        verbose=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    proto = program.model_proto
    for node in (
        proto.graph.node
    ):  # the exporter's debugging notes: stack traces with this machine's paths
        del node.metadata_props[:]
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(proto)
    return atomic_write(path, lambda file: file.write(proto.SerializeToString()))


def onnx_session(path: str | Path) -> onnxruntime.InferenceSession:
    """An onnxruntime session on the CPU for the ONNX file at ``path``, with a clear error if it is no such file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no ONNX file at {path}: export one first (mnist-helpers export --checkpoint ... --out {path})"
        )
    try:
        return onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ValueError(
            f"{path} is not a usable ONNX model (truncated, or not an ONNX file?): {error}"
        ) from None


def onnx_logits(
    session: onnxruntime.InferenceSession,
    pixels: Tensor | np.ndarray,
    batch_size: int = 1000,
) -> np.ndarray:
    """Logits from an exported model for 0..255 ``pixels`` of shape (N, 1, 28, 28), computed in batches."""
    array = pixels.numpy() if isinstance(pixels, Tensor) else np.asarray(pixels)
    array = array.astype(np.float32, copy=False)
    if array.ndim != 4 or array.shape[1:] != (1, 28, 28):
        raise ValueError(
            f"pixels must have shape (N, 1, 28, 28), got {tuple(array.shape)}; "
            "add the channel axis with pixels[:, None] or reshape(-1, 1, 28, 28)"
        )
    return np.concatenate(
        [
            session.run([OUTPUT_NAME], {INPUT_NAME: array[start : start + batch_size]})[
                0
            ]
            for start in range(0, len(array), batch_size)
        ]
    )


@dataclass(frozen=True)
class Parity:
    """How closely an exported model reproduces the PyTorch model on the same images."""

    images: int
    same_predictions: int  # images whose predicted digit (argmax) is the same in both
    max_abs_logit_diff: float  # over every image and every class

    @property
    def identical_predictions(self) -> bool:
        return self.same_predictions == self.images


def check_parity(
    model: nn.Module,
    session: onnxruntime.InferenceSession,
    pixels: Tensor,
    *,
    mean: float,
    std: float,
    batch_size: int = 1000,
) -> Parity:
    """Run ``model`` (PyTorch, on the CPU) and ``session`` (onnxruntime) on the same 0..255 ``pixels`` and compare.

    Both see the same images; PyTorch gets them through :func:`~mnist_helpers.data.normalize`, the ONNX
    graph normalizes them itself. Small logit differences (float rounding in a different order) are
    expected; a different predicted digit would mean the export is wrong.
    """
    model = getattr(model, "_orig_mod", model)
    pixels = pixels.float().cpu()
    chunks = (normalize(chunk, mean, std) for chunk in pixels.split(batch_size))
    eager = batched_logits(model, chunks).numpy()
    exported = onnx_logits(session, pixels, batch_size)
    return Parity(
        images=len(pixels),
        same_predictions=int((eager.argmax(1) == exported.argmax(1)).sum()),
        max_abs_logit_diff=float(np.abs(eager - exported).max()),
    )
