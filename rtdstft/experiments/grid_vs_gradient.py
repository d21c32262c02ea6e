r"""Gradient descent against an exhaustive grid for the constant window length of minimum entropy.

Objective (the seed paper's): the global Shannon entropy of P = |S|^p with p = 1, S = DSTFT(x, θ),
over the whole spectrogram, θ ∈ [2H, N] samples.

Signals and settings (the paper's):
    fan_flutter   samples 4000..10000,   N = 1000, H = 50   (θ ∈ [100, 1000])
    x_vitesse2    samples 38000..60000,  N = 1500, H = 50   (θ ∈ [100, 1500])

Grid: every integer θ in [2H, N], forward transforms only (no autograd), 16 θ per batched call;
its arg min θ* is the reference. Gradient: :func:`rtdstft.fit_window` (mode "constant": projected
Adam in log θ, lr 0.1 decaying to 0.001 over at most 150 steps; once dJ/d log θ changes sign between
two iterates it finishes by Illinois regula falsi on that bracket), from the geometric mean of the
bounds and from each bound. An evaluation is one forward transform (with its backward for the
gradient); "to reach θ*" counts evaluations up to and including the first whose θ is within 1 sample
of θ*, and the wall and CPU time (all threads) until that evaluation starts, after one untimed
warm-up step of fit_window per signal. On a shared machine the CPU time is the steadier of the two.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..adapt import fit_window
from ..entropy import entropy
from ..transform import DSTFT
from .common import data_dir, experiment_main, machine_info

__all__ = ["GridConfig", "QUICK", "grid_search", "run", "main"]


@dataclass(frozen=True)
class GridConfig:
    """Settings (defaults: the full run). ``signals``: (name, start, stop, n_fft, hop_length)."""

    signals: tuple = (
        ("fan_flutter", 4000, 10000, 1000, 50),
        ("x_vitesse2", 38000, 60000, 1500, 50),
    )
    power: float = 1.0
    steps: int = 150
    lr: float = 0.1
    inits: tuple = ("geomean", "min", "max")
    grid_step: int = 1
    chunk: int = 16
    dtype: str = "float64"


#: ``--quick``: fan_flutter only, one start, a grid every 5 samples (its optimum is then approximate).
QUICK = GridConfig(signals=(("fan_flutter", 4000, 10000, 1000, 50),), inits=("geomean",), grid_step=5)


class _TracingDSTFT(DSTFT):
    """A DSTFT that records (wall time, CPU time, θ) at every call, to follow fit_window from outside."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.trace: list[tuple[float, float, float]] = []

    def forward(self, x, win_length):
        theta = win_length.detach().reshape(-1)[0] if isinstance(win_length, torch.Tensor) else win_length
        self.trace.append((time.perf_counter(), time.process_time(), float(theta)))
        return super().forward(x, win_length)


def load_signal(root: Path, name: str, start: int, stop: int) -> torch.Tensor:
    """One of the paper's signals, samples start..stop, float64 [T]."""
    if name == "fan_flutter":
        x = np.load(Path(root) / "paper" / "fan_flutter.npz")["x"]
    else:
        x = np.load(Path(root) / "paper" / f"{name}.npy")
    return torch.from_numpy(np.ascontiguousarray(x[start:stop], dtype=np.float64))


@torch.no_grad()
def grid_search(x: torch.Tensor, t: DSTFT, thetas: np.ndarray, power: float, chunk: int) -> np.ndarray:
    """Global Shannon entropy (nats) for every θ in ``thetas`` [G] -> [G]; ``chunk`` θ per call."""
    n_frames = t.num_frames(x.shape[-1])
    out = []
    for i in range(0, len(thetas), chunk):
        th = torch.as_tensor(thetas[i : i + chunk], dtype=x.dtype)
        spec = t(x.expand(len(th), -1), th[:, None].expand(-1, n_frames))
        out.append(entropy(spec, power=power))
    return torch.cat(out).numpy()


def _local_minima(values: np.ndarray) -> int:
    inner = (values[1:-1] < values[:-2]) & (values[1:-1] < values[2:])
    return int(inner.sum()) + int(values[0] < values[1]) + int(values[-1] < values[-2])


def run(data: str | Path | None = None, config: GridConfig = GridConfig(), log=print) -> list[dict]:
    """One "grid" row and one "gradient" row per start, per signal.

    Keys: signal, method, init (samples), theta (found), theta_grid (θ*), entropy (nats, at theta),
    evaluations (total), evals_to_reach / seconds_to_reach / cpu_seconds_to_reach (None if never
    within 1 sample), seconds and cpu_seconds (total wall and CPU time), local_minima (of the grid
    curve, grid rows), loss_start / loss_end.
    """
    root = data_dir(data, "paper")
    dtype = getattr(torch, config.dtype)
    rows = []
    for name, start, stop, n_fft, hop in config.signals:
        x = load_signal(root, name, start, stop).to(dtype)
        t = _TracingDSTFT(n_fft, hop)
        thetas = np.arange(math.ceil(t.win_min), math.floor(t.win_max) + 1, config.grid_step, dtype=float)
        # One fit step outside the clock: first calls pay one-off costs (allocations, lazy imports
        # of the optimiser) that would otherwise be charged to whichever method runs first.
        fit_window(x, t, "constant", steps=1, power=config.power)
        t0, c0 = time.perf_counter(), time.process_time()
        values = grid_search(x, t, thetas, config.power, config.chunk)
        grid_seconds, grid_cpu = time.perf_counter() - t0, time.process_time() - c0
        best = int(np.argmin(values))
        theta_star = float(thetas[best])
        rows.append(
            {
                "signal": name,
                "method": f"grid, every {config.grid_step} sample(s)",
                "init": None,
                "theta": theta_star,
                "theta_grid": theta_star,
                "entropy": float(values[best]),
                "evaluations": len(thetas),
                "evals_to_reach": len(thetas),
                "seconds_to_reach": grid_seconds,
                "seconds": grid_seconds,
                "cpu_seconds_to_reach": grid_cpu,
                "cpu_seconds": grid_cpu,
                "local_minima": _local_minima(values),
            }
        )
        log(
            f"  {name}: grid θ* = {theta_star:g} ({len(thetas)} evaluations, {grid_seconds:.1f} s, "
            f"{rows[-1]['local_minima']} local minima)"
        )
        starts = {"geomean": math.sqrt(t.win_min * t.win_max), "min": t.win_min, "max": t.win_max}
        for which in config.inits:
            init = starts[which]
            t.trace.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            fit = fit_window(
                x, t, "constant", init=init, steps=config.steps, lr=config.lr, power=config.power
            )
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            found = float(fit.win_length)
            near = [i for i, (_, _, th) in enumerate(t.trace) if abs(th - theta_star) <= 1.0]
            reach = near[0] + 1 if near else None
            with torch.no_grad():
                h = float(entropy(t(x, found), power=config.power))
            rows.append(
                {
                    "signal": name,
                    "method": f"gradient from {which}",
                    "init": init,
                    "theta": found,
                    "theta_grid": theta_star,
                    "entropy": h,
                    "evaluations": fit.evaluations,
                    "evals_to_reach": reach,
                    "seconds_to_reach": t.trace[near[0]][0] - t0 if near else None,
                    "seconds": seconds,
                    "cpu_seconds_to_reach": t.trace[near[0]][1] - c0 if near else None,
                    "cpu_seconds": cpu,
                    "loss_start": fit.loss_history[0],
                    "loss_end": fit.loss_history[-1],
                }
            )
            log(
                f"  {name}: gradient from {init:.0f}: θ = {found:.2f}, {fit.evaluations} evaluations,"
                f" {seconds:.1f} s, reached θ*±1 at evaluation {reach}"
            )
    return rows


COLUMNS = [
    ("signal", "signal", ""),
    ("method", "method", ""),
    ("theta", "θ found", ".1f"),
    ("entropy", "entropy (nats)", ".5f"),
    ("evals_to_reach", "evals to θ*±1", "d"),
    ("seconds_to_reach", "wall to θ*±1 (s)", ".2f"),
    ("cpu_seconds_to_reach", "CPU to θ*±1 (s)", ".2f"),
    ("evaluations", "evals total", "d"),
    ("seconds", "wall total (s)", ".2f"),
    ("cpu_seconds", "CPU total (s)", ".2f"),
]


def main(argv: list[str] | None = None) -> int:
    """``rtdstft reproduce grid [--quick] [--json PATH] [--data DIR]``."""

    def footer(config: GridConfig, rows: list[dict], total: float) -> str:
        return (
            f"global Shannon entropy of |S|^{config.power:g}, {config.dtype}, "
            f"{torch.get_num_threads()} threads; total {total:.0f} s on {machine_info()['cpu']}"
        )

    description = "Grid over every integer θ vs gradient descent, constant θ."
    return experiment_main(argv, "grid", description, run, (GridConfig(), QUICK), COLUMNS, footer)


if __name__ == "__main__":
    raise SystemExit(main())
