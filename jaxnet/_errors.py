"""Exceptions raised by jaxnet.

Every error names the layer or function and its settings, the expected and the actual
value, and the likely fix, so that no raw XLA message reaches the user.
"""

from __future__ import annotations


class ShapeError(ValueError):
    """An input, target or parameter has the wrong shape.

    Example message::

        Dense(out_dim=16): expected input of shape (..., 3), got (8, 4).
        The layer was initialised for in_dim=3.
    """


class DTypeError(TypeError):
    """An input has the wrong dtype (e.g. integers fed to ``Dense``)."""


class MissingKeyError(ValueError):
    """A stochastic layer was called for training without a PRNG key."""


class ParamsError(ValueError):
    """A params tree does not match the model (missing or unexpected entries)."""


class StateError(ValueError):
    """A stateful model was called without its state, or with a mismatched one."""


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read, or does not match the expected tree.

    Example message::

        jaxnet.load('ck.jnc'): params/dense_0/w has shape (784, 512) in the file but
        (784, 256) in like=. The checkpoint was saved from a different model; ...
    """


class TrainingError(FloatingPointError):
    """Training went wrong at run time (e.g. the loss became nan or inf at some step)."""


class DistributedError(RuntimeError):
    """Multi-process start-up failed: bad arguments, or the coordinator is unreachable."""


#: The errors of jaxnet's own checks (each names the layer or function, the expected
#: and the actual value).
JAXNET_ERRORS = (
    ShapeError,
    DTypeError,
    MissingKeyError,
    ParamsError,
    StateError,
    CheckpointError,
)
