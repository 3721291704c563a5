"""jaxnet's benchmark harness, shipped with the library: agree first, then time.

``jaxnet bench`` (or ``python -m jaxnet.bench``) runs the built-in suite: autodiff
vs hand-written vs raw JAX for every case, each pair first proven to agree, timed
interleaved (A B A B ...) so machine drift cancels, ratios taken pair by pair; the
machine's matmul peak measured in the same run. ``jaxnet bench --module PKG.MOD``
runs the :class:`Case` objects a module of yours declares.

For your own implementations, :func:`compare` is the same gate and timing on any
functions of the same arguments::

    import jaxnet.bench
    res = jaxnet.bench.compare({"autodiff": grad_a, "hand": grad_b}, (params, x))
    print(res)              # a markdown table
    res.rows                # one dict per function
    res.to_json()

A function whose output disagrees with the reference's is refused
(:class:`RefusedToTime`, naming it and by how much), nothing timed.
"""

from ._case import Case, sgd
from ._compare import Comparison, compare
from ._main import main
from ._runner import RefusedToTime, environment, run_case

__all__ = [
    "Case",
    "Comparison",
    "RefusedToTime",
    "compare",
    "environment",
    "main",
    "run_case",
    "sgd",
]
