"""jaxnet: pure-function neural-network layers and losses on JAX, each with a
hand-written analytic gradient that the tests prove ``jax.grad`` equals."""

from importlib.metadata import PackageNotFoundError, version

from . import analytic as analytic
from . import checkpoint as checkpoint
from . import initializers as initializers
from . import losses as losses
from . import nn as nn
from . import testing as testing
from . import train as train
from ._errors import CheckpointError as CheckpointError
from ._errors import DistributedError as DistributedError
from ._errors import DTypeError as DTypeError
from ._errors import MissingKeyError as MissingKeyError
from ._errors import ParamsError as ParamsError
from ._errors import ShapeError as ShapeError
from ._errors import StateError as StateError
from ._errors import TrainingError as TrainingError
from .checkpoint import inspect_checkpoint as inspect_checkpoint
from .checkpoint import load as load
from .checkpoint import load_with_metadata as load_with_metadata
from .checkpoint import save as save
from .nn import RNN as RNN
from .nn import AvgPool as AvgPool
from .nn import BatchNorm as BatchNorm
from .nn import Bidirectional as Bidirectional
from .nn import Cell as Cell
from .nn import Conv as Conv
from .nn import ConvTranspose as ConvTranspose
from .nn import Dense as Dense
from .nn import Dropout as Dropout
from .nn import Elu as Elu
from .nn import Embedding as Embedding
from .nn import FanInConcat as FanInConcat
from .nn import FanInSum as FanInSum
from .nn import FanOut as FanOut
from .nn import Flatten as Flatten
from .nn import Gelu as Gelu
from .nn import GlobalAvgPool as GlobalAvgPool
from .nn import GroupNorm as GroupNorm
from .nn import GRUCell as GRUCell
from .nn import Identity as Identity
from .nn import Lambda as Lambda
from .nn import Layer as Layer
from .nn import LayerNorm as LayerNorm
from .nn import LeakyRelu as LeakyRelu
from .nn import LearnedPositionalEmbedding as LearnedPositionalEmbedding
from .nn import LogSoftmax as LogSoftmax
from .nn import LSTMCell as LSTMCell
from .nn import MaxPool as MaxPool
from .nn import MultiHeadAttention as MultiHeadAttention
from .nn import Relu as Relu
from .nn import Reshape as Reshape
from .nn import RMSNorm as RMSNorm
from .nn import RotaryEmbedding as RotaryEmbedding
from .nn import Selu as Selu
from .nn import Sigmoid as Sigmoid
from .nn import Silu as Silu
from .nn import SinusoidalPositionalEmbedding as SinusoidalPositionalEmbedding
from .nn import Softmax as Softmax
from .nn import Softplus as Softplus
from .nn import Stack as Stack
from .nn import SumPool as SumPool
from .nn import Tanh as Tanh
from .nn import TransformerBlock as TransformerBlock
from .nn import from_equinox as from_equinox
from .nn import from_flax as from_flax
from .nn import hand_grad as hand_grad
from .nn import parallel as parallel
from .nn import remat as remat
from .nn import residual as residual
from .nn import serial as serial
from .nn import summary as summary
from .train import Callback as Callback
from .train import CSVLogger as CSVLogger
from .train import DataParallel as DataParallel
from .train import EarlyStopping as EarlyStopping
from .train import FitResult as FitResult
from .train import JittedStep as JittedStep
from .train import JSONLinesLogger as JSONLinesLogger
from .train import Policy as Policy
from .train import ShardedStep as ShardedStep
from .train import TrainState as TrainState
from .train import accuracy as accuracy
from .train import data_mesh as data_mesh
from .train import evaluate as evaluate
from .train import fit as fit
from .train import initialize_distributed as initialize_distributed
from .train import jit_step as jit_step
from .train import make_eval_step as make_eval_step
from .train import make_train_step as make_train_step
from .train import per_example_grads as per_example_grads
from .train import plot_history as plot_history
from .train import split_key as split_key
from .train import train_scan as train_scan

try:
    __version__ = version("jaxnet")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "AvgPool",
    "BatchNorm",
    "Bidirectional",
    "CSVLogger",
    "Callback",
    "Cell",
    "CheckpointError",
    "Conv",
    "ConvTranspose",
    "DTypeError",
    "DataParallel",
    "Dense",
    "DistributedError",
    "Dropout",
    "EarlyStopping",
    "Elu",
    "Embedding",
    "FanInConcat",
    "FanInSum",
    "FanOut",
    "FitResult",
    "Flatten",
    "GRUCell",
    "Gelu",
    "GlobalAvgPool",
    "GroupNorm",
    "Identity",
    "JSONLinesLogger",
    "JittedStep",
    "LSTMCell",
    "Lambda",
    "Layer",
    "LayerNorm",
    "LeakyRelu",
    "LearnedPositionalEmbedding",
    "LogSoftmax",
    "MaxPool",
    "MissingKeyError",
    "MultiHeadAttention",
    "ParamsError",
    "Policy",
    "RMSNorm",
    "RNN",
    "Relu",
    "Reshape",
    "RotaryEmbedding",
    "Selu",
    "ShapeError",
    "ShardedStep",
    "Sigmoid",
    "Silu",
    "SinusoidalPositionalEmbedding",
    "Softmax",
    "Softplus",
    "Stack",
    "StateError",
    "SumPool",
    "Tanh",
    "TrainState",
    "TrainingError",
    "TransformerBlock",
    "accuracy",
    "analytic",
    "checkpoint",
    "data_mesh",
    "evaluate",
    "fit",
    "from_equinox",
    "from_flax",
    "hand_grad",
    "initialize_distributed",
    "initializers",
    "inspect_checkpoint",
    "jit_step",
    "load",
    "load_with_metadata",
    "losses",
    "make_eval_step",
    "make_train_step",
    "nn",
    "parallel",
    "per_example_grads",
    "plot_history",
    "remat",
    "residual",
    "save",
    "serial",
    "split_key",
    "summary",
    "testing",
    "train",
    "train_scan",
]
