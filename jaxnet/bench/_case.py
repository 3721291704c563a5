"""The protocol every gradient-step benchmark case follows (the runner consumes it).

A built-in case is made by a function ``build(quick: bool) -> Case`` registered in
``jaxnet/bench/cases.py``; a user's cases come from ``jaxnet bench --module``.
Everything in a case is a pure function of ``args`` that the runner jits itself, so
trace, compile and steady state can be timed apart.

Implementations of the training step (``steps``), all ``step(*args) -> (new_params,
loss)`` with the same SGD update ``p - lr * g``:

* ``"autodiff"``: the jaxnet model with ``jax.grad``;
* ``"hand"``: the jaxnet model with its hand-written backward (``jaxnet.analytic``);
* ``"raw"``: the same model written in raw JAX (``jnp`` and ``jax.nn`` only, no
  jaxnet), with ``jax.grad``;
* optional extras (e.g. ``"autodiff_remat"``) that the report shows beside them.

``matmuls`` (optional) is the step's matrix products alone, with the same shapes and
dependency chain and nothing else: what this machine's matmul kernels can do for
this step, the ceiling its "% of peak" should be read against (timed interleaved
with the rest, reported as ``matmuls_only``).

``grads`` holds, for the same keys, ``grads(*args) -> gradient pytree`` in a common
layout (the raw implementation maps its gradient into jaxnet's parameter tree), so the
runner can prove agreement before timing; a pair that disagrees beyond the float32
"analytic" tolerance (times 10) is refused, not timed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

#: The result key of a case's matmuls-only function (:attr:`Case.matmuls`).
MATMULS = "matmuls_only"


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark case: implementations of the same step, to agree and then time.

    Public as :class:`jaxnet.bench.Case`: a module passed to ``jaxnet bench --module``
    declares ``CASES``, a list of these (or of functions ``build(quick) -> Case``).
    Every function is a pure function of ``args``; the runner jits it itself, so
    trace, compile and steady state are timed apart.

    Attributes:
      name: unique id used by ``--case``, e.g. ``"mlp_b128"``.
      args: the arrays every function takes: usually ``(params, x, y)``.
      steps: ``name -> step(*args) -> (new_params, loss)``; ``"autodiff"`` (the
        model under ``jax.grad``) is required, the reference every other one is
        checked against; ``"hand"`` (the hand-written backward) and ``"raw"`` (raw
        JAX) get their ratio columns; any other name is an extra, reported beside.
      grads: ``name -> grads(*args) -> gradient pytree`` for the agreement gate, in
        one layout for all (``"autodiff"`` required). A step without a gradient
        function is checked through its update ``args[0] - new_params`` instead.
      forward: ``forward(*args) -> loss``, timed for the grad/forward ratio;
        ``None`` leaves it out.
      flops: exact FLOP counts, ``"forward"`` and ``"step"`` (forward + backward +
        update), counted by hand, for GFLOP/s and the fraction of the machine's
        matmul peak; empty leaves the rates out.
      family: groups cases for ``--case`` (``"mlp"`` selects every MLP case).
      description: one line for the report, e.g. ``"MLP 784-512-512-10, batch 128"``.
      dtype: the precision of the gradients (``"float32"`` or ``"float64"``), which
        sets the agreement bound.
      shapes: named shapes for the JSON rows, e.g. ``{"x": (128, 784)}``.
      quick: included in ``--quick``.
      notes: anything the report should say (e.g. which XLA flag matters).
      matmuls: ``matmuls(*args) -> arrays``: the step's matmuls only (see the
        module doc); needs ``flops["matmul"]``, their exact FLOP count.
    """

    name: str
    args: tuple[Any, ...]
    steps: dict[str, Callable[..., Any]]
    grads: dict[str, Callable[..., Any]]
    forward: Callable[..., Any] | None = None
    flops: dict[str, int] = dataclasses.field(default_factory=dict)
    family: str = "user"
    description: str = ""
    dtype: str = "float32"
    shapes: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    quick: bool = True
    notes: str = ""
    matmuls: Callable[..., Any] | None = None


def sgd(lr: float) -> Callable[[Any, Any], Any]:
    """The update every step uses: ``p - lr * g`` leaf by leaf."""
    import jax

    def update(params: Any, grads: Any) -> Any:
        return jax.tree.map(lambda p, g: p - lr * g, params, grads)

    return update
