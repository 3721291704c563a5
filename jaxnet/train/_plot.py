"""``plot_history``: training curves from :func:`jaxnet.fit`'s history, as an image file.

matplotlib is an optional extra (``pip install 'jaxnet[examples]'``). The figure is drawn
on a :class:`matplotlib.figure.Figure` with the Agg canvas directly, never through
``pyplot``, so the user's backend and pyplot's figure registry are left untouched.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._fit import FitResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: History keys that describe the run, not the model: never plotted by default.
BOOKKEEPING = ("epoch", "step", "seconds", "compile_seconds", "examples_per_second")

_Path = TypeVar("_Path", bound="str | os.PathLike[str]")


def _rows(history: Any) -> list[Mapping[str, Any]]:
    """The history as a list of row mappings, checked: non-empty, each with an epoch."""
    if isinstance(history, FitResult):
        history = history.history
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Iterable):
        raise ValueError(
            "plot_history: expected fit(...).history (a list of dicts, one per epoch) "
            f"or a FitResult, got {type(history).__name__}."
        )
    rows = list(history)
    if not rows:
        raise ValueError(
            "plot_history: expected a history with at least one epoch, got an empty "
            "one (did fit run for 0 epochs?)."
        )
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(
                f"plot_history: expected each history row to be a dict, got "
                f"{type(row).__name__} at row {i}."
            )
        if "epoch" not in row:
            raise ValueError(
                f"plot_history: expected every history row to have an 'epoch' key, "
                f"row {i} has keys {sorted(row)}."
            )
    return rows


def _available(rows: list[Mapping[str, Any]]) -> list[str]:
    """Every plottable name (``val_x`` folded into ``x``), ``loss`` first."""
    names: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key != "epoch":
                names[key[4:] if key.startswith("val_") else key] = None
    return sorted(names, key=lambda name: name != "loss")  # stable: keeps first-seen


def _names(rows: list[Mapping[str, Any]], metrics: Any) -> list[str]:
    """The metrics to draw: ``metrics`` checked against the history, or the defaults."""
    available = _available(rows)
    if metrics is None:
        names = [name for name in available if name not in BOOKKEEPING]
        if not names:
            raise ValueError(
                "plot_history: expected a history with a loss or metric to plot, got "
                f"only the keys {available}."
            )
        return names
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise ValueError(
            f"plot_history: expected metrics= to name at least one of {available}, "
            "got an empty list."
        )
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(str(name), available, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"plot_history: metrics= names {name!r}, which is not in the history; "
                f"expected one of {available}.{hint}"
            )
    return names


def _value(row: Mapping[str, Any], key: str) -> float:
    """``row[key]`` as a float; missing, None, inf and nan all become nan (a gap)."""
    value = row.get(key)
    if value is None:
        return math.nan
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"plot_history: expected a number for {key!r} at epoch {row['epoch']}, "
            f"got {value!r}."
        ) from None
    return value if math.isfinite(value) else math.nan


def _matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "plot_history needs matplotlib: pip install 'jaxnet[examples]'"
        ) from exc


def _figure(history: Any, metrics: Any = None, title: str | None = None) -> Figure:
    """The figure :func:`plot_history` saves: one axes per metric, up to 3 a row."""
    rows = _rows(history)
    names = _names(rows, metrics)
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    ncols = min(len(names), 3)
    nrows = -(-len(names) // ncols)
    fig = Figure(figsize=(4.5 * ncols, 3.5 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    epochs = [row["epoch"] for row in rows]
    for ax, name in zip(grid.flat, names):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if any(key in row for row in rows):
                ax.plot(epochs, [_value(row, key) for row in rows], ".-", label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    for ax in grid.flat[len(names) :]:
        fig.delaxes(ax)
    if title is not None:
        fig.suptitle(title)
    return fig


def plot_history(
    history: Any,
    path: _Path,
    *,
    metrics: str | Iterable[str] | None = None,
    title: str | None = None,
) -> _Path:
    """Draw training curves from ``fit(...).history`` and save them to ``path``.

    One subplot per metric, ``loss`` first: the training value and the validation
    value (``val_<name>``) against the epoch, on the same axes. Bookkeeping entries
    (``step``, ``seconds``, ``compile_seconds``, ``examples_per_second``) are left out
    unless ``metrics=`` names them. nan and inf values leave gaps in a curve.

    Args:
      history: :attr:`FitResult.history` (a list of dicts, one per epoch, each with an
        ``epoch``), or the :class:`FitResult` itself.
      path: the image file; its extension picks the format (``.png``, ``.pdf``,
        ``.svg``, ...). Its directory must exist.
      metrics: the names to plot (without ``val_``), in order; default: every loss and
        metric in the history.
      title: a title over the whole figure.

    Returns:
      ``path``.

    Raises:
      ValueError: an empty history, a row without ``epoch``, or a ``metrics=`` name
        that is not in the history (checked before matplotlib is imported).
      ImportError: matplotlib is not installed.

    Example (not run as a doctest, matplotlib being optional; tests/train/test_plot.py
    runs it)::

        import os, tempfile
        import jaxnet

        history = [
            {"epoch": 1, "loss": 0.9, "val_loss": 1.0, "accuracy": 0.6},
            {"epoch": 2, "loss": 0.5, "val_loss": 0.7, "accuracy": 0.8},
        ]
        path = os.path.join(tempfile.mkdtemp(), "curves.png")
        assert jaxnet.plot_history(history, path, title="run 1") == path

    Bad input is reported before anything is drawn:

    >>> plot_history([{"epoch": 1, "loss": 0.5, "accuracy": 0.9}], "x.png",
    ...              metrics=["acuracy"])
    Traceback (most recent call last):
    ...
    ValueError: plot_history: metrics= names 'acuracy', which is not in the history; expected one of ['loss', 'accuracy']. Did you mean 'accuracy'?
    """
    fig = _figure(history, metrics, title)
    try:
        fig.savefig(path)
    finally:
        fig.clear()  # the figure was never registered with pyplot: nothing else holds it
    return path
