"""Registry cases of the norm layer family (joined into ``LAYER_CASES``)."""

from __future__ import annotations

from ._case import LayerCase

NORM_CASES: tuple[LayerCase, ...] = ()
