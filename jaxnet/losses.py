"""Losses: per-example values from ``(predictions, targets)``; the caller reduces.

Each loss's hand-written VJP is in :mod:`jaxnet.analytic`.
"""

from ._losses import absolute_error as absolute_error
from ._losses import binary_cross_entropy as binary_cross_entropy
from ._losses import half_squared_error as half_squared_error
from ._losses import huber as huber
from ._losses import l2_penalty as l2_penalty
from ._losses import mse as mse
from ._losses import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from ._losses import softmax_cross_entropy as softmax_cross_entropy
from ._losses import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from ._losses import squared_error as squared_error

__all__ = [
    "absolute_error",
    "binary_cross_entropy",
    "half_squared_error",
    "huber",
    "l2_penalty",
    "mse",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "squared_error",
]
