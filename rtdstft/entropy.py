r"""Concentration of a time-frequency representation: Shannon and Rényi entropies.

P = |S|^p (p = 2, the energy density, by default; p = 1 is what the seed paper's reference
implementation uses). Over a region R of bins, with Z = Σ_R P and P̄ = P / Z:

    Shannon   H(R)   = -Σ_R P̄ log P̄ = log Z - (Σ_R P log P) / Z
    Rényi     H_α(R) = log(Σ_R P̄^α) / (1 - α) = (log Σ_R P^α - α log Z) / (1 - α)

Global: R is the whole spectrogram. Local: R_n is every bin of frames n-r..n+r (clipped at the signal's
ends), for every frame n at once: the per-frame sums Σ_m P, Σ_m P log P (or Σ_m P^α), O(F·M), are
then summed over each frame's 2r + 1 neighbours, O(F·r). A per-frame entropy that normalises each
frame alone would not see that a short window concentrates a click in time; a neighbourhood does.

Band-restricted (:func:`band_entropy`): the same over one band's bins only, normalised within the
band, for every band of a partition of the bins.

A region with no energy (Z = 0) has entropy 0 by convention. A region holding NaN or ±inf has entropy
NaN: no value would be honest, and 0 would pass for the most concentrated.
"""

from __future__ import annotations

from itertools import pairwise

import torch

__all__ = ["entropy", "band_entropy", "power_spectrogram", "ENTROPY_KINDS"]

ENTROPY_KINDS = ("shannon", "renyi")


def power_spectrogram(spec: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """P = |S|^p for complex S (|S|² without a square root for p = 2); real S is taken as |S|."""
    if spec.is_complex():
        if power == 2.0:
            return spec.real.square() + spec.imag.square()
        return spec.abs().pow(power)
    return spec.abs().pow(power) if power != 1.0 else spec.abs()


def _window_sum(col: torch.Tensor, radius: int) -> torch.Tensor:
    """Σ_{k=n-r}^{n+r} col[..., k] for every n (clipped at the ends): [..., F] -> [..., F].

    Summed directly over the 2r + 1 neighbours (O(F·r), small beside the O(F·M) column sums): a
    running sum's differences would lose the digits of a quiet passage after a loud one.
    """
    return _neighbours(col, radius).sum(-1)


def _neighbours(col: torch.Tensor, radius: int) -> torch.Tensor:
    """col[..., k] for k = n-r..n+r of every frame n, 0 beyond the ends: [..., F] -> [..., F, 2r+1]."""
    return torch.nn.functional.pad(col, (radius, radius)).unfold(-1, 2 * radius + 1, 1)


def check_entropy_args(kind: str, alpha: float, power: float, radius: int | None) -> None:
    """Raises ValueError naming the first of ``kind``, ``alpha`` (Rényi only), ``power`` and
    ``radius`` that :func:`entropy` cannot take, with its valid range."""
    if kind not in ENTROPY_KINDS:
        raise ValueError(f"kind must be one of {ENTROPY_KINDS}, got {kind!r}")
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    if kind == "renyi" and not (alpha > 0 and alpha != 1):
        raise ValueError(f"alpha must be > 0 and != 1 for the Rényi entropy, got {alpha}")
    if radius is not None and (isinstance(radius, bool) or int(radius) != radius or radius < 0):
        raise ValueError(f"radius must be None (global) or an integer >= 0, got {radius!r}")


def entropy(
    spec: torch.Tensor,
    kind: str = "shannon",
    alpha: float = 3.0,
    power: float = 2.0,
    radius: int | None = None,
) -> torch.Tensor:
    """Shannon or Rényi entropy of a spectrogram, global or local.

    Args:
        spec: S, complex [..., M, F] (bins × frames, as ``DSTFT.forward`` returns), or a real
            magnitude |S| of that shape.
        kind: "shannon" or "renyi".
        alpha: Rényi order α > 0, α != 1 (α → 1 tends to Shannon).
        power: p in P = |S|^p, > 0.
        radius: None for the global entropy (one value per spectrogram, shape [...]); an integer
            r >= 0 for the local entropy of frames n-r..n+r for every frame n (shape [..., F]).

    Returns:
        Entropy in nats, [...] (global) or [..., F] (local); 0 where the region has no energy, NaN
        where it holds NaN or ±inf. Differentiable.
    """
    if not isinstance(spec, torch.Tensor) or spec.dim() < 2:
        raise ValueError("spec must be a tensor [..., M, F] (bins × frames)")
    check_entropy_args(kind, alpha, power, radius)
    p = power_spectrogram(spec, power)

    def region_sum(col: torch.Tensor) -> torch.Tensor:  # [..., F] -> each region's sum
        return col.sum(-1) if radius is None else _window_sum(col, int(radius))

    z = region_sum(p.sum(-2))
    if kind == "shannon":
        # P log(P + tiny) is P log P to float precision and 0 at P = 0, where its derivative stays
        # finite (that of P log P is -inf there, which turns silence into NaN gradients).
        q = region_sum((p * torch.log(p + torch.finfo(p.dtype).tiny)).sum(-2))
    else:
        q, scale = _renyi_sums(p, alpha, radius)
    nonzero = z != 0  # NaN too: a NaN or inf region stays NaN below, never 0
    z_safe = torch.where(nonzero, z, torch.ones_like(z))
    if kind == "shannon":
        h = torch.log(z_safe) - q / z_safe
    else:
        q_safe = torch.where(nonzero, q, torch.ones_like(q))
        h = (torch.log(q_safe) - alpha * torch.log(z_safe / scale)) / (1.0 - alpha)
    return torch.where(nonzero, h, torch.zeros_like(h))


def _renyi_sums(p: torch.Tensor, alpha: float, radius: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q / s^α, s) of every region R (the whole spectrogram, or frames n-r..n+r): Q = Σ_R P^α,
    s = the largest P in R (1 where R holds none), each [...] or [..., F].

    Σ P^α itself overflows float32 once P > 1e12.7 (|S| of int16-scaled audio with the "l1" gain
    at N = 2048) and underflows in quiet regions, long before H_α = (log Q - α log Z) / (1 - α)
    does. Each frame's sum is taken relative to its loudest bin s_n, and the frames of a region
    relative to the loudest s_n in it, so every term is at most 1 and the loudest is 1; H_α does
    not depend on the scales, which are therefore constants (detached) for the gradient.
    """
    s_col = p.detach().amax(-2)  # [..., F]; 0 for a silent frame, whose sum is then 0 too
    q_col = (p / torch.where(s_col > 0, s_col, torch.ones_like(s_col)).unsqueeze(-2)).pow(alpha).sum(-2)
    if radius is None:  # one region: every frame
        s_nb, q_nb = s_col, q_col
    else:  # [..., F, 2r+1]; frames beyond the ends: no energy, as _window_sum's
        s_nb, q_nb = _neighbours(s_col, int(radius)), _neighbours(q_col, int(radius))
    s_reg = s_nb.amax(-1)
    s_reg = torch.where(s_reg > 0, s_reg, torch.ones_like(s_reg))
    return ((s_nb / s_reg.unsqueeze(-1)).pow(alpha) * q_nb).sum(-1), s_reg


def band_entropy(
    spec: torch.Tensor,
    edges,
    kind: str = "shannon",
    alpha: float = 3.0,
    power: float = 2.0,
    radius: int | None = None,
) -> torch.Tensor:
    """Band-restricted entropy: :func:`entropy` of each band's bins alone, normalised within the band.

    A measure over the whole picture is dominated by its loudest band; judging each band on its own
    bins lets a frequency-dependent window be good where each band is quiet, too.

    Args:
        spec: S, complex [..., M, F] (or a real magnitude), as for :func:`entropy`.
        edges: bin edges e_0 < e_1 < ... < e_B of B bands, integers in [0, M]; band b holds bins
            e_b .. e_{b+1} - 1. A sequence or a 1-d integer tensor.
        kind, alpha, power, radius: as for :func:`entropy` (radius None: global per band).

    Returns:
        Entropy in nats, [..., B] (global) or [..., B, F] (local). Differentiable.
    """
    if not isinstance(spec, torch.Tensor) or spec.dim() < 2:
        raise ValueError("spec must be a tensor [..., M, F] (bins × frames)")
    n_bins = spec.shape[-2]
    bounds = [int(e) for e in (edges.tolist() if isinstance(edges, torch.Tensor) else edges)]
    if len(bounds) < 2 or any(b != e for b, e in zip(bounds, edges, strict=True)):
        raise ValueError(f"edges must be at least two integer bin edges, got {edges!r}")
    if bounds[0] < 0 or bounds[-1] > n_bins or any(a >= b for a, b in pairwise(bounds)):
        raise ValueError(f"edges must increase strictly within [0, M] = [0, {n_bins}], got {bounds}")
    bands = [entropy(spec[..., a:b, :], kind, alpha, power, radius) for a, b in pairwise(bounds)]
    return torch.stack(bands, dim=-1 if radius is None else -2)
