"""The book's one training loop on several processes: ``torchrun`` + ``DistributedDataParallel`` (chapter 13).

Nothing here trains on its own. ``torchrun`` starts one process per worker and tells each, through
environment variables, its *rank* (0 .. world size - 1) and where to meet the others. Each process then

- joins the process group (:func:`process_group`: gloo on CPUs, NCCL on CUDA GPUs);
- wraps its model in :class:`~torch.nn.parallel.DistributedDataParallel` (:func:`wrap_model`), which
  all-reduces (averages) the gradients during ``backward()``, so every rank takes the same optimizer step
  and the weights stay identical;
- trains on its own share of every epoch (:class:`ShardedSplit`, cut by torch's ``DistributedSampler``);
- runs the unchanged :func:`mnist_helpers.recipes.fit_recipe` and thus :func:`mnist_helpers.training.fit`.

Metrics are reduced across ranks (:func:`reduced_history`, :func:`evaluate_sharded`) and only rank 0 prints
and writes the checkpoint. :func:`train_distributed` puts these together for ``torchrun ... -m mnist_helpers
train``; the checkpoint it writes is an ordinary one that ``evaluate`` and ``predict`` load.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from mnist_helpers.data import MNISTSplits, TensorSplit, load_mnist_splits
from mnist_helpers.devices import native_bf16, pick_device, seed_everything
from mnist_helpers.profile import current_profile
from mnist_helpers.recipes import RECIPES, Recipe, fit_recipe, training_record
from mnist_helpers.saving import (
    check_free_space,
    refuse_useless,
    save_trained,
)
from mnist_helpers.training import History, LossFn, evaluate

# What torchrun sets in every worker's environment (LOCAL_RANK: the rank among this machine's workers).
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# How long a collective (an all-reduce, a barrier) waits for the other ranks before failing. The longest gap
# between two collectives in training is one validation pass (seconds); a rank that hangs for longer is
# broken, and a clear timeout error beats a job that waits forever. (A rank that *crashes* is handled
# sooner: torchrun stops the others as soon as one worker exits with an error.)
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


# Below this, weights move by nothing measurable in the few thousand steps of a book run: a model that learned
# nothing was held back by too small a step, and "try a lower learning rate" would be the wrong advice.
TOO_SMALL_LR = 1e-6


def refuse_useless_at(history: History, lr: float) -> None:
    """:func:`~mnist_helpers.saving.refuse_useless`, with the advice fixed when the learning rate was tiny.

    ``refuse_useless`` only sees the history, so it always blames a learning rate too high; with ``--lr
    1e-300`` that advice would send the user further the wrong way.
    """
    try:
        refuse_useless(history)
    except ValueError as error:
        if lr >= TOO_SMALL_LR:
            raise
        reason = str(error).split("; nothing was saved")[0]
        raise ValueError(
            f"{reason}; nothing was saved. The learning rate {lr:g} is too small to learn "
            "anything: try 1e-3 (--lr 1e-3), or leave --lr out for the recipe's"
        ) from None


class BestSoFar:
    """An ``on_epoch`` callback keeping a copy of the best epoch's weights while training runs.

    ``fit`` restores the best weights only when it returns; a run stopped midway (Ctrl-C, or the SIGTERM
    that ``timeout``, Slurm, Docker and systemd send) would otherwise have nothing worth saving.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._kept: tuple[History, dict[str, Tensor] | None] = (History(), None)

    @property
    def history(self) -> History:
        return self._kept[0]

    @property
    def best_state(self) -> dict[str, Tensor] | None:
        return self._kept[1]

    def __call__(self, history: History) -> None:
        state = self.best_state
        if history.best_epoch == history.epochs:
            state = copy.deepcopy(self.model.state_dict())
        # One assignment: a signal landing mid-update cannot pair a history with another epoch's weights.
        self._kept = (history, state)


class RankFailedError(RuntimeError):
    """One worker failed; the message names its rank, so the launcher's report says who and why."""


def launched_by_torchrun() -> bool:
    """True inside a worker that ``torchrun`` started (it sets RANK, WORLD_SIZE, LOCAL_RANK, ...)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or all(
        name in os.environ for name in TORCHRUN_VARIABLES
    )


@dataclass(frozen=True)
class World:
    """Who this process is among its peers, and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone prints, logs and writes files, so N processes do not write N copies."""
        return self.rank == 0


def backend_for(device: torch.device) -> str:
    """NCCL talks GPU to GPU over NVLink/InfiniBand; gloo moves CPU tensors over TCP (or shared memory)."""
    return "nccl" if device.type == "cuda" else "gloo"


def _world_from_environment(device: str | torch.device | None) -> World:
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise ValueError(
            f"not started by torchrun: {', '.join(missing)} not set; launch with "
            "`torchrun --nproc_per_node N -m mnist_helpers train ...`"
        )
    rank, world_size, local_rank = (
        int(os.environ[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    )
    chosen = pick_device(device)
    if (
        chosen.type == "cuda"
    ):  # one GPU per worker on each machine: the local rank picks it
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"worker {local_rank} on this machine has no GPU of its own (the machine has "
                f"{torch.cuda.device_count()}); start at most that many processes per machine "
                "(--nproc_per_node) or train on the CPU (--device cpu)"
            )
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    return World(rank, world_size, local_rank, chosen)


@contextmanager
def process_group(
    device: str | torch.device | None = None, timeout: timedelta = COLLECTIVE_TIMEOUT
) -> Iterator[World]:
    """Join the process group torchrun prepared, yield this rank's :class:`World`, leave it on exit.

    An error inside the block is re-raised as :class:`RankFailedError` naming the rank: torchrun's report
    of the failed launch then says which worker failed and why.
    """
    world = _world_from_environment(device)
    dist.init_process_group(
        backend_for(world.device), timeout=timeout
    )  # meets the others at MASTER_ADDR
    try:
        yield world
    except Exception as error:
        raise RankFailedError(
            f"rank {world.rank} of {world.world_size} failed: {error}"
        ) from error
    finally:
        dist.destroy_process_group()


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    """Each rank's share of a global batch; the global batch, and so the recipe's lr, stays the same."""
    if batch_size % world_size:
        raise ValueError(
            f"batch size {batch_size} does not split evenly over {world_size} processes; "
            f"use a multiple of {world_size}"
        )
    return batch_size // world_size


class ShardedBatches:
    """This rank's training batches: every epoch a new shuffle, of which this rank gets every
    world_size-th image, chosen by torch's ``DistributedSampler``.

    All ranks shuffle with the same seed, so their shares never overlap, and the sampler pads the epoch
    so every rank gets as many batches as the others (a rank with one batch more would wait forever for
    the others' gradients). ``fit`` knows nothing of samplers, so each pass calls ``set_epoch`` itself, as
    a hand-written loop does before each epoch; without it every epoch would repeat the first shuffle.
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        world: World,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        self.split, self.batch_size = split, batch_size
        self.sampler = DistributedSampler(
            range(len(split)),
            num_replicas=world.world_size,
            rank=world.rank,
            shuffle=shuffle,
            seed=seed,
        )
        self._passes = 0

    def __len__(self) -> int:
        return math.ceil(self.sampler.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.sampler.set_epoch(self._passes)
        self._passes += 1
        order = torch.tensor(list(self.sampler), device=self.split.images.device)
        for index in order.split(self.batch_size):
            yield self.split.images[index], self.split.labels[index]


@dataclass
class ShardedSplit:
    """A training split that hands out this rank's share: ``fit_recipe`` calls ``.batches`` unchanged.

    ``batch_size`` is the *global* batch, split evenly over the ranks (:func:`per_rank_batch_size`).
    """

    split: TensorSplit
    world: World

    def __len__(self) -> int:
        return len(self.split)

    def batches(
        self, batch_size: int, shuffle: bool = False, seed: int = 0
    ) -> ShardedBatches:
        per_rank = per_rank_batch_size(batch_size, self.world.world_size)
        return ShardedBatches(
            self.split, per_rank, self.world, seed=seed, shuffle=shuffle
        )


def wrap_model(model: nn.Module, world: World) -> DistributedDataParallel:
    """DDP copies rank 0's weights to every rank now, then averages gradients in every ``backward()``."""
    model.to(world.device)
    device_ids = [world.device.index] if world.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all ranks; every rank gets the same answer."""
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.tolist()


def reduced_history(history: History, world: World) -> History:
    """The run's history over all ranks: training loss and accuracy averaged (every rank saw as many
    images), an epoch's time the slowest rank's. Validation ran on the whole validation split on every
    rank with identical weights, so its numbers, and the best epoch chosen from them, already agree.
    """
    n = history.epochs
    sums = all_reduce_sum(history.train_loss + history.train_acc, world.device)
    slowest = torch.tensor(history.seconds, dtype=torch.float64, device=world.device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return replace(
        history,
        train_loss=[s / world.world_size for s in sums[:n]],
        train_acc=[s / world.world_size for s in sums[n:]],
        seconds=slowest.tolist(),
    )


def evaluate_sharded(
    model: nn.Module, split: TensorSplit, loss_fn: LossFn, world: World
) -> tuple[float, float]:
    """(loss, accuracy) on the whole ``split``, each rank evaluating a disjoint slice of it.

    Summing loss × images, correct answers and images over the ranks gives exactly the single-process
    numbers (averaging the ranks' accuracies would not, were the slices of unequal size).
    """
    index = torch.arange(len(split), device=split.labels.device).tensor_split(
        world.world_size
    )[world.rank]
    shard = TensorSplit(split.images[index], split.labels[index])
    loss, accuracy = evaluate(model, shard.batches(1024), loss_fn, device=world.device)
    loss_sum, correct, seen = all_reduce_sum(
        [loss * len(shard), accuracy * len(shard), len(shard)], world.device
    )
    return loss_sum / seen, correct / seen


def _plan(run: Recipe, world: World) -> str:
    """What rank 0 says before training: the recipe, the processes, and how the batch is shared."""
    share = per_rank_batch_size(run.batch_size, world.world_size)
    return (
        f"profile {current_profile()}: {run.name} on {world.world_size} processes "
        f"({backend_for(world.device)}, {world.device.type}, {torch.get_num_threads()} threads each); "
        f"global batch {run.batch_size} = {world.world_size} x {share}, lr {run.lr:g}, seed {run.seed}"
    )


def _epoch_line(history: History, epoch: int) -> str:
    return (
        f"epoch {epoch + 1:>3}: train loss {history.train_loss[epoch]:.4f} (all ranks) | val acc "
        f"{100 * history.val_acc[epoch]:.2f}% | {history.seconds[epoch]:.1f} s"
    )


def _fit_shards(
    run: Recipe,
    models: tuple[nn.Module, nn.Module],
    splits: MNISTSplits,
    world: World,
    on_interrupt: Callable[[BestSoFar, BaseException], None] | None,
) -> History:
    """Train this rank's shard of every batch (``models``: the model and its DDP wrapper); return the
    history reduced over all ranks. Stopped midway (Ctrl-C or SIGTERM), rank 0 hands its best epoch so
    far to ``on_interrupt``, and every rank re-raises."""
    model, ddp_model = models
    keeper = BestSoFar(model) if world.is_main else None
    try:
        history = fit_recipe(
            run,
            ddp_model,
            replace(splits, train=ShardedSplit(splits.train, world)),
            device=world.device,
            progress=None if world.is_main else False,
            on_epoch=keeper,
        )
    except KeyboardInterrupt as stop:
        if keeper is not None and on_interrupt is not None:
            on_interrupt(keeper, stop)
        raise
    return reduced_history(history, world)


def _model_for(
    recipe: Recipe, seed: int, world: World, out: Path
) -> tuple[nn.Module, nn.Module]:
    """The model (identical on every rank) and its DDP wrapper; rank 0 checks the disk first."""
    model = replace(recipe, seed=seed).build_model()
    if recipe.bf16 and native_bf16(world.device):
        # chapter 9's layout, before DDP lays out its gradient buckets (a no-op without 4-d weights)
        model.to(memory_format=torch.channels_last)
    if world.is_main:
        check_free_space(out, model)
    return model, wrap_model(model, world)


def _save_on_main(
    run: Recipe,
    model: nn.Module,
    history: History,
    test: tuple[float, float],
    world: World,
    out: Path,
    replace_worse: bool,
) -> str:
    """Rank 0's checkpoint record and save; returns the sentence that says where it went."""
    record = training_record(run, current_profile(), history, test)
    saved = save_trained(
        out,
        model,
        record,
        history,
        epochs_run=history.epochs,
        world_size=world.world_size,
        backend=backend_for(world.device),
        threads_per_process=torch.get_num_threads(),
        replace_worse=replace_worse,
    )
    return f"{saved.message()} (by rank 0 only)"


def train_distributed(
    name: str,
    *,
    epochs: int | None,
    batch_size: int,
    lr: float,
    seed: int,
    out: Path,
    train_images: int | None,
    test_images: int | None,
    device: str | torch.device | None = None,
    on_interrupt: Callable[[BestSoFar, BaseException], None] | None = None,
    replace_worse: bool = True,
) -> int:
    """``torchrun ... -m mnist_helpers train``: one worker's share of training recipe ``name``.

    Every rank loads the same data and builds the same model; DDP keeps the weights identical, the data
    is sharded, randomness that should differ between ranks (dropout) is seeded per rank, and rank 0
    reports the reduced metrics and writes the one checkpoint. Returns the exit status.

    Stopped midway (Ctrl-C, or SIGTERM raised as ``KeyboardInterrupt`` by the command line, which torchrun
    forwards to every worker), rank 0 hands its best epoch so far to ``on_interrupt`` to save; every rank
    then re-raises, so each exits with the signal's status and none writes anything else.
    ``replace_worse``: see :func:`mnist_helpers.saving.save_trained`.
    """
    recipe = RECIPES[name]
    with process_group(device) as world:
        say = print if world.is_main else (lambda *_: None)
        splits = load_mnist_splits(
            train_images=train_images,
            test_images=test_images,
            seed=seed,
            mean=recipe.mean,
            std=recipe.std,
            device=world.device,
        )
        model, ddp_model = _model_for(recipe, seed, world, out)
        # dropout masks differ per rank; the data order is the sampler's
        seed_everything(seed + world.rank)
        run = replace(recipe, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
        say(_plan(run, world))
        history = _fit_shards(run, (model, ddp_model), splits, world, on_interrupt)
        for epoch in range(history.epochs):
            say(_epoch_line(history, epoch))
        refuse_useless_at(
            history, lr
        )  # every rank holds the same reduced history, so all ranks stop together
        test = evaluate_sharded(model, splits.test, recipe.loss_fn, world)
        if world.is_main:
            where = _save_on_main(run, model, history, test, world, out, replace_worse)
        say(
            f"best epoch {history.best_epoch}; test accuracy {100 * test[1]:.2f}% on {len(splits.test):,} images"
        )
        if world.is_main:
            print(where)
    return 0
