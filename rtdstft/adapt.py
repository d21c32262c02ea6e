r"""Gradient optimisers of the window length θ.

Offline fit (:func:`fit_window`): projected Adam in s = log θ, kept inside [log win_min, log win_max]
after every step (projection, so the bound never kills the gradient), with the learning rate decayed
geometrically to ``lr * final_lr_ratio``.

    mode="constant":  θ scalar,  minimise  H(S_θ)                       (global entropy)
    mode="time":      θ ∈ R^F,   minimise  mean_n H_r(S_θ)[n] + λ mean_n (log θ_n - log θ_{n-1})²
                                  (local entropy over frames n-r..n+r, plus a smoothness penalty)

    mode="frequency":       θ ∈ R^M     minimise  mean_b mean_n H_r^b(S_θ)[n] + λ mean_m (Δ_m log θ)²
    mode="time-frequency":  θ ∈ R^{M×F} the same + λ mean_m mean_n (Δ_n log θ)²
                            (H^b: the local entropy of band b's bins alone, normalised within it)

The penalties are means, as the entropy terms are, so λ weighs the same against the entropy whatever
the signal's length (a sum over frames would make a long signal's θ all but constant).

Working in log θ makes a step a relative change of the window, the same for 64 and 4096 samples.

The time objective is not convex in θ: from a constant start, gradient steps stall in the nearest
valley (a window a little shorter on a click lowers nothing until it is much shorter). So the time fit
starts where a search over the whole signal puts it (:func:`search_time_window`): a grid of G constant
windows gives every frame's column sums Σ_m P and Σ_m P log P (or Σ_m P^α) for each θ_g, from which
the exact objective of any θ sequence on the grid follows in O(F·r) without another transform
(a frame's spectrum depends on its own θ only). Coordinate descent on that objective, over blocks of
frames and then single frames, each block choosing the best of the G windows with the frames after it
in view, lands near the per-block oracle; gradient steps then refine it off the grid. The frequency
modes start the same way per band (:func:`search_band_window`).

The online adapter of the streaming engine lives in :mod:`rtdstft.online`.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import NamedTuple

import numpy as np
import torch

from .entropy import band_entropy, check_entropy_args, entropy, power_spectrogram
from .transform import DSTFT, check_signal

__all__ = [
    "fit_window",
    "WindowFit",
    "smoothness_penalty",
    "search_time_window",
    "search_band_window",
    "band_edges",
]

FIT_MODES = ("constant", "time", "frequency", "time-frequency")


class WindowFit(NamedTuple):
    """Result of :func:`fit_window`: ``theta, history = fit_window(...)`` also works.

    win_length: the fitted θ in samples (0-d tensor for "constant", [F] for "time"), detached.
    loss_history: the objective at each step (before the step), a list of floats.
    evaluations: how many forward transforms (each with its backward) the fit ran.
    """

    win_length: torch.Tensor
    loss_history: list
    evaluations: int


def smoothness_penalty(win_length: torch.Tensor) -> torch.Tensor:
    """mean_n (log θ_n - log θ_{n-1})² over the F - 1 steps of the last dim, [...] (0 when F = 1)."""
    log_theta = torch.log(win_length)
    steps = (log_theta[..., 1:] - log_theta[..., :-1]).square()
    return steps.sum(-1) / max(steps.shape[-1], 1)


def fit_window(
    x: torch.Tensor,
    transform: DSTFT,
    mode: str = "constant",
    init: float | torch.Tensor | None = None,
    steps: int = 150,
    lr: float | None = None,
    final_lr_ratio: float = 0.01,
    kind: str = "shannon",
    alpha: float = 3.0,
    power: float = 2.0,
    radius: int = 4,
    smoothness: float = 0.1,
    tol: float = 1e-5,
    bands=8,
) -> WindowFit:
    """Fits θ to a signal by gradient descent on the entropy of its DSTFT.

    Args:
        x: real signal [T] (or [..., T]: the entropy is summed over the batch, one θ for all).
        transform: the DSTFT (n_fft, hop_length, normalization, bounds win_min/win_max).
        mode: "constant" (one θ, global entropy), "time" (one θ per frame, local entropy of
            radius ``radius`` frames plus ``smoothness`` · mean_n (log θ_n - log θ_{n-1})²),
            "frequency" (one θ per bin, [M]) or "time-frequency" (one θ per bin and frame, [M, F]):
            the local entropy of each band of ``bands`` alone (:func:`rtdstft.band_entropy`),
            averaged over the bands, plus ``smoothness`` times the same mean squared step of log θ
            across bins (and, for "time-frequency", across frames too). A whole-picture entropy
            would judge the windows by the loudest band only. The transform's window_mode need
            not match: the fit uses a copy of it in the mode it fits.
        init: starting θ in samples (float, or a tensor of the mode's shape); default for
            "constant" the geometric mean of the bounds, sqrt(win_min · win_max), for "time" the θ
            of :func:`search_time_window` (a whole-signal search on a grid of windows), for
            "frequency" each band's best constant window, for "time-frequency" that search run on
            each band alone.
        steps: at most this many Adam steps (>= 1); stops earlier once a step moves log θ by less
            than ``tol`` everywhere.
        lr: Adam's learning rate in log θ (0.1 ≈ 10 % change of θ per step at first), > 0; default
            0.1, or 0.02 from the search's start (half its grid spacing: the search has found the
            valley, the steps only refine within it).
        final_lr_ratio: the learning rate decays geometrically to lr · final_lr_ratio, in (0, 1].
        kind, alpha, power: the entropy (see :func:`rtdstft.entropy`).
        radius: neighbourhood of the local entropy in frames (every mode but "constant"), >= 0.
        smoothness: λ >= 0 (every mode but "constant").
        tol: stopping threshold on the largest |Δ log θ| of a step, >= 0.
        bands: the frequency modes' bands: an integer B (B bands of equal width over the M bins,
            1 <= B <= M) or bin edges e_0 = 0 < ... < e_B = M.

    Returns:
        WindowFit(win_length, loss_history, evaluations): for "time" and the frequency modes, the
        evaluated θ with the lowest objective ([F], [M] or [M, F]); for "constant", the end of the
        final sign bracket of dJ/d log θ nearer its zero (or, without a bracket, the best evaluated θ).
    """
    x = check_signal(x)
    if not isinstance(transform, DSTFT):
        raise TypeError(f"transform must be an rtdstft.DSTFT, got {type(transform).__name__}")
    if mode not in FIT_MODES:
        raise ValueError(f"mode must be one of {FIT_MODES}, got {mode!r}")
    # Before the search, whose numpy sums would only warn (α = 1 divides by 0, λ = inf makes NaN).
    check_entropy_args(kind, alpha, power, None)
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if lr is None:
        lr = 0.1 if init is not None or mode == "constant" else 0.02
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be > 0 and finite, got {lr}")
    if not 0 < final_lr_ratio <= 1:
        raise ValueError(f"final_lr_ratio must be in (0, 1], got {final_lr_ratio}")
    if not (smoothness >= 0 and math.isfinite(smoothness)):
        raise ValueError(f"smoothness must be >= 0 and finite, got {smoothness}")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be >= 0 and finite, got {tol}")
    if int(radius) != radius or radius < 0:
        raise ValueError(f"radius must be an integer >= 0, got {radius!r}")

    transform = _in_mode(transform, "time" if mode == "constant" else mode)
    n_frames = transform.num_frames(x.shape[-1])
    edges = band_edges(bands, transform.n_bins) if mode in ("frequency", "time-frequency") else None
    lo, hi = math.log(transform.win_min), math.log(transform.win_max)
    if init is None and mode == "time":
        init, _ = search_time_window(x, transform, kind, alpha, power, int(radius), smoothness)
    elif init is None and edges is not None:
        init = search_band_window(x, transform, edges, kind, alpha, power, int(radius), smoothness)
    elif init is None:
        init = math.sqrt(transform.win_min * transform.win_max)
    theta0 = transform.check_win_length(init, tuple(x.shape[:-1]), n_frames, x).detach()
    if mode == "constant":
        if theta0.numel() != 1:
            raise ValueError("init must be a single θ for mode='constant'")
        theta0 = theta0.reshape(())
    else:
        shape = transform.theta_shape(n_frames)
        if theta0.numel() != 1 and tuple(theta0.shape) != shape:
            raise ValueError(f"init must be a single θ or one of shape {shape} for mode={mode!r}")
        theta0 = theta0.reshape((1,) * len(shape) if theta0.numel() == 1 else shape).expand(shape).clone()

    log_theta = torch.log(theta0).clamp(lo, hi).requires_grad_(True)
    opt = torch.optim.Adam([log_theta], lr=lr)
    decay = final_lr_ratio ** (1.0 / max(int(steps) - 1, 1))
    history: list[float] = []
    bracket = None  # mode "constant": ((s_a, g_a), (s_b, g_b)) with g_a < 0 < g_b around a minimum
    previous = None
    for _ in range(int(steps)):
        opt.zero_grad(set_to_none=True)
        theta = log_theta.exp()
        spec = transform(x, theta)
        if mode == "constant":
            loss = entropy(spec, kind, alpha, power).sum()
        elif mode == "time":
            local = entropy(spec, kind, alpha, power, radius=int(radius))
            loss = local.mean(-1).sum() + smoothness * smoothness_penalty(theta)
        else:
            local = band_entropy(spec, edges, kind, alpha, power, radius=int(radius))  # [..., B, F]
            loss = local.mean(-1).mean(-1).sum() + smoothness * _bin_penalty(theta)
        loss.backward()
        history.append(float(loss.detach()))
        before = log_theta.detach().clone()
        if history[-1] <= min(history):
            best_log_theta = before  # the fit returns the best θ it evaluated, never a worse one
        if mode == "constant":
            point = (float(before), float(log_theta.grad))
            if bracket is None and previous is not None:
                low, high = sorted((previous, point))
                if low[1] < 0 < high[1]:
                    bracket = (low, high)
            elif bracket is not None:
                bracket = _illinois_update(bracket, point)
            previous = point
        if bracket is not None:
            # The derivative changed sign between two iterates: a minimum lies between them, and
            # regula falsi (Illinois) on dJ/ds converges to it superlinearly where Adam, whose
            # steps do not shrink with the gradient, would keep circling a flat optimum.
            (sa, ga), (sb, gb) = bracket
            if sb - sa < tol:
                break
            with torch.no_grad():
                log_theta.fill_(sb - gb * (sb - sa) / (gb - ga) if gb != ga else 0.5 * (sa + sb))
            continue
        opt.step()
        with torch.no_grad():
            log_theta.clamp_(lo, hi)
            moved = float((log_theta - before).abs().max())
        for group in opt.param_groups:
            group["lr"] *= decay
        if moved < tol:
            break
    if bracket is not None:
        # The end of the bracket nearer a zero of dJ/ds: on a flat optimum the objective's
        # round-off can rank the evaluated points wrongly, its derivative does not.
        (sa, ga), (sb, gb) = bracket
        best = min((sa, ga), (sb, gb), key=lambda p: abs(p[1]))[0]
        best_log_theta = torch.tensor(best, dtype=x.dtype, device=x.device)
    return WindowFit(best_log_theta.exp(), history, len(history))


def band_edges(bands, n_bins: int) -> list[int]:
    """Bin edges of ``bands``: an integer B (B bands of near-equal width over n_bins bins) or the
    edges themselves (checked: integers from 0 to n_bins, strictly increasing)."""
    if isinstance(bands, int) and not isinstance(bands, bool):
        if not 1 <= bands <= n_bins:
            raise ValueError(f"bands must be an integer in [1, M = {n_bins}] or bin edges, got {bands}")
        return [round(b * n_bins / bands) for b in range(bands + 1)]
    edges = [int(e) for e in bands]
    if edges[0] != 0 or edges[-1] != n_bins or any(b <= a for a, b in pairwise(edges)):
        raise ValueError(f"bands' edges must increase strictly from 0 to M = {n_bins}, got {list(bands)}")
    return edges


def _in_mode(transform: DSTFT, window_mode: str) -> DSTFT:
    """The transform itself, or a copy of it with another window mode."""
    if transform.window_mode == window_mode:
        return transform
    return DSTFT(
        transform.n_fft,
        transform.hop_length,
        transform.normalization,
        transform.win_min,
        transform.win_max,
        window_mode=window_mode,
    )


def _bin_penalty(theta: torch.Tensor) -> torch.Tensor:
    """The frequency modes' smoothness: mean squared step of log θ across bins ([M] or [M, F]), plus
    across frames for [M, F]."""
    if theta.dim() == 1:
        return smoothness_penalty(theta)
    return smoothness_penalty(theta.T).mean() + smoothness_penalty(theta).mean()


def _illinois_update(bracket, point):
    """Shrinks a sign bracket ((s_a, g_a), (s_b, g_b)), g_a < 0 < g_b, with a new point (s, g) inside
    it; the Illinois variant halves the stale end's g so that the bracket shrinks from both sides."""
    (sa, ga), (sb, gb) = bracket
    s, g = point
    if g == 0:
        return (s, g), (s, g)
    if g < 0:
        return (s, g), (sb, gb * 0.5)
    return (sa, ga * 0.5), (s, g)


#: Spacing of the search grid in log θ (about 4 % between neighbouring windows).
SEARCH_STEP = 0.04
#: Block sizes (frames) of the coordinate descent, coarse to fine.
SEARCH_BLOCKS = (16, 8, 4, 2, 1)


def search_time_window(
    x: torch.Tensor,
    transform: DSTFT,
    kind: str = "shannon",
    alpha: float = 3.0,
    power: float = 2.0,
    radius: int = 4,
    smoothness: float = 0.1,
    sweeps: int = 4,
) -> tuple[torch.Tensor, float]:
    """The time fit's start: θ per frame on a log grid, by coordinate descent over the whole signal.

    Minimises the objective of :func:`fit_window`'s mode "time" (mean local entropy of radius
    ``radius`` frames, summed over the batch, plus ``smoothness`` · mean_n (log θ_n - log θ_{n-1})²) over
    sequences whose values lie on a geometric grid from win_min to win_max (spacing ~4 %). One
    transform per grid value gives each frame's column sums; the objective of any sequence follows
    from them exactly. From the best constant window, blocks of 16, 8, 4, 2 and then 1 frames in turn
    each take the grid value that lowers the objective most, all blocks that share no neighbourhood at
    once, for at most ``sweeps`` sweeps per block size.

    Args:
        x: real signal [T] or [..., T] (one θ for the whole batch).
        transform: the DSTFT. kind, alpha, power, radius, smoothness: as for :func:`fit_window`.
        sweeps: passes per block size (>= 1); a pass that changes nothing ends that size early.

    Returns:
        (θ [F] in samples, x's dtype and device; the objective of that θ, a float).
    """
    x = check_signal(x)
    grid = _search_grid(transform)
    z_cols, q_cols = _grid_columns(x, transform, np.exp(grid), kind, alpha, power, [0, transform.n_bins])
    idx, objective = _coordinate_search(
        z_cols[:, :, 0], q_cols[:, :, 0], grid, radius, kind, alpha, smoothness, sweeps
    )
    return _theta_tensor(grid[idx], transform, x), objective


def search_band_window(
    x: torch.Tensor,
    transform: DSTFT,
    edges: list[int],
    kind: str = "shannon",
    alpha: float = 3.0,
    power: float = 2.0,
    radius: int = 4,
    smoothness: float = 0.1,
    sweeps: int = 4,
) -> torch.Tensor:
    """The frequency modes' start: each band's θ on the search grid, judged by its own entropy.

    A bin's spectrum depends on its own θ only, so a band whose bins share a window is exactly that
    window's constant-θ transform there: one transform per grid value serves every band. For
    window_mode "frequency", each band takes its constant window of least mean local band entropy;
    for "time-frequency", each band runs :func:`search_time_window`'s coordinate descent on its own
    column sums. Returns θ [M] or [M, F] (piecewise constant over the bands), x's dtype and device.
    """
    x = check_signal(x)
    grid = _search_grid(transform)
    z_cols, q_cols = _grid_columns(x, transform, np.exp(grid), kind, alpha, power, edges)  # [G, B, b, F]
    n_frames = z_cols.shape[-1]
    per_band = []
    for b in range(len(edges) - 1):
        z, q = z_cols[:, :, b], q_cols[:, :, b]
        if transform.window_mode == "frequency":
            h = _local_entropy_np(z.reshape(-1, n_frames), q.reshape(-1, n_frames), int(radius), kind, alpha)
            per_band.append(np.full(1, grid[int(h.reshape(len(grid), -1).mean(-1).argmin())]))
        else:
            idx, _ = _coordinate_search(z, q, grid, radius, kind, alpha, smoothness, sweeps)
            per_band.append(grid[idx])
    widths = np.diff(edges)
    log_theta = np.repeat(np.stack(per_band), widths, axis=0)  # [M, 1] or [M, F]
    if transform.window_mode == "frequency":
        log_theta = log_theta[:, 0]
    return _theta_tensor(log_theta, transform, x)


def _search_grid(transform: DSTFT) -> np.ndarray:
    """log θ from log win_min to log win_max, about :data:`SEARCH_STEP` apart."""
    lo, hi = math.log(transform.win_min), math.log(transform.win_max)
    return np.linspace(lo, hi, max(1, math.ceil((hi - lo) / SEARCH_STEP) + 1))


def _theta_tensor(log_theta: np.ndarray, transform: DSTFT, like: torch.Tensor) -> torch.Tensor:
    theta = torch.from_numpy(np.exp(log_theta)).to(device=like.device, dtype=like.dtype)
    return theta.clamp(transform.win_min, transform.win_max)


def _coordinate_search(z_cols, q_cols, grid, radius, kind, alpha, smoothness, sweeps):
    """Grid indices [F] of least objective from column sums [G, B, F] (see
    :func:`search_time_window`), and that objective."""
    n_frames = z_cols.shape[-1]
    r = int(radius)
    lam = float(smoothness) / max(n_frames - 1, 1)  # per step of the sum: the penalty is a mean

    def objective(idx: np.ndarray) -> float:
        h = _local_entropy_np(_pick(z_cols, idx), _pick(q_cols, idx), r, kind, alpha)
        return float(h.mean(-1).sum() + lam * np.square(np.diff(grid[idx])).sum())

    constant = [objective(np.full(n_frames, g)) for g in range(len(grid))]
    idx = np.full(n_frames, int(np.argmin(constant)))
    for size in SEARCH_BLOCKS:
        for _ in range(int(sweeps)):
            changed = False
            colors = 1 + max(1, math.ceil(2 * r / size))
            for color in range(colors):
                starts = np.arange(color * size, n_frames, colors * size)
                changed |= _descend(z_cols, q_cols, grid, idx, starts, size, r, kind, alpha, lam)
            if not changed:
                break
    return idx, objective(idx)


def _grid_columns(x, transform, thetas, kind, alpha, power, edges):
    """Per-band, per-frame Z = Σ_m P and Q = Σ_m P log P (Shannon) or Σ_m P^α (Rényi) of the
    constant windows ``thetas`` [G], numpy float64 [G, B, bands, F] (B: x's batch, flattened)."""
    xb = x.reshape(-1, x.shape[-1])
    t = _in_mode(transform, "time")  # a constant θ is the same transform in every mode, fastest here
    z_all, q_all = [], []
    with torch.no_grad():
        for theta in thetas:
            theta = min(max(float(theta), t.win_min), t.win_max)
            p = power_spectrogram(t(xb, theta), power)
            if kind == "shannon":
                q = p * torch.log(p + torch.finfo(p.dtype).tiny)
            else:  # float64: P^α overflows float32 for loud signals (P > 1e12.7), underflows for quiet ones
                q = p.double().pow(alpha)
            z_all.append(
                torch.stack([p[:, a:b].sum(-2) for a, b in pairwise(edges)], 1).double().cpu().numpy()
            )
            q_all.append(
                torch.stack([q[:, a:b].sum(-2) for a, b in pairwise(edges)], 1).double().cpu().numpy()
            )
    return np.stack(z_all), np.stack(q_all)


def _pick(cols: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """cols[idx[k], :, k] for every frame k: [G, B, F] -> [B, F]."""
    return np.take_along_axis(cols, idx[None, None, :], 0)[0]


def _entropy_from_sums(z, q, kind, alpha):
    """Entropy of regions with sums Z = Σ P and Q (see :mod:`rtdstft.entropy`); 0 where Z = 0."""
    nonzero = z > 0
    z_safe = np.where(nonzero, z, 1.0)
    if kind == "shannon":
        h = np.log(z_safe) - q / z_safe
    else:
        h = (np.log(np.where(nonzero, q, 1.0)) - alpha * np.log(z_safe)) / (1.0 - alpha)
    return np.where(nonzero, h, 0.0)


def _local_entropy_np(z_col, q_col, r, kind, alpha):
    """Local entropy [B, F] from per-frame sums [B, F], neighbourhoods summed directly."""
    pad = ((0, 0), (r, r))
    z = np.lib.stride_tricks.sliding_window_view(np.pad(z_col, pad), 2 * r + 1, -1).sum(-1)
    q = np.lib.stride_tricks.sliding_window_view(np.pad(q_col, pad), 2 * r + 1, -1).sum(-1)
    return _entropy_from_sums(z, q, kind, alpha)


def _descend(z_cols, q_cols, grid, idx, starts, size, r, kind, alpha, lam) -> bool:
    """One coordinate step for the blocks [s, s + size) of ``starts`` (which share no neighbourhood):
    each takes the grid value of least objective, computed exactly from the column sums. Updates
    ``idx`` in place; True if any block changed."""
    n_grid, batch, n_frames = z_cols.shape
    pad = r + size
    span = size + 2 * r  # the frames whose neighbourhood meets the block: s - r .. s + size - 1 + r
    zp = np.pad(z_cols, ((0, 0), (0, 0), (pad, pad)))
    qp = np.pad(q_cols, ((0, 0), (0, 0), (pad, pad)))
    idxp = np.pad(idx, (pad, pad))
    z_cur, q_cur = _pick(zp, idxp), _pick(qp, idxp)  # [B, F + 2 pad], zero outside the signal
    block = starts[:, None] + pad + np.arange(size)  # [S, size] padded frame indices
    affected = starts[:, None] + pad - r + np.arange(span)  # [S, span]
    # reach[a, i]: block frame i lies in the neighbourhood of affected frame a.
    reach = (np.abs(np.arange(size)[None, :] - np.arange(span)[:, None] + r) <= r).astype(np.float64)

    def window_sums(cols):  # Σ over each frame's neighbourhood, [B, F + 2 pad]
        return np.lib.stride_tricks.sliding_window_view(np.pad(cols, ((0, 0), (r, r))), 2 * r + 1, -1).sum(-1)

    def new_sums(cur, grid_cols):  # [G, B, S, span]: the affected frames' sums, block at each grid value
        rest = cur.copy()
        rest[:, block.ravel()] = 0.0
        return window_sums(rest)[:, affected] + np.einsum("gbsi,ai->gbsa", grid_cols[:, :, block], reach)

    # New sums = the neighbourhood without the block + the block at each grid value, never old sum -
    # old block + new block: Rényi's Σ P^α spans many decades (P³), and the difference of two large
    # sums would lose a quiet neighbourhood's whole value (even to 0 or below).
    z_old, q_old = window_sums(z_cur)[:, affected], window_sums(q_cur)[:, affected]  # [B, S, span]
    z_new, q_new = new_sums(z_cur, zp), new_sums(q_cur, qp)
    inside = ((affected >= pad) & (affected < pad + n_frames)).astype(np.float64)  # [S, span]
    h_old = _entropy_from_sums(z_old, q_old, kind, alpha)
    h_new = _entropy_from_sums(z_new, q_new, kind, alpha)
    delta = ((h_new - h_old) * inside).sum(-1).sum(1) / n_frames  # [G, S]
    if lam > 0:
        log_theta = grid[idx]
        first = starts
        last = np.minimum(starts + size, n_frames) - 1
        before = np.where(first > 0, log_theta[np.maximum(first - 1, 0)], np.nan)
        after = np.where(last < n_frames - 1, log_theta[np.minimum(last + 1, n_frames - 1)], np.nan)
        steps = np.square(np.diff(log_theta))  # steps[k] between frames k and k + 1
        cum = np.concatenate([[0.0], np.cumsum(steps)])
        lo_step, hi_step = np.maximum(first - 1, 0), np.minimum(last + 1, n_frames - 1)
        old_pen = cum[hi_step] - cum[lo_step]
        new_pen = np.nan_to_num(np.square(grid[:, None] - before)) + np.nan_to_num(
            np.square(after - grid[:, None])
        )
        delta = delta + lam * (new_pen - old_pen)
    best = delta.argmin(0)
    gain = delta[best, np.arange(len(starts))]
    better = gain < -1e-12
    if not better.any():
        return False
    for s, g in zip(starts[better], best[better], strict=True):
        idx[s : min(s + size, n_frames)] = g
    return True
