"""The continuous Hann window family w(u; θ) of the differentiable STFT.

For a frame of support N = n_fft samples, offset u = j - N/2 (j = 0..N-1) from the frame centre, and a
real window length θ in (0, N]:

    w(u; θ) = g(θ) · cos²(π u / θ)   if |u| < θ/2,   else 0

    g(θ) = N / θ   normalization "l1"   (the seed paper's L/θ: a steady sinusoid keeps its peak
                                          magnitude whatever θ)
    g(θ) = 1       normalization "peak" (θ = N gives torch.hann_window(N), periodic)

w is continuously differentiable in θ and in u: cos² and its derivative both vanish at |u| = θ/2, so
the mask adds no jump and gradients wrt θ are exact everywhere. Building the window is one broadcast
over [..., F, N]; there is no loop over frames.
"""

from __future__ import annotations

import math

import torch

NORMALIZATIONS = ("l1", "peak")
_HALF_PI = math.pi / 2


def frame_offsets(n_fft: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """u = j - N/2 for j = 0..N-1, shape [N]."""
    return torch.arange(n_fft, device=device, dtype=dtype) - n_fft // 2


def hann_window(
    win_length: torch.Tensor,
    n_fft: int,
    normalization: str = "l1",
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Windows for every frame at once.

    Args:
        win_length: θ in samples, shape [...] (one θ per frame, any leading shape), real floating.
        n_fft: N, the frame support in samples (even).
        normalization: "l1" (g = N/θ) or "peak" (g = 1).
        offsets: optional precomputed ``frame_offsets(n_fft)`` of the right device and dtype.

    Returns:
        w of shape [..., N], same dtype and device as ``win_length``.
    """
    if offsets is None:
        offsets = frame_offsets(n_fft, win_length.device, win_length.dtype)
    theta = win_length.unsqueeze(-1)
    phase = offsets * (math.pi / theta)  # [..., N]
    gain = n_fft / theta if normalization == "l1" else None
    if torch.is_grad_enabled() and win_length.requires_grad:
        w = torch.where(phase.abs() < _HALF_PI, torch.cos(phase).square(), 0.0)
        return w if gain is None else w * gain
    # No graph to record: the same values in place, in fewer passes over [..., N]. cos φ equals
    # sin(π/2 - |φ|), and clamping π/2 - |φ| at 0 makes the window exactly 0 outside |u| < θ/2.
    w = phase.abs_().neg_().add_(_HALF_PI).clamp_min_(0.0).sin_().square_()
    return w if gain is None else w.mul_(gain)


def hann_window_half(win_length: torch.Tensor, n_fft: int, normalization: str = "l1") -> torch.Tensor:
    """w(u; θ) for u = 0..N/2 only, [..., N/2 + 1], without a graph: the window is even in u, so
    this half, mirrored, is the whole window, at half the trigonometry of :func:`hann_window`.

    Bit for bit the values :func:`hann_window` gives (without a graph) at offsets ±u: it rounds
    u·(π/θ), whose sign drops out exactly, through the same steps.
    """
    theta = win_length.unsqueeze(-1)
    u = torch.arange(n_fft // 2 + 1, device=win_length.device, dtype=win_length.dtype)
    # -(u·c) is exactly u·(-c): the negation folds into the product.
    w = torch.mul(u, -(math.pi / theta)).add_(_HALF_PI).clamp_min_(0.0).sin_().square_()
    return w.mul_(n_fft / theta) if normalization == "l1" else w


def hann_window_derivative(
    win_length: torch.Tensor,
    n_fft: int,
    normalization: str = "l1",
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """∂w/∂θ, [..., N], for hand-written backward passes.

    With φ = π u / θ, c = cos φ, s = sin φ:  ∂(c²)/∂θ = 2 c s φ / θ, so for "l1" (g = N/θ)

        ∂w/∂θ = (g / θ) · c · (2 s φ - c),     and for "peak"  ∂w/∂θ = 2 c s φ / θ.

    φ is clamped to ±π/2 so that the derivative vanishes outside |u| < θ/2 (there c = cos(±π/2) is 0
    up to round-off, ~1e-8 relative in float32), in fewer passes over [..., N] than a mask.
    """
    if offsets is None:
        offsets = frame_offsets(n_fft, win_length.device, win_length.dtype)
    theta = win_length.unsqueeze(-1)
    phase = (offsets * (math.pi / theta)).clamp_(-_HALF_PI, _HALF_PI)
    c = torch.cos(phase)
    t = torch.sin(phase).mul_(phase).mul_(2.0)  # 2 s φ
    if normalization == "l1":
        return t.sub_(c).mul_(c).mul_(n_fft / theta.square())
    return t.mul_(c).div_(theta)


def hann_window_slope(
    win_length: torch.Tensor,
    n_fft: int,
    normalization: str = "l1",
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """∂w/∂u, [..., N]: the window's derivative in its offset u, for gradients wrt frame positions.

    With φ = π u / θ:  ∂(c²)/∂u = -2 c s π / θ = -(π / θ) sin 2φ, so ∂w/∂u = -g (π / θ) sin 2φ. φ is
    clamped to ±π/2, where sin 2φ = 0, so the slope vanishes outside |u| < θ/2 (w is C¹ in u).
    ``offsets`` may carry a per-frame shift (shape [..., N] broadcasting against θ[..., None]).
    """
    if offsets is None:
        offsets = frame_offsets(n_fft, win_length.device, win_length.dtype)
    theta = win_length.unsqueeze(-1)
    scale = math.pi / theta
    slope = (offsets * scale).clamp_(-_HALF_PI, _HALF_PI).mul_(2.0).sin_().mul_(-scale)
    return slope.mul_(n_fft / theta) if normalization == "l1" else slope
