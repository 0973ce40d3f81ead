"""Tests for hooks, layer outputs, saliency and Grad-CAM on small models whose answers are known exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist_helpers.inspection import (
    eval_mode,
    forward_hooks,
    grad_cam,
    layer_outputs,
    saliency,
)
from mnist_helpers.models import SimpleCNN


def _simplecnn() -> SimpleCNN:
    torch.manual_seed(0)
    return SimpleCNN()


def test_forward_hooks_record_every_named_layer_and_are_removed_afterwards() -> None:
    model, x = _simplecnn().eval(), torch.randn(2, 1, 28, 28)
    with forward_hooks(model, ["conv1", "pool2", "fc1"]) as outputs:
        logits = model(x)
    assert {name: tuple(out.shape) for name, out in outputs.items()} == {
        "conv1": (2, 32, 28, 28),
        "pool2": (2, 64, 7, 7),
        "fc1": (2, 128),
    }
    torch.testing.assert_close(model.fc2(torch.relu(outputs["fc1"])), logits)
    assert all(not module._forward_hooks for module in model.modules())


def test_forward_hooks_are_removed_even_when_the_block_fails() -> None:
    model = _simplecnn()
    with pytest.raises(RuntimeError, match="boom"):
        with forward_hooks(model, ["conv2"]):
            raise RuntimeError("boom")
    assert not model.conv2._forward_hooks


def test_forward_hooks_name_an_unknown_layer_and_list_the_real_ones() -> None:
    with pytest.raises(ValueError, match=r"'conv9'.*choose among: conv1, conv2"):
        with forward_hooks(_simplecnn(), ["conv9"]):
            pass


def test_layer_outputs_match_the_layer_applied_by_hand_and_restore_training_mode() -> (
    None
):
    model, x = _simplecnn().train(), torch.randn(5, 1, 28, 28)
    outputs = layer_outputs(
        model, x, ["conv1", "fc2"], batch_size=2
    )  # 3 batches, concatenated in order
    assert model.training
    with torch.no_grad():
        torch.testing.assert_close(outputs["conv1"], model.conv1(x))
        torch.testing.assert_close(outputs["fc2"], model.eval()(x))
    with pytest.raises(ValueError, match="no images"):
        layer_outputs(model, x[:0], ["conv1"])


def test_eval_mode_restores_the_previous_mode() -> None:
    model = nn.Dropout().train()
    with eval_mode(model):
        assert not model.training
    assert model.training


def test_saliency_of_a_linear_model_is_the_absolute_weight_row_of_the_target_class() -> (
    None
):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.randn(4, 1, 4, 4)
    target = torch.tensor([0, 2, 1, 2])
    expected = model[1].weight.detach().abs()[target].reshape(4, 4, 4)
    torch.testing.assert_close(saliency(model, x, target), expected)
    predicted = model(x).argmax(1)
    torch.testing.assert_close(
        saliency(model, x), model[1].weight.detach().abs()[predicted].reshape(4, 4, 4)
    )
    with pytest.raises(ValueError, match="one class per image"):
        saliency(model, x, torch.tensor([0, 1]))


class _SumOfFeature(nn.Module):
    """One 1x1 convolution that copies the image; class 0 scores its sum, class 1 minus its sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.conv(x).sum(dim=(1, 2, 3))
        return torch.stack([total, -total], dim=1)


def test_grad_cam_shows_the_evidence_for_the_class_and_none_against_it() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 2:4, 5:7] = 2.0  # a bright blob: evidence for class 0, against class 1
    image[0, 0, 6, 1] = 1.0
    for_zero = grad_cam(_SumOfFeature(), image, "conv", torch.tensor([0]))
    assert for_zero.shape == (1, 8, 8)
    assert float(for_zero.max()) == pytest.approx(1.0)
    assert for_zero[0, 2:4, 5:7].min() == pytest.approx(1.0)  # the blob is the peak
    assert float(for_zero[0, 0, 0]) == 0.0 and float(
        for_zero[0, 6, 1]
    ) == pytest.approx(0.5)
    assert (
        float(grad_cam(_SumOfFeature(), image, "conv", torch.tensor([1])).abs().max())
        == 0.0
    )


def test_grad_cam_weights_what_the_next_layer_receives_when_given_the_activation() -> (
    None
):
    image = torch.zeros(1, 1, 8, 8)
    image[
        0, 0, 1, 1
    ] = -3.0  # negative output of the layer: evidence for class 1 if taken raw
    image[0, 0, 5, 5] = 1.0
    raw = grad_cam(_SumOfFeature(), image, "conv", torch.tensor([1]))
    assert float(raw[0, 1, 1]) == pytest.approx(1.0)
    rectified = grad_cam(
        _SumOfFeature(), image, "conv", torch.tensor([1]), activation=torch.relu
    )
    assert float(rectified.abs().max()) == 0.0  # after a ReLU nothing supports class 1
    rectified_zero = grad_cam(
        _SumOfFeature(), image, "conv", torch.tensor([0]), activation=torch.relu
    )
    assert (
        float(rectified_zero[0, 5, 5]) == pytest.approx(1.0)
        and float(rectified_zero[0, 1, 1]) == 0.0
    )


def test_grad_cam_on_simplecnn_is_at_input_resolution_in_zero_one_and_works_on_frozen_weights() -> (
    None
):
    model, x = _simplecnn(), torch.randn(3, 1, 28, 28)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    cam = grad_cam(model, x, "conv4")
    assert cam.shape == (3, 28, 28)
    assert float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0 + 1e-6
