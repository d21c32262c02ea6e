"""Helpers shared by the experiments: the data folder, argument parsing, tables, machine description."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

__all__ = [
    "DEFAULT_DATA",
    "data_dir",
    "experiment_parser",
    "format_table",
    "machine",
    "write_json",
]

#: ``../shared/data`` next to the repository checkout: only the default of ``--data``.
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def data_dir(path: str | os.PathLike | None, *required: str) -> Path:
    """The data folder (default :data:`DEFAULT_DATA`), checked to contain ``required`` entries.

    Raises FileNotFoundError with a one-line message naming the missing path.
    """
    root = Path(DEFAULT_DATA if path is None else path)
    for sub in ("", *required):
        p = root / sub
        if not p.exists():
            raise FileNotFoundError(
                f"data not found: {p} (pass --data DIR, the folder that holds paper/ and fsdd/)"
            )
    return root


def experiment_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The options every experiment takes: --quick, --json PATH, --data DIR."""
    p = argparse.ArgumentParser(prog=f"rtdstft reproduce {name}", description=description)
    p.add_argument("--quick", action="store_true", help="the cut-down configuration (minutes less)")
    p.add_argument("--json", metavar="PATH", help="also write the rows and settings as JSON here")
    p.add_argument("--data", metavar="DIR", default=None, help=f"data folder (default {DEFAULT_DATA})")
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


def machine() -> dict:
    """CPU model, logical cores, torch threads and version: what a timing was measured on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Writes ``payload`` as indented JSON, creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
