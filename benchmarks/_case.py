"""The protocol every gradient-step benchmark case follows (the runner consumes it).

A case is built by a function ``build(quick: bool) -> Case`` registered in
``benchmarks/cases.py``. Everything in a case is a pure function of ``args`` that the
runner jits itself, so trace, compile and steady state can be timed apart.

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
    """One benchmark case.

    Attributes:
      name: unique id used by ``--case``, e.g. ``"mlp_b128"``.
      family: groups cases for ``--case`` (``"mlp"`` selects every MLP case).
      description: one line for the report, e.g. ``"MLP 784-512-512-10, batch 128"``.
      dtype: ``"float32"``.
      shapes: named shapes for the JSON rows, e.g. ``{"x": (128, 784)}``.
      args: the arrays every function takes: usually ``(params, x, y)``.
      forward: ``forward(*args) -> loss`` (the jaxnet model's forward and loss).
      steps: ``name -> step(*args) -> (new_params, loss)``; see the module doc.
      grads: ``name -> grads(*args) -> gradient pytree`` for the agreement check
        (same keys as ``steps``; an extra without a gradient function is checked
        through its step's new parameters instead).
      flops: exact FLOP counts: ``"forward"`` and ``"step"`` (forward + backward +
        update; the first layer computes no input gradient), counted by hand.
      quick: included in ``--quick``.
      notes: anything the report should say (e.g. which XLA flag matters).
      matmuls: ``matmuls(*args) -> arrays``: the step's matmuls only (see the
        module doc); needs ``flops["matmul"]``, their exact FLOP count.
    """

    name: str
    family: str
    description: str
    dtype: str
    shapes: dict[str, tuple[int, ...]]
    args: tuple[Any, ...]
    forward: Callable[..., Any]
    steps: dict[str, Callable[..., Any]]
    grads: dict[str, Callable[..., Any]]
    flops: dict[str, int]
    quick: bool = True
    notes: str = ""
    matmuls: Callable[..., Any] | None = None


def sgd(lr: float) -> Callable[[Any, Any], Any]:
    """The update every step uses: ``p - lr * g`` leaf by leaf."""
    import jax

    def update(params: Any, grads: Any) -> Any:
        return jax.tree.map(lambda p, g: p - lr * g, params, grads)

    return update
