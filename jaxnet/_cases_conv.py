"""Registry cases of the conv layer family (joined into ``LAYER_CASES``)."""

from __future__ import annotations

from ._case import LayerCase

CONV_CASES: tuple[LayerCase, ...] = ()
