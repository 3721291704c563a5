"""Formatting shared by the report tables: numbers, ranges and markdown tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def ms(t: dict[str, float] | None) -> str:
    return "" if t is None else f"{t['median'] * 1e3:.3f}"


def fmt_range(
    r: dict[str, float] | None, fmt: str = ".2f", *, scale: float = 1.0
) -> str:
    """``"median (min-max)"`` of a summary, each value times ``scale``; "" for None.

    Example:
      >>> fmt_range({"median": 0.002, "min": 0.001, "max": 0.003}, ".1f", scale=1e3)
      '2.0 (1.0-3.0)'
    """
    if r is None:
        return ""
    m, lo, hi = (r[k] * scale for k in ("median", "min", "max"))
    return f"{m:{fmt}} ({lo:{fmt}}-{hi:{fmt}})"


def mib(b: int | None) -> str:
    return "" if b is None else f"{b / 2**20:.2f}"


def md_table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table: the header, the separator, one line per row.

    Example:
      >>> print(md_table(["a", "b"], [[1, ""], ["x", 2.5]]))
      | a | b |
      |---|---|
      | 1 |  |
      | x | 2.5 |
    """
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
