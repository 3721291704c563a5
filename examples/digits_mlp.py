"""An MLP on scikit-learn's bundled 8x8 digits with ``jaxnet.fit``: checkpoints and resume.

Trains ``Dense(128) -> Relu -> Dropout -> Dense(128) -> Relu -> Dropout -> Dense(10)`` on
the flattened images (64 features, scaled to [0, 1]) with Optax's Adam on a stratified
80/20 split (fixed seed), through :func:`jaxnet.fit` with a progress bar (on a
terminal), validation on the held-out split, an accuracy metric and a checkpoint
written every epoch. Then it shows the rest of the training API:

* :func:`jaxnet.save` / :func:`jaxnet.load` (``like=`` the parameters) round-trip the
  trained parameters, and :func:`jaxnet.evaluate` scores the loaded ones;
* calling ``fit`` again with more epochs and the same checkpoint resumes where the
  first call stopped (``resumed_from``) instead of starting over;
* ``--plot curves.png`` draws the loss and accuracy curves of all the epochs with
  :func:`jaxnet.plot_history` (matplotlib; without it a note is printed instead).

Run: ``python examples/digits_mlp.py`` (needs ``pip install -e '.[examples]'``).
Exit code 0 iff the final test accuracy reaches ``--target``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

import jax
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
            "digits_mlp needs scikit-learn: pip install -e '.[examples]'"
        ) from exc
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return tuple(train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y))


def make_model(drop_rate: float = 0.2) -> jaxnet.Layer:
    """The MLP: 64 -> 128 -> 128 -> 10, ReLU and dropout after each hidden layer."""
    return jaxnet.serial(
        jaxnet.Dense(128),
        jaxnet.Relu(),
        jaxnet.Dropout(drop_rate),
        jaxnet.Dense(128),
        jaxnet.Relu(),
        jaxnet.Dropout(drop_rate),
        jaxnet.Dense(10),
    )


def train(
    epochs: int = 20,
    resume_epochs: int = 5,
    batch: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    checkpoint: str | None = None,
    quiet: bool = False,
    logs: str | None = None,
) -> dict[str, Any]:
    """Fit, save/load/evaluate, then resume for more epochs; return the numbers.

    ``checkpoint`` is the file ``fit`` writes every epoch (its directory must exist);
    ``None`` uses a temporary directory, removed at the end. The saved parameters go
    next to it, as ``params.jnc``. ``logs``: a directory where the built-in loggers
    write ``epochs.csv`` (one row per epoch) and ``steps.jsonl`` (every step's loss
    and accuracy, and the epoch rows); the resumed run continues both files.
    """
    if checkpoint is None:
        with tempfile.TemporaryDirectory(prefix="digits_mlp_") as tmp:
            return train(
                epochs,
                resume_epochs,
                batch,
                lr,
                seed,
                os.path.join(tmp, "run.jnc"),
                quiet,
                logs,
            )
    x_tr, x_te, y_tr, y_te = load(seed)
    model = make_model()
    if not quiet:
        print(jaxnet.summary(model, (None, 64)))
    loss = losses.softmax_cross_entropy_with_integer_labels
    metrics = {"accuracy": jaxnet.accuracy}

    def loggers() -> list[jaxnet.Callback]:
        if logs is None:
            return []
        os.makedirs(logs, exist_ok=True)
        return [
            jaxnet.CSVLogger(os.path.join(logs, "epochs.csv")),
            jaxnet.JSONLinesLogger(os.path.join(logs, "steps.jsonl")),
        ]

    def fit(total_epochs: int) -> jaxnet.FitResult:
        return jaxnet.fit(
            model,
            loss,
            optax.adam(lr),
            (x_tr, y_tr),
            key=jax.random.key(seed),
            epochs=total_epochs,
            batch_size=batch,
            validation_data=(x_te, y_te),
            metrics=metrics,
            checkpoint=checkpoint,
            # None: a live bar on a terminal, plain lines (one per epoch) elsewhere
            progress=False if quiet else None,
            callbacks=loggers(),
        )

    t0 = time.perf_counter()
    first = fit(epochs)
    seconds = time.perf_counter() - t0

    # save the parameters alone, load them back (checked against the same tree
    # structure, shapes and dtypes), and evaluate the loaded copy on the test split
    params_path = os.path.join(os.path.dirname(checkpoint), "params.jnc")
    jaxnet.save(params_path, first.params)
    loaded = jaxnet.load(params_path, like=first.params)
    test = jaxnet.evaluate(model, loss, loaded, (x_te, y_te), metrics=metrics)
    print(
        f"trained {epochs} epochs in {seconds:.1f} s; loaded {params_path}: "
        f"test loss {test['loss']:.4f}, test accuracy {test['accuracy']:.4f}"
    )

    # the same call with more epochs continues from the checkpoint
    t0 = time.perf_counter()
    second = fit(epochs + resume_epochs)
    resumed_seconds = time.perf_counter() - t0
    final = jaxnet.evaluate(model, loss, second.params, (x_te, y_te), metrics=metrics)
    print(
        f"resumed from epoch {second.resumed_from} of checkpoint {checkpoint}; "
        f"{len(second.history)} epochs, {second.step} steps in total "
        f"({resumed_seconds:.1f} s for the last {resume_epochs}): "
        f"test accuracy {final['accuracy']:.4f}"
    )
    return {
        "history": second.history,
        "loaded_test_acc": test["accuracy"],
        "test_acc": final["accuracy"],
        "resumed_from": second.resumed_from,
        "checkpoint": checkpoint,
        "n_test": len(y_te),
    }


def save_curves(history: list[dict[str, Any]], path: str, title: str) -> None:
    """Draw the curves with :func:`jaxnet.plot_history`; without matplotlib, say so."""
    try:
        jaxnet.plot_history(history, path, title=title)
    except ImportError as exc:  # matplotlib is an optional extra: train anyway
        print(f"note: no curves written to {path}: {exc}")
        return
    print(f"wrote the training curves to {path}")


def main(argv: list[str] | None = None) -> int:
    """Command line: train, print, and exit 0 iff the target accuracy is reached."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--resume-epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoint", default=None, help="checkpoint file (default: in a temp dir)"
    )
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--plot", default=None, metavar="PATH", help="write the training curves here"
    )
    parser.add_argument(
        "--logs", default=None, metavar="DIR", help="write epochs.csv, steps.jsonl here"
    )
    args = parser.parse_args(argv)
    result = train(
        args.epochs,
        args.resume_epochs,
        args.batch,
        args.lr,
        args.seed,
        args.checkpoint,
        args.quiet,
        args.logs,
    )
    if args.plot is not None:
        save_curves(result["history"], args.plot, "digits MLP (jaxnet.fit, resumed)")
    acc = result["test_acc"]
    ok = acc >= args.target
    print(
        f"test accuracy {acc:.4f} on {result['n_test']} held-out digits: "
        + ("reached" if ok else "MISSED")
        + f" the target {args.target:.2f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
