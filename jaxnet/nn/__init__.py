"""Layers: the :class:`Layer` contract, the combinators and every layer family, each
forward beside its hand-written backward (``<family>_vjp``), the formula in the
docstring."""

from ._adapters import from_equinox as from_equinox
from ._adapters import from_flax as from_flax
from ._attention import MultiHeadAttention as MultiHeadAttention
from ._batchnorm import BatchNorm as BatchNorm
from ._combinators import FanInConcat as FanInConcat
from ._combinators import FanInSum as FanInSum
from ._combinators import FanOut as FanOut
from ._combinators import Identity as Identity
from ._combinators import parallel as parallel
from ._combinators import residual as residual
from ._combinators import serial as serial
from ._conv import Conv as Conv
from ._conv import ConvTranspose as ConvTranspose
from ._core import Dense as Dense
from ._core import Dropout as Dropout
from ._core import Elu as Elu
from ._core import Flatten as Flatten
from ._core import Gelu as Gelu
from ._core import Lambda as Lambda
from ._core import LeakyRelu as LeakyRelu
from ._core import LogSoftmax as LogSoftmax
from ._core import Relu as Relu
from ._core import Reshape as Reshape
from ._core import Selu as Selu
from ._core import Sigmoid as Sigmoid
from ._core import Silu as Silu
from ._core import Softmax as Softmax
from ._core import Softplus as Softplus
from ._core import Tanh as Tanh
from ._embedding import Embedding as Embedding
from ._embedding import LearnedPositionalEmbedding as LearnedPositionalEmbedding
from ._embedding import RotaryEmbedding as RotaryEmbedding
from ._embedding import SinusoidalPositionalEmbedding as SinusoidalPositionalEmbedding
from ._layer import Layer as Layer
from ._norm import GroupNorm as GroupNorm
from ._norm import LayerNorm as LayerNorm
from ._norm import RMSNorm as RMSNorm
from ._pool import AvgPool as AvgPool
from ._pool import GlobalAvgPool as GlobalAvgPool
from ._pool import MaxPool as MaxPool
from ._pool import SumPool as SumPool
from ._recurrent import RNN as RNN
from ._recurrent import Bidirectional as Bidirectional
from ._recurrent import Cell as Cell
from ._recurrent import GRUCell as GRUCell
from ._recurrent import LSTMCell as LSTMCell
from ._stack import Stack as Stack
from ._stack import hand_grad as hand_grad
from ._stack import remat as remat
from ._summary import summary as summary
from ._transformer import TransformerBlock as TransformerBlock

__all__ = [
    "AvgPool",
    "BatchNorm",
    "Bidirectional",
    "Cell",
    "Conv",
    "ConvTranspose",
    "Dense",
    "Dropout",
    "Elu",
    "Embedding",
    "FanInConcat",
    "FanInSum",
    "FanOut",
    "Flatten",
    "GRUCell",
    "Gelu",
    "GlobalAvgPool",
    "GroupNorm",
    "Identity",
    "LSTMCell",
    "Lambda",
    "Layer",
    "LayerNorm",
    "LeakyRelu",
    "LearnedPositionalEmbedding",
    "LogSoftmax",
    "MaxPool",
    "MultiHeadAttention",
    "RMSNorm",
    "RNN",
    "Relu",
    "Reshape",
    "RotaryEmbedding",
    "Selu",
    "Sigmoid",
    "Silu",
    "SinusoidalPositionalEmbedding",
    "Softmax",
    "Softplus",
    "Stack",
    "SumPool",
    "Tanh",
    "TransformerBlock",
    "from_equinox",
    "from_flax",
    "hand_grad",
    "parallel",
    "remat",
    "residual",
    "serial",
    "summary",
]
