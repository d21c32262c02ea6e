r"""An adaptive spectrogram front end: a DSTFT whose window length θ trains with any torch model.

θ (samples) is a function of an unconstrained parameter ρ through a smooth bounded map in log θ:

    log θ = log θ_min + (log θ_max - log θ_min) · σ(ρ),      σ(ρ) = 1 / (1 + e^{-ρ})

so every finite ρ gives θ strictly inside (θ_min, θ_max) whatever an optimiser does to ρ, and

    ∂θ/∂ρ = θ · (log θ_max - log θ_min) · σ(ρ) (1 - σ(ρ)) > 0,

a gradient that never switches off (it only shrinks as θ approaches a bound). Near ρ = 0 a step in ρ
is a relative change of θ, the same for a 64- and a 4096-sample window. ρ is one number (a constant
θ for every frame and every batch item) or one per frame, ρ ∈ R^F, for inputs of a fixed length
T with F = 1 + T // H frames.

The spectrogram is S = DSTFT(x, θ) (see :mod:`rtdstft.transform`), complex [..., N/2 + 1, F]; with
P = |S|² the module returns one of

    "complex"    S
    "power"      P
    "magnitude"  |S|
    "log"        ln(P + ε)                                     (ε = ``log_eps``)
    "db"         max(10 log10 max(P, ε), D - top_db),  D = max over the example's bins and frames
                                                        of 10 log10 max(P, ε)

Training and evaluation compute the same thing (nothing is stochastic): in either mode the output
is exactly ``rtdstft.DSTFT(...)(x, module.win_length)`` passed through the output map.
"""

from __future__ import annotations

import math

import torch

from .entropy import entropy
from .transform import DSTFT, check_signal

__all__ = ["AdaptiveSpectrogram", "OUTPUTS"]

OUTPUTS = ("complex", "power", "magnitude", "log", "db")


class AdaptiveSpectrogram(torch.nn.Module):
    r"""Spectrogram front end with a learnable, bounded window length θ.

    Args:
        n_fft: N, frame support and FFT size in samples (even).
        hop_length: H, samples between frame centres.
        win_min, win_max: θ_min, θ_max in samples, 0 < θ_min < θ_max <= N; defaults 2·H and N
            (as :class:`rtdstft.DSTFT`).
        win_length: initial θ in samples, float (or a tensor [F] when ``n_frames`` is given); default
            the geometric mean sqrt(θ_min · θ_max) (ρ = 0). Values on a bound are moved 1e-6 of the
            log-range inside (σ cannot reach 0 or 1).
        n_frames: None for one θ shared by every frame; an integer F for one θ per frame, in which
            case inputs must have 1 + T // H = F frames.
        normalization: window gain, "l1" (N/θ, default) or "peak" (1); see :mod:`rtdstft.windows`.
        output: "complex", "power", "magnitude", "log" (default) or "db" (module docstring).
        log_eps: ε of "log" and "db" (in units of P), > 0.
        top_db: dynamic range kept by "db" below each example's maximum, in dB, > 0.
        learnable: if False, ρ is a buffer (θ fixed, moves with ``.to()`` but gets no gradient).

    Shapes: ``forward(x)`` with x real [..., T] (float32/float64) returns [..., N/2 + 1, F]
    (complex for "complex", real otherwise) on x's device. Parameters and buffers follow ``.to()``.
    """

    def __init__(
        self,
        n_fft: int = 512,
        hop_length: int = 64,
        win_min: float | None = None,
        win_max: float | None = None,
        win_length: float | torch.Tensor | None = None,
        n_frames: int | None = None,
        normalization: str = "l1",
        output: str = "log",
        log_eps: float = 1e-6,
        top_db: float = 80.0,
        learnable: bool = True,
    ) -> None:
        super().__init__()
        self.transform = DSTFT(n_fft, hop_length, normalization, win_min, win_max)
        if not self.transform.win_min < self.transform.win_max:
            raise ValueError(
                f"win_min must be < win_max for a learnable θ, got [{self.transform.win_min:g}, "
                f"{self.transform.win_max:g}]"
            )
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if not log_eps > 0:
            raise ValueError(f"log_eps must be > 0, got {log_eps}")
        if not top_db > 0:
            raise ValueError(f"top_db must be > 0 dB, got {top_db}")
        if n_frames is not None and (int(n_frames) != n_frames or n_frames < 1):
            raise ValueError(f"n_frames must be None or an integer >= 1, got {n_frames!r}")
        self.n_frames = None if n_frames is None else int(n_frames)
        self.output, self.log_eps, self.top_db = output, float(log_eps), float(top_db)
        self.learnable = bool(learnable)
        shape = () if self.n_frames is None else (self.n_frames,)
        rho = torch.zeros(shape)
        if learnable:
            self.rho = torch.nn.Parameter(rho)
        else:
            self.register_buffer("rho", rho)
        if win_length is not None:
            self.set_win_length(win_length)

    @property
    def n_fft(self) -> int:
        return self.transform.n_fft

    @property
    def hop_length(self) -> int:
        return self.transform.hop_length

    @property
    def win_min(self) -> float:
        return self.transform.win_min

    @property
    def win_max(self) -> float:
        return self.transform.win_max

    def extra_repr(self) -> str:
        frames = "constant" if self.n_frames is None else f"n_frames={self.n_frames}"
        return f"{frames}, output={self.output!r}, learnable={self.learnable}"

    def theta(self) -> torch.Tensor:
        """θ in samples, differentiable in ρ: 0-d (constant) or [F], ρ's dtype and device."""
        lo, hi = math.log(self.win_min), math.log(self.win_max)
        theta = torch.exp(lo + (hi - lo) * torch.sigmoid(self.rho))
        # Round-off in exp may land a hair outside; clamp passes the gradient inside the bounds.
        return theta.clamp(self.win_min, self.win_max)

    @property
    def win_length(self) -> torch.Tensor:
        """The current θ in samples, detached: 0-d tensor, or [F] with ``n_frames``."""
        return self.theta().detach()

    @torch.no_grad()
    def set_win_length(self, win_length: float | torch.Tensor) -> None:
        """Sets ρ so that θ = ``win_length`` (a float, or [F] with ``n_frames``), within the bounds."""
        value = torch.as_tensor(win_length, dtype=torch.float64)
        lo, hi = math.log(self.win_min), math.log(self.win_max)
        if not bool(torch.isfinite(value).all()) or bool((value <= 0).any()):
            raise ValueError(f"win_length must be finite and > 0 samples, got {win_length!r}")
        if value.min() < self.win_min * (1 - 1e-6) or value.max() > self.win_max * (1 + 1e-6):
            raise ValueError(
                f"win_length must lie in [win_min, win_max] = [{self.win_min:g}, {self.win_max:g}]"
                f" samples, got {win_length!r}"
            )
        s = ((value.log() - lo) / (hi - lo)).clamp(1e-6, 1 - 1e-6)
        self.rho.copy_(torch.logit(s).expand_as(self.rho).to(self.rho))

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """S = DSTFT(x, θ): x real [..., T] -> complex [..., N/2 + 1, F], differentiable in x and ρ."""
        x = check_signal(x)
        if self.n_frames is not None:
            frames = self.transform.num_frames(x.shape[-1])
            if frames != self.n_frames:
                lo, hi = (self.n_frames - 1) * self.hop_length, self.n_frames * self.hop_length - 1
                raise ValueError(
                    f"this front end has one θ per frame for n_frames={self.n_frames}: x must have "
                    f"T in [{lo}, {hi}] samples, got T={x.shape[-1]} ({frames} frames)"
                )
        return self.transform(x, self.theta())

    def features(self, spec: torch.Tensor) -> torch.Tensor:
        """The output map (module docstring) applied to a complex S [..., M, F]."""
        if self.output == "complex":
            return spec
        if self.output == "magnitude":
            return spec.abs()
        power = spec.real.square() + spec.imag.square()
        if self.output == "power":
            return power
        if self.output == "log":
            return torch.log(power + self.log_eps)
        db = 10.0 * torch.log10(power.clamp_min(self.log_eps))
        floor = db.amax(dim=(-2, -1), keepdim=True) - self.top_db
        return torch.maximum(db, floor)

    def forward(self, x: torch.Tensor, return_spec: bool = False):
        """x real [..., T] -> features [..., N/2 + 1, F]; ``(features, S)`` if ``return_spec``."""
        spec = self.spectrogram(x)
        out = self.features(spec)
        return (out, spec) if return_spec else out

    def entropy_loss(
        self, spec: torch.Tensor, kind: str = "shannon", power: float = 1.0, radius: int | None = None
    ) -> torch.Tensor:
        """Mean entropy (nats) of complex spectrograms S [..., M, F], a scalar to add to a task loss.

        Global entropy per spectrogram (``radius=None``) or the local entropy of frames n-r..n+r,
        averaged over frames; then averaged over the batch. ``power`` is p in P = |S|^p (1, the
        seed paper's choice, by default). See :func:`rtdstft.entropy`.
        """
        return entropy(spec, kind=kind, power=power, radius=radius).mean()

    def to_streaming(self, sample_rate: float, **kwargs):
        """A :class:`rtdstft.StreamingDSTFT` with this front end's N, H, gain and learned θ, fixed.

        A per-frame θ is handed over as its median (the streaming engine's fixed θ is one number).
        ``kwargs`` go to the StreamingDSTFT constructor (device, dtype, block_frames, ...). Defaults
        set here: adapt=False, win_max = this win_max, win_min = min(θ, 2H, N) (the engine needs
        win_min > H for an exact resynthesis, so a θ <= H is refused by the engine).
        """
        from .stream import StreamingDSTFT

        theta = self.win_length
        value = float(theta if theta.dim() == 0 else theta.median())
        kwargs.setdefault("adapt", False)
        kwargs.setdefault("win_max", self.win_max)
        kwargs.setdefault("win_min", min(value, 2.0 * self.hop_length, float(self.n_fft)))
        kwargs.setdefault("normalization", self.transform.normalization)
        return StreamingDSTFT(
            sample_rate=sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=value,
            **kwargs,
        )
