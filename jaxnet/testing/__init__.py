"""Gradient verification: the public checker, its tolerance table, and the registry of
every built-in layer and loss that the test battery and ``jaxnet check`` run over."""

from ._registry import LAYER_CASES as LAYER_CASES
from ._registry import LOSS_CASES as LOSS_CASES
from ._registry import LayerCase as LayerCase
from ._registry import LossCase as LossCase
from ._registry import check_l2_penalty as check_l2_penalty
from ._registry import check_layer as check_layer
from ._registry import check_loss as check_loss
from ._registry import layer_problem as layer_problem
from ._registry import loss_problem as loss_problem
from ._check import GradCheckRow as GradCheckRow
from ._check import GradReport as GradReport
from ._check import check_grads as check_grads
from ._tolerances import STEPS as STEPS
from ._tolerances import TOLERANCES as TOLERANCES
from ._tolerances import Tolerance as Tolerance
from ._tolerances import tolerance as tolerance

__all__ = [
    "GradCheckRow",
    "GradReport",
    "LAYER_CASES",
    "LOSS_CASES",
    "LayerCase",
    "LossCase",
    "STEPS",
    "TOLERANCES",
    "Tolerance",
    "check_grads",
    "check_l2_penalty",
    "check_layer",
    "check_loss",
    "layer_problem",
    "loss_problem",
    "tolerance",
]
