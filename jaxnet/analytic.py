"""Hand-written gradients: every layer's and loss's closed-form VJP, and backprop
through whole models.

These never call ``jax.grad``; they are the oracle that autodiff is tested against
and the baseline it is benchmarked against. Each formula is in its docstring.

Besides the VJPs (``*_vjp``) and the model-level :func:`vjp` and
:func:`value_and_grad`, this module re-exports the forward functions the VJPs are
written against (``dense``, ``conv``, ``layer_norm``, ``multi_head_attention``,
``lstm_cell``, ...), from the layer modules of :mod:`jaxnet.nn` where each sits beside
its backward, so a formula and its gradient can be imported from one place.
"""

from ._analytic import LOSS_VJPS as LOSS_VJPS
from ._analytic import loss_vjp as loss_vjp
from ._analytic import value_and_grad as value_and_grad
from ._analytic import vjp as vjp
from ._losses import absolute_error_vjp as absolute_error_vjp
from ._losses import binary_cross_entropy_vjp as binary_cross_entropy_vjp
from ._losses import half_squared_error_vjp as half_squared_error_vjp
from ._losses import huber_vjp as huber_vjp
from ._losses import l2_penalty_vjp as l2_penalty_vjp
from ._losses import mse_vjp as mse_vjp
from ._losses import (
    sigmoid_binary_cross_entropy_vjp as sigmoid_binary_cross_entropy_vjp,
)
from ._losses import softmax_cross_entropy_vjp as softmax_cross_entropy_vjp
from ._losses import (
    softmax_cross_entropy_with_integer_labels_vjp as softmax_cross_entropy_with_integer_labels_vjp,
)
from ._losses import squared_error_vjp as squared_error_vjp
from .nn._attention import attention_core as attention_core
from .nn._attention import attention_core_vjp as attention_core_vjp
from .nn._attention import attention_weights as attention_weights
from .nn._attention import multi_head_attention as multi_head_attention
from .nn._attention import multi_head_attention_vjp as multi_head_attention_vjp
from .nn._batchnorm import batch_norm_stats as batch_norm_stats
from .nn._batchnorm import batch_norm_vjp as batch_norm_vjp
from .nn._conv import conv as conv
from .nn._conv import conv_transpose as conv_transpose
from .nn._conv import conv_transpose_padding as conv_transpose_padding
from .nn._conv import conv_transpose_vjp as conv_transpose_vjp
from .nn._conv import conv_vjp as conv_vjp
from .nn._core import dense as dense
from .nn._core import dense_vjp as dense_vjp
from .nn._core import dropout_mask as dropout_mask
from .nn._core import dropout_vjp as dropout_vjp
from .nn._core import elu_vjp as elu_vjp
from .nn._core import gelu_exact_vjp as gelu_exact_vjp
from .nn._core import gelu_tanh_vjp as gelu_tanh_vjp
from .nn._core import leaky_relu_vjp as leaky_relu_vjp
from .nn._core import log_softmax_vjp as log_softmax_vjp
from .nn._core import relu_vjp as relu_vjp
from .nn._core import reshape_vjp as reshape_vjp
from .nn._core import selu_vjp as selu_vjp
from .nn._core import sigmoid_vjp as sigmoid_vjp
from .nn._core import silu_vjp as silu_vjp
from .nn._core import softmax_vjp as softmax_vjp
from .nn._core import softplus_vjp as softplus_vjp
from .nn._core import tanh_vjp as tanh_vjp
from .nn._embedding import embedding_lookup as embedding_lookup
from .nn._embedding import embedding_vjp as embedding_vjp
from .nn._embedding import learned_positional_vjp as learned_positional_vjp
from .nn._embedding import rotary as rotary
from .nn._embedding import rotary_tables as rotary_tables
from .nn._embedding import rotary_vjp as rotary_vjp
from .nn._embedding import sinusoidal_table as sinusoidal_table
from .nn._norm import group_norm as group_norm
from .nn._norm import group_norm_vjp as group_norm_vjp
from .nn._norm import layer_norm as layer_norm
from .nn._norm import layer_norm_vjp as layer_norm_vjp
from .nn._norm import rms_norm as rms_norm
from .nn._norm import rms_norm_vjp as rms_norm_vjp
from .nn._pool import avg_pool_divisor as avg_pool_divisor
from .nn._pool import global_avg_pool_vjp as global_avg_pool_vjp
from .nn._pool import max_pool as max_pool
from .nn._pool import max_pool_vjp as max_pool_vjp
from .nn._pool import sum_pool as sum_pool
from .nn._pool import sum_pool_vjp as sum_pool_vjp
from .nn._recurrent import gru_cell as gru_cell
from .nn._recurrent import gru_cell_vjp as gru_cell_vjp
from .nn._recurrent import lstm_cell as lstm_cell
from .nn._recurrent import lstm_cell_vjp as lstm_cell_vjp
from .nn._recurrent import rnn_bptt as rnn_bptt

__all__ = [
    "LOSS_VJPS",
    "absolute_error_vjp",
    "attention_core",
    "attention_core_vjp",
    "attention_weights",
    "avg_pool_divisor",
    "batch_norm_stats",
    "batch_norm_vjp",
    "binary_cross_entropy_vjp",
    "conv",
    "conv_transpose",
    "conv_transpose_padding",
    "conv_transpose_vjp",
    "conv_vjp",
    "dense",
    "dense_vjp",
    "dropout_mask",
    "dropout_vjp",
    "elu_vjp",
    "embedding_lookup",
    "embedding_vjp",
    "gelu_exact_vjp",
    "gelu_tanh_vjp",
    "global_avg_pool_vjp",
    "group_norm",
    "group_norm_vjp",
    "gru_cell",
    "gru_cell_vjp",
    "half_squared_error_vjp",
    "huber_vjp",
    "l2_penalty_vjp",
    "layer_norm",
    "layer_norm_vjp",
    "leaky_relu_vjp",
    "learned_positional_vjp",
    "log_softmax_vjp",
    "loss_vjp",
    "lstm_cell",
    "lstm_cell_vjp",
    "max_pool",
    "max_pool_vjp",
    "mse_vjp",
    "multi_head_attention",
    "multi_head_attention_vjp",
    "relu_vjp",
    "reshape_vjp",
    "rms_norm",
    "rms_norm_vjp",
    "rnn_bptt",
    "rotary",
    "rotary_tables",
    "rotary_vjp",
    "selu_vjp",
    "sigmoid_binary_cross_entropy_vjp",
    "sigmoid_vjp",
    "silu_vjp",
    "sinusoidal_table",
    "softmax_cross_entropy_vjp",
    "softmax_cross_entropy_with_integer_labels_vjp",
    "softmax_vjp",
    "softplus_vjp",
    "squared_error_vjp",
    "sum_pool",
    "sum_pool_vjp",
    "tanh_vjp",
    "value_and_grad",
    "vjp",
]
