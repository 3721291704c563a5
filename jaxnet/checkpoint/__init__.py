"""Pickle-free checkpoints: one file of raw little-endian bytes behind a JSON header
and a sha256 digest, written atomically and validated on load."""

from .._errors import CheckpointError as CheckpointError
from ._read import inspect_checkpoint as inspect_checkpoint
from ._read import load as load
from ._read import load_with_metadata as load_with_metadata
from ._write import save as save

__all__ = [
    "CheckpointError",
    "inspect_checkpoint",
    "load",
    "load_with_metadata",
    "save",
]
