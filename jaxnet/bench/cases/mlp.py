"""Dense and MLP cases: softmax regression and the MLP 784-512-512-10, SGD steps.

Cases (``build(quick) -> Case``, registered in :data:`CASES`):

* ``dense_b128``, ``dense_b1024``: softmax regression, ``Dense(10)`` on 784 inputs.
* ``mlp_b128``, ``mlp_b1024``: ``Dense(512) Relu Dense(512) Relu Dense(10)``.

Every case: softmax cross-entropy with integer labels (mean over the batch), one SGD
step ``p - lr * g`` (lr 0.01), float32, inputs ``N(0, 1)``, labels uniform in 0..9.
Implementations: ``autodiff`` (``jax.value_and_grad`` of the jaxnet model), ``hand``
(:func:`jaxnet.analytic.value_and_grad`), ``raw`` (the same model in raw JAX: plain
dict parameters ``{"w1", "b1", ...}``, ``x @ w + b``, ``jax.nn.relu``,
``jax.nn.log_softmax``, ``jax.grad``; it takes jaxnet's parameter tree and re-keys it,
which is free under ``jit``, and its gradient is mapped back into jaxnet's layout for
the agreement check).

FLOP counting convention (:func:`mlp_flops`), batch ``B``, a layer ``k -> n``,
``C`` classes; one FLOP per scalar arithmetic operation, a transcendental (``exp``,
``log``) counts one, a reduction of ``m`` numbers counts ``m - 1``:

* forward: matmul ``2 B k n``; bias add ``B n``; ReLU ``B n`` (one max); the loss per
  row ``4 C``: max ``C - 1``, subtract ``C``, exp ``C``, sum ``C - 1``, log 1,
  minus the picked logit 1; the batch mean ``B`` (``B - 1`` adds, one divide).
* backward: the loss ``3 C`` per row (``p = e / s``, ``p - onehot``, times ``1/B``);
  every layer ``dW = x^T dy`` ``2 B k n`` and ``db`` ``(B - 1) n``; ``dx = dy W^T``
  ``2 B k n`` for every layer **but the first** (nothing asks for the input's
  gradient; "backward = 2 x forward" overcounts by that layer's ``2 B k n``); ReLU
  ``B n`` (one select).
* update: ``2`` per parameter (``lr * g``, ``p - ...``).

XLA's ``cost_analysis()`` counts the same matmuls (``2 m k n``), so it agrees with this
count to a fraction of a percent on these cases; the remainder is the elementwise and
reduction bookkeeping, which XLA counts per HLO op (see
``tests/bench/test_runner.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

import jaxnet
from jaxnet import analytic, losses

from .._case import Case, sgd

LR = 1e-2
IN_DIM = 784
CLASSES = 10
MLP_HIDDEN = (512, 512)


def mlp_flops(batch: int, dims: Sequence[int], relu: bool = True) -> dict[str, int]:
    """Exact FLOPs of one SGD step of a ReLU MLP with softmax cross-entropy.

    Args:
      batch: ``B``.
      dims: layer widths from input to classes, e.g. ``(784, 512, 512, 10)``.
      relu: a ReLU after every layer but the last.

    Returns:
      ``{"forward", "backward", "update", "step", "matmul"}`` (``step`` = forward +
      backward + update; ``matmul`` the matmul share of ``step``), by the convention of
      the module docstring.

    Example:
      >>> f = mlp_flops(1, (2, 3))  # one Dense(3) on 2 inputs, batch 1
      >>> f["forward"], f["backward"], f["update"]
      (28, 21, 18)
    """
    b, c = batch, dims[-1]
    fwd = bwd = mm = 0
    layers = list(zip(dims[:-1], dims[1:], strict=True))
    for i, (k, n) in enumerate(layers):
        last = i == len(layers) - 1
        fwd += 2 * b * k * n + b * n  # matmul + bias
        mm += 2 * b * k * n
        bwd += 2 * b * k * n + (b - 1) * n  # dW, db
        mm += 2 * b * k * n
        if i > 0:  # the first layer computes no input gradient
            bwd += 2 * b * k * n
            mm += 2 * b * k * n
        if relu and not last:
            fwd += b * n
            bwd += b * n
    fwd += b * 4 * c + b  # softmax cross-entropy per row, batch mean
    bwd += b * 3 * c
    n_params = sum(k * n + n for k, n in layers)
    upd = 2 * n_params
    return {
        "forward": fwd,
        "backward": bwd,
        "update": upd,
        "step": fwd + bwd + upd,
        "matmul": mm,
    }


def _raw_keys(n_layers: int) -> list[tuple[str, str]]:
    """(jaxnet layer key, raw suffix) per Dense: ``dense_0`` -> ``1``, ``dense_2`` ..."""
    return [(f"dense_{2 * i}", str(i + 1)) for i in range(n_layers)]


def _build(
    name: str,
    family: str,
    description: str,
    dims: Sequence[int],
    batch: int,
    quick: bool,
) -> Case:
    hidden = list(dims[1:-1])
    if hidden:
        layers: list[Any] = []
        for h in hidden:
            layers += [jaxnet.Dense(h), jaxnet.Relu()]
        model = jaxnet.serial(*layers, jaxnet.Dense(dims[-1]))
    else:
        model = jaxnet.Dense(dims[-1])
    _, params = model.init(jax.random.key(0), (None, dims[0]))
    x = jax.random.normal(jax.random.key(1), (batch, dims[0]), jnp.float32)
    y = jax.random.randint(jax.random.key(2), (batch,), 0, dims[-1], jnp.int32)
    loss = losses.softmax_cross_entropy_with_integer_labels
    update = sgd(LR)
    n_layers = len(dims) - 1
    keys = _raw_keys(n_layers) if hidden else None

    def objective(p: Any, x: Any, y: Any) -> Any:
        return jnp.mean(loss(model.apply(p, x), y))

    hand_vg = analytic.value_and_grad(model, loss)

    def step_autodiff(p: Any, x: Any, y: Any) -> Any:
        value, g = jax.value_and_grad(objective)(p, x, y)
        return update(p, g), value

    def step_hand(p: Any, x: Any, y: Any) -> Any:
        value, g = hand_vg(p, x, y)
        return update(p, g), value

    # ---- raw JAX: plain dict params, no jaxnet inside the objective
    def to_raw(p: Any) -> dict[str, Any]:
        if keys is None:
            return {"w1": p["w"], "b1": p["b"]}
        raw = {}
        for lk, s in keys:
            raw["w" + s], raw["b" + s] = p[lk]["w"], p[lk]["b"]
        return raw

    def from_raw(raw: dict[str, Any]) -> Any:
        if keys is None:
            return {"w": raw["w1"], "b": raw["b1"]}
        out: dict[str, Any] = {f"relu_{2 * i + 1}": {} for i in range(n_layers - 1)}
        for lk, s in keys:
            out[lk] = {"w": raw["w" + s], "b": raw["b" + s]}
        return out

    def raw_objective(raw: dict[str, Any], x: Any, y: Any) -> Any:
        h = x
        for i in range(1, n_layers + 1):
            h = h @ raw[f"w{i}"] + raw[f"b{i}"]
            if i < n_layers:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))

    def step_raw(p: Any, x: Any, y: Any) -> Any:
        raw = to_raw(p)
        value, g = jax.value_and_grad(raw_objective)(raw, x, y)
        return jax.tree.map(lambda a, b: a - LR * b, raw, g), value

    def grads_raw(p: Any, x: Any, y: Any) -> Any:
        return from_raw(jax.grad(raw_objective)(to_raw(p), x, y))

    def matmuls_only(p: Any, x: Any, y: Any) -> Any:
        """The step's matmuls alone, same shapes and chain: forward ``h @ w`` per
        layer, then ``dW = h^T g`` per layer and ``dx = g W^T`` for all but the
        first (the count of :func:`mlp_flops`); ``g`` starts as the logits."""
        ws = [p[lk]["w"] for lk, _ in keys] if keys else [p["w"]]
        hs = [x]
        for w in ws:
            hs.append(hs[-1] @ w)
        g, dws = hs[-1], []
        for i in reversed(range(len(ws))):
            dws.append(hs[i].T @ g)
            if i > 0:
                g = g @ ws[i].T
        return dws

    flops = mlp_flops(batch, dims)
    return Case(
        name=name,
        family=family,
        description=description,
        dtype="float32",
        shapes={
            "x": (batch, dims[0]),
            "y": (batch,),
            **{f"w{i + 1}": (k, n) for i, (k, n) in enumerate(zip(dims, dims[1:]))},
        },
        args=(params, x, y),
        forward=objective,
        steps={"autodiff": step_autodiff, "hand": step_hand, "raw": step_raw},
        grads={
            "autodiff": jax.grad(objective),
            "hand": lambda p, x, y: hand_vg(p, x, y)[1],
            "raw": grads_raw,
        },
        flops={
            "forward": flops["forward"],
            "step": flops["step"],
            "matmul": flops["matmul"],
        },
        matmuls=matmuls_only,
        quick=quick,
        notes=(
            f"SGD lr {LR}; softmax cross-entropy, integer labels; "
            f"matmuls {flops['matmul'] / flops['step']:.1%} of the step's FLOPs"
        ),
    )


def dense(batch: int) -> Callable[[bool], Case]:
    """The softmax-regression case at ``batch``: ``Dense(10)`` on 784 inputs."""

    def build(quick: bool = False) -> Case:
        return _build(
            f"dense_b{batch}",
            "dense",
            f"softmax regression Dense 784-10, batch {batch}",
            (IN_DIM, CLASSES),
            batch,
            quick=True,
        )

    return build


def mlp(batch: int, *, quick: bool = True) -> Callable[[bool], Case]:
    """The MLP 784-512-512-10 (ReLU) case at ``batch``."""
    dims = (IN_DIM, *MLP_HIDDEN, CLASSES)

    def build(quick_run: bool = False) -> Case:
        return _build(
            f"mlp_b{batch}",
            "mlp",
            f"MLP {'-'.join(map(str, dims))} ReLU, batch {batch}",
            dims,
            batch,
            quick=quick,
        )

    return build


#: ``name -> build(quick) -> Case``.
CASES: dict[str, Callable[[bool], Case]] = {
    "dense_b128": dense(128),
    "dense_b1024": dense(1024),
    "mlp_b128": mlp(128),
    "mlp_b1024": mlp(1024, quick=False),
}
