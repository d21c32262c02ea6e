"""Reproductions of the seed paper's experiments, one module each, started by
``rtdstft reproduce fsdd|tracking|grid|tf-figure`` (or ``python -m rtdstft.experiments NAME``).

- :mod:`.fsdd`: spoken digits, best fixed window against a window learned with a CNN.
- :mod:`.tracking`: ridge tracking on fan_flutter, constant against time-varying θ.
- :mod:`.grid_vs_gradient`: cost of a gradient fit of a constant θ against a grid over every integer.
- :mod:`.tf_figure`: a time-frequency fit on a low tone with high bursts, drawn as a figure.

Each module has ``run(...) -> rows`` and ``main(argv) -> exit status``; all take ``--quick``,
``--json PATH`` and ``--data DIR`` (or the environment variable ``RTDSTFT_DATA``: the folder that
holds ``paper/`` and ``fsdd/``; the data does not ship with the package).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .common import DATA_HELP

__all__ = ["EXPERIMENTS", "main"]

#: experiment name -> module
EXPERIMENTS = {"fsdd": "fsdd", "tracking": "tracking", "grid": "grid_vs_gradient", "tf-figure": "tf_figure"}

_DESCRIPTION = """\
Reproduce one of the seed paper's experiments and print its table (Markdown):
  fsdd      spoken digits: the best fixed window length against one learned jointly with a small
            CNN, test accuracy over seeds (full: about 4 min on 2 cores; --quick: less)
  tracking  ridge tracking on fan_flutter: constant θ from the entropy fits and the oracle against
            the time-varying fit, tracking error in bins²
  grid      the constant θ of least entropy: gradient descent against a grid over every integer θ,
            evaluations and time to reach the grid's optimum
  tf-figure a time-frequency window fit on a low tone under high bursts, drawn as a figure
            (-o PATH, default docs/tf_fit.png; needs no data)
Each takes --quick (a cut-down configuration); fsdd, tracking and grid also --json PATH (also write
rows and settings) and --data DIR; `rtdstft reproduce NAME --help` gives its own options."""


def _parser() -> argparse.ArgumentParser:
    """The help of ``rtdstft reproduce`` (each experiment parses its own options)."""
    return argparse.ArgumentParser(
        prog="rtdstft reproduce",
        usage=f"rtdstft reproduce {{{'|'.join(EXPERIMENTS)}}} [--quick] [options]",
        description=_DESCRIPTION,
        epilog=DATA_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str] | None = None) -> int:
    """``main(["fsdd", "--quick"])``: runs one experiment by name and prints its table. Returns 0,
    or 2 with one line ``rtdstft: error: ...`` on stderr for an unknown experiment or missing data
    (``--help``: the help on stdout, 0)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in EXPERIMENTS:
        if argv[:1] in (["-h"], ["--help"]):
            _parser().print_help()
            return 0
        names = "|".join(EXPERIMENTS)
        what = f"unknown experiment {argv[0]!r}" if argv else "no experiment given"
        print(f"rtdstft: error: reproduce: {what}; choose one of {names} (see --help)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{EXPERIMENTS[argv[0]]}")
    try:
        return module.main(argv[1:])
    except FileNotFoundError as err:
        print(f"rtdstft: error: reproduce {argv[0]}: {err}", file=sys.stderr)
        return 2
