"""Verify the gradients of real models with ``jaxnet.testing`` (docs/verification.md).

1. The tiny GPT of ``examples/tiny_gpt.py`` (Embedding + Stack of TransformerBlocks +
   LayerNorm + Dense, ~350k parameters at the default size): ``check_grads`` in reverse
   and forward mode over every parameter leaf, then ``check_model`` layer by layer.
2. A Flax linen MLP lifted with ``jaxnet.from_flax`` and composed with jaxnet layers.
3. A research layer with a hand-written ``jax.custom_vjp``: ``check_vjp``.

Run: ``python examples/verify_models.py`` (``--small`` for a quick run). Exits 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # float64 references for float32 models

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jaxnet  # noqa: E402
from jaxnet import losses  # noqa: E402
from jaxnet.testing import check_grads, check_model, check_vjp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_gpt import make_model  # noqa: E402


def check_tiny_gpt(width: int, depth: int, heads: int, seq: int, vocab: int) -> bool:
    model = make_model(vocab, width, depth, heads, seq)
    _, params = model.init(jax.random.key(0), (None, seq))
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    ids = jax.random.randint(jax.random.key(1), (2, seq), 0, vocab)
    n = sum(a.size for a in jax.tree.leaves(params))

    @jax.jit
    def loss(p):
        logits = model.apply(p, ids)
        targets = jnp.roll(ids, -1, axis=1)
        return jnp.mean(
            losses.softmax_cross_entropy_with_integer_labels(logits, targets)
        )

    t0 = time.perf_counter()
    report = check_grads(loss, params, modes=("rev", "fwd"), name="tiny GPT loss")
    print(report)
    print(f"tiny GPT: {n:,} parameters checked in {time.perf_counter() - t0:.1f} s")
    by_layer = check_model(model, params, ids)
    print(by_layer)
    return report.ok and by_layer.ok


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.tanh(nn.Dense(32, param_dtype=jnp.float64)(x))
        return nn.Dense(8, param_dtype=jnp.float64)(x)


def check_flax() -> bool:
    model = jaxnet.serial(jaxnet.from_flax(MLP()), jaxnet.Tanh(), jaxnet.Dense(3))
    _, params = model.init(jax.random.key(0), (None, 5))
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    x = jax.random.normal(jax.random.key(1), (16, 5), jnp.float64)
    report = check_grads(
        lambda p: jnp.sum(model.apply(p, x) ** 2), params, name="flax MLP"
    )
    print(report)
    by_layer = check_model(model, params, x)
    print(by_layer)
    return report.ok and by_layer.ok


#: sqrt(2 / pi) in full: the 10-digit 0.7978845608 makes the primal differ from
#: jax.nn.gelu by 5e-12 relative, which check_vjp's "primal vs reference" row catches.
_C = math.sqrt(2.0 / math.pi)


@jax.custom_vjp
def gelu_tanh(x):
    return 0.5 * x * (1 + jnp.tanh(_C * (x + 0.044715 * x**3)))


def _fwd(x):
    return gelu_tanh(x), x


def _bwd(x, g):
    c = _C
    t = jnp.tanh(c * (x + 0.044715 * x**3))
    d = 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)
    return (g * d,)


gelu_tanh.defvjp(_fwd, _bwd)


def check_custom_rule() -> bool:
    x = jax.random.normal(jax.random.key(0), (1000,), jnp.float64)
    report = check_vjp(
        gelu_tanh, x, reference=lambda x: jax.nn.gelu(x, approximate=True)
    )
    print(report)
    return report.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="a small GPT (quick)")
    args = parser.parse_args(argv)
    size = (16, 1, 2, 8, 11) if args.small else (128, 2, 4, 64, 65)
    ok = check_tiny_gpt(*size) & check_flax() & check_custom_rule()
    print("all verified" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
