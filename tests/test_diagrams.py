"""The network diagrams must show the network the code builds: shapes, parameters, mode."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from mnist_helpers.diagrams import LayerRow, draw_network, layer_table
from mnist_helpers.models import MODEL_REGISTRY, BatchNormMLP, count_parameters

# Small configs where the defaults are large; the defaults are cheap enough too.
CONFIGS: dict[str, dict[str, object]] = {
    "mlp": {"hidden": (32, 16)},
    "bnmlp": {"hidden": (32, 16)},
    "cnn": {},
    "simplecnn": {},
    "bncnn": {"widths": (8, 16), "depths": (1, 2)},
}


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return MODEL_REGISTRY[name](**CONFIGS.get(name, {}))


def _hooked_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Output shape (batch left out) of every named leaf module, by plain hooks."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            handles.append(
                module.register_forward_hook(
                    lambda _m, _a, out, name=name: shapes.__setitem__(
                        name, tuple(out.shape[1:])
                    )
                )
            )
    model.eval()
    with torch.no_grad():
        model(torch.zeros(2, 1, 28, 28))
    for handle in handles:
        handle.remove()
    return shapes


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
def test_table_matches_an_independent_forward_pass(name: str) -> None:
    model = _build(name)
    rows = layer_table(model, (1, 1, 28, 28))
    assert all(isinstance(row, LayerRow) for row in rows)
    hooked = _hooked_shapes(model)
    module_rows = [row for row in rows if row.name in hooked]
    assert module_rows, "no row names a module of the model"
    for row in module_rows:
        assert row.output_shape == hooked[row.name], row
    assert rows[-1].output_shape == (10,)
    assert sum(row.parameters for row in rows) == count_parameters(model)


@pytest.mark.parametrize("name", ["mlp", "bnmlp", "bncnn"])
def test_sequential_models_step_by_step(name: str) -> None:
    """Calling the layers one after the other gives the same shapes, in order."""
    model = _build(name)
    model.eval()
    layers = [m for m in model.modules() if not list(m.children())]
    x = torch.zeros(1, 1, 28, 28)
    shapes: list[tuple[int, ...]] = []
    with torch.no_grad():
        for layer in layers:
            x = layer(x)
            shapes.append(tuple(x.shape[1:]))
    table_shapes = [row.output_shape for row in layer_table(model)]
    # every change of shape shows up in the table, in the same order
    changes = [s for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1]]
    table_changes = [
        s for i, s in enumerate(table_shapes) if i == 0 or s != table_shapes[i - 1]
    ]
    assert table_changes == changes


def test_functional_steps_are_shown() -> None:
    """Tutorial D's CNN pools with F.max_pool2d, a function: it still gets a box."""
    rows = layer_table(MODEL_REGISTRY["cnn"]())
    kinds = [row.kind for row in rows]
    assert any("max_pool2d" in kind for kind in kinds)
    assert rows[0].kind == "Conv2d 1→10, 5×5 + ReLU"
    assert rows[0].output_shape == (10, 24, 24)
    assert rows[1].output_shape == (10, 12, 12)


def test_folding_keeps_batchnorm_visible() -> None:
    kinds = [row.kind for row in layer_table(BatchNormMLP(hidden=(30, 20)))]
    assert kinds == [
        "Flatten",
        "Linear 784→30",
        "BatchNorm1d 30 + ReLU",
        "Linear 30→20",
        "BatchNorm1d 20 + ReLU",
        "Linear 20→10",
    ]


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
def test_book_models_fit_in_about_twenty_boxes(name: str) -> None:
    assert len(layer_table(MODEL_REGISTRY[name]())) <= 20


@pytest.mark.parametrize("name", list(MODEL_REGISTRY))
@pytest.mark.parametrize("training", [True, False])
def test_figure_and_mode_restored(name: str, training: bool) -> None:
    model = _build(name)
    model.train(training)
    fig = draw_network(model, title="My net")
    assert isinstance(fig, Figure)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    ax = fig.axes[0]
    assert ax.get_title().startswith("My net")
    assert f"{count_parameters(model):,}" in ax.get_title()
    rows = layer_table(model)
    layer_texts = [t for t in ax.texts if (t.get_gid() or "").startswith("layer:")]
    assert len(layer_texts) == len(rows)
    for text, row in zip(layer_texts, rows, strict=True):
        assert row.kind in text.get_text()
    width, _height = fig.get_size_inches()
    assert width <= 10
    assert min(t.get_fontsize() for t in ax.texts) >= 9


def test_many_boxes_wrap_into_columns() -> None:
    model = MODEL_REGISTRY["bncnn"](widths=(8, 8, 8), depths=(3, 3, 3))
    fig = draw_network(model)
    assert fig.get_size_inches()[0] <= 10
    xs = {round(t.get_position()[0], 2) for t in fig.axes[0].texts}
    assert len(xs) >= 2


def test_wrong_input_shape_says_what_was_expected() -> None:
    model = MODEL_REGISTRY["mlp"]()
    model.train()
    with pytest.raises(ValueError, match="784") as info:
        layer_table(model, (1, 1, 32, 32))
    message = str(info.value)
    assert "\n" not in message
    assert "(1, 1, 32, 32)" in message
    assert model.training  # mode restored even when the forward pass fails


def test_wrong_channels_on_a_convnet() -> None:
    with pytest.raises(ValueError, match="1 input channel") as info:
        draw_network(MODEL_REGISTRY["simplecnn"](), input_shape=(1, 3, 28, 28))
    assert "\n" not in str(info.value)


class _Untraceable(nn.Module):
    """Branches on a tensor value: torch.fx cannot trace it, hooks take over."""

    def __init__(self) -> None:
        super().__init__()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(784, 10)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flat(x)
        if x.sum() > 1e9:
            x = x * 0
        return self.act(self.fc(x))


def test_untraceable_model_falls_back_to_hooks() -> None:
    rows = layer_table(_Untraceable())
    assert [row.kind for row in rows] == ["Flatten", "Linear 784→10 + ReLU"]
    assert rows[-1].output_shape == (10,)
    with pytest.raises(ValueError, match="784 input features") as info:
        layer_table(_Untraceable(), (1, 1, 20, 20))
    assert "\n" not in str(info.value)
