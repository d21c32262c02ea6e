"""Interleaved A/B of the streaming engine's real-time factor between git revisions, in one process.

Each revision's ``rtdstft`` is extracted with ``git archive`` into a temporary folder and imported
under its own module name (``rtdstft_ab0``, ...), next to the working tree's own ``rtdstft``. Every
round times one pass of :func:`rtdstft.bench.stream_bench_input` (the same samples for all, fed in
blocks of 1024 as the bench does) through every revision's engine, in an order that rotates from
round to round, so that the load of a shared machine weighs on all revisions alike. Rows: bands
B = 1 and 4 × adaptation on and off (a revision without bands gets "–" for B = 4); cells: the median
RTF over the rounds and its ratio to the anchor's.

``--scale`` reads the RTFs on the machine the budgets were written on: RTF × scale / RTF(anchor,
B = 1, adaptation on), where scale is the anchor's RTF there (0.0084 for 968ce98).

    .venv/bin/python scripts/stream_rtf_ab.py --ref main --ref 968ce98 --rounds 15
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from rtdstft.bench import STREAM_BUDGETS, stream_bench_input, stream_rtf

ROOT = Path(__file__).resolve().parent.parent
ROWS = [(1, False), (1, True), (4, False), (4, True)]


def load_revision(rev: str, name: str, into: Path):
    """The ``rtdstft.stream`` module of git revision ``rev``, imported as ``name``.stream from an
    extraction under ``into``."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if commit.returncode != 0:
        raise SystemExit(f"--ref {rev!r} is not a revision of {ROOT}: {commit.stderr.strip()}")
    folder = into / name
    folder.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit.stdout.strip(), "rtdstft"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    package = folder / "rtdstft"
    spec = importlib.util.spec_from_file_location(
        name, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{name}.stream")


def make_engine(stream, bands: int, adapt: bool):
    """The revision's engine at the bench's settings, or None where it has no bands."""
    settings = {"adapt": adapt, "block_frames": 8}
    if bands > 1:
        settings["bands"] = bands
    try:
        return stream.StreamingDSTFT(48000, 2048, 256, **settings)
    except TypeError:  # a revision before bands
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--ref", action="append", default=[], help="a git revision to compare (repeat the option)"
    )
    parser.add_argument("--rounds", type=int, default=15, help="timed passes per engine (default 15)")
    parser.add_argument("--seconds", type=float, default=12.0, help="input length (default 12, the bench's)")
    parser.add_argument(
        "--anchor", default=None, help="the revision ratios refer to (default: the last --ref)"
    )
    parser.add_argument(
        "--scale", type=float, default=None, help="the anchor's B = 1 RTF on the budget's machine (0.0084)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (the bench's) or this thread's CPU time (steadier on a shared machine)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.seconds <= 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    labels = ["working tree", *args.ref]
    anchor = args.anchor if args.anchor is not None else labels[-1]
    if anchor not in labels:
        parser.error(f"--anchor must be one of {labels}, got {anchor!r}")

    torch.set_num_threads(1)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    x = stream_bench_input(args.seconds)
    with tempfile.TemporaryDirectory(prefix="stream_rtf_ab.") as tmp:
        streams = [importlib.import_module("rtdstft.stream")]
        streams += [load_revision(rev, f"rtdstft_ab{i}", Path(tmp)) for i, rev in enumerate(args.ref)]
        engines = {(row, j): make_engine(s, *row) for row in ROWS for j, s in enumerate(streams)}
        times: dict = {key: [] for key, engine in engines.items() if engine is not None}
        for key in times:  # warm-up pass
            stream_rtf(engines[key], x, 48000, clock=clock)
        for r in range(args.rounds):
            for row in ROWS:
                order = [(j + r) % len(streams) for j in range(len(streams))]
                for j in order:
                    if (row, j) in times:
                        times[row, j].append(stream_rtf(engines[row, j], x, 48000, clock=clock))
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)

    median = {key: statistics.median(t) for key, t in times.items()}
    a = labels.index(anchor)
    print(
        f"stream RTF ({args.clock} time), 48 kHz, N=2048, H=256, K=8, blocks of 1024, 1 thread; "
        f"{args.seconds:g} s input; "
        f"median of {args.rounds} interleaved rounds; ratio to {anchor}"
    )
    print("| bands, adaptation | " + " | ".join(labels) + " | budget |")
    print("| --- |" + " ---: |" * len(labels) + " ---: |")
    for row in ROWS:
        cells = []
        for j in range(len(labels)):
            if (row, j) not in median:
                cells.append("–")
                continue
            ratio = f" ({median[row, j] / median[row, a]:.2f}×)" if (row, a) in median else ""
            cells.append(f"{median[row, j]:.4f}{ratio}")
        budget = f"≤ {STREAM_BUDGETS[row[0]]:g}" if row[1] else ""
        print(f"| B={row[0]}, {'on' if row[1] else 'off'} | " + " | ".join(cells) + f" | {budget} |")
    if args.scale is not None and ((1, True), a) in median:
        factor = args.scale / median[(1, True), a]
        print(
            f"\nscaled to the budget's machine (× {args.scale:g} / RTF({anchor}, B=1, on) = × {factor:.3f}):"
        )
        for row in ROWS:
            cells = [
                f"{median[row, j] * factor:.4f}" if (row, j) in median else "–" for j in range(len(labels))
            ]
            print(f"| B={row[0]}, {'on' if row[1] else 'off'} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
