"""Read TensorBoard event files back into Python, so the book can show what TensorBoard would show.

Chapter 5 logs each run with ``torch.utils.tensorboard.SummaryWriter`` into its own folder under
``runs/`` (one scalar per tag and epoch, the epoch being the step). Those folders are build products that a
reader of the rendered book never sees, and a web page cannot embed a live TensorBoard; reading the event
files back lets :func:`mnist_helpers.plots.tensorboard_scalars` draw the same curves on the page.
"""

from __future__ import annotations

from pathlib import Path

BOOK_TAGS: tuple[str, ...] = (
    "loss/train",
    "loss/validation",
    "accuracy/train",
    "accuracy/validation",
    "learning_rate",
)
"""The tags chapter 5 writes for every epoch, in the order the book shows them."""


def read_scalars(run_dir: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar logged in one run folder: ``{tag: (steps, values)}``, steps in the order logged.

    ``run_dir`` is the folder given to ``SummaryWriter(log_dir=...)``. Its sub-folders are not read:
    TensorBoard treats each as a separate run, so a parent folder such as ``runs/05_batchnorm/full`` is an
    error that lists the run folders below it instead of a silent mix of runs.
    """
    folder = Path(run_dir)
    if not any(folder.glob("*tfevents*")):
        where = (
            "that folder does not exist"
            if not folder.is_dir()
            else "it holds no event files"
        )
        runs_inside = {
            event.parent.relative_to(folder).as_posix()
            for event in folder.rglob("*tfevents*")
        }
        hint = (
            f"; run folders inside it: {', '.join(sorted(runs_inside))}"
            if runs_inside
            else ""
        )
        raise FileNotFoundError(
            f"no TensorBoard logs in {folder.as_posix()}: {where}{hint}"
        )
    # Imported here so the rest of mnist_helpers (plots included) imports without the tensorboard package.
    from tensorboard.backend.event_processing import event_accumulator

    # size_guidance 0 keeps every point; the default keeps a random sample of at most 10,000 per tag.
    keep_all = {event_accumulator.SCALARS: 0}
    accumulator = event_accumulator.EventAccumulator(
        str(folder), size_guidance=keep_all
    )
    accumulator.Reload()
    scalars: dict[str, tuple[list[int], list[float]]] = {}
    for tag in accumulator.Tags()[event_accumulator.SCALARS]:
        events = accumulator.Scalars(tag)
        scalars[tag] = (
            [event.step for event in events],
            [event.value for event in events],
        )
    return scalars
