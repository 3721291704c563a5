"""The registry of benchmark cases, and ``--case`` name resolution.

:data:`CASES` maps a case name to ``build(quick: bool) -> Case`` (see
:mod:`jaxnet.bench._case`); it merges :mod:`jaxnet.bench.cases.mlp`,
:mod:`jaxnet.bench.cases.per_example` and the per-layer cases (:data:`LAYER_CASES`),
one module per layer family named after the family's module in :mod:`jaxnet.nn`
(``nn/_norm.py`` <-> ``cases/norm.py``: :mod:`~jaxnet.bench.cases.norm`,
:mod:`~jaxnet.bench.cases.attention`, :mod:`~jaxnet.bench.cases.transformer`,
:mod:`~jaxnet.bench.cases.conv`, :mod:`~jaxnet.bench.cases.recurrent`; their shared
pieces in :mod:`jaxnet.bench.cases._common`). The seed case (:mod:`jaxnet.bench.seed`)
does not follow the ``Case`` protocol (it times whole training runs); :func:`select`
names it :data:`SEED`. Nor does the peers case (:mod:`jaxnet.bench.peers`: the MLP in
jaxnet, raw JAX, Flax NNX, Equinox and PyTorch, and fresh-process init times), named
:data:`PEERS`, nor the deep case (:mod:`jaxnet.bench.deep`: a stack of transformer
blocks scanned vs unrolled, compile time vs depth, memory with remat), named
:data:`DEEP`, nor the verify family (:mod:`jaxnet.bench.verify`: the gradient checker's
verification targets), named :data:`VERIFY`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .._case import Case
from . import attention, conv, norm, recurrent, transformer
from .mlp import CASES as _MLP_CASES
from .per_example import CASES as _PER_EXAMPLE_CASES

SEED = "seed"
PEERS = "peers"
DEEP = "deep"
VERIFY = "verify"

#: ``name -> build(quick) -> Case``, in run order.
CASES: dict[str, Callable[[bool], Case]] = dict(_MLP_CASES)
#: ``name -> families`` it belongs to (without building it): the name's prefix before
#: the first ``_`` (``mlp_b128`` -> ``mlp``), plus ``layers`` for every case of
#: :data:`LAYER_CASES`.
FAMILIES: dict[str, set[str]] = {n: {n.split("_", 1)[0]} for n in CASES}
CASES.update(_PER_EXAMPLE_CASES)
FAMILIES.update({n: {"per_example"} for n in _PER_EXAMPLE_CASES})
#: The per-layer cases (``name -> build(quick, *, small=False) -> Case``), family by
#: family in run order: the ``layers`` family of ``--case``.
LAYER_CASES: dict[str, Callable[..., Case]] = {
    **norm.CASES,
    **attention.CASES,
    **transformer.CASES,
    **conv.CASES,
    **recurrent.CASES,
}
CASES.update(LAYER_CASES)
FAMILIES.update({n: {n.split("_", 1)[0], "layers"} for n in LAYER_CASES})


def families() -> list[str]:
    """Every family name ``--case`` accepts (``seed``, ``peers``, ``deep``, ``verify``
    included), sorted."""
    return sorted(set().union(*FAMILIES.values()) | {SEED, PEERS, DEEP, VERIFY})


def select(names: Iterable[str] | None) -> list[str]:
    """Resolve ``--case`` values to case names, in registry order, then deep, verify,
    peers, seed.

    Each value is an exact case name (``mlp_b128``), a family (``mlp``: every case
    whose name starts with ``mlp``; ``layers``: every case of :data:`LAYER_CASES`),
    ``peers``, ``deep``, ``verify``, ``seed``, or ``all``. No value means ``all``.

    Returns:
      Case names from :data:`CASES`, plus :data:`DEEP`, :data:`VERIFY`, :data:`PEERS`
      and :data:`SEED` when selected, without repeats.

    Raises:
      SystemExit: for a value that is none of these, listing the valid ones.

    Example:
      >>> select(["mlp_b128", "seed"])
      ['mlp_b128', 'seed']
    """
    wanted = list(names or ["all"])
    chosen: set[str] = set()
    for value in wanted:
        if value == "all":
            chosen |= set(CASES) | {PEERS, DEEP, VERIFY, SEED}
        elif value in (SEED, PEERS, DEEP, VERIFY) or value in CASES:
            chosen.add(value)
        elif value in families():
            chosen |= {n for n in CASES if value in FAMILIES[n]}
        else:
            raise SystemExit(
                f"jaxnet bench --case: unknown case or family {value!r}. Cases: "
                f"{', '.join(CASES)}; families: {', '.join(families())}; or 'all'."
            )
    extra = [n for n in (DEEP, VERIFY, PEERS, SEED) if n in chosen]
    return [n for n in CASES if n in chosen] + extra
