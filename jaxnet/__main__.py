"""``python -m jaxnet`` runs the ``jaxnet`` command line."""

import sys

from ._cli import main

sys.exit(main())
