"""The registry of benchmark cases, and ``--case`` name resolution.

:data:`CASES` maps a case name to ``build(quick: bool) -> Case`` (see
:mod:`jaxnet.bench._case`); it merges :mod:`jaxnet.bench.cases_mlp` and, when present,
:mod:`jaxnet.bench.cases_layers`. The seed case (:mod:`jaxnet.bench.seed`) does not follow
the ``Case`` protocol (it times whole training runs); :func:`select` names it
:data:`SEED`. Nor does the peers case (:mod:`jaxnet.bench.peers`: the MLP in jaxnet, raw
JAX, Flax NNX, Equinox and PyTorch, and fresh-process init times), named
:data:`PEERS`, nor the deep case (:mod:`jaxnet.bench.deep`: a stack of transformer
blocks scanned vs unrolled, compile time vs depth, memory with remat), named
:data:`DEEP`, nor the verify family (:mod:`jaxnet.bench.verify`: the gradient checker's
verification targets), named :data:`VERIFY`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ._case import Case
from .cases_mlp import CASES as _MLP_CASES
from .cases_per_example import CASES as _PER_EXAMPLE_CASES

SEED = "seed"
PEERS = "peers"
DEEP = "deep"
VERIFY = "verify"

#: ``name -> build(quick) -> Case``, in run order.
CASES: dict[str, Callable[[bool], Case]] = dict(_MLP_CASES)
#: ``name -> families`` it belongs to (without building it): the name's prefix before
#: the first ``_`` (``mlp_b128`` -> ``mlp``), plus ``layers`` for every case of
#: :mod:`jaxnet.bench.cases_layers`.
FAMILIES: dict[str, set[str]] = {n: {n.split("_", 1)[0]} for n in CASES}
CASES.update(_PER_EXAMPLE_CASES)
FAMILIES.update({n: {"per_example"} for n in _PER_EXAMPLE_CASES})
try:
    from .cases_layers import CASES as _LAYER_CASES
except ModuleNotFoundError as e:  # the layer cases are optional
    if e.name not in (f"{__package__}.cases_layers", "cases_layers"):
        raise
else:
    CASES.update(_LAYER_CASES)
    FAMILIES.update({n: {n.split("_", 1)[0], "layers"} for n in _LAYER_CASES})


def families() -> list[str]:
    """Every family name ``--case`` accepts (``seed``, ``peers``, ``deep``, ``verify``
    included), sorted."""
    return sorted(set().union(*FAMILIES.values()) | {SEED, PEERS, DEEP, VERIFY})


def select(names: Iterable[str] | None) -> list[str]:
    """Resolve ``--case`` values to case names, in registry order, then deep, verify,
    peers, seed.

    Each value is an exact case name (``mlp_b128``), a family (``mlp``: every case
    whose name starts with ``mlp``; ``layers``: every case of ``cases_layers``),
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
