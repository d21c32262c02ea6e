"""Reproductions of the seed paper's experiments, one module each, started by
``rtdstft reproduce fsdd|tracking|grid|tf-figure`` (or ``python -m rtdstft.experiments NAME``).

- :mod:`.fsdd`: spoken digits, best fixed window against a window learned with a CNN.
- :mod:`.tracking`: ridge tracking on fan_flutter, constant against time-varying θ.
- :mod:`.grid_vs_gradient`: cost of a gradient fit of a constant θ against a grid over every integer.
- :mod:`.tf_figure`: a time-frequency fit on a low tone with high bursts, drawn as a figure.

Each module has ``run(...) -> rows`` and ``main(argv) -> exit status``; all take ``--quick``,
``--json PATH`` and ``--data DIR``.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["EXPERIMENTS", "main"]

#: experiment name -> module
EXPERIMENTS = {"fsdd": "fsdd", "tracking": "tracking", "grid": "grid_vs_gradient", "tf-figure": "tf_figure"}


def main(argv: list[str] | None = None) -> int:
    """``main(["fsdd", "--quick"])``: runs one experiment by name and prints its table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in EXPERIMENTS:
        names = "|".join(EXPERIMENTS)
        print(f"usage: rtdstft reproduce {{{names}}} [--quick] [--json PATH] [--data DIR]", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(f"{__name__}.{EXPERIMENTS[argv[0]]}")
    try:
        return module.main(argv[1:])
    except FileNotFoundError as err:
        print(f"rtdstft reproduce {argv[0]}: {err}", file=sys.stderr)
        return 1
