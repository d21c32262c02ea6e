"""Helpers shared by the experiments: the data folder, argument parsing, tables, machine description."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ..bench import machine_info

__all__ = [
    "DATA_ENV",
    "DATA_HELP",
    "data_dir",
    "experiment_parser",
    "experiment_main",
    "format_table",
    "machine_info",
    "write_json",
]

#: The environment variable that names the data folder when ``--data`` is not given.
DATA_ENV = "RTDSTFT_DATA"
#: ``../shared/data`` beside a source checkout of rtdstft: the last place looked, and only when it
#: exists (an installed package has no such neighbour).
CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

#: Where the data comes from and how to point at it; the help of ``rtdstft reproduce`` ends with it.
DATA_HELP = f"""\
data: one folder DIR, given by --data DIR or the environment variable {DATA_ENV}, holding
  DIR/paper/  fan_flutter.npz (x, f1, f2, f3), x_vitesse2.npy, N22.npy: the seed paper's signals,
              the .mat files in data/ of its reference implementation (github.com/maxime-leiber/dstft,
              MIT licence) converted to numpy (tracking, grid);
  DIR/fsdd/recordings/  the Free Spoken Digit Dataset's {{digit}}_{{speaker}}_{{index}}.wav files
              (github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0) (fsdd).
Neither ships with rtdstft."""


def data_dir(path: str | os.PathLike | None, *required: str) -> Path:
    """The data folder, checked to contain ``required`` entries (paths relative to it).

    The folder is ``path`` if given, else the environment variable :data:`DATA_ENV`, else
    ``../shared/data`` beside a source checkout if that exists. Raises FileNotFoundError with a
    one-line message naming the missing path and how to give the folder.
    """
    if path is None:
        path = os.environ.get(DATA_ENV) or None
    if path is None:
        if not CHECKOUT_DATA.is_dir():
            raise FileNotFoundError(
                f"no data folder: pass --data DIR or set {DATA_ENV}=DIR, the folder that holds paper/ "
                "and fsdd/ (`rtdstft reproduce --help` says where they come from)"
            )
        path = CHECKOUT_DATA
    root = Path(path)
    for sub in ("", *required):
        p = root / sub
        if not p.exists():
            raise FileNotFoundError(
                f"data not found: {p} (pass --data DIR or set {DATA_ENV}=DIR, the folder that holds "
                "paper/ and fsdd/; `rtdstft reproduce --help` says where they come from)"
            )
    return root


def experiment_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The options every experiment takes: --quick, --json PATH, --data DIR."""
    p = argparse.ArgumentParser(
        prog=f"rtdstft reproduce {name}",
        description=description,
        epilog=DATA_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="the cut-down configuration (minutes less)")
    p.add_argument("--json", metavar="PATH", help="also write the rows and settings as JSON here")
    p.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help=f"the data folder (default: ${DATA_ENV}, else ../shared/data beside a source checkout)",
    )
    return p


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table; ``columns`` are (key, header, format spec) and missing keys print as '-'."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    lines = [head, rule]
    for row in rows:
        cells = []
        for key, _, spec in columns:
            value = row.get(key)
            cells.append("-" if value is None else format(value, spec))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Writes ``payload`` as indented JSON, creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")


def experiment_main(
    argv: list[str] | None,
    name: str,
    description: str,
    run: Callable,
    configs: tuple,
    columns: list[tuple[str, str, str]],
    footer: Callable[[object, list[dict], float], str],
) -> int:
    """Parses --quick/--json/--data, runs ``run(data, config)`` with ``configs`` = (full, quick),
    prints the table and ``footer(config, rows, seconds)``, and writes the JSON. Returns 0."""
    args = experiment_parser(name, description).parse_args(argv)
    config = configs[1] if args.quick else configs[0]
    t0 = time.perf_counter()
    rows = run(args.data, config)
    total = time.perf_counter() - t0
    print(format_table(rows, columns))
    print(footer(config, rows, total))
    if args.json:
        payload = {"experiment": name, "config": asdict(config), "machine": machine_info()}
        write_json(args.json, {**payload, "total_seconds": total, "rows": rows})
    return 0
