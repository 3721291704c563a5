"""``jaxnet.summary``: a Keras-style table of a model's layers, shapes and sizes."""

from __future__ import annotations

import math
from typing import Any

import jax

from .._types import ShapeTree
from ._layer import _PATH, _RECORD, Layer, fmt_shape


def _count(params: Any) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))


def summary(model: Layer, input_shape: ShapeTree, *, depth: int | None = None) -> str:
    """A table of every layer's parameter path, output shape and parameter count.

    Nothing is computed: ``init`` is traced under ``jax.eval_shape``, so even a large
    model is summarised instantly and without memory. Combinators appear as rows
    of their own (their count includes their sub-layers); the total is the model's.

    Args:
      model: any layer or model.
      input_shape: as for ``init`` (``None`` for a free batch axis), or an example.
      depth: show only rows at most this deep (``1``: the top-level layers).

    Returns:
      The table as a string; ``print`` it.

    Examples:
      >>> import jaxnet
      >>> print(jaxnet.summary(jaxnet.serial(jaxnet.Dense(8), jaxnet.Relu(),
      ...                                    jaxnet.Dense(2)), (None, 3)))
      layer    type                                           output shape  params
      -------  ---------------------------------------------  ------------  ------
      (model)  serial(Dense(out_dim=8), Relu(), Dense(out...  (None, 2)         50
      dense_0  Dense(out_dim=8)                               (None, 8)         32
      relu_1   Relu()                                         (None, 8)          0
      dense_2  Dense(out_dim=2)                               (None, 2)         18
      total: 50 parameters in 4 arrays
    """
    record: list[Any] = []
    token_r, token_p = _RECORD.set(record), _PATH.set(())
    try:
        _, params = jax.eval_shape(
            lambda k: model.init(k, input_shape), jax.random.key(0)
        )
    finally:
        _RECORD.reset(token_r)
        _PATH.reset(token_p)
    # A layer records after its sub-layers, and a residual after its branch at the
    # same path: the last record of a path (the outer layer) names its row.
    rows: dict[tuple[str, ...], tuple[str, Any, int]] = {}
    for path, desc, out_shape, p in record:
        rows[path] = (desc, out_shape, _count(p))
    ordered = sorted(rows.items(), key=lambda kv: _order_key(kv[0], record))
    table = []
    for path, (desc, out_shape, n) in ordered:
        if depth is not None and len(path) > depth:
            continue
        name = "  " * max(len(path) - 1, 0) + (path[-1] if path else "(model)")
        desc = desc if len(desc) <= 45 else desc[:42] + "..."
        table.append((name, desc, fmt_shape(out_shape), f"{n:,}"))
    head = ("layer", "type", "output shape", "params")
    widths = [max(len(head[i]), *(len(r[i]) for r in table)) for i in range(4)]
    lines = [
        "  ".join(
            h.ljust(w) if i < 3 else h.rjust(w)
            for i, (h, w) in enumerate(zip(head, widths))
        ),
        "  ".join("-" * w for w in widths),
    ]
    for r in table:
        lines.append(
            "  ".join(
                c.ljust(w) if i < 3 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths))
            )
        )
    n_arrays = len(jax.tree.leaves(params))
    lines.append(f"total: {_count(params):,} parameters in {n_arrays} arrays")
    return "\n".join(line.rstrip() for line in lines)


def _order_key(path: tuple[str, ...], record: list[Any]) -> list[int]:
    """Pre-order: a parent before its children, children in initialisation order."""
    firsts: dict[tuple[str, ...], int] = {}
    for i, (p, *_rest) in enumerate(record):
        for k in range(len(p) + 1):
            firsts.setdefault(p[:k], i)
    return [firsts[path[:k]] for k in range(len(path) + 1)]
