"""Network diagrams drawn from the model object itself, so they cannot drift from the code.

:func:`layer_table` runs one forward pass on a tensor of zeros and records, step by step,
what the network does: each layer's kind (``Conv2d 1→32, 3×3``), the shape of its output
(``32×28×28``, batch dimension left out) and its number of trainable parameters.
:func:`draw_network` turns that table into a column of boxes joined by arrows.

How the steps are found. ``torch.fx`` traces ``forward`` first: it sees the layers
(``self.conv1``) *and* the plain function calls between them (``F.relu``,
``F.max_pool2d``, ``torch.flatten``), so tutorial D's CNN, which pools with a function
and not with a layer, is drawn with its pooling step. A model that ``torch.fx`` cannot
trace (one with ``if`` on tensor values, say) falls back to forward hooks on its leaf
modules; the diagram then shows only the layers. Activations and dropout have no
parameters and do not change the shape, so they are folded into the box before them
(``Linear 784→256 + ReLU``): the book's models then need at most about 20 boxes.

Why plain matplotlib and not torchviz or torchinfo: nothing new to install (on Colab or
anywhere else), no Graphviz binary, and the two things a beginner needs from a diagram,
the shape flowing through the network and where the parameters sit, are all it shows.
torchviz draws the autograd graph (every add and transpose), far more than a beginner
wants; torchinfo prints a table, not a picture.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import Tensor, fx, nn

__all__ = ["LayerRow", "draw_network", "layer_table"]


@dataclass(frozen=True)
class LayerRow:
    """One box of the diagram.

    ``name`` is the module's name inside the model (``conv1``, ``layers.1``), or the
    function's name for a step written as a call in ``forward`` (``max_pool2d``).
    ``kind`` is what a reader sees (``Conv2d 1→32, 3×3 + ReLU``); ``output_shape``
    leaves out the batch dimension; ``parameters`` counts trainable scalars, those of
    folded layers included.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    parameters: int


# Parameter-free steps that keep the shape: folded into the box before them.
_FOLD_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
)
_FOLD_FUNCTIONS: dict[Callable[..., Any], str] = {
    F.relu: "ReLU",
    torch.relu: "ReLU",
    F.gelu: "GELU",
    F.silu: "SiLU",
    F.leaky_relu: "LeakyReLU",
    torch.tanh: "Tanh",
    torch.sigmoid: "Sigmoid",
    F.softmax: "softmax",
    torch.softmax: "softmax",
    F.log_softmax: "log_softmax",
    torch.log_softmax: "log_softmax",
    F.dropout: "dropout",
}
_FOLD_METHODS = {"relu": "ReLU", "softmax": "softmax", "log_softmax": "log_softmax"}
# Steps that only reshape: drawn as their own box only when the shape changes.
_RESHAPE_FUNCTIONS: dict[Callable[..., Any], str] = {
    torch.flatten: "torch.flatten",
    torch.reshape: "torch.reshape",
}
_RESHAPE_METHODS = {"view": "view", "reshape": "reshape", "flatten": "flatten"}
_FUNCTION_NAMES: dict[Callable[..., Any], str] = {
    F.max_pool2d: "F.max_pool2d",
    F.avg_pool2d: "F.avg_pool2d",
    F.adaptive_avg_pool2d: "F.adaptive_avg_pool2d",
    F.adaptive_max_pool2d: "F.adaptive_max_pool2d",
    operator.add: "add",
    torch.add: "torch.add",
    torch.cat: "torch.cat",
}


def _pair(value: Any) -> str:
    """``3`` or ``(3, 3)`` -> ``"3×3"``."""
    if isinstance(value, Sequence):
        return "×".join(str(v) for v in value)
    return f"{value}×{value}"


def _shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape) if shape else "scalar"


def _describe_module(module: nn.Module) -> str:
    """The label a beginner reads: the layer's class and the numbers that define it."""
    kind = type(module).__name__
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}→{module.out_features}"
    if isinstance(module, nn.Conv2d):
        text = f"Conv2d {module.in_channels}→{module.out_channels}, "
        text += _pair(module.kernel_size)
        if module.stride not in (1, (1, 1)):
            text += f", stride {_pair(module.stride)}"
        return text
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return f"{kind} {module.num_features}"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return f"{kind} {_pair(module.kernel_size)}"
    if isinstance(module, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)):
        return f"{kind} → {_pair(module.output_size)}"
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d)):
        return f"Dropout {module.p:g}"
    return kind


def _own_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@dataclass
class _Step:
    """One traced step before folding: a module call or a function call."""

    name: str
    label: str
    shape: tuple[int, ...]
    parameters: int
    fold: bool  # parameter-free, shape-keeping: joins the box before it
    reshape: bool = False  # only reshapes: dropped when the shape does not change


def _expectation(module: nn.Module, shape: tuple[int, ...]) -> str:
    """What the failing layer wanted, in words, for the one-line error."""
    got = tuple(shape)
    if isinstance(module, nn.Linear):
        return (
            f"Linear expects {module.in_features} input features, "
            f"got a tensor of shape {got}"
        )
    if isinstance(module, nn.Conv2d):
        return (
            f"Conv2d expects {module.in_channels} input channel(s), "
            f"got a tensor of shape {got}"
        )
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return (
            f"{type(module).__name__} expects {module.num_features} features, "
            f"got a tensor of shape {got}"
        )
    return f"{type(module).__name__} got a tensor of shape {got}"


def _fail(
    model: nn.Module, input_shape: Sequence[int], where: str, err: Exception
) -> None:
    first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    raise ValueError(
        f"draw_network: {type(model).__name__} failed on a zeros input of shape "
        f"{tuple(input_shape)}: {where} ({first_line}); pass the input_shape it "
        "expects, e.g. (1, 1, 28, 28) for MNIST"
    ) from err


class _Recorder(fx.Interpreter):
    """Runs the traced graph node by node and records each step's output shape."""

    def __init__(self, gm: fx.GraphModule, model: nn.Module) -> None:
        super().__init__(gm)
        self.model = model
        self.steps: list[_Step] = []
        self.failed: tuple[str, str] | None = None

    def run_node(self, n: fx.Node) -> Any:
        try:
            out = super().run_node(n)
        except Exception:
            if self.failed is None:
                self.failed = self._where(n)
            raise
        if isinstance(out, Tensor) and n.op in (
            "call_module",
            "call_function",
            "call_method",
        ):
            self.steps.append(self._step(n, tuple(out.shape[1:])))
        return out

    def _where(self, n: fx.Node) -> tuple[str, str]:
        args = [a for a in n.args if isinstance(a, fx.Node)]
        shape = getattr(self.env.get(args[0]), "shape", ()) if args else ()
        if n.op == "call_module":
            module = self.model.get_submodule(str(n.target))
            return str(n.target), _expectation(module, tuple(shape))
        return str(n.name), f"{n.name} got a tensor of shape {tuple(shape)}"

    def _step(self, n: fx.Node, shape: tuple[int, ...]) -> _Step:
        if n.op == "call_module":
            module = self.model.get_submodule(str(n.target))
            return _Step(
                str(n.target),
                _describe_module(module),
                shape,
                _own_parameters(module),
                isinstance(module, _FOLD_MODULES),
                isinstance(module, nn.Flatten),
            )
        target = n.target
        if n.op == "call_method":
            if target in _FOLD_METHODS:
                return _Step(str(target), _FOLD_METHODS[str(target)], shape, 0, True)
            label = _RESHAPE_METHODS.get(str(target), f".{target}()")
            return _Step(
                str(target), label, shape, 0, False, str(target) in _RESHAPE_METHODS
            )
        if target in _FOLD_FUNCTIONS:
            return _Step(n.name, _FOLD_FUNCTIONS[target], shape, 0, True)
        if target in _RESHAPE_FUNCTIONS:
            return _Step(n.name, _RESHAPE_FUNCTIONS[target], shape, 0, False, True)
        label = _FUNCTION_NAMES.get(target, getattr(target, "__name__", str(target)))
        if target in (F.max_pool2d, F.avg_pool2d) and len(n.args) > 1:
            label = f"{label} {_pair(n.args[1])}"
        return _Step(n.name, label, shape, 0, False)


def _steps_by_tracing(model: nn.Module, x: Tensor) -> list[_Step] | None:
    """Steps from ``torch.fx``, or None when the model cannot be traced."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - any tracing failure: use hooks instead
        return None
    recorder = _Recorder(gm, model)
    try:
        recorder.run(x)
    except Exception as err:  # noqa: BLE001 - re-raised as a one-line ValueError
        where = recorder.failed or ("forward", "")
        _fail(model, x.shape, f"layer {where[0]!r}: {where[1]}", err)
    return recorder.steps


def _steps_by_hooks(model: nn.Module, x: Tensor) -> list[_Step]:
    """Fallback: forward hooks on the leaf modules (plain function calls stay unseen)."""
    steps: list[_Step] = []
    running: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    handles = []

    def make_hooks(name: str, module: nn.Module) -> None:
        def pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
            shape = tuple(args[0].shape) if args and isinstance(args[0], Tensor) else ()
            running.append((name, module, shape))

        def post(_m: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
            running.pop()
            if isinstance(out, Tensor):
                steps.append(
                    _Step(
                        name,
                        _describe_module(module),
                        tuple(out.shape[1:]),
                        _own_parameters(module),
                        isinstance(module, _FOLD_MODULES),
                        isinstance(module, nn.Flatten),
                    )
                )

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))

    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            make_hooks(name, module)
    try:
        model(x)
    except Exception as err:  # noqa: BLE001 - re-raised as a one-line ValueError
        if running:
            name, module, shape = running[-1]
            where = f"layer {name!r}: {_expectation(module, shape)}"
        else:
            where = "forward"
        _fail(model, x.shape, where, err)
    finally:
        for handle in handles:
            handle.remove()
    return steps


def _fold(steps: list[_Step]) -> list[LayerRow]:
    """Join activations and dropout to the box before them; drop no-op reshapes."""
    rows: list[LayerRow] = []
    previous_shape: tuple[int, ...] | None = None
    for step in steps:
        if step.reshape and step.shape == previous_shape:
            continue
        if step.fold and rows:
            last = rows[-1]
            rows[-1] = LayerRow(
                last.name,
                f"{last.kind} + {step.label}",
                step.shape,
                last.parameters + step.parameters,
            )
        else:
            rows.append(LayerRow(step.name, step.label, step.shape, step.parameters))
        previous_shape = step.shape
    return rows


def layer_table(
    model: nn.Module, input_shape: Sequence[int] = (1, 1, 28, 28)
) -> list[LayerRow]:
    """The rows :func:`draw_network` draws, one per box, in the order data flows.

    Runs one forward pass on zeros in eval mode without gradients (so dropout and
    BatchNorm behave as at test time and nothing is learned), then puts the model back
    in the mode it was in. A forward pass that fails raises a one-line ``ValueError``
    naming the layer and the shape it expected.
    """
    model = getattr(model, "_orig_mod", model)  # a torch.compile'd model: its original
    was_training = model.training
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    x = torch.zeros(tuple(input_shape), device=device)
    model.eval()
    try:
        with torch.no_grad():
            steps = _steps_by_tracing(model, x)
            if steps is None:
                steps = _steps_by_hooks(model, x)
    finally:
        model.train(was_training)
    return _fold(steps)


# Layout in inches: readable at ~800 px page width (figure ≤ 10 in wide, text ≥ 9 pt).
_BOX_W, _BOX_H, _GAP, _COL_W = 3.3, 0.62, 0.3, 3.6
_FONT = 9.5
_ARROW = "#4a6f91"
_ROWS_PER_COLUMN = 10


def _box_label(row: LayerRow) -> str:
    params = f"{row.parameters:,} params" if row.parameters else "no params"
    return f"{row.kind}\n{row.name} · out {_shape_text(row.output_shape)} · {params}"


def draw_network(
    model: nn.Module,
    input_shape: Sequence[int] = (1, 1, 28, 28),
    title: str | None = None,
) -> Figure:
    """Draw the model as a flow of boxes, top to bottom: layer, output shape, params.

    The figure is built from :func:`layer_table`, so it shows the network the code
    really builds. More than ten boxes wrap into side-by-side columns (read each column
    top to bottom, left to right). The total number of trainable parameters is in the
    title. The figure is returned, not shown, and pyplot does not keep it: display it
    with ``display(fig)`` or let it be the cell's last value.
    """
    rows = layer_table(model, input_shape)
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    boxes = [f"input\n{_shape_text(tuple(input_shape)[1:])}"] + [
        _box_label(row) for row in rows
    ]
    columns = math.ceil(len(boxes) / _ROWS_PER_COLUMN)
    per_column = math.ceil(len(boxes) / columns)
    width = min(10.0, 0.3 + columns * _COL_W)
    height = 0.9 + per_column * (_BOX_H + _GAP)
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # y grows downwards, like the flow
    ax.axis("off")
    name = type(getattr(model, "_orig_mod", model)).__name__
    heading = title if title is not None else name
    ax.set_title(
        f"{heading} · {total:,} trainable parameters",
        fontsize=_FONT + 1.5,
        y=1.0,
        pad=-16,
        loc="center",
    )
    scale = min(1.0, (width - 0.3) / (columns * _COL_W))
    _draw_arrows(ax, _draw_boxes(ax, boxes, per_column, scale))
    return fig


def _draw_boxes(
    ax: Any, boxes: list[str], per_column: int, scale: float
) -> list[tuple[float, float]]:
    """One rounded box per label, column by column; returns the boxes' centres."""
    centres: list[tuple[float, float]] = []
    for i, text in enumerate(boxes):
        col, pos = divmod(i, per_column)
        cx = 0.15 + (col + 0.5) * _COL_W * scale
        cy = 0.7 + pos * (_BOX_H + _GAP) + _BOX_H / 2
        centres.append((cx, cy))
        is_input = i == 0
        ax.add_patch(
            FancyBboxPatch(
                (cx - _BOX_W * scale / 2, cy - _BOX_H / 2),
                _BOX_W * scale,
                _BOX_H,
                boxstyle="round,pad=0.02,rounding_size=0.08",
                facecolor="#eeeeee" if is_input else "#dbe9f6",
                edgecolor=_ARROW,
                linewidth=1.0,
            )
        )
        label = ax.text(
            cx, cy, text, ha="center", va="center", fontsize=_FONT, linespacing=1.35
        )
        if not is_input:
            label.set_gid(f"layer:{i - 1}")
    return centres


def _draw_arrows(ax: Any, centres: list[tuple[float, float]]) -> None:
    """An arrow from each box to the next; into a new column along the gap, then from above."""
    for (x0, y0), (x1, y1) in itertools.pairwise(centres):
        start, end = (x0, y0 + _BOX_H / 2), (x1, y1 - _BOX_H / 2)
        if x0 != x1:  # next column: along the gap between columns, then in from above
            mid = (x0 + x1) / 2
            below, above = start[1] + _GAP / 2, end[1] - _GAP / 2
            ax.plot(
                [x0, x0, mid, mid, x1, x1],
                [start[1], below, below, above, above, above],
                color=_ARROW,
                linewidth=1.0,
            )
            start = (x1, above)
        ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=12,
                color=_ARROW,
                linewidth=1.0,
                shrinkA=0,
                shrinkB=0,
            )
        )


def _demo() -> (
    None
):  # pragma: no cover - manual check: python -m mnist_helpers.diagrams
    from mnist_helpers.models import MODEL_REGISTRY

    for key, cls in MODEL_REGISTRY.items():
        fig = draw_network(cls(), title=key)
        fig.savefig(f"/tmp/diagram_{key}.png", dpi=100)
    plt.close("all")


if __name__ == "__main__":  # pragma: no cover
    _demo()
