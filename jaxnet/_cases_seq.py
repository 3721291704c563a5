"""Registry cases of the seq layer family (joined into ``LAYER_CASES``)."""

from __future__ import annotations

from ._case import LayerCase

SEQ_CASES: tuple[LayerCase, ...] = ()
