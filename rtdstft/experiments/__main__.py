"""``python -m rtdstft.experiments NAME [--quick] [--json PATH] [--data DIR]``."""

from . import main

raise SystemExit(main())
