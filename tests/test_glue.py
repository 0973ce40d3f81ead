"""mnist_helpers.glue must be indistinguishable from myst_nb.glue for the book build.

One notebook glues the same values twice, once with each implementation; after executing it,
myst-nb's own glue reader must find identical output bundles under both names.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

myst_glue = pytest.importorskip("myst_nb.ext.glue")

CELLS = [
    "import matplotlib.pyplot as plt\n"
    "import numpy as np\n"
    "from myst_nb import glue as myst_glue\n"
    "from mnist_helpers.glue import glue",
    "for impl, glue_fn in [('ours', glue), ('myst', myst_glue)]:\n"
    "    glue_fn(f'{impl}_float', 98.2125, display=False)\n"
    "    glue_fn(f'{impl}_int', 467818, display=False)\n"
    "    glue_fn(f'{impl}_str', 'cpu (2 threads)', display=False)\n"
    "    glue_fn(f'{impl}_shown', 0.5, display=True)",
    "fig, ax = plt.subplots(figsize=(2, 2))\n"
    "ax.plot([0, 1], [1, 0])\n"
    "ax.set_title('a line')\n"
    "glue('ours_fig', fig)\n"
    "myst_glue('myst_fig', fig, display=False)\n"
    "plt.close(fig)",
    # NumPy scalars: ours glues the plain number, so {glue:text}`x:.2f` can format it.
    "glue('ours_np', np.float64(0.25))\nglue('ours_item', np.array(3))",
]


def _execute(folder: Path, mpl_backend: str) -> dict[str, nbformat.NotebookNode]:
    """Run CELLS in a fresh kernel and return what myst-nb's glue reader extracts."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    with pytest.MonkeyPatch.context() as env:
        env.setenv(
            "MPLBACKEND", mpl_backend
        )  # the kernel inherits this process's environment
        NotebookClient(
            nb,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        ).execute()
    return myst_glue.extract_glue_data(
        nb, source_map=list(range(len(nb.cells))), logger=None
    )


@pytest.fixture(scope="module")
def glued(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """A kernel with the inline backend, as in Jupyter, Colab and `mnist_helpers.notebooks execute`."""
    return _execute(
        tmp_path_factory.mktemp("glue"), "module://matplotlib_inline.backend_inline"
    )


@pytest.mark.parametrize("kind", ["float", "int", "str", "shown", "fig"])
def test_same_bundle_as_myst_nb(
    glued: dict[str, nbformat.NotebookNode], kind: str
) -> None:
    ours, theirs = glued[f"ours_{kind}"], glued[f"myst_{kind}"]
    assert ours["data"] == theirs["data"]
    assert ours["metadata"]["scrapbook"]["name"] == f"ours_{kind}"
    assert theirs["metadata"]["scrapbook"]["name"] == f"myst_{kind}"
    for output in (ours, theirs):
        output["metadata"]["scrapbook"].pop("name")
    assert ours["metadata"] == theirs["metadata"]
    assert ours["output_type"] == theirs["output_type"] == "display_data"


def test_figure_is_png_even_with_agg_backend(tmp_path: Path) -> None:
    # conftest.py runs test kernels with MPLBACKEND=Agg, where IPython cannot draw figures.
    glued = _execute(tmp_path, "Agg")
    assert set(glued["ours_fig"]["data"]) == {"image/png", "text/plain"}
    assert glued["ours_fig"]["data"]["image/png"].startswith(
        "iVBORw0KGgo"
    )  # base64 of the PNG magic


def test_numpy_scalars_are_plain_literals(
    glued: dict[str, nbformat.NotebookNode],
) -> None:
    assert glued["ours_np"]["data"]["text/plain"] == "0.25"
    assert glued["ours_item"]["data"]["text/plain"] == "3"


def test_glue_all_glues_each_keyword_under_the_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mnist_helpers.glue as glue_module

    seen: list[tuple[str, object]] = []
    monkeypatch.setattr(
        glue_module,
        "glue",
        lambda name, value, display=False: seen.append((name, value)),
    )
    glue_module.glue_all("ch04", test_acc=0.98, params=12)
    assert seen == [("ch04_test_acc", 0.98), ("ch04_params", 12)]
