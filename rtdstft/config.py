r"""StreamConfig: the settings of the streaming engine, validated, with their defaults and live changes.

One frozen object holds everything :class:`~rtdstft.stream.StreamingDSTFT` is configured with; the
engine, the ``rtdstft`` command and the application all build and change it here, so a default, a
range or a derived value is written once.

Defaults that follow other settings (each one follows while it is not given, also after a change):

    hop_length = N / 8          win_max = N          win_min = min(2H, win_max)
    win_length = sqrt(win_min · win_max)   (the fixed θ without adaptation, else the starting θ)

Ranges: N even >= 4; 1 <= H <= N/2; H < win_min <= win_max <= N (above H every sample lies inside
some window, which keeps the resynthesis exact); win_min <= win_length <= win_max.

:meth:`StreamConfig.for_rate` gives the settings that suit a sample rate (θ from about 5 ms to
85 ms); :meth:`StreamConfig.replace` makes a changed, validated copy (:data:`LIVE_FIELDS` can change
on a running stream). :meth:`StreamConfig.db_scale` turns a spectrum into dB re a full-scale sine.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np

from .bands import MAX_BANDS, check_band_edges, default_band_edges, split_delay
from .entropy import ENTROPY_KINDS
from .online import DEFAULT_STEADINESS
from .transform import _check_int
from .windows import NORMALIZATIONS

__all__ = [
    "StreamConfig",
    "db_scale",
    "LIVE_FIELDS",
    "GEOMETRY_FIELDS",
    "RATE_FIELDS",
    "NORMALIZATIONS",
    "THETA_RANGE_S",
]

#: Settings that a running stream changes at its next block (``StreamingDSTFT.configure``).
LIVE_FIELDS = (
    "adapt",
    "win_length",
    "win_min",
    "win_max",
    "lr",
    "smoothness",
    "entropy",
    "alpha",
    "radius",
    "steps",
    "steadiness",
)
#: Settings that need a new engine.
GEOMETRY_FIELDS = (
    "sample_rate",
    "n_fft",
    "hop_length",
    "block_frames",
    "normalization",
    "bands",
    "band_edges",
)
#: Settings that :meth:`StreamConfig.for_rate` chooses for a sample rate.
RATE_FIELDS = ("n_fft", "hop_length", "win_min", "win_max")
#: The window lengths (s) that :meth:`StreamConfig.for_rate` spans at any rate: a click to a steady tone.
THETA_RANGE_S = (0.005, 0.085)
#: Fields that follow others while not given.
_DERIVED = ("hop_length", "win_max", "win_min", "win_length", "bands", "band_edges")


def _is_int(value) -> bool:
    """An integer (numpy's included) or an integral float; not a bool."""
    return not isinstance(value, bool) and (
        isinstance(value, Integral) or (isinstance(value, Real) and float(value).is_integer())
    )


def _real(name: str, value, what: str) -> float:
    """``value`` as a finite float (numpy scalars included), else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number {what}, got {value!r}")
    return float(value)


def db_scale(normalization: str, n_fft: int, win_length) -> np.ndarray:
    """Factor c per frame such that 20·log10(c·|S|) is in dB re a full-scale sine.

    A steady sinusoid of amplitude A at a bin's frequency peaks at |S| = A/2 · Σ_u w(u; θ) =
    A/2 · g(θ)·θ/2: A·N/4 for "l1" (whatever θ) and A·θ/4 for "peak"; so c = 4/N or 4/θ.

    normalization: "l1" | "peak"; n_fft: N; win_length: θ of each frame (samples), any shape.
    Returns c of θ's shape (float64).
    """
    theta = np.asarray(win_length, dtype=np.float64)
    if normalization == "l1":
        return np.full(theta.shape, 4.0 / n_fft)
    if normalization == "peak":
        return 4.0 / theta
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


@dataclass(frozen=True)
class StreamConfig:
    """The streaming engine's settings (units: samples, Hz).

    Args:
        sample_rate: Hz, finite and > 0; used for times and latencies in seconds.
        n_fft: N, frame support and FFT size, an even integer >= 4.
        hop_length: H, samples between frames, 1 <= H <= N/2; default N/8.
        adapt: True to adapt θ online; False to use ``win_length`` for every frame.
        win_length: the fixed θ (adapt=False) and the starting θ (adapt=True), in [win_min, win_max];
            default sqrt(win_min · win_max), which follows the bounds when they change.
        win_min: smallest θ, in (H, win_max]; default min(2H, win_max).
        win_max: largest θ, in (H, N]; default N.
        block_frames: K, frames per adaptation block (>= 1); latency grows with K·H.
        steps: 0 refines each block's bracket search by a parabola; >= 1 by that many gradient steps.
        lr: gradient step in log θ, finite and > 0.
        smoothness: λ, weight of (log θ_b - log θ_{b-1})² between blocks, finite and >= 0.
        entropy: one of ``ENTROPY_KINDS`` ("shannon", "renyi").
        alpha: Rényi order, finite, > 0 and != 1.
        radius: r, frames either side in the local entropy, an integer >= 0.
        normalization: window gain, one of ``NORMALIZATIONS`` ("l1": N/θ, "peak": 1).
        steadiness: nats per unit of |Δ log θ|, finite and >= 0, by which a move of θ must lower J
            when the context, too, is taken at each θ, where the sound's level holds (within 6 dB
            of the frames before; a larger change of level lets the move stand, see
            :mod:`rtdstft.online`); what keeps θ still on stationary sound. Default 0.15.
        bands: B, an integer in [1, 8]: one θ per block (1) or one per frequency band
            (:mod:`rtdstft.bands`: a perfect-reconstruction split, each band its own DSTFT, the
            spectrum their sum; the split's look-ahead adds ``split_delay`` samples of latency).
            Default: 1, or len(band_edges) + 1.
        band_edges: the B - 1 band edges in Hz, increasing, inside (0, 0.4·rate), at least a bin
            apart; default :func:`rtdstft.bands.default_band_edges` (octave-like, 250 Hz .. 8 kHz).

    A field given as None takes its default; ``derived`` names the fields that did, so that
    :meth:`replace` recomputes them from the new values. Every value is checked on construction:
    ValueError (TypeError for a non-integer N, H or K) names the parameter and its valid range.
    """

    sample_rate: float = 48000.0
    n_fft: int = 2048
    hop_length: int | None = None
    adapt: bool = True
    win_length: float | None = None
    win_min: float | None = None
    win_max: float | None = None
    block_frames: int = 8
    steps: int = 0
    lr: float = 0.1
    smoothness: float = 0.02
    entropy: str = "shannon"
    alpha: float = 3.0
    radius: int = 4
    normalization: str = "l1"
    steadiness: float = DEFAULT_STEADINESS
    bands: int | None = None
    band_edges: tuple | None = None
    derived: frozenset = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "derived", frozenset(k for k in _DERIVED if getattr(self, k) is None))
        put(self, "sample_rate", _real("sample_rate", self.sample_rate, "> 0 Hz"))
        if not self.sample_rate > 0:
            raise ValueError(f"sample_rate must be > 0 Hz, got {self.sample_rate!r}")
        n = _check_int("n_fft", self.n_fft, 4, even=True)
        put(self, "n_fft", n)
        h = max(1, n // 8) if self.hop_length is None else self.hop_length
        if not _is_int(h) or not 1 <= h <= n // 2:
            raise ValueError(f"hop_length must be an integer in [1, n_fft/2 = {n // 2}], got {h!r}")
        h = int(h)
        put(self, "hop_length", h)
        put(self, "block_frames", _check_int("block_frames", self.block_frames, 1))
        win_max = float(n) if self.win_max is None else _real("win_max", self.win_max, f"in ({h}, {n}]")
        if not h < win_max <= n:
            raise ValueError(f"win_max must be in (hop_length = {h}, n_fft = {n}], got {win_max:g}")
        if self.win_min is None:
            win_min = float(min(2 * h, win_max))
        else:
            win_min = _real("win_min", self.win_min, f"in ({h}, win_max = {win_max:g}]")
        if not h < win_min <= win_max:
            raise ValueError(f"win_min must be in (hop_length = {h}, win_max = {win_max:g}], got {win_min:g}")
        if self.win_length is None:
            wl = math.sqrt(win_min * win_max)
        else:
            wl = _real("win_length", self.win_length, f"in [{win_min:g}, {win_max:g}]")
        if not win_min <= wl <= win_max:
            raise ValueError(
                f"win_length must be in [win_min, win_max] = [{win_min:g}, {win_max:g}], got {wl:g}"
            )
        put(self, "win_max", win_max)
        put(self, "win_min", win_min)
        put(self, "win_length", wl)
        if not isinstance(self.adapt, (bool, np.bool_)):
            raise ValueError(f"adapt must be True or False, got {self.adapt!r}")
        put(self, "adapt", bool(self.adapt))
        if self.entropy not in ENTROPY_KINDS:
            raise ValueError(f"entropy must be one of {ENTROPY_KINDS}, got {self.entropy!r}")
        alpha = _real("alpha", self.alpha, "> 0 and != 1")
        if not (alpha > 0 and alpha != 1):
            raise ValueError(f"alpha must be > 0 and != 1, got {self.alpha!r}")
        put(self, "alpha", alpha)
        lr = _real("lr", self.lr, "> 0")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        put(self, "lr", lr)
        smoothness = _real("smoothness", self.smoothness, ">= 0")
        if not smoothness >= 0:
            raise ValueError(f"smoothness must be >= 0, got {self.smoothness!r}")
        put(self, "smoothness", smoothness)
        for name in ("radius", "steps"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
            put(self, name, int(v))
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        steadiness = _real("steadiness", self.steadiness, ">= 0 nats")
        if not steadiness >= 0:
            raise ValueError(f"steadiness must be >= 0 nats, got {self.steadiness!r}")
        put(self, "steadiness", steadiness)
        bands = self.bands
        if bands is not None and (not _is_int(bands) or not 1 <= bands <= MAX_BANDS):
            raise ValueError(f"bands must be an integer in [1, {MAX_BANDS}], got {bands!r}")
        if self.band_edges is None:
            edges = default_band_edges(1 if bands is None else int(bands), self.sample_rate)
        else:
            edges = check_band_edges(self.band_edges, self.sample_rate, n)
            if bands is not None and int(bands) != len(edges) + 1:
                raise ValueError(f"bands ({bands}) must be len(band_edges) + 1 = {len(edges) + 1}")
        put(self, "band_edges", edges)
        put(self, "bands", len(edges) + 1)

    # ---- making configs ---------------------------------------------------------------------------

    @classmethod
    def for_rate(cls, sample_rate: float, **fields) -> StreamConfig:
        """The settings that suit ``sample_rate`` (Hz), so that θ spans about 5 ms (a click) to 85 ms
        (a steady tone) whatever the rate, with ``fields`` given over them:

        - θ max = 85 ms, and N the smallest power of two that holds it (256 .. 8192);
        - H the power of two nearest 2.5 ms (32 .. 1024, at most N/4), θ min = 2H (about 5 ms);
        - the fixed / starting θ follows the bounds (their geometric mean, about 20 ms).

        For example 8 kHz: N 1024, H 32, θ 64 .. 680 (8 .. 85 ms); 16 kHz: N 2048, H 32, θ 64 .. 1360
        (4 .. 85 ms); 24 kHz: N 2048, H 64, θ 128 .. 2040 (5.3 .. 85 ms); 48 kHz: N 4096, H 128,
        θ 256 .. 4080 (5.3 .. 85 ms).

        When ``fields`` give N or H (not None), the rate chooses neither the other nor the θ bounds:
        they take their plain defaults (H = N/8, θ from 2H to N) unless given too.

        Below about 750 Hz no such settings exist (85 ms is fewer samples than 2H = 64): unless N, H
        or a θ bound is given, ValueError says so and suggests an N and H.
        """
        sr = cls(sample_rate=sample_rate).sample_rate  # checked as the constructor checks it
        given = {k: v for k, v in fields.items() if v is not None}
        if "n_fft" in given or "hop_length" in given:
            return cls(sample_rate=sr, **fields)
        shortest, longest = THETA_RANGE_S
        n = 2 ** min(max(math.ceil(math.log2(longest * sr)), 8), 13)
        h = min(2 ** min(max(round(math.log2(shortest / 2 * sr)), 5), 10), n // 4)
        suited = {
            "n_fft": n,
            "hop_length": h,
            "win_min": float(2 * h),
            "win_max": float(min(n, round(longest * sr))),
        }
        if suited["win_max"] < suited["win_min"] and "win_min" not in given and "win_max" not in given:
            # Below ~750 Hz, 85 ms is shorter than 2H at the smallest H: no such settings exist.
            n_low = 2 ** max(3, math.ceil(math.log2(longest * sr)))
            raise ValueError(
                f"sample_rate {sr:g} Hz is too low for the settings suited to the rate (θ from "
                f"2 hops = {2 * h} samples to {1000 * longest:g} ms = {suited['win_max']:g} samples); "
                f"give n_fft and hop_length, e.g. n_fft {n_low} and hop_length {n_low // 8}"
            )
        return cls(sample_rate=sr, **{**suited, **given})

    def replace(self, **changes) -> StreamConfig:
        """A validated copy with ``changes`` (field names); a field given None, and every field that
        took its default here and is not in ``changes``, is derived again from the new values (so an
        unset starting θ follows new bounds). Raises ValueError as the constructor, ``self`` unchanged."""
        unknown = set(changes) - set(self.fields())
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)}; settings are {self.fields()}")
        kept = {k: getattr(self, k) for k in self.fields() if k not in self.derived}
        return StreamConfig(**{**kept, **changes})

    @staticmethod
    def fields() -> tuple[str, ...]:
        """The setting names, in order."""
        return tuple(f.name for f in dataclasses.fields(StreamConfig) if f.init)

    def as_dict(self) -> dict:
        """{field: value} of every setting (the values in force, defaults resolved)."""
        return {k: getattr(self, k) for k in self.fields()}

    def changes_from(self, other: StreamConfig) -> dict:
        """{field: value} of the settings whose value differs from ``other``'s."""
        return {k: v for k, v in self.as_dict().items() if v != getattr(other, k)}

    def adapter_settings(self) -> dict:
        """The settings every online adapter takes, under the adapters' keyword names (the local
        entropy's ``kind`` is this config's ``entropy``): one place that maps the one onto the other."""
        return dict(
            radius=self.radius,
            kind=self.entropy,
            alpha=self.alpha,
            smoothness=self.smoothness,
            steadiness=self.steadiness,
            normalization=self.normalization,
        )

    # ---- derived facts ----------------------------------------------------------------------------

    @property
    def theta_limits(self) -> tuple[int, int]:
        """(H, N): every θ bound lies in (H, N]."""
        return self.hop_length, self.n_fft

    @property
    def theta_range(self) -> tuple[float, float]:
        """The θ the engine can emit: (win_min, win_max) when adapting, else (win_length, win_length)."""
        return (self.win_min, self.win_max) if self.adapt else (self.win_length, self.win_length)

    @property
    def split_delay(self) -> int:
        """D, the band split's look-ahead in samples (0 for one band)."""
        return split_delay(self.band_edges, self.sample_rate)

    @property
    def latency(self) -> int:
        """Samples from an input sample to its resynthesis: N + (K - 1)·H - 1 + D."""
        return self.n_fft + (self.block_frames - 1) * self.hop_length - 1 + self.split_delay

    @property
    def analysis_latency(self) -> int:
        """Worst-case samples from a frame's centre to its emission: N/2 + (K - 1)·H + D."""
        return self.n_fft // 2 + (self.block_frames - 1) * self.hop_length + self.split_delay

    def db_scale(self, win_length) -> np.ndarray:
        """The dBFS factor per frame of this config's N and normalization (:func:`db_scale`)."""
        return db_scale(self.normalization, self.n_fft, win_length)

    def to_dbfs(self, spec, win_length, floor_db: float = -200.0) -> np.ndarray:
        """Level of every bin in dB re a full-scale sine, float32 [F, M], at least ``floor_db``.

        spec: complex [F, M], one row per frame; win_length: θ [F] of those frames (samples).
        """
        mag = np.abs(spec) * self.db_scale(win_length)[:, None]
        return (20.0 * np.log10(np.maximum(mag, 10.0 ** (floor_db / 20.0)))).astype(np.float32)
