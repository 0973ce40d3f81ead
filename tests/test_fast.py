"""The speed-ups wrap the model or the batches of the one training loop; they must not change what it learns."""

from __future__ import annotations

import pytest
import torch

from mnist_helpers.fast import Autocast, ChannelsLast, SchedulerEveryBatch, accelerate
from mnist_helpers.models import MLP, SimpleCNN
from mnist_helpers.training import fit


def test_scheduler_every_batch_steps_after_each_optimizer_step(toy_split) -> None:
    model = MLP((16,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    seen = []
    for _ in SchedulerEveryBatch(toy_split(40).batches(10), scheduler):
        seen.append(optimizer.param_groups[0]["lr"])  # the lr this batch trains with
        optimizer.step()
    assert seen == [1.0, 0.5, 0.25, 0.125]
    assert optimizer.param_groups[0]["lr"] == 0.0625  # stepped after the last batch too


def test_one_cycle_through_fit_runs_to_its_last_step_without_error(toy_split) -> None:
    model, split = MLP((16,)), toy_split(40)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batches = split.batches(10)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, epochs=2, steps_per_epoch=len(batches)
    )
    history = fit(
        model,
        SchedulerEveryBatch(batches, scheduler),
        split.batches(40),
        epochs=2,
        optimizer=optimizer,
    )
    assert history.lr[0] == pytest.approx(
        3e-3 / 25
    )  # OneCycle starts at max_lr / div_factor
    assert history.lr[1] > history.lr[0]


def test_channels_last_changes_the_layout_not_the_values(toy_split) -> None:
    ((x, y),) = list(toy_split(8).batches(8))
    ((x_last, y_last),) = list(ChannelsLast(toy_split(8).batches(8)))
    assert x_last.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, x_last) and torch.equal(y, y_last)


def test_autocast_computes_in_bf16_and_shares_the_weights() -> None:
    model = SimpleCNN()
    wrapped = Autocast(model)
    seen = []
    model.fc2.register_forward_hook(
        lambda module, inputs, output: seen.append(output.dtype)
    )
    logits = wrapped(torch.randn(2, 1, 28, 28))
    assert (
        seen == [torch.bfloat16] and logits.dtype == torch.float32
    )  # bf16 inside, fp32 for the loss
    assert wrapped.model is model and all(
        p is q for p, q in zip(wrapped.parameters(), model.parameters())
    )


def test_accelerate_leaves_an_mlp_alone_without_bf16(toy_split) -> None:
    model, split = MLP((16,)), toy_split(20)
    train, val = split.batches(10), split.batches(20)
    assert accelerate(model, train, val, bf16=False) == (model, train, val)
    step_model, train_b, _ = accelerate(model, train, val, bf16=True)
    assert (
        isinstance(step_model, Autocast) and train_b is train
    )  # no channels_last for a net without convs
