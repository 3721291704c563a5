"""A mixed-precision dtype policy for the training steps."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .._errors import DTypeError

# ------------------------------------------------------------------ dtype policy


@dataclasses.dataclass(frozen=True)
class Policy:
    """A mixed-precision policy: which dtype the parameters, compute and loss use.

    Inside a step the floating-point parameters and inputs are cast to
    ``compute_dtype``, the model runs in it, and its outputs are cast to
    ``output_dtype`` before the loss and metrics (so the loss is reduced in float32).
    The cast of the parameters is differentiated like any other op, so gradients and
    Optax updates arrive in the parameters' own dtype (float32): the master weights
    never lose precision. bfloat16 has float32's exponent range, so no loss scaling is
    needed (float16 would need it; it is not offered).

    Args:
      compute_dtype: dtype of the forward and backward computation, e.g.
        ``jnp.bfloat16``; ``None`` computes in the parameters' dtype.
      output_dtype: dtype the model's outputs are cast to before the loss.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> policy = jaxnet.Policy(compute_dtype=jnp.bfloat16)
      >>> policy.cast_to_compute({"w": jnp.ones(2)})["w"].dtype
      dtype(bfloat16)
    """

    compute_dtype: Any = None
    output_dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        for field in ("compute_dtype", "output_dtype"):
            value = getattr(self, field)
            if value is None:
                continue
            dt = jnp.dtype(value)
            if not jnp.issubdtype(dt, jnp.floating):
                raise DTypeError(
                    f"Policy: {field} must be a floating dtype such as jnp.bfloat16 or "
                    f"jnp.float32, got {dt}."
                )
            object.__setattr__(self, field, dt)

    @classmethod
    def of(cls, policy: Policy | str | Any | None) -> Policy | None:
        """``None``, a :class:`Policy`, or a compute dtype (``"bfloat16"``)."""
        if policy is None or isinstance(policy, Policy):
            return policy
        return cls(compute_dtype=policy)

    def _cast(self, tree: Any, dtype: Any) -> Any:
        if dtype is None:
            return tree

        def cast(leaf: Any) -> Any:
            if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating):
                return leaf.astype(dtype)
            return leaf

        return jax.tree.map(cast, tree)

    def cast_to_compute(self, tree: Any) -> Any:
        """Floating-point leaves cast to ``compute_dtype`` (others untouched)."""
        return self._cast(tree, self.compute_dtype)

    def cast_to_output(self, tree: Any) -> Any:
        """Floating-point leaves cast to ``output_dtype``."""
        return self._cast(tree, self.output_dtype)
