"""The registry's cases, one module per layer family, each named after the family's
module in :mod:`jaxnet.nn` (``nn/_conv.py`` <-> ``cases/conv.py``)."""
