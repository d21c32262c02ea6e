r"""An adaptive spectrogram front end: a DSTFT whose window length θ (and, optionally, frame
positions) train with any torch model.

θ (samples) is a function of an unconstrained parameter ρ through a smooth bounded map in log θ:

    log θ = log θ_min + (log θ_max - log θ_min) · σ(ρ),      σ(ρ) = 1 / (1 + e^{-ρ})

so every finite ρ gives θ strictly inside (θ_min, θ_max) whatever an optimiser does to ρ, and

    ∂θ/∂ρ = θ · (log θ_max - log θ_min) · σ(ρ) (1 - σ(ρ)) > 0,

a gradient that never switches off (it only shrinks as θ approaches a bound). Near ρ = 0 a step in ρ
is a relative change of θ, the same for a 64- and a 4096-sample window. ρ has the shape of θ in the
window mode: one number (a constant θ for every frame and every batch item) or one per frame, ρ ∈ R^F
("time", for inputs of a fixed length T with F = 1 + T // H frames); one per bin, R^M
("frequency", M = N/2 + 1); one per bin and frame, R^{M×F} ("time-frequency").

Frame positions ("hop_mode"): "fixed" (c_n = n·H), "constant" (c_n = n·h with one learnable hop h)
or "time" (c_0 = 0, c_{n+1} = c_n + h_n with one learnable hop per frame). A hop is bounded as θ is,
log h = log h_min + (log h_max - log h_min) · σ(η), so frames stay in order and overlapping whatever
the optimiser does. With a learnable hop the number of frames F is fixed (``n_frames``): where the
frames reach past the input's end, the input is extended with zeros (as the seed paper's reference
does); where they stop short of it, the samples beyond the last frame's support are not analysed
(as torch.stft with ``center=False`` drops a tail).

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
from .transform import DSTFT, WINDOW_MODES, check_signal

__all__ = ["AdaptiveSpectrogram", "OUTPUTS", "HOP_MODES"]

OUTPUTS = ("complex", "power", "magnitude", "log", "db")
HOP_MODES = ("fixed", "constant", "time")


def bounded(rho: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """exp(log low + (log high - log low) · σ(ρ)), clamped to [low, high] against round-off."""
    lo, hi = math.log(low), math.log(high)
    return torch.exp(lo + (hi - lo) * torch.sigmoid(rho)).clamp(low, high)


def unbounded(value: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """The ρ with bounded(ρ) = value (values on a bound moved 1e-6 of the log-range inside)."""
    lo, hi = math.log(low), math.log(high)
    return torch.logit(((value.log() - lo) / (hi - lo)).clamp(1e-6, 1 - 1e-6))


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
        n_frames: None for one θ shared by every frame; an integer F for one θ per frame (or per
            bin and frame), in which case inputs must have 1 + T // H = F frames; with a learnable
            hop, the (required) number of frames whatever T.
        normalization: window gain, "l1" (N/θ, default) or "peak" (1); see :mod:`rtdstft.windows`.
        output: "complex", "power", "magnitude", "log" (default) or "db" (module docstring).
        log_eps: ε of "log" and "db" (in units of P), > 0.
        top_db: dynamic range kept by "db" below each example's maximum, in dB, > 0.
        learnable: if False, ρ is a buffer (θ fixed, moves with ``.to()`` but gets no gradient).
        window_mode: "time" (default: one θ per frame with ``n_frames``, else one θ), "constant"
            (one θ, also with ``n_frames``, e.g. beside a learnable hop), "frequency" or
            "time-frequency" (needs ``n_frames``): what θ varies with (see :class:`rtdstft.DSTFT`).
        hop_mode: "fixed" (default; c_n = n·H), "constant" (one learnable hop) or "time" (one
            learnable hop per frame); the learnable ones need ``n_frames``.
        hop_min, hop_max: bounds of a learnable hop in samples, 0 < hop_min < hop_max <= N;
            defaults H/2 and 2·H (capped at N). The hop starts at H (if inside, else the
            geometric mean of the bounds) and learns when ``learnable``.

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
        window_mode: str = "time",
        hop_mode: str = "fixed",
        hop_min: float | None = None,
        hop_max: float | None = None,
    ) -> None:
        super().__init__()
        if window_mode not in ("constant", *WINDOW_MODES):
            raise ValueError(f"window_mode must be one of {('constant', *WINDOW_MODES)}, got {window_mode!r}")
        self._window_mode = window_mode
        transform_mode = "time" if window_mode == "constant" else window_mode
        self.transform = DSTFT(n_fft, hop_length, normalization, win_min, win_max, window_mode=transform_mode)
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
        if hop_mode not in HOP_MODES:
            raise ValueError(f"hop_mode must be one of {HOP_MODES}, got {hop_mode!r}")
        if n_frames is None and (window_mode == "time-frequency" or hop_mode != "fixed"):
            need = (
                "window_mode='time-frequency'"
                if window_mode == "time-frequency"
                else f"hop_mode={hop_mode!r}"
            )
            raise ValueError(f"{need} needs n_frames, the number of frames F (an integer >= 1)")
        self.n_frames = None if n_frames is None else int(n_frames)
        self.output, self.log_eps, self.top_db = output, float(log_eps), float(top_db)
        self.learnable = bool(learnable)
        self.hop_mode = hop_mode
        if window_mode == "constant":
            shape = ()
        elif window_mode == "time":
            shape = () if self.n_frames is None else (self.n_frames,)
        elif window_mode == "frequency":
            shape = (self.transform.n_bins,)
        else:
            shape = (self.transform.n_bins, self.n_frames)
        self._register("rho", torch.zeros(shape))
        if win_length is not None:
            self.set_win_length(win_length)
        if hop_mode != "fixed":
            h = float(hop_length)
            self.hop_min = float(h / 2 if hop_min is None else hop_min)
            self.hop_max = float(min(2 * h, n_fft) if hop_max is None else hop_max)
            if not 0 < self.hop_min < self.hop_max <= n_fft:
                raise ValueError(
                    f"hop_min and hop_max must satisfy 0 < hop_min < hop_max <= n_fft = {n_fft}, got "
                    f"[{self.hop_min:g}, {self.hop_max:g}]"
                )
            start = h if self.hop_min < h < self.hop_max else math.sqrt(self.hop_min * self.hop_max)
            hops = torch.full(
                () if hop_mode == "constant" else (self.n_frames - 1,), start, dtype=torch.float64
            )
            self._register("eta", unbounded(hops, self.hop_min, self.hop_max).float())

    def _register(self, name: str, value: torch.Tensor) -> None:
        """A learnable parameter, or a buffer when not ``learnable``."""
        if self.learnable:
            setattr(self, name, torch.nn.Parameter(value))
        else:
            self.register_buffer(name, value)

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

    @property
    def window_mode(self) -> str:
        return self._window_mode

    def extra_repr(self) -> str:
        frames = "constant" if self.n_frames is None else f"n_frames={self.n_frames}"
        return (
            f"{frames}, window_mode={self.window_mode!r}, hop_mode={self.hop_mode!r}, "
            f"output={self.output!r}, learnable={self.learnable}"
        )

    def theta(self) -> torch.Tensor:
        """θ in samples, differentiable in ρ: 0-d, [F], [M] or [M, F] as ρ, ρ's dtype and device."""
        return bounded(self.rho, self.win_min, self.win_max)

    @property
    def win_length(self) -> torch.Tensor:
        """The current θ in samples, detached, of ρ's shape."""
        return self.theta().detach()

    def hops(self) -> torch.Tensor | None:
        """The learnable hop(s) in samples, differentiable: 0-d ("constant"), [F - 1] ("time"), or
        None when the frames are fixed."""
        if self.hop_mode == "fixed":
            return None
        return bounded(self.eta, self.hop_min, self.hop_max)

    def positions(self) -> torch.Tensor | None:
        """Frame centres c_n in samples, [F], differentiable in the hop(s); None when fixed."""
        hops = self.hops()
        if hops is None:
            return None
        if self.hop_mode == "constant":
            return hops * torch.arange(self.n_frames, device=hops.device, dtype=hops.dtype)
        return torch.nn.functional.pad(torch.cumsum(hops, 0), (1, 0))

    @torch.no_grad()
    def set_win_length(self, win_length: float | torch.Tensor) -> None:
        """Sets ρ so that θ = ``win_length`` (a float, or a tensor that expands to ρ's shape), within
        the bounds; any other shape is a ValueError naming win_length and ρ's shape."""
        value = torch.as_tensor(win_length, dtype=torch.float64)
        try:
            value = value.expand_as(self.rho)
        except RuntimeError:
            raise ValueError(
                f"win_length must be a float or a tensor that expands to θ's shape "
                f"{tuple(self.rho.shape)} (window_mode={self.window_mode!r}, n_frames={self.n_frames}), "
                f"got shape {tuple(value.shape)}"
            ) from None
        if not bool(torch.isfinite(value).all()) or bool((value <= 0).any()):
            raise ValueError(f"win_length must be finite and > 0 samples, got {win_length!r}")
        if value.min() < self.win_min * (1 - 1e-6) or value.max() > self.win_max * (1 + 1e-6):
            raise ValueError(
                f"win_length must lie in [win_min, win_max] = [{self.win_min:g}, {self.win_max:g}]"
                f" samples, got {win_length!r}"
            )
        self.rho.copy_(unbounded(value, self.win_min, self.win_max).to(self.rho))

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """S = DSTFT(x, θ, positions): x real [..., T] -> complex [..., N/2 + 1, F], differentiable in
        x, ρ and the hops."""
        x = check_signal(x)
        positions = self.positions()
        if positions is not None:
            positions = positions.to(x.dtype)
            last = float(positions[-1].detach())
            end = math.ceil(last)
            if end > x.shape[-1]:  # frames past the end see zeros
                x = torch.nn.functional.pad(x, (0, end - x.shape[-1]))
            else:  # frames that stop short: the tail beyond the last support is not analysed
                x = x[..., : min(x.shape[-1], math.floor(last) + self.n_fft // 2)]
            return self.transform(x, self.theta().to(x.dtype), positions)
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

        A θ per frame or per bin is handed over as its median (the streaming engine's fixed θ is one
        number); a learnable hop is refused.
        ``kwargs`` go to the StreamingDSTFT constructor (device, dtype, block_frames, ...). Defaults
        set here: adapt=False, win_max = this win_max, win_min = min(θ, 2H, N) (the engine needs
        win_min > H for an exact resynthesis, so a θ <= H is refused by the engine).
        """
        from .stream import StreamingDSTFT

        if self.hop_mode != "fixed":
            raise ValueError(
                f"to_streaming needs hop_mode='fixed' (the engine's hop is an integer), got {self.hop_mode!r}"
            )
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
