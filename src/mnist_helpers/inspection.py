"""Looking inside a trained network: what each layer computes for an image, and which pixels decide.

A forward hook (``module.register_forward_hook``) reads any layer's output without touching the model's
code; autograd gives the gradient of a class score with respect to the input image (a saliency map) or to
a convolution's feature maps (Grad-CAM). Chapter 10 writes each of these out once in plain PyTorch; this
module keeps the tested versions that the chapter, and any later one, reuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnist_helpers.devices import model_device


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode (dropout off) and restore its previous mode afterwards.

    Every explanation must describe the network that makes predictions, not one with random dropout.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def forward_hooks(
    model: nn.Module, layers: Sequence[str]
) -> Iterator[dict[str, Tensor]]:
    """Record the output of each named layer (``"conv1"``, ``"fc1"``, ...) while the block runs.

    Yields a dict that every forward pass overwrites with ``{layer: output}``. The hooks are removed on
    leaving the block, even after an error: a forgotten hook keeps every batch's activations alive.
    """
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules or not name]
    if unknown:
        known = ", ".join(name for name in modules if name)
        raise ValueError(
            f"no layer named {', '.join(map(repr, unknown))} in {type(model).__name__}; "
            f"choose among: {known}"
        )
    outputs: dict[str, Tensor] = {}

    def keeper(
        name: str,
    ) -> Callable[
        [nn.Module, tuple[Tensor, ...], Tensor], None
    ]:  # one hook per layer name
        return lambda module, inputs, output: outputs.__setitem__(name, output)

    handles = [modules[name].register_forward_hook(keeper(name)) for name in layers]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def layer_outputs(
    model: nn.Module, images: Tensor, layers: Sequence[str], batch_size: int = 1024
) -> dict[str, Tensor]:
    """The outputs of ``layers`` for every image, in eval mode and without gradients, on the CPU.

    Batches keep memory bounded; the results are concatenated in the order of ``images``.
    """
    if len(images) == 0:
        raise ValueError(
            "no images given: pass a tensor of shape (N, 1, 28, 28) with N >= 1"
        )
    collected: dict[str, list[Tensor]] = {name: [] for name in layers}
    device = model_device(model)
    with eval_mode(model), forward_hooks(model, layers) as outputs, torch.no_grad():
        for batch in images.split(batch_size):
            model(batch.to(device))
            for name in layers:
                collected[name].append(outputs[name].detach().cpu())
    return {name: torch.cat(parts) for name, parts in collected.items()}


def _target_scores(scores: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
    """The score of each image's target class (its predicted class when ``target`` is None), summed.

    Summing over the batch is safe in eval mode: each image's score depends on that image alone, so the
    gradient of the sum with respect to one image is the gradient of that image's own score.
    """
    chosen = scores.argmax(dim=1) if target is None else target.to(scores.device)
    if chosen.shape != scores.shape[:1]:
        raise ValueError(
            f"target must hold one class per image ({scores.shape[0]}), got shape {tuple(chosen.shape)}"
        )
    return scores.gather(1, chosen[:, None]).sum(), chosen


def saliency(model: nn.Module, images: Tensor, target: Tensor | None = None) -> Tensor:
    """``|d score / d pixel|`` for each image's target class (default: the predicted one), shape (N, H, W).

    A large value means a small change of that pixel would move the class score most: the pixels the
    decision is most sensitive to, not necessarily the ones that "look like" the digit.
    """
    device = model_device(model)
    inputs = images.detach().to(device).requires_grad_(True)
    with eval_mode(model):
        total, _ = _target_scores(model(inputs), target)
        (gradient,) = torch.autograd.grad(total, inputs)
    return gradient.abs().amax(dim=1).cpu()


def grad_cam(
    model: nn.Module,
    images: Tensor,
    layer: str,
    target: Tensor | None = None,
    activation: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Grad-CAM heatmaps (N, H, W) in [0, 1] for each image's target class, at the input's resolution.

    Each feature map of ``layer`` is weighted by the mean gradient of the class score over that map (how
    much the class wants more of this feature), the weighted maps are summed, negative evidence is cut
    off by a ReLU, and the result is upsampled to the image and scaled so each image's maximum is 1.
    ``activation`` turns the layer's output into what the next layer receives, when the model applies it
    inside ``forward`` where no hook can see it (SimpleCNN's ``F.relu`` after each convolution: pass
    ``F.relu``); otherwise the raw, partly negative outputs would be weighted.
    """
    device = model_device(model)
    inputs = (
        images.detach().to(device).requires_grad_(True)
    )  # so the maps are in the graph even if frozen
    with eval_mode(model), forward_hooks(model, [layer]) as outputs:
        total, _ = _target_scores(model(inputs), target)
        maps = outputs[layer]
        (gradients,) = torch.autograd.grad(total, maps)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    received = activation(maps.detach()) if activation is not None else maps.detach()
    cam = F.relu((weights * received).sum(dim=1, keepdim=True))
    cam = F.interpolate(
        cam, size=images.shape[-2:], mode="bilinear", align_corners=False
    )[:, 0]
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return (cam / peak.clamp_min(1e-12)).cpu()
