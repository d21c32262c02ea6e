r"""Spectral editing: a gain on time-frequency regions, the rest of the signal untouched.

The signal goes through the streaming engine (:class:`~rtdstft.StreamingDSTFT`), frame by frame, as a
live view or ``rtdstft analyze`` would show it: frames S[n, m] with their window lengths θ_n. Each region
r (start and end in s, low and high frequency in Hz, a gain g_r in dB) becomes a smooth mask
M_r[n, m] in [0, 1]: 1 inside the box, falling to 0 by a raised cosine over ``edge_ms`` in time (frame
centres) and ``edge_hz`` in frequency (bin centres). The frames are scaled by

    G[n, m] = Π_r (1 + (10^(g_r / 20) - 1) · M_r[n, m])          (-inf dB removes, 0 dB keeps)

and resynthesised by the engine's exact inverse, the weighted overlap-add with the frames' own windows:

    ŷ[k] = Σ_n w(k - c_n; θ_n) · irfft(G·S)[n, k - c_n + N/2]  /  Σ_n w(k - c_n; θ_n)²

Only frames that some mask reaches (M_r > 0) take part: a sample none of whose windows (|k - c_n| < θ_n/2)
belongs to such a frame is copied from the input, so outside the regions, their mask edges and half a
window around them, the output equals the input sample for sample (bit-exact, also after writing to the
source's integer format). Inside, unmasked frames resynthesise to the input within float precision (the
overlap-add is exact: a 0 dB gain returns the input to ~1e-7).

Channels are edited independently, each through its own engine (as ``rtdstft resynth`` does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .stream import StreamingDSTFT
from .windows import hann_window

__all__ = ["Region", "EditResult", "region_mask", "spectral_edit", "MAX_GAIN_DB"]

#: The largest gain a region may apply, in dB (a boost beyond this mostly amplifies noise).
MAX_GAIN_DB = 24.0


@dataclass(frozen=True)
class Region:
    """A time-frequency box and its gain.

    start, end: seconds from the start of the signal, 0 <= start < end.
    low, high: Hz, 0 <= low < high.
    gain_db: dB in [-inf, 24]; -inf removes what is inside, 0 keeps it.
    """

    start: float
    end: float
    low: float
    high: float
    gain_db: float

    def check(self, duration: float, nyquist: float) -> None:
        """Raises ValueError naming the field and its valid range."""
        vals = (self.start, self.end, self.low, self.high)
        if not all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) for v in vals):
            raise ValueError(f"region {self}: start, end, low and high must be finite numbers")
        if not 0 <= self.start < self.end:
            raise ValueError(
                f"region start/end must satisfy 0 <= start < end, got {self.start:g}, {self.end:g} s"
            )
        if self.start >= duration:
            raise ValueError(
                f"region start must be inside the signal [0, {duration:.6g}) s, got {self.start:g} s"
            )
        if not 0 <= self.low < self.high:
            raise ValueError(
                f"region low/high must satisfy 0 <= low < high, got {self.low:g}, {self.high:g} Hz"
            )
        if self.low >= nyquist:
            raise ValueError(
                f"region low must be below the Nyquist frequency {nyquist:g} Hz, got {self.low:g}"
            )
        g = self.gain_db
        if not isinstance(g, (int, float, np.floating, np.integer)) or math.isnan(g) or g > MAX_GAIN_DB:
            raise ValueError(f"region gain_db must be in [-inf, {MAX_GAIN_DB:g}] dB, got {g!r}")

    @property
    def factor(self) -> float:
        """The linear gain 10^(gain_db / 20) (0 for -inf)."""
        return 0.0 if self.gain_db == -math.inf else 10.0 ** (self.gain_db / 20.0)


@dataclass
class EditResult:
    """audio: the edited signal, shape and dtype of the input. win_length: θ per frame [F] (per channel
    [C, F] for a [T, C] input), samples. touched: bool [T], samples that were resynthesised (the rest
    are copies of the input)."""

    audio: np.ndarray
    win_length: np.ndarray
    touched: np.ndarray


def _ramp(values: np.ndarray, lo: float, hi: float, edge: float) -> np.ndarray:
    """1 on [lo, hi], a raised cosine down to 0 over ``edge`` on each side, 0 beyond."""
    out = ((values >= lo) & (values <= hi)).astype(np.float64)
    if edge > 0:
        for dist in (lo - values, values - hi):
            inside = (dist > 0) & (dist < edge)
            out[inside] = 0.5 * (1 + np.cos(np.pi * dist[inside] / edge))
    return out


def region_mask(
    region: Region, frame_times: np.ndarray, frequencies: np.ndarray, edge_ms: float, edge_hz: float
) -> np.ndarray:
    """M[n, m] in [0, 1] for frame centres ``frame_times`` (s, [F]) and bins ``frequencies`` (Hz, [M]):
    the outer product of a time ramp and a frequency ramp (see :func:`_ramp`)."""
    t = _ramp(np.asarray(frame_times, np.float64), region.start, region.end, edge_ms / 1000.0)
    f = _ramp(np.asarray(frequencies, np.float64), region.low, region.high, edge_hz)
    return np.outer(t, f)


def _frames(x: np.ndarray, engine: StreamingDSTFT) -> tuple[np.ndarray, np.ndarray]:
    """Every frame the engine emits for x ([F, M] complex) and its θ ([F])."""
    specs, thetas = [], []
    step = 64 * engine.hop_length
    for i in range(0, x.shape[0], step):
        out = engine.process(x[i : i + step])
        specs.append(out.spec)
        thetas.append(out.win_length)
    out = engine.flush()
    specs.append(out.spec)
    thetas.append(out.win_length)
    return np.concatenate(specs), np.concatenate(thetas)


def _edit_channel(
    x: np.ndarray, engine: StreamingDSTFT, regions: list[Region], edge_ms: float, edge_hz: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, h, sr = engine.n_fft, engine.hop_length, engine.sample_rate
    spec, theta = _frames(x, engine)
    n_frames = spec.shape[0]
    times = np.arange(n_frames) * (h / sr)
    freqs = np.arange(n // 2 + 1) * (sr / n)
    gain = np.ones((n_frames, n // 2 + 1))
    reached = np.zeros(n_frames, bool)
    for r in regions:
        m = region_mask(r, times, freqs, edge_ms, edge_hz)
        gain *= 1 + (r.factor - 1) * m
        reached |= m.any(axis=1)
    y = np.array(x, np.float64)
    touched = np.zeros(x.shape[0], bool)
    if not reached.any():
        return y, theta, touched
    # Samples under a reached frame's window are resynthesised; they need every frame whose support
    # (N samples) overlaps them, so the overlap-add runs over that wider range of frames.
    idx = np.flatnonzero(reached)
    centres = idx * h
    half = theta[idx] / 2
    lo = max(0, int(math.floor((centres - half).min())) + 1)
    hi = min(x.shape[0], int(math.ceil((centres + half).max())))
    if lo >= hi:
        return y, theta, touched
    for c, hw in zip(centres, half, strict=True):
        touched[max(0, int(math.floor(c - hw)) + 1) : min(x.shape[0], int(math.ceil(c + hw)))] = True
    f_lo = max(0, (lo - n // 2) // h)
    f_hi = min(n_frames, (hi + n // 2) // h + 1)
    sel = slice(f_lo, f_hi)
    th = torch.from_numpy(theta[sel].astype(np.float64))
    w = hann_window(th, n, engine.normalization).numpy()  # [f, N]
    frames = np.fft.irfft(spec[sel].astype(np.complex128) * gain[sel], n=n) * w
    start = f_lo * h - n // 2  # sample index of the first frame's first sample
    length = (f_hi - f_lo) * h + n  # one hop of slack for the chunked add
    num, den = np.zeros(length), np.zeros(length)
    for j in range(0, n, h):  # chunks of every frame land on consecutive, non-overlapping hops
        width = min(h, n - j)
        count = f_hi - f_lo
        num[j : j + count * h].reshape(count, h)[:, :width] += frames[:, j : j + width]
        den[j : j + count * h].reshape(count, h)[:, :width] += np.square(w[:, j : j + width])
    k = np.flatnonzero(touched)
    y[k] = num[k - start] / den[k - start]
    return y, theta, touched


def spectral_edit(
    x: np.ndarray,
    sample_rate: float,
    regions: list[Region],
    edge_ms: float = 10.0,
    edge_hz: float = 50.0,
    **engine_settings,
) -> EditResult:
    """Applies ``regions`` to x through the streaming engine's frames (see the module docstring).

    Args:
        x: float samples, [T] or [T, C] (channels edited independently), in [-1, 1] nominally.
        sample_rate: Hz.
        regions: :class:`Region` list; gains stack by multiplication where regions overlap.
        edge_ms, edge_hz: width of the mask's smooth edge in time (ms) and frequency (Hz), >= 0.
        **engine_settings: passed to :class:`~rtdstft.StreamingDSTFT` (n_fft, hop_length, adapt, ...);
            the defaults are the engine's own.

    Returns:
        :class:`EditResult`; ``audio`` has x's shape and dtype.
    """
    x = np.asarray(x)
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise ValueError(f"x must be [T] or [T, C] with T >= 1, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must hold float samples, got dtype {x.dtype}")
    for name, v in (("edge_ms", edge_ms), ("edge_hz", edge_hz)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    duration = x.shape[0] / float(sample_rate)
    for r in regions:
        r.check(duration, sample_rate / 2)
    engine_settings.setdefault("dtype", torch.float64)
    chans = x[:, None] if x.ndim == 1 else x
    outs, thetas, touched = [], [], np.zeros(x.shape[0], bool)
    for c in range(chans.shape[1]):
        engine = StreamingDSTFT(sample_rate=sample_rate, **engine_settings)
        y, theta, t = _edit_channel(chans[:, c].astype(np.float64), engine, regions, edge_ms, edge_hz)
        # Untouched samples are the input's own values, not a round trip through float64 arithmetic.
        y[~t] = chans[~t, c]
        outs.append(y)
        thetas.append(theta)
        touched |= t
    audio = np.stack(outs, axis=1) if x.ndim == 2 else outs[0]
    theta = np.stack(thetas) if x.ndim == 2 else thetas[0]
    return EditResult(audio.astype(x.dtype, copy=False), theta, touched)
