"""The seed case: a single sigmoid neuron, its hand-derived gradients, and a Keras trap.

jaxnet started from a textbook-style article (``shared/SEED_CASE.md``) whose technical
core is one neuron trained by hand-derived backpropagation::

    z = w x + b,   y_hat = sigmoid(z),   2 input features, m = 100 samples,
    dL/dw = (y_hat - y) x,   dL/db = y_hat - y,   w := w - alpha dL/dw.

The text writes those gradients under the half squared error L = 1/2 (y_hat - y)^2, and
gives a Keras listing that feeds a linear ``Dense(1)`` into binary cross-entropy on
random labels. This script reproduces the case with jaxnet and checks its maths:

1. Training. The neuron (``serial(Dense(1), Sigmoid())``, binary cross-entropy, plain
   ``optax.sgd``, full batch, jitted step) on the listing's random labels reaches about
   50% accuracy (there is nothing to learn), and on a linearly separable set close to
   100%.
2. The formulas, checked in float64 with ``jaxnet.testing.check_grads``:
   (a) sigmoid'(z) = sigmoid(z) (1 - sigmoid(z)) holds;
   (b) for binary cross-entropy on the sigmoid output, dL/dw = (y_hat - y) x and
   dL/db = y_hat - y hold (with 1/m for the mean over samples);
   (c) for the half squared error the same formula is wrong (it drops sigmoid'(z)):
   the checker flags it, and the corrected dL/dw = (y_hat - y) y_hat (1 - y_hat) x
   passes.
3. The Keras trap. A linear output fed to a cross-entropy that expects probabilities
   is clipped to [1e-7, 1 - 1e-7]; every output on the wrong side of [0, 1] costs
   -log(1e-7) ~ 16.1 and gets no gradient, which is how Keras reported a loss of 7.83
   instead of ln 2 ~ 0.69. On logits, with ``sigmoid_binary_cross_entropy``, the loss is
   ~0.69 as it should be.

The script exits 0 only if every expectation holds. Run it with::

    .venv/bin/python examples/seed_single_layer.py [--epochs 100] [--lr 1.0] [--seed 0]

float64 is switched on with the ``jax.enable_x64(True)`` context manager inside
:func:`main` rather than ``jax.config.update`` at import, so that importing this module
(as the tests do) changes no global JAX setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

import jaxnet
from jaxnet import losses
from jaxnet.testing import GradReport, check_grads

Params = dict[str, Any]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]

#: Keras's ``backend.epsilon()``: the clipping margin of its probability losses.
KERAS_EPSILON = 1e-7

# ------------------------------------------------------------------------------ data


@functools.partial(jax.jit, static_argnames=("m", "dtype"))
def random_labels(
    key: jax.Array, m: int = 100, dtype: Any = jnp.float64
) -> tuple[jax.Array, jax.Array]:
    """The Keras listing's data: ``x ~ U[0, 1)^2`` and labels 0/1 at random.

    Args:
      key: a PRNG key.
      m: number of samples.
      dtype: float dtype of both arrays.

    Returns:
      ``(x, y)`` of shapes ``(m, 2)`` and ``(m, 1)``; ``y`` holds 0.0 and 1.0.
    """
    kx, ky = jax.random.split(key)
    x = jax.random.uniform(kx, (m, 2), dtype)
    y = jax.random.bernoulli(ky, 0.5, (m, 1)).astype(dtype)
    return x, y


@functools.partial(jax.jit, static_argnames=("m", "dtype"))
def separable(
    key: jax.Array, m: int = 100, dtype: Any = jnp.float64
) -> tuple[jax.Array, jax.Array]:
    """A linearly separable set in the unit square: two blobs across x1 + x2 = 1.

    Class 0 is centred at (0.25, 0.25), class 1 at (0.75, 0.75), standard deviation
    0.1: the classes sit 3.5 standard deviations either side of the line x1 + x2 = 1.

    Args:
      key: a PRNG key.
      m: number of samples.
      dtype: float dtype of both arrays.

    Returns:
      ``(x, y)`` of shapes ``(m, 2)`` and ``(m, 1)``; ``y`` holds 0.0 and 1.0.
    """
    ky, kn = jax.random.split(key)
    y = jax.random.bernoulli(ky, 0.5, (m, 1)).astype(dtype)
    x = 0.25 + 0.5 * y + 0.1 * jax.random.normal(kn, (m, 2), dtype)
    return x, y


# ----------------------------------------------------------------------- the neuron


def neuron(dtype: Any = jnp.float64) -> jaxnet.Layer:
    """The textbook's neuron: ``y_hat = sigmoid(x @ w + b)``, random ``w`` and ``b``.

    Params: ``{"dense_0": {"w": (2, 1), "b": (1,)}, "sigmoid_1": {}}``.
    """
    dense = jaxnet.Dense(1, b_init=jax.nn.initializers.normal(1.0), dtype=dtype)
    return jaxnet.serial(dense, jaxnet.Sigmoid())


@dataclasses.dataclass(frozen=True)
class SeedCase:
    """Everything one run draws from its seed (float64; x64 must be enabled)."""

    model: jaxnet.Layer  # the neuron, serial(Dense(1), Sigmoid())
    params: Params  # its random initial w and b: where the gradients are checked
    x: jax.Array  # (100, 2) random-label inputs, U[0, 1)
    y: jax.Array  # (100, 1) random labels
    xs: jax.Array  # (100, 2) separable inputs
    ys: jax.Array  # (100, 1) their labels
    z: jax.Array  # (100,) points for the sigmoid' check, N(0, 4^2)
    keras_key: jax.Array  # initialises the Keras listing's Dense(1)


def seed_case(seed: int) -> SeedCase:
    """Draw the data, the initial parameters and the check points from ``seed``."""
    k_data, k_sep, k_init, k_keras, k_z = jax.random.split(jax.random.key(seed), 5)
    model = neuron(jnp.float64)
    _, params = model.init(k_init, (None, 2))
    x, y = random_labels(k_data)
    xs, ys = separable(k_sep)
    z = 4.0 * jax.random.normal(k_z, (100,), jnp.float64)
    return SeedCase(model, params, x, y, xs, ys, z, k_keras)


def accuracy(outputs: jax.Array, y: jax.Array, threshold: float) -> float:
    """Fraction of samples with ``(outputs > threshold) == (y > 0.5)``."""
    return float(jnp.mean(((outputs > threshold) == (y > 0.5)).astype(outputs.dtype)))


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train`: losses before and after, final accuracy."""

    params: Params
    initial_loss: float
    loss: float
    accuracy: float
    outputs: jax.Array


def train(
    model: jaxnet.Layer,
    loss: LossFn,
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    lr: float,
    epochs: int,
    threshold: float,
) -> TrainResult:
    """Full-batch plain SGD for ``epochs`` steps, one jitted step per epoch.

    Args:
      model: the layer or model.
      loss: a per-example loss ``loss(outputs, y)``; the objective is its mean.
      params: initial parameters.
      x: inputs, ``(m, 2)``.
      y: labels, ``(m, 1)``.
      lr: the SGD learning rate ``alpha``.
      epochs: number of full-batch steps.
      threshold: an output above it predicts class 1 (0.5 for probabilities, 0 for
        logits).

    Returns:
      A :class:`TrainResult` evaluated on ``(x, y)`` (as Keras's ``evaluate``).
    """
    optimizer = optax.sgd(lr)

    def objective(p: Params) -> jax.Array:
        return jnp.mean(loss(model.apply(p, x), y))

    @jax.jit
    def step(p: Params, state: Any) -> tuple[Params, Any]:
        grads = jax.grad(objective)(p)
        updates, state = optimizer.update(grads, state, p)
        return optax.apply_updates(p, updates), state

    evaluate = jax.jit(lambda p: (objective(p), model.apply(p, x)))
    initial, _ = evaluate(params)
    state = optimizer.init(params)
    for _ in range(epochs):
        params, state = step(params, state)
    final, outputs = evaluate(params)
    return TrainResult(
        params=params,
        initial_loss=float(initial),
        loss=float(final),
        accuracy=accuracy(outputs, y, threshold),
        outputs=outputs,
    )


# ---------------------------------------------------------- the textbook's formulas


def sigmoid_derivative(z: jax.Array) -> jax.Array:
    """The textbook's sigma'(z) = sigma(z) (1 - sigma(z))."""
    s = jax.nn.sigmoid(z)
    return s * (1 - s)


def textbook_gradient(
    model: jaxnet.Layer, params: Params, x: jax.Array, y: jax.Array
) -> Params:
    """The text's ``dL/dw = (y_hat - y) x``, ``dL/db = y_hat - y``, averaged over m.

    Exact for the mean binary cross-entropy on the sigmoid output; not for the half
    squared error it is written under.
    """
    m = x.shape[0]
    delta = model.apply(params, x) - y  # (m, 1)
    return {
        "dense_0": {"w": x.T @ delta / m, "b": jnp.sum(delta, axis=0) / m},
        "sigmoid_1": {},
    }


def corrected_half_se_gradient(
    model: jaxnet.Layer, params: Params, x: jax.Array, y: jax.Array
) -> Params:
    """For the mean of ``1/2 (y_hat - y)^2``: ``dL/dw = (y_hat - y) y_hat (1 - y_hat) x``.

    The chain rule keeps sigma'(z) = y_hat (1 - y_hat), which the textbook drops.
    """
    m = x.shape[0]
    y_hat = model.apply(params, x)
    delta = (y_hat - y) * y_hat * (1 - y_hat)  # (m, 1)
    return {
        "dense_0": {"w": x.T @ delta / m, "b": jnp.sum(delta, axis=0) / m},
        "sigmoid_1": {},
    }


def check_sigmoid_derivative(z: jax.Array) -> GradReport:
    """(a) ``jax.grad`` of ``sum(sigmoid(z))`` against sigma(z) (1 - sigma(z)).

    The complex step applies: the sigmoid is real-analytic.
    """
    sigmoid = jaxnet.Sigmoid()

    def sum_of_sigmoid(z: jax.Array) -> jax.Array:
        return jnp.sum(sigmoid.apply({}, z))

    return check_grads(sum_of_sigmoid, z, analytic=sigmoid_derivative, method="complex")


def _objective(
    model: jaxnet.Layer, loss: LossFn, x: jax.Array, y: jax.Array
) -> Callable[[Params], jax.Array]:
    def objective(params: Params) -> jax.Array:
        return jnp.mean(loss(model.apply(params, x), y))

    return objective


def check_bce_gradient(
    model: jaxnet.Layer, params: Params, x: jax.Array, y: jax.Array
) -> GradReport:
    """(b) The textbook gradient against ``jax.grad`` of the mean binary cross-entropy."""
    f = _objective(model, losses.binary_cross_entropy, x, y)
    f.__name__ = "mean binary_cross_entropy(sigmoid(x w + b), y)"
    return check_grads(
        f,
        params,
        analytic=lambda p: textbook_gradient(model, p, x, y),
        method="central",
    )


def check_half_se_gradient(
    model: jaxnet.Layer, params: Params, x: jax.Array, y: jax.Array, *, corrected: bool
) -> GradReport:
    """(c) The textbook (or corrected) gradient against the mean half squared error."""
    f = _objective(model, losses.half_squared_error, x, y)
    f.__name__ = "mean 1/2 (sigmoid(x w + b) - y)^2"
    formula = corrected_half_se_gradient if corrected else textbook_gradient
    return check_grads(
        f, params, analytic=lambda p: formula(model, p, x, y), method="central"
    )


# ------------------------------------------------------------------ the Keras trap


@dataclasses.dataclass(frozen=True)
class KerasTrap:
    """The listing as written (linear output into BCE) and as meant (logits)."""

    linear: TrainResult
    logits: TrainResult
    wrong_side: int  # outputs clipped on the wrong side of [0, 1]: ~16 each
    wrong_side_loss: float  # their share of the mean loss
    clipped: int  # outputs outside [eps, 1 - eps]: no gradient flows through them
    m: int


def keras_trap(
    x: jax.Array, y: jax.Array, key: jax.Array, *, lr: float, epochs: int
) -> KerasTrap:
    """Train the Keras listing's model both ways, in float32 like Keras.

    ``Dense(1)`` with Keras's initialisers (Glorot-uniform ``w``, zero ``b``), no
    activation. Once into :func:`jaxnet.losses.binary_cross_entropy` with Keras's
    ``eps = 1e-7`` (the trap), once into
    :func:`jaxnet.losses.sigmoid_binary_cross_entropy` (the fix), same start.
    """
    x32, y32 = x.astype(jnp.float32), y.astype(jnp.float32)
    dense = jaxnet.Dense(1, w_init=jax.nn.initializers.glorot_uniform())
    _, params = dense.init(key, (None, 2))

    def keras_bce(p: jax.Array, t: jax.Array) -> jax.Array:
        return losses.binary_cross_entropy(p, t, eps=KERAS_EPSILON)

    run = dict(lr=lr, epochs=epochs)
    linear = train(dense, keras_bce, params, x32, y32, threshold=0.5, **run)
    logits = train(
        dense,
        losses.sigmoid_binary_cross_entropy,
        params,
        x32,
        y32,
        threshold=0.0,
        **run,
    )
    out, pos = linear.outputs, y32 > 0.5
    wrong = (pos & (out <= KERAS_EPSILON)) | (~pos & (out >= 1 - KERAS_EPSILON))
    outside = (out <= KERAS_EPSILON) | (out >= 1 - KERAS_EPSILON)
    per_example = keras_bce(out, y32)
    share = jnp.sum(jnp.where(wrong, per_example, jnp.zeros_like(per_example)))
    return KerasTrap(
        linear=linear,
        logits=logits,
        wrong_side=int(jnp.sum(wrong)),
        wrong_side_loss=float(share) / x.shape[0],
        clipped=int(jnp.sum(outside)),
        m=x.shape[0],
    )


# ---------------------------------------------------------------------------- main


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Reproduce the textbook's single-neuron case and check its maths."
    )
    parser.add_argument("--epochs", type=int, default=100, help="full-batch SGD steps")
    parser.add_argument("--lr", type=float, default=1.0, help="SGD learning rate")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
    return parser.parse_args(argv)


def _fill(text: str, width: int = 80) -> str:
    """Wrap ``text`` at ``width`` columns without breaking inside ``[...]``."""
    keep = re.sub(r"\[[^\]]*\]", lambda mo: mo.group(0).replace(" ", "\0"), text)
    return textwrap.fill(keep, width=width).replace("\0", " ")


def _section(title: str) -> None:
    print(f"\n== {title} ==")


def _run(args: argparse.Namespace) -> list[tuple[str, bool]]:
    """Run every part, print it, and return the (expectation, holds) pairs."""
    case = seed_case(args.seed)
    model, params0 = case.model, case.params
    x, y, xs, ys = case.x, case.y, case.xs, case.ys
    expectations: list[tuple[str, bool]] = []
    run = dict(lr=args.lr, epochs=args.epochs, threshold=0.5)

    _section("1. Training: serial(Dense(1), Sigmoid()), binary cross-entropy, SGD")
    print(f"m = {x.shape[0]} samples, 2 features, lr = {args.lr}, {args.epochs} epochs")
    rnd = train(model, losses.binary_cross_entropy, params0, x, y, **run)
    sep = train(model, losses.binary_cross_entropy, params0, xs, ys, **run)
    for label, r in (("random labels", rnd), ("separable set", sep)):
        print(
            f"{label:<14} loss {r.initial_loss:.4f} -> {r.loss:.4f}   "
            f"accuracy {r.accuracy:.2f}"
        )
    expectations.append(
        (
            f"random labels: accuracy {rnd.accuracy:.2f} in [0.35, 0.65]",
            0.35 <= rnd.accuracy <= 0.65,
        )
    )
    expectations.append(
        (f"separable set: accuracy {sep.accuracy:.2f} >= 0.95", sep.accuracy >= 0.95)
    )

    _section("2a. sigmoid'(z) = sigmoid(z) (1 - sigmoid(z))  (float64, complex step)")
    rep_a = check_sigmoid_derivative(case.z)
    print(rep_a)
    expectations.append(("(a) sigmoid' formula passes", rep_a.ok))

    _section("2b. BCE on the sigmoid output: dL/dw = (y_hat - y) x, dL/db = y_hat - y")
    print("(L = mean over the m samples, so both formulas carry 1/m)")
    rep_b = check_bce_gradient(model, params0, x, y)
    print(rep_b)
    expectations.append(("(b) textbook formula for cross-entropy passes", rep_b.ok))

    _section("2c. Half squared error: the textbook's dL/dw = (y_hat - y) x")
    rep_wrong = check_half_se_gradient(model, params0, x, y, corrected=False)
    print(rep_wrong)
    print(
        "jax.grad and central differences agree with each other and not with the "
        "formula:\nit drops sigmoid'(z) = y_hat (1 - y_hat) <= 1/4 from the chain rule."
    )
    expectations.append(
        ("(c) textbook formula for 1/2 (y_hat - y)^2 FAILS", not rep_wrong.ok)
    )
    print(
        "\nCorrected: dL/dw = (y_hat - y) y_hat (1 - y_hat) x, "
        "dL/db = (y_hat - y) y_hat (1 - y_hat)"
    )
    rep_fixed = check_half_se_gradient(model, params0, x, y, corrected=True)
    print(rep_fixed)
    expectations.append(("(c) corrected formula passes", rep_fixed.ok))

    _section("3. The Keras trap: Dense(1) with no sigmoid into binary cross-entropy")
    trap = keras_trap(x, y, case.keras_key, lr=args.lr, epochs=args.epochs)
    lin, lgt = trap.linear, trap.logits
    cost = -math.log(KERAS_EPSILON)
    print(
        f"linear output -> binary_cross_entropy(eps=1e-7): "
        f"loss {lin.initial_loss:.4f} -> {lin.loss:.4f}   accuracy {lin.accuracy:.2f}"
    )
    print(
        f"logits        -> sigmoid_binary_cross_entropy:   "
        f"loss {lgt.initial_loss:.4f} -> {lgt.loss:.4f}   accuracy {lgt.accuracy:.2f}"
        f"   (ln 2 = {math.log(2):.4f})"
    )
    lo, hi = float(jnp.min(lin.outputs)), float(jnp.max(lin.outputs))
    explanation = (
        "What happens: binary cross-entropy expects probabilities, but the linear "
        f"output is any real number (here in [{lo:.2f}, {hi:.2f}]). The loss clips it "
        f"to [1e-7, 1 - 1e-7]: {trap.clipped} of {trap.m} outputs lie outside that "
        "range, and the clip passes them no gradient, so SGD cannot pull them back. "
        f"{trap.wrong_side} of them are on the wrong side for their label and cost "
        f"about -log(1e-7) = {cost:.2f} each: together {trap.wrong_side_loss:.2f} of "
        f"the {lin.loss:.2f} reported. Keras's 7.83 is the same mechanism with about "
        "half the samples on the wrong side."
    )
    if lin.loss > lin.initial_loss:
        explanation += (
            f" Training made it worse ({lin.initial_loss:.2f} -> {lin.loss:.2f}): the "
            "outputs still inside [0, 1] move the shared w and b and push other "
            "outputs out of range, where they freeze."
        )
    explanation += (
        " The number counts outputs that escaped [0, 1]; it says nothing about the "
        "fit. On logits the loss is a real cross-entropy: with random labels there "
        "is nothing to learn, and it stays near ln 2, the cost of a coin flip."
    )
    print("\n" + _fill(explanation))
    expectations.append(
        (
            f"logits on random labels: loss {lgt.loss:.4f} within 0.1 of ln 2",
            abs(lgt.loss - math.log(2)) < 0.1,
        )
    )
    return expectations


def main(argv: Sequence[str] | None = None) -> int:
    """Run the seed case; return 0 iff every expectation holds, else 1.

    Args:
      argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
      The process exit code.
    """
    args = _parse(argv)
    with jax.enable_x64(True):
        expectations = _run(args)
    _section("Expectations")
    for text, holds in expectations:
        print(f"[{'ok' if holds else 'FAILED'}] {text}")
    failed = [text for text, holds in expectations if not holds]
    if failed:
        print(f"\n{len(failed)} expectation(s) failed: " + "; ".join(failed))
        return 1
    print("\nall expectations hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
