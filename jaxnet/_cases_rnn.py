"""Registry cases of the rnn layer family (joined into ``LAYER_CASES``)."""

from __future__ import annotations

from ._case import LayerCase

RNN_CASES: tuple[LayerCase, ...] = ()
