"""A griffe extension for the API pages: a Google-style ``Example:`` section is read
as ``Examples:``.

griffe knows only the plural title; under ``Example:`` the ``>>>`` lines would
render as Markdown (block quotes, and ``x["a"]["b"]`` as a broken reference link).
The house style is ``Examples:``; this keeps older docstrings rendering until they
follow it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", re.M)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section titles to ``Examples:`` as objects are loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
