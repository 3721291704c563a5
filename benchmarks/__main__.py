"""``python -m benchmarks`` from a checkout: the same as ``jaxnet bench``.

The harness and its cases live in :mod:`jaxnet.bench` (installed with jaxnet); this
folder keeps the committed results (``results/``) and the GPU script (``gpu.sh``).
"""

import sys

from jaxnet.bench import main

if __name__ == "__main__":
    sys.exit(main())
