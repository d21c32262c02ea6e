"""``python -m rtdstft ...``: the ``rtdstft`` command (see :mod:`rtdstft.cli`)."""

import sys

from .cli import main

sys.exit(main())
