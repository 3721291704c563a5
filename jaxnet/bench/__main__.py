"""``python -m jaxnet.bench``: the same as ``jaxnet bench``."""

import sys

from ._main import main

if __name__ == "__main__":
    sys.exit(main())
