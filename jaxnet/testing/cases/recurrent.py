"""Registry cases of the rnn layer family (joined into ``LAYER_CASES``).

Tiny on purpose (batch 2, time 3, features 3, hidden 4): the numerical check evaluates
every element. The cells and RNNs are sigmoid/tanh/matmul only, all complex-safe, so
they are checked with the complex step.
"""

from __future__ import annotations

from ...nn._recurrent import RNN, Bidirectional, GRUCell, LSTMCell
from .._case import LayerCase

_LSTM_PARAMS = {"input": {"w": (3, 16)}, "hidden": {"w": (4, 16), "b": (16,)}}
_GRU_PARAMS = {"input": {"w": (3, 12), "b": (12,)}, "hidden": {"w": (4, 12), "b": (4,)}}

RNN_CASES: tuple[LayerCase, ...] = (
    LayerCase(
        "LSTMCell",
        lambda dt: LSTMCell(4, dtype=dt),
        (((None, 4), (None, 4)), (None, 3)),
        "complex",
        batch=2,
        param_shapes=_LSTM_PARAMS,
    ),
    LayerCase(
        "GRUCell",
        lambda dt: GRUCell(4, dtype=dt),
        ((None, 4), (None, 3)),
        "complex",
        batch=2,
        param_shapes=_GRU_PARAMS,
    ),
    LayerCase(
        "RNN(LSTMCell)",
        lambda dt: RNN(LSTMCell(4, dtype=dt)),
        (None, 3, 3),
        "complex",
        batch=2,
        param_shapes=_LSTM_PARAMS,
    ),
    LayerCase(
        "RNN(GRUCell, reverse=True)",
        lambda dt: RNN(GRUCell(4, dtype=dt), reverse=True),
        (None, 3, 3),
        "complex",
        batch=2,
        param_shapes=_GRU_PARAMS,
    ),
    LayerCase(
        "Bidirectional(LSTM, GRU)",
        lambda dt: Bidirectional(RNN(LSTMCell(4, dtype=dt)), RNN(GRUCell(4, dtype=dt))),
        (None, 3, 3),
        "complex",
        batch=2,
        param_shapes={"forward": _LSTM_PARAMS, "backward": _GRU_PARAMS},
    ),
)
