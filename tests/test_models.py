"""Architectures: output shapes and exact parameter counts, derived from the layer sizes."""

from __future__ import annotations

import pytest
import torch

from mnist_helpers.models import (
    BNCNN,
    CNN,
    MLP,
    MODEL_REGISTRY,
    BatchNormMLP,
    SimpleCNN,
    build_model,
    count_parameters,
)


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def batchnorm(n: int) -> int:
    return 2 * n  # weight and bias; running statistics are buffers, not parameters


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_every_model_maps_a_batch_to_ten_scores(name: str) -> None:
    model = build_model(name).eval()
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_mlp_parameter_counts() -> None:
    tutorial_a = (
        linear(784, 256) + linear(256, 512) + linear(512, 344) + linear(344, 10)
    )
    tutorial_b = linear(784, 128) + linear(128, 128) + linear(128, 10)
    assert count_parameters(MLP()) == tutorial_a == 512_466
    assert count_parameters(MLP((128, 128))) == tutorial_b


def test_batchnorm_mlp_parameter_count() -> None:
    expected = (
        linear(784, 300)
        + batchnorm(300)
        + linear(300, 100)
        + batchnorm(100)
        + linear(100, 10)
    )
    assert count_parameters(BatchNormMLP()) == expected


def test_cnn_parameter_count_and_log_probabilities() -> None:
    assert count_parameters(CNN()) == conv(1, 10, 5) + conv(10, 20, 3) + linear(
        20 * 10 * 10, 500
    ) + linear(500, 10)
    out = CNN()(torch.randn(4, 1, 28, 28))
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(4))


def test_simplecnn_has_467_818_parameters_not_140k() -> None:
    convs = conv(1, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3) + conv(64, 64, 3)
    expected = convs + linear(64 * 7 * 7, 128) + linear(128, 10)
    assert count_parameters(SimpleCNN()) == expected == 467_818


def test_logit_models_are_not_normalized() -> None:
    # A softmax inside the model (tutorial C's mistake) would make every row sum to 1.
    torch.manual_seed(0)
    for model in (MLP(), BatchNormMLP(), SimpleCNN()):
        sums = model.eval()(torch.randn(4, 1, 28, 28)).sum(dim=1)
        assert not torch.allclose(sums, torch.ones(4))


def test_count_parameters_can_skip_frozen_layers() -> None:
    model = MLP((8,))
    model.layers[1].requires_grad_(False)
    assert count_parameters(model) == linear(8, 10)
    assert count_parameters(model, trainable_only=False) == linear(784, 8) + linear(
        8, 10
    )


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("mlp", {"hidden": [32, 16]}),
        ("bnmlp", {"hidden": [20]}),
        ("cnn", {}),
        ("simplecnn", {"fc_dropout": 0.1}),
    ],
)
def test_config_rebuilds_the_same_architecture(name: str, config: dict) -> None:
    model = build_model(name, **config)
    for key, value in config.items():
        assert model.config[key] == value
    twin = type(model)(**model.config)
    assert [p.shape for p in twin.parameters()] == [p.shape for p in model.parameters()]


def test_build_model_rejects_unknown_names_listing_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        build_model("resnet")
    for name in MODEL_REGISTRY:
        assert name in str(info.value)


def test_bncnn_parameter_count_and_stages() -> None:
    widths, depths = (16, 32, 64), (2, 2, 1)
    convs = [
        (1, 16),
        (16, 16),
        (16, 32),
        (32, 32),
        (32, 64),
    ]  # no conv bias: BatchNorm follows every conv
    expected = sum(
        c_in * c_out * 9 + batchnorm(c_out) for c_in, c_out in convs
    ) + linear(64, 10)
    model = BNCNN(widths, depths)
    assert count_parameters(model) == expected
    assert (
        sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
        == len(widths) - 1
    )


@pytest.mark.parametrize(
    "widths, depths", [((16, 32), (2,)), ((16, 0), (1, 1)), ((), ())]
)
def test_bncnn_rejects_mismatched_or_empty_stages(widths, depths) -> None:
    with pytest.raises(ValueError, match="one positive depth per positive width"):
        BNCNN(widths, depths)
