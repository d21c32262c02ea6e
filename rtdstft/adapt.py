r"""Gradient optimisers of the window length θ.

Offline fit (:func:`fit_window`): projected Adam in s = log θ, kept inside [log win_min, log win_max]
after every step (projection, so the bound never kills the gradient), with the learning rate decayed
geometrically to ``lr * final_lr_ratio``.

    mode="constant":  θ scalar,  minimise  H(S_θ)                       (global entropy)
    mode="time":      θ ∈ R^F,   minimise  mean_n H_r(S_θ)[n] + λ Σ_n (log θ_n - log θ_{n-1})²
                                  (local entropy over frames n-r..n+r, plus a smoothness penalty)

Working in log θ makes a step a relative change of the window, the same for 64 and 4096 samples.
The online adapter of the streaming engine lives in :mod:`rtdstft.online`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .entropy import ENTROPY_KINDS, entropy
from .transform import DSTFT, check_signal

__all__ = ["fit_window", "WindowFit", "smoothness_penalty"]

FIT_MODES = ("constant", "time")


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
    """Σ_n (log θ_n - log θ_{n-1})² over the last dim, [...]."""
    log_theta = torch.log(win_length)
    return (log_theta[..., 1:] - log_theta[..., :-1]).square().sum(-1)


def fit_window(
    x: torch.Tensor,
    transform: DSTFT,
    mode: str = "constant",
    init: float | torch.Tensor | None = None,
    steps: int = 150,
    lr: float = 0.1,
    final_lr_ratio: float = 0.01,
    kind: str = "shannon",
    alpha: float = 3.0,
    power: float = 2.0,
    radius: int = 4,
    smoothness: float = 0.1,
    tol: float = 1e-5,
) -> WindowFit:
    """Fits θ to a signal by gradient descent on the entropy of its DSTFT.

    Args:
        x: real signal [T] (or [..., T]: the entropy is summed over the batch, one θ for all).
        transform: the DSTFT (n_fft, hop_length, normalization, bounds win_min/win_max).
        mode: "constant" (one θ, global entropy) or "time" (one θ per frame, local entropy of
            radius ``radius`` frames plus ``smoothness`` · Σ (log θ_n - log θ_{n-1})²).
        init: starting θ in samples (float, or [F] for "time"); default the geometric mean of the
            bounds, sqrt(win_min · win_max).
        steps: at most this many Adam steps (>= 1); stops earlier once a step moves log θ by less
            than ``tol`` everywhere.
        lr: Adam's learning rate in log θ (0.1 ≈ 10 % change of θ per step at first), > 0.
        final_lr_ratio: the learning rate decays geometrically to lr · final_lr_ratio, in (0, 1].
        kind, alpha, power: the entropy (see :func:`rtdstft.entropy`).
        radius: neighbourhood of the local entropy in frames (mode "time"), >= 0.
        smoothness: λ >= 0 (mode "time").
        tol: stopping threshold on the largest |Δ log θ| of a step, >= 0.

    Returns:
        WindowFit(win_length, loss_history, evaluations): for "time", the evaluated θ with the lowest
        objective; for "constant", the end of the final sign bracket of dJ/d log θ nearer its zero
        (or, without a bracket, the best evaluated θ).
    """
    x = check_signal(x)
    if not isinstance(transform, DSTFT):
        raise TypeError(f"transform must be an rtdstft.DSTFT, got {type(transform).__name__}")
    if mode not in FIT_MODES:
        raise ValueError(f"mode must be one of {FIT_MODES}, got {mode!r}")
    if kind not in ENTROPY_KINDS:
        raise ValueError(f"kind must be one of {ENTROPY_KINDS}, got {kind!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not 0 < final_lr_ratio <= 1:
        raise ValueError(f"final_lr_ratio must be in (0, 1], got {final_lr_ratio}")
    if not smoothness >= 0:
        raise ValueError(f"smoothness must be >= 0, got {smoothness}")
    if int(radius) != radius or radius < 0:
        raise ValueError(f"radius must be an integer >= 0, got {radius!r}")

    n_frames = transform.num_frames(x.shape[-1])
    lo, hi = math.log(transform.win_min), math.log(transform.win_max)
    if init is None:
        init = math.sqrt(transform.win_min * transform.win_max)
    theta0 = transform.check_win_length(init, tuple(x.shape[:-1]), n_frames, x).detach()
    if mode == "constant":
        if theta0.numel() != 1:
            raise ValueError("init must be a single θ for mode='constant'")
        theta0 = theta0.reshape(())
    else:
        theta0 = theta0.reshape(-1).expand(n_frames).clone()

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
        else:
            local = entropy(spec, kind, alpha, power, radius=int(radius))
            loss = local.mean(-1).sum() + smoothness * smoothness_penalty(theta)
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
