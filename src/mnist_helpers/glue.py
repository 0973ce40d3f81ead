"""Store a value in a notebook's outputs so the book's prose can quote it.

The chapters glue every number they talk about, and the markdown pastes it with myst-nb's
``{glue:text}`` role, so no result is ever typed by hand. myst-nb's own ``glue`` would do the
gluing, but myst-nb is a *book-building* dependency: it is not on Google Colab, where readers run
the chapters. This module emits byte-for-byte the output myst-nb's ``glue`` emits (a display_data
output whose mime keys carry the ``application/papermill.record/`` prefix and whose metadata holds
``{"scrapbook": {"name": ..., "mime_prefix": ...}}``), so the Jupyter Book build reads it as if
myst-nb had written it.

Two deliberate differences from ``myst_nb.glue``:

* NumPy scalars and 0-d arrays/tensors are converted to plain Python numbers first. Their repr
  (``np.float64(98.2)``) is not a literal, so ``{glue:text}`name:.2f``` could not format it.
* A matplotlib Figure is always rendered to PNG here, whatever the matplotlib backend; IPython
  only knows how to draw figures when the inline backend is active.
"""

from __future__ import annotations

from typing import Any

GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value: Any, display: bool = False) -> None:
    """Glue ``value`` under ``name`` (e.g. ``"ch07_test_acc"``) into the running notebook.

    With ``display=False`` (the default) nothing is shown to the reader; the value only waits to
    be pasted by ``{glue:text}``, ``{glue:}`` or ``{glue:figure}``. With ``display=True`` the same
    single output is shown in the notebook as well, exactly as ``myst_nb.glue`` does it.
    Outside an IPython kernel (a plain ``python`` run) there is no notebook to store into, so the
    value is only printed when asked to be displayed.
    """
    from IPython import get_ipython
    from IPython.display import display as ipython_display

    value = _as_python_scalar(value)
    if get_ipython() is None:
        if display:
            print(value)
        return
    bundle, metadata = _mime_bundle(value)
    mime_prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": mime_prefix}
    ipython_display(
        {mime_prefix + mime: data for mime, data in bundle.items()},
        raw=True,
        metadata=metadata,
    )


def _as_python_scalar(value: Any) -> Any:
    """Turn NumPy scalars and 0-d arrays/tensors into Python numbers so their repr is a literal."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def _mime_bundle(value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Format ``value`` the way IPython would display it; Figures always as PNG + text."""
    from matplotlib.figure import Figure

    if isinstance(value, Figure):
        from IPython.core.pylabtools import print_figure

        # Same call (and defaults: bbox_inches="tight") as IPython's inline-backend PNG formatter.
        png = print_figure(value, "png", base64=True)
        return {"image/png": png, "text/plain": repr(value)}, {}
    from IPython.core.formatters import format_display_data

    bundle, metadata = format_display_data(value)
    return dict(bundle), dict(metadata)


def glue_all(prefix: str, **values: Any) -> None:
    """Glue every keyword as ``f"{prefix}_{name}"``: one short, hidden cell per section publishes its numbers.

    The chapters teach with their code cells; publishing numbers to the prose is bookkeeping, so each
    section gathers it into one cell (tagged ``remove-cell``, so the web page does not show it) instead of
    scattering ``glue`` calls through the code a reader studies.
    """
    for name, value in values.items():
        glue(f"{prefix}_{name}", value)
