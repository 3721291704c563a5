"""A training run for ``test_resume.py`` to kill and resume (run as a subprocess).

Trains a tiny ``Dense -> BatchNorm -> Relu -> Dropout -> Dense`` classifier with Adam on
synthetic data from a fixed seed, through :func:`jaxnet.fit` with a checkpoint, then
saves the final parameters with :func:`jaxnet.save`. Dropout draws a key every step
and BatchNorm carries running statistics, so an exact resume must restore the model
state, the optimizer state and the step counter, and replay the same keys.

``--slow SECONDS`` makes every progress write sleep, so that the parent process can
kill the run at an arbitrary point; the math is the same with or without it. Each
progress write also prints ``PROGRESS <line>`` on stdout (flushed), and the end of the
run prints ``RESUMED_FROM <epoch>`` and ``STEP <step>``.

Usage: ``python tests/train/_resume_worker.py CHECKPOINT OUT [--epochs E] [--slow S]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxnet

N, FEATURES, CLASSES, BATCH, STEPS_PER_CALL = 512, 16, 4, 32, 4


def data() -> tuple[np.ndarray, np.ndarray]:
    """512 examples, 16 features, 4 classes, from a fixed seed."""
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(N, FEATURES)).astype(np.float32)
    w = rng.normal(size=(FEATURES, CLASSES)).astype(np.float32)
    y = np.argmax(x @ w + 0.5 * rng.normal(size=(N, CLASSES)), axis=1).astype(np.int32)
    return x, y


def model() -> jaxnet.Layer:
    return jaxnet.serial(
        jaxnet.Dense(32),
        jaxnet.BatchNorm(momentum=0.9),
        jaxnet.Relu(),
        jaxnet.Dropout(0.25),
        jaxnet.Dense(CLASSES),
    )


class SlowStream:
    """A progress stream that echoes each write to stdout and then sleeps."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def write(self, text: str) -> int:
        print("PROGRESS", text.strip("\r\n").strip(), flush=True)
        if self.delay > 0:
            time.sleep(self.delay)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--slow", type=float, default=0.0)
    args = parser.parse_args(argv)
    x, y = data()
    result = jaxnet.fit(
        model(),
        jaxnet.losses.softmax_cross_entropy_with_integer_labels,
        optax.adam(1e-2),
        (jnp.asarray(x), jnp.asarray(y)),
        key=jax.random.key(7),
        epochs=args.epochs,
        batch_size=BATCH,
        steps_per_call=STEPS_PER_CALL,
        checkpoint=args.checkpoint,
        checkpoint_every=1,
        progress=True,
        progress_interval=0,  # a line after every call: each one slows the run
        stream=SlowStream(args.slow),
    )
    jaxnet.save(args.out, {"params": result.params, "state": result.state})
    print("RESUMED_FROM", result.resumed_from, flush=True)
    print("STEP", result.step, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
