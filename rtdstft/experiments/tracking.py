r"""Frequency tracking on fan_flutter: constant window lengths against the time-varying fit.

Signal: ``paper/fan_flutter.npz``, samples 4000..10000 (the seed paper's segment), N = 1000, H = 50
(the paper's settings), θ ∈ [2H, N] = [100, 1000] samples. In that segment f1 = 0.3575 cycles/sample is
steady, f2 is steady at 0.05, chirps linearly to 0.35 over samples 5000..7000 and then sits 0.0075
(7.5 bins) below f1, and f3 is a 334-sample burst chirping 0.240 -> 0.290 (samples 5666..5999).

Ridge tracker (per frame n, magnitude |S[m, n]|, m = 0..N/2):
  1. K_n = the number of components present at the frame centre (f3 only inside its burst): the
     tracker is told how many ridges to pick, not where they are.
  2. Peaks: the K_n largest local maxima (|S|[m] > |S|[m-1] and >= |S|[m+1], 1 <= m < N/2), each
     refined by a parabola through ln|S| at m-1, m, m+1: m* = m + (a - c) / (2 (a - 2b + c)).
  3. Assignment: peaks and true frequencies are both sorted and matched in order, which for points on
     a line is the assignment of least squared error (so crossings cost nothing by themselves; a
     ridge that a window fails to resolve does: its slot takes a sidelobe or a noise peak).
Scored frames: those whose whole N-sample support lies inside the segment (c_n in [N/2, T - N/2]).
MSE: mean over scored (frame, component) pairs of (m*/N - f)², reported in bins² (one bin = 1/N =
0.001 cycles/sample); per component too, and the share of pairs more than 5 bins off (gross errors,
which dominate the MSE: a ridge a window does not resolve takes a peak far away).

Rows: constant θ from the global-entropy fit (``fit_window(mode="constant")``, p = 1 as the paper and
p = 2), constant θ chosen by the tracking MSE itself over every integer θ (an oracle no entropy method
can beat with one θ), time-varying θ from ``fit_window(mode="time")`` (local entropy r = 4 frames,
smoothness λ = 0.1, p = 1 and p = 2), and the seed paper's further freedoms:

- time-frequency θ (``fit_window(mode="time-frequency")``, one θ per bin and frame; the local entropy
  of each of 8 bands of 63 bins alone, averaged, plus λ times the mean squared step of log θ across
  bins and across frames);
- time-varying θ with a learnable hop: the frames at c_n = n·h, h ∈ [H/2, 2H] learnt jointly with θ
  (:class:`rtdstft.nn.AdaptiveSpectrogram`, ``hop_mode="constant"``, F fixed) by Adam on the time
  fit's objective, from the time fit's θ and h = H. Frames past the segment's end see zeros, whose
  local entropy is 0 (by convention), so the objective is taken over the frames whose centre lies
  inside the segment only; the truth is read at each frame's (real) centre.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..adapt import fit_window, smoothness_penalty
from ..entropy import entropy
from ..nn import AdaptiveSpectrogram
from ..transform import DSTFT
from .common import data_dir, experiment_main, machine_info

__all__ = ["TrackingConfig", "QUICK", "track_ridges", "tracking_mse", "run", "main"]


@dataclass(frozen=True)
class TrackingConfig:
    """Settings (defaults: the full run)."""

    start: int = 4000
    stop: int = 10000
    n_fft: int = 1000
    hop_length: int = 50
    steps: int = 150
    lr: float | None = None
    radius: int = 4
    smoothness: float = 0.1
    powers: tuple = (1.0, 2.0)
    grid_step: int = 1
    bands: int = 8
    tf_steps: int = 40
    hop_steps: int = 40
    hop_lr: float = 0.02


#: ``--quick``: 40 optimiser steps (10 for the time-frequency and hop fits), a grid every 10 samples.
QUICK = TrackingConfig(steps=40, grid_step=10, tf_steps=10, hop_steps=10)


def load_fan_flutter(root: Path, start: int, stop: int) -> tuple[torch.Tensor, np.ndarray]:
    """x [T] float64 and the true frequencies [3, T] (cycles/sample, NaN where absent)."""
    d = np.load(Path(root) / "paper" / "fan_flutter.npz")
    truth = np.stack([d["f1"], d["f2"], d["f3"]])[:, start:stop].astype(np.float64)
    truth[truth < 0] = np.nan
    return torch.from_numpy(np.ascontiguousarray(d["x"][start:stop], dtype=np.float64)), truth


def track_ridges(spec: torch.Tensor, counts: np.ndarray) -> np.ndarray:
    """Ridge frequencies in bins, [F, K] sorted ascending per frame (NaN beyond K_n peaks).

    spec: complex or magnitude [M, F]; counts: K_n per frame, [F] ints <= K.
    """
    mag = spec.abs().detach().double().T.cpu()  # [F, M]
    k = int(counts.max()) if len(counts) else 0
    inner = mag[:, 1:-1]
    is_peak = (inner > mag[:, :-2]) & (inner >= mag[:, 2:])
    score = torch.where(is_peak, inner, torch.full_like(inner, -1.0))
    top, idx = score.topk(k, dim=1)
    m = idx + 1
    logm = torch.log(mag.clamp_min(1e-300))
    a, b, c = (logm.gather(1, m + o) for o in (-1, 0, 1))
    den = a - 2 * b + c
    delta = torch.where(den < 0, 0.5 * (a - c) / den.clamp(max=-1e-300), torch.zeros_like(den))
    bins = (m + delta).numpy()
    bins[top.numpy() < 0] = np.nan
    bins[np.arange(k)[None, :] >= counts[:, None]] = np.nan
    return np.sort(bins, axis=1)  # NaNs last


def tracking_mse(spec: torch.Tensor, truth_bins: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Tracking error against the truth.

    Returns the MSE (bins²) over present (frame, component) pairs, the MSE per component [K] (NaN if
    never present), and the share of pairs off by more than 5 bins (gross errors: a ridge not resolved).

    truth_bins: [F, K] true frequency in bins, NaN where absent. A present component without a matched
    peak (fewer local maxima than components, not seen in practice) counts as an error of N/2 bins.
    """
    counts = np.isfinite(truth_bins).sum(1)
    est = track_ridges(spec, counts)
    order = np.argsort(np.where(np.isfinite(truth_bins), truth_bins, np.inf), axis=1)
    truth_sorted = np.take_along_axis(truth_bins, order, 1)
    err = np.full(truth_bins.shape, np.nan)
    present = np.isfinite(truth_sorted)
    sq = (est - truth_sorted) ** 2
    sq = np.where(present & ~np.isfinite(sq), (spec.shape[0] - 1) ** 2, sq)
    np.put_along_axis(err, order, np.where(present, sq, np.nan), 1)
    per_comp = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in err.T])
    gross = float(np.mean(err[np.isfinite(err)] > 25.0))
    return float(np.nanmean(err)), per_comp, gross


def run(data: str | Path | None = None, config: TrackingConfig = TrackingConfig(), log=print) -> list[dict]:
    """All rows (see the module docstring).

    Keys: method, theta (samples; "min..max (median)" if time-varying), theta_min, theta_max,
    mse (bins²), mse_f1/f2/f3, gross (% of pairs > 5 bins off), entropy (the objective of the
    fit's θ, nats), loss_start / loss_end, evaluations, theta_init, seconds (fit or grid time).
    """
    root = data_dir(data, "paper/fan_flutter.npz")
    x, truth = load_fan_flutter(root, config.start, config.stop)
    t = DSTFT(config.n_fft, config.hop_length)
    length = x.shape[-1]
    centres = np.arange(t.num_frames(length)) * config.hop_length
    scored = (centres >= config.n_fft // 2) & (centres <= length - config.n_fft // 2)
    truth_bins = truth[:, centres[scored]].T * config.n_fft  # [F_scored, 3]

    def score(theta, transform=t, positions=None) -> tuple[float, np.ndarray, float]:
        with torch.no_grad():
            if positions is None:
                spec = transform(x, theta)
                return tracking_mse(spec[:, scored], truth_bins)
            c = positions.numpy()
            end = int(np.ceil(c[-1]))
            xp = torch.nn.functional.pad(x, (0, max(0, end - length)))[: max(end, int(c[-1]) + t.n_fft // 2)]
            inside = (c >= config.n_fft // 2) & (c <= length - config.n_fft // 2)
            spec = transform(xp, theta, positions)
            at = np.round(c[inside]).astype(int)
            return tracking_mse(spec[:, inside], truth[:, at].T * config.n_fft)

    rows = []

    def add(method, theta, fit=None, seconds=None, init=None, transform=t, positions=None, **extra):
        mse, per, gross = score(theta, transform, positions)
        theta = torch.as_tensor(theta, dtype=torch.float64)
        label = (
            f"{float(theta):.0f}"
            if theta.dim() == 0
            else f"{float(theta.min()):.0f}..{float(theta.max()):.0f} (median {float(theta.median()):.0f})"
        )
        row = {
            "method": method,
            "theta": label,
            "theta_min": float(theta.min()),
            "theta_max": float(theta.max()),
            "mse": mse,
            "mse_f1": per[0],
            "mse_f2": per[1],
            "mse_f3": per[2],
            "gross": 100 * gross,
            "seconds": seconds,
            "theta_init": init,
            **extra,
        }
        if fit is not None and theta.dim() == 1:
            row["fitted_theta"] = theta
        if fit is not None:
            row.update(
                entropy=min(fit.loss_history),
                loss_start=fit.loss_history[0],
                loss_end=min(fit.loss_history),
                evaluations=fit.evaluations,
            )
        rows.append(row)
        log(f"  {method}: θ {label}, MSE {mse:.3g} bins²")

    init = float(np.sqrt(t.win_min * t.win_max))

    def entropy_fit(mode: str, name: str) -> None:
        for p in config.powers:
            t0 = time.perf_counter()
            fit = fit_window(
                x,
                t,
                mode=mode,
                steps=config.steps,
                lr=config.lr,
                power=p,
                radius=config.radius,
                smoothness=config.smoothness,
            )
            add(f"{name} (p = {p:g})", fit.win_length, fit, time.perf_counter() - t0, init)

    entropy_fit("constant", "constant θ, entropy fit")
    t0 = time.perf_counter()
    grid = np.arange(int(np.ceil(t.win_min)), int(t.win_max) + 1, config.grid_step, dtype=np.float64)
    mses = np.array([score(float(g))[0] for g in grid])
    add(
        "constant θ, MSE-optimal grid (oracle)",
        float(grid[int(np.argmin(mses))]),
        seconds=time.perf_counter() - t0,
    )
    entropy_fit("time", "time-varying θ, entropy fit")
    time_fits = {p: row for p, row in zip(config.powers, rows[-len(config.powers) :], strict=True)}
    tf = DSTFT(config.n_fft, config.hop_length, window_mode="time-frequency")
    for p in config.powers:
        t0 = time.perf_counter()
        fit = fit_window(
            x,
            tf,
            mode="time-frequency",
            steps=config.tf_steps,
            power=p,
            radius=config.radius,
            smoothness=config.smoothness,
            bands=config.bands,
        )
        seconds = time.perf_counter() - t0
        add(f"time-frequency θ, entropy fit (p = {p:g})", fit.win_length, fit, seconds, transform=tf)
    for p in config.powers:
        t0 = time.perf_counter()
        theta, positions, fit = _hop_fit(x, t, time_fits[p]["fitted_theta"], config, p)
        seconds = time.perf_counter() - t0
        hop = float(positions[1] - positions[0])
        add(
            f"time-varying θ + learnable hop (p = {p:g})",
            theta,
            fit,
            seconds,
            positions=positions,
            hop=hop,
        )
    for row in rows:
        row.pop("fitted_theta", None)
    return rows


def _hop_fit(x, t: DSTFT, theta0: torch.Tensor, config: TrackingConfig, power: float):
    """θ [F] and a constant hop h learnt jointly (module docstring): (θ, positions [F], record)."""
    n_frames = t.num_frames(x.shape[-1])
    fe = AdaptiveSpectrogram(
        t.n_fft,
        t.hop_length,
        t.win_min,
        t.win_max,
        win_length=theta0.clamp(t.win_min, t.win_max),
        n_frames=n_frames,
        output="complex",
        hop_mode="constant",
    ).double()
    opt = torch.optim.Adam(fe.parameters(), lr=config.hop_lr)
    history, best = [], None
    length = x.shape[-1]
    for _ in range(config.hop_steps):
        opt.zero_grad(set_to_none=True)
        spec = fe(x)
        c = fe.positions().detach()
        inside = (c >= 0) & (c <= length)
        local = entropy(spec[:, inside], power=power, radius=config.radius)
        loss = local.mean() + config.smoothness * smoothness_penalty(fe.theta()[inside])
        loss.backward()
        history.append(float(loss.detach()))
        if history[-1] <= min(history):
            best = (fe.win_length.clone(), c.clone())
        opt.step()
    return best[0], best[1], _Record(history)


class _Record:
    """The fields of a fit that ``add`` reads (loss history and evaluations)."""

    def __init__(self, history: list) -> None:
        self.loss_history = history
        self.evaluations = len(history)


COLUMNS = [
    ("method", "method", ""),
    ("theta", "θ (samples)", ""),
    ("mse", "MSE (bins²)", ".3g"),
    ("mse_f1", "f1", ".3g"),
    ("mse_f2", "f2", ".3g"),
    ("mse_f3", "f3 (burst)", ".3g"),
    ("gross", "> 5 bins off (%)", ".1f"),
    ("hop", "hop (samples)", ".1f"),
    ("seconds", "time (s)", ".1f"),
]


def main(argv: list[str] | None = None) -> int:
    """``rtdstft reproduce tracking [--quick] [--json PATH] [--data DIR]``."""

    def footer(config: TrackingConfig, rows: list[dict], total: float) -> str:
        return (
            f"fan_flutter[{config.start}:{config.stop}], N={config.n_fft}, H={config.hop_length}; "
            f"MSE in bins² (1 bin = 1/N cycles/sample); total {total:.0f} s on {machine_info()['cpu']}"
        )

    description = "Ridge tracking on fan_flutter: constant vs time-varying θ."
    configs = (TrackingConfig(), QUICK)
    return experiment_main(argv, "tracking", description, run, configs, COLUMNS, footer)


if __name__ == "__main__":
    raise SystemExit(main())
