"""Gradient verification: check any JAX function's derivatives, a user's custom rules
and a whole model layer by layer, plus the registry of every built-in layer and loss
that the test battery and ``jaxnet check`` run over.

* :func:`check_grads`: reverse mode, forward mode and second order against numerical
  derivatives, per parameter leaf, exhaustively (small leaves) or along random
  directions restricted to one leaf (large ones), with tolerances from the measured
  noise of the reference and a verdict per row (``ok`` / ``FAIL`` / ``noisy``).
* :func:`check_vjp`, :func:`check_jvp`: a ``jax.custom_vjp`` / ``jax.custom_jvp`` rule.
* :func:`check_model`: every sub-layer at the activations that reach it; names the
  faulty layer.
* :func:`taylor_test`: the convergence order of the first-order Taylor remainder.
* :class:`LayerCase`, :func:`check_layer`: declare a layer case and run the battery on
  it (``jaxnet check --module my_package.cases``).
"""

from ._blame import LayerCheck as LayerCheck
from ._blame import ModelReport as ModelReport
from ._blame import check_model as check_model
from ._case import LayerCase as LayerCase
from ._case import LossCase as LossCase
from ._case import away_from as away_from
from ._case import normal as normal
from ._check import EXHAUSTIVE_MAX as EXHAUSTIVE_MAX
from ._check import JACOBIAN_MAX as JACOBIAN_MAX
from ._check import check_grads as check_grads
from ._registry import LAYER_CASES as LAYER_CASES
from ._registry import LOSS_CASES as LOSS_CASES
from ._registry import check_l2_penalty as check_l2_penalty
from ._registry import check_layer as check_layer
from ._registry import check_loss as check_loss
from ._registry import layer_problem as layer_problem
from ._registry import loss_problem as loss_problem
from ._report import NOISY as NOISY
from ._report import GradCheckRow as GradCheckRow
from ._report import GradReport as GradReport
from ._rules import check_jvp as check_jvp
from ._rules import check_vjp as check_vjp
from ._taylor import TaylorResult as TaylorResult
from ._taylor import taylor_test as taylor_test
from ._tolerances import ROUNDING as ROUNDING
from ._tolerances import SAFETY as SAFETY
from ._tolerances import STEPS as STEPS
from ._tolerances import TOLERANCES as TOLERANCES
from ._tolerances import Tolerance as Tolerance
from ._tolerances import tolerance as tolerance

__all__ = [
    "EXHAUSTIVE_MAX",
    "GradCheckRow",
    "GradReport",
    "JACOBIAN_MAX",
    "LAYER_CASES",
    "LOSS_CASES",
    "LayerCase",
    "LayerCheck",
    "LossCase",
    "ModelReport",
    "NOISY",
    "ROUNDING",
    "SAFETY",
    "STEPS",
    "TOLERANCES",
    "TaylorResult",
    "Tolerance",
    "away_from",
    "check_grads",
    "check_jvp",
    "check_l2_penalty",
    "check_layer",
    "check_loss",
    "check_model",
    "check_vjp",
    "layer_problem",
    "loss_problem",
    "normal",
    "taylor_test",
    "tolerance",
]
