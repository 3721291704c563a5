"""jaxnet: pure-function neural-network layers and losses on JAX, each with a
hand-written analytic gradient that the tests prove ``jax.grad`` equals."""

from importlib.metadata import PackageNotFoundError, version

from . import analytic as analytic
from . import losses as losses
from . import testing as testing
from ._adapters import from_equinox as from_equinox
from ._adapters import from_flax as from_flax
from ._batchnorm import BatchNorm as BatchNorm
from ._combinators import FanInConcat as FanInConcat
from ._combinators import FanInSum as FanInSum
from ._combinators import FanOut as FanOut
from ._combinators import Identity as Identity
from ._combinators import parallel as parallel
from ._combinators import residual as residual
from ._combinators import serial as serial
from ._errors import DTypeError as DTypeError
from ._errors import MissingKeyError as MissingKeyError
from ._errors import ParamsError as ParamsError
from ._errors import ShapeError as ShapeError
from ._errors import StateError as StateError
from ._layer import Layer as Layer
from ._layers import Dense as Dense
from ._layers import Dropout as Dropout
from ._layers import Elu as Elu
from ._layers import Flatten as Flatten
from ._layers import Gelu as Gelu
from ._layers import Lambda as Lambda
from ._layers import LeakyRelu as LeakyRelu
from ._layers import LogSoftmax as LogSoftmax
from ._layers import Relu as Relu
from ._layers import Reshape as Reshape
from ._layers import Selu as Selu
from ._layers import Sigmoid as Sigmoid
from ._layers import Silu as Silu
from ._layers import Softmax as Softmax
from ._layers import Softplus as Softplus
from ._layers import Tanh as Tanh
from ._summary import summary as summary
from ._transformer import TransformerBlock as TransformerBlock

try:
    __version__ = version("jaxnet")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "BatchNorm",
    "DTypeError",
    "Dense",
    "Dropout",
    "Elu",
    "FanInConcat",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Gelu",
    "Identity",
    "Lambda",
    "Layer",
    "LeakyRelu",
    "LogSoftmax",
    "MissingKeyError",
    "ParamsError",
    "Relu",
    "Reshape",
    "Selu",
    "ShapeError",
    "StateError",
    "Sigmoid",
    "Silu",
    "Softmax",
    "Softplus",
    "Tanh",
    "TransformerBlock",
    "analytic",
    "from_equinox",
    "from_flax",
    "losses",
    "parallel",
    "residual",
    "serial",
    "summary",
    "testing",
]

# Layer families. Each block is owned by its module; keep additions inside it.
# --- conv family (jaxnet/_conv.py) ---
from ._conv import AvgPool as AvgPool  # noqa: E402
from ._conv import Conv as Conv  # noqa: E402
from ._conv import ConvTranspose as ConvTranspose  # noqa: E402
from ._conv import GlobalAvgPool as GlobalAvgPool  # noqa: E402
from ._conv import MaxPool as MaxPool  # noqa: E402
from ._conv import SumPool as SumPool  # noqa: E402

__all__ += [
    "AvgPool",
    "Conv",
    "ConvTranspose",
    "GlobalAvgPool",
    "MaxPool",
    "SumPool",
]
# --- end conv family ---
# --- norm family (jaxnet/_norm.py) ---
from ._norm import GroupNorm as GroupNorm  # noqa: E402
from ._norm import LayerNorm as LayerNorm  # noqa: E402
from ._norm import RMSNorm as RMSNorm  # noqa: E402

__all__ += ["GroupNorm", "LayerNorm", "RMSNorm"]
# --- end norm family ---
# --- sequence family (jaxnet/_seq.py) ---
from ._seq import Embedding as Embedding  # noqa: E402
from ._seq import LearnedPositionalEmbedding as LearnedPositionalEmbedding  # noqa: E402
from ._seq import MultiHeadAttention as MultiHeadAttention  # noqa: E402
from ._seq import RotaryEmbedding as RotaryEmbedding  # noqa: E402
from ._seq import SinusoidalPositionalEmbedding as SinusoidalPositionalEmbedding  # noqa: E402

__all__ += [
    "Embedding",
    "LearnedPositionalEmbedding",
    "SinusoidalPositionalEmbedding",
    "RotaryEmbedding",
    "MultiHeadAttention",
]
# --- end sequence family ---
# --- recurrent family (jaxnet/_recurrent.py) ---
from ._recurrent import RNN as RNN  # noqa: E402
from ._recurrent import Bidirectional as Bidirectional  # noqa: E402
from ._recurrent import Cell as Cell  # noqa: E402
from ._recurrent import GRUCell as GRUCell  # noqa: E402
from ._recurrent import LSTMCell as LSTMCell  # noqa: E402

__all__ += ["Bidirectional", "Cell", "GRUCell", "LSTMCell", "RNN"]
# --- end recurrent family ---
# --- training (jaxnet/_train.py, jaxnet/_fit.py, jaxnet/_checkpoint.py) ---
from ._callbacks import Callback as Callback  # noqa: E402
from ._callbacks import CSVLogger as CSVLogger  # noqa: E402
from ._callbacks import JSONLinesLogger as JSONLinesLogger  # noqa: E402
from ._checkpoint import inspect_checkpoint as inspect_checkpoint  # noqa: E402
from ._checkpoint import load as load  # noqa: E402
from ._checkpoint import load_with_metadata as load_with_metadata  # noqa: E402
from ._checkpoint import save as save  # noqa: E402
from ._errors import CheckpointError as CheckpointError  # noqa: E402
from ._errors import TrainingError as TrainingError  # noqa: E402
from ._fit import EarlyStopping as EarlyStopping  # noqa: E402
from ._fit import FitResult as FitResult  # noqa: E402
from ._fit import fit as fit  # noqa: E402
from ._plot import plot_history as plot_history  # noqa: E402
from ._train import JittedStep as JittedStep  # noqa: E402
from ._train import Policy as Policy  # noqa: E402
from ._train import TrainState as TrainState  # noqa: E402
from ._train import accuracy as accuracy  # noqa: E402
from ._train import evaluate as evaluate  # noqa: E402
from ._train import jit_step as jit_step  # noqa: E402
from ._train import make_eval_step as make_eval_step  # noqa: E402
from ._train import make_train_step as make_train_step  # noqa: E402
from ._train import per_example_grads as per_example_grads  # noqa: E402
from ._train import split_key as split_key  # noqa: E402
from ._train import train_scan as train_scan  # noqa: E402

__all__ += [
    "Callback",
    "CSVLogger",
    "JSONLinesLogger",
    "CheckpointError",
    "inspect_checkpoint",
    "load",
    "load_with_metadata",
    "save",
    "EarlyStopping",
    "FitResult",
    "TrainingError",
    "fit",
    "plot_history",
    "JittedStep",
    "Policy",
    "TrainState",
    "accuracy",
    "evaluate",
    "jit_step",
    "make_eval_step",
    "make_train_step",
    "per_example_grads",
    "split_key",
    "train_scan",
]
# --- end training ---
# --- scale-out (jaxnet/_parallel.py, jaxnet/_stack.py) ---
from ._errors import DistributedError as DistributedError  # noqa: E402
from ._parallel import DataParallel as DataParallel  # noqa: E402
from ._parallel import ShardedStep as ShardedStep  # noqa: E402
from ._parallel import data_mesh as data_mesh  # noqa: E402
from ._parallel import initialize_distributed as initialize_distributed  # noqa: E402
from ._stack import Stack as Stack  # noqa: E402
from ._stack import hand_grad as hand_grad  # noqa: E402
from ._stack import remat as remat  # noqa: E402

__all__ += [
    "DataParallel",
    "DistributedError",
    "ShardedStep",
    "Stack",
    "data_mesh",
    "initialize_distributed",
    "hand_grad",
    "remat",
]
# --- end scale-out ---
