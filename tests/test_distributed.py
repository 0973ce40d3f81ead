"""Data-parallel training (chapter 13): sharding, the process group, and real 2-process gloo launches.

The launches run ``torchrun --standalone`` (a free port, so parallel runs cannot collide) with one thread per
process and a bounded timeout: a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mnist_helpers.checkpoints import load_checkpoint
from mnist_helpers.data import MNISTSplits, TensorSplit
from mnist_helpers.distributed import (
    ShardedBatches,
    ShardedSplit,
    World,
    launched_by_torchrun,
    per_rank_batch_size,
    process_group,
)
from mnist_helpers.recipes import RECIPES, fit_recipe

LAUNCH_TIMEOUT_S = 240
CPU = torch.device("cpu")
TORCHRUN = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nproc_per_node",
    "2",
]


def _launch(
    args: list[str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a command with the smoke profile and one thread per process; its result and its seconds."""
    env = {**os.environ, "MNIST_BOOK_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S
    )
    return result, time.perf_counter() - start


def _world(rank: int, world_size: int) -> World:
    return World(rank=rank, world_size=world_size, local_rank=rank, device=CPU)


def _indices(batches: ShardedBatches, split: TensorSplit) -> list[list[int]]:
    """Each batch as the positions of its images in ``split`` (images are made unique by the caller)."""
    return [images[:, 0, 0, 0].long().tolist() for images, _ in batches]


def _numbered_split(n: int) -> TensorSplit:
    images = (
        torch.arange(n, dtype=torch.float32)
        .reshape(n, 1, 1, 1)
        .expand(n, 1, 2, 2)
        .contiguous()
    )
    return TensorSplit(images, torch.arange(n) % 10)


def test_launched_by_torchrun_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "TORCHELASTIC_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    assert not launched_by_torchrun()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    assert launched_by_torchrun()


def test_process_group_outside_torchrun_says_how_to_launch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        with process_group(CPU):
            pass


def test_global_batch_is_split_evenly_or_refused() -> None:
    assert per_rank_batch_size(128, 2) == 64
    with pytest.raises(ValueError, match="multiple of 3"):
        per_rank_batch_size(128, 3)


def test_one_rank_sees_exactly_the_single_process_batches() -> None:
    split = _numbered_split(50)
    sharded = ShardedBatches(split, 8, _world(0, 1), seed=7)
    plain = split.batches(8, shuffle=True, seed=7)
    for _ in range(2):  # two epochs: the second must reshuffle in both
        assert _indices(sharded, split) == [
            b[0][:, 0, 0, 0].long().tolist() for b in plain
        ]


def test_two_ranks_share_each_global_batch_without_overlap() -> None:
    split = _numbered_split(64)
    ranks = [
        ShardedSplit(split, _world(r, 2)).batches(16, shuffle=True, seed=3)
        for r in range(2)
    ]
    single = split.batches(16, shuffle=True, seed=3)
    epochs = []
    for _ in range(2):
        per_rank = [_indices(b, split) for b in ranks]
        assert len(per_rank[0]) == len(per_rank[1]) == len(ranks[0]) == 4
        for k, global_batch in enumerate(single):
            union = sorted(per_rank[0][k] + per_rank[1][k])
            assert union == sorted(
                global_batch[0][:, 0, 0, 0].long().tolist()
            )  # the same images
            assert not set(per_rank[0][k]) & set(per_rank[1][k])
        epochs.append(per_rank[0])
    assert epochs[0] != epochs[1], "set_epoch must give every epoch a new shuffle"


def test_uneven_split_is_padded_to_equal_batches_per_rank() -> None:
    split = _numbered_split(37)
    shares = [
        _indices(ShardedSplit(split, _world(r, 2)).batches(8, shuffle=True), split)
        for r in range(2)
    ]
    assert (
        len(shares[0]) == len(shares[1]) == 5
    )  # 19 images each (one repeated), in batches of 8 / 2
    assert {i for share in shares for batch in share for i in batch} == set(range(37))


_STEP_WORKER = """
import sys, torch
from dataclasses import replace
from mnist_helpers.data import MNISTSplits, TensorSplit
from mnist_helpers.distributed import ShardedSplit, process_group, wrap_model
from mnist_helpers.recipes import RECIPES, fit_recipe

data, out = torch.load(sys.argv[1]), sys.argv[2]
train, val = TensorSplit(*data["train"]), TensorSplit(*data["val"])
with process_group("cpu") as world:
    model = RECIPES["mlp"].build_model()
    splits = MNISTSplits(ShardedSplit(train, world), val, val)
    one_step = replace(RECIPES["mlp"], epochs=1, batch_size=64)
    fit_recipe(one_step, wrap_model(model, world), splits, device="cpu")
    torch.save(model.state_dict(), f"{out}/rank{world.rank}.pt")
"""


def test_two_ranks_take_the_same_step_as_one_process(
    tmp_path: Path, toy_split: Callable[..., TensorSplit]
) -> None:
    train, val = toy_split(64, seed=1), toy_split(40, seed=2)
    torch.save(
        {"train": (train.images, train.labels), "val": (val.images, val.labels)},
        tmp_path / "data.pt",
    )
    (tmp_path / "worker.py").write_text(textwrap.dedent(_STEP_WORKER))
    result, _ = _launch([*TORCHRUN, "worker.py", "data.pt", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    rank0, rank1 = (
        torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)
    )
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0), (
        "the ranks' weights differ"
    )
    single = RECIPES["mlp"].build_model()
    initial = {name: value.clone() for name, value in single.state_dict().items()}
    fit_recipe(
        replace(RECIPES["mlp"], epochs=1, batch_size=64),
        single,
        MNISTSplits(train, val, val),
        device="cpu",
    )
    for name, value in single.state_dict().items():
        assert not torch.equal(value, initial[name])  # one step was taken...
        torch.testing.assert_close(
            rank0[name], value, atol=1e-5, rtol=1e-4
        )  # ...the same one, to rounding


_FAILING_WORKER = """
import torch, torch.distributed as dist
from mnist_helpers.distributed import process_group

with process_group("cpu") as world:
    if world.rank == 1:
        raise ValueError("this rank fails on purpose")
    dist.all_reduce(torch.ones(1))  # rank 0 waits for rank 1 here, which never comes
"""


def test_a_failing_rank_fails_the_launch_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(textwrap.dedent(_FAILING_WORKER))
    result, seconds = _launch([*TORCHRUN, "worker.py"], tmp_path)
    assert result.returncode != 0
    assert "rank 1 of 2 failed: this rank fails on purpose" in result.stderr
    assert seconds < LAUNCH_TIMEOUT_S / 2


@pytest.mark.needs_mnist
def test_cli_trains_on_two_processes_and_writes_one_checkpoint_evaluate_reads(
    tmp_path: Path,
) -> None:
    out = tmp_path / "checkpoints" / "mlp.pt"
    result, _ = _launch(
        [
            *TORCHRUN,
            "-m",
            "mnist_helpers",
            "train",
            "--model",
            "mlp",
            "--out",
            str(out),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("checkpoint written") == 1  # rank 0 alone reports...
    assert [p.name for p in out.parent.iterdir()] == [
        "mlp.pt"
    ]  # ...and writes, once, without leftovers
    _, metadata = load_checkpoint(out)
    assert metadata["world_size"] == 2 and metadata["backend"] == "gloo"

    evaluated, _ = _launch(
        [sys.executable, "-m", "mnist_helpers", "evaluate", "--checkpoint", str(out)],
        tmp_path,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    reported = float(re.search(r"test accuracy ([\d.]+)%", evaluated.stdout).group(1))
    assert reported == pytest.approx(
        100 * metadata["test_acc"], abs=0.005
    )  # the sharded test, reduced, is exact


@pytest.mark.needs_mnist
def test_a_diverged_two_process_run_saves_nothing_and_keeps_the_old_checkpoint(
    tmp_path: Path,
) -> None:
    out = tmp_path / "mlp.pt"
    out.write_bytes(b"the good model from yesterday")
    command = [
        *TORCHRUN,
        "-m",
        "mnist_helpers",
        "train",
        "--model",
        "mlp",
        "--lr",
        "1e5",
        "--out",
        str(out),
    ]
    result, _ = _launch(command, tmp_path)
    assert result.returncode != 0
    assert "training failed" in result.stderr or "loss became" in result.stderr, (
        result.stderr[-3000:]
    )
    assert out.read_bytes() == b"the good model from yesterday"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".pt"] == ["mlp.pt"]
