"""DP-SGD on scikit-learn's 8x8 digits: the same MLP trained privately and not.

Both runs train ``Dense(128) -> Relu -> Dense(10)`` on the flattened images with
plain SGD for the same epochs, batch size and learning rate, inside one jitted
``lax.scan`` per run (:func:`jaxnet.train_scan`):

* **non-private**: ``make_train_step(model, loss, optax.sgd(lr))``, the mean gradient
  of each batch;
* **DP-SGD** (Abadi et al., 2016): ``make_train_step(..., per_example=True)`` hands
  the optimizer the *per-example* gradients (``jax.vmap`` of ``jax.grad``, see
  :func:`jaxnet.per_example_grads`), and Optax's
  ``differentially_private_aggregate`` clips each example's gradient to L2 norm
  ``--clip``, sums them, adds Gaussian noise of standard deviation
  ``--noise * --clip`` and divides by the batch size; then ``optax.sgd(lr)``.

It prints both test accuracies and the privacy parameters. The privacy budget
(epsilon) is not computed here: that needs an accountant (e.g. Google's
``dp_accounting`` RDP accountant) and Poisson sampling of batches, where
``train_scan`` shuffles and takes fixed-size batches; the example shows the
mechanics and the accuracy cost, not a certified guarantee.

Run: ``python examples/digits_dpsgd.py`` (needs ``pip install -e '.[examples]'``).
Exit code 0 iff the private model's test accuracy reaches ``--target``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxnet
from jaxnet import losses


def load(seed: int = 0) -> tuple[np.ndarray, ...]:
    """The digits as ``(x_train, x_test, y_train, y_test)``; images flattened to 64."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # an optional extra
        raise SystemExit(
            "digits_dpsgd needs scikit-learn: pip install -e '.[examples]'"
        ) from exc
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return tuple(train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y))


def make_model() -> jaxnet.Layer:
    """64 -> 128 -> 10 with ReLU; no dropout (the DP noise regularises)."""
    return jaxnet.serial(jaxnet.Dense(128), jaxnet.Relu(), jaxnet.Dense(10))


def dp_sgd(lr: float, clip: float, noise: float, seed: int) -> Any:
    """Per-example clipping to ``clip``, Gaussian noise ``noise * clip``, then SGD."""
    return optax.chain(
        optax.contrib.differentially_private_aggregate(
            clip, noise, key=jax.random.key(seed)
        ),
        optax.sgd(lr),
    )


def run(
    data: tuple[np.ndarray, ...],
    *,
    private: bool,
    epochs: int,
    batch: int,
    lr: float,
    clip: float,
    noise: float,
    seed: int,
) -> dict[str, float]:
    """Train one model (privately or not); its test accuracy, loss and seconds."""
    x_tr, x_te, y_tr, y_te = data
    model = make_model()
    loss = losses.softmax_cross_entropy_with_integer_labels
    key = jax.random.key(seed)
    _, params = model.init(jax.random.fold_in(key, 1), (None, x_tr.shape[1]))
    optimizer = dp_sgd(lr, clip, noise, seed + 1) if private else optax.sgd(lr)
    step = jaxnet.make_train_step(model, loss, optimizer, per_example=private)
    t0 = time.perf_counter()
    ts, metrics = jaxnet.train_scan(
        step,
        params,
        optimizer.init(params),
        (jnp.asarray(x_tr), jnp.asarray(y_tr)),
        key=key,
        epochs=epochs,
        batch_size=batch,
    )
    jax.block_until_ready(ts.params)
    seconds = time.perf_counter() - t0
    test = jaxnet.evaluate(
        model, loss, ts.params, (x_te, y_te), metrics={"accuracy": jaxnet.accuracy}
    )
    return {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "final_train_loss": float(np.mean(metrics["loss"][-1])),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: train both, print, exit 0 iff the private model reaches target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--clip", type=float, default=1.0, help="per-example L2 clip")
    parser.add_argument(
        "--noise", type=float, default=1.0, help="noise multiplier (std / clip)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.85)
    args = parser.parse_args(argv)
    data = load(args.seed)
    settings = dict(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed)
    plain = run(data, private=False, clip=args.clip, noise=args.noise, **settings)
    private = run(data, private=True, clip=args.clip, noise=args.noise, **settings)
    print(
        f"digits MLP, {args.epochs} epochs of SGD (lr {args.lr}, batch {args.batch}) "
        f"on {len(data[0])} images, tested on {len(data[1])}:"
    )
    print(
        f"  non-private: test accuracy {plain['test_accuracy']:.4f}  "
        f"(test loss {plain['test_loss']:.4f}, {plain['seconds']:.1f} s)"
    )
    print(
        f"  DP-SGD (clip {args.clip}, noise multiplier {args.noise}): test accuracy "
        f"{private['test_accuracy']:.4f}  (test loss {private['test_loss']:.4f}, "
        f"{private['seconds']:.1f} s)"
    )
    ok = private["test_accuracy"] >= args.target
    print(
        f"DP-SGD test accuracy {private['test_accuracy']:.4f}: "
        + ("reached" if ok else "MISSED")
        + f" the target {args.target:.2f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
