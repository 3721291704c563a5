"""Training on Optax: pure steps, a dtype policy, fused ``lax.scan`` loops, ``fit``
with its callbacks and progress, and data-parallel steps over a device mesh."""

from ._callbacks import Callback as Callback
from ._callbacks import CSVLogger as CSVLogger
from ._callbacks import JSONLinesLogger as JSONLinesLogger
from ._fit import EarlyStopping as EarlyStopping
from ._fit import FitResult as FitResult
from ._fit import fit as fit
from ._loop import JittedStep as JittedStep
from ._loop import jit_step as jit_step
from ._loop import split_key as split_key
from ._loop import train_scan as train_scan
from ._parallel import DataParallel as DataParallel
from ._parallel import ShardedStep as ShardedStep
from ._parallel import data_mesh as data_mesh
from ._parallel import initialize_distributed as initialize_distributed
from ._plot import plot_history as plot_history
from ._policy import Policy as Policy
from ._step import TrainState as TrainState
from ._step import accuracy as accuracy
from ._step import evaluate as evaluate
from ._step import make_eval_step as make_eval_step
from ._step import make_train_step as make_train_step
from ._step import per_example_grads as per_example_grads

__all__ = [
    "CSVLogger",
    "Callback",
    "DataParallel",
    "EarlyStopping",
    "FitResult",
    "JSONLinesLogger",
    "JittedStep",
    "Policy",
    "ShardedStep",
    "TrainState",
    "accuracy",
    "data_mesh",
    "evaluate",
    "fit",
    "initialize_distributed",
    "jit_step",
    "make_eval_step",
    "make_train_step",
    "per_example_grads",
    "plot_history",
    "split_key",
    "train_scan",
]
