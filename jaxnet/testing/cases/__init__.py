"""The registry's cases of each layer family (one module per family, named after the
family's module in :mod:`jaxnet`: ``conv``, ``norm``, ``recurrent``, ``seq``)."""
