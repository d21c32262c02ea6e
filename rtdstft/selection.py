r"""Time-frequency selections over analysed audio: the exact frames, a smooth mask, the masked
resynthesis and the measurements of a box (t0 .. t1 s) × (f0 .. f1 Hz).

What the streaming engine emits is the whole-signal transform of its input with the emitted θ
(frame n centred at sample n·H, zeros before the first sample). So an :class:`Excerpt` (the input
samples and the θ of each frame) gives back every complex frame exactly, without keeping them:
:func:`frames` recomputes them with :class:`~rtdstft.DSTFT` on the samples the frames reach.

Masked resynthesis: the frames of the box and ``ceil(N/2H)`` frames of context either side are
multiplied by a mask M[n, m] = a(t_n) · b(f_m), where a and b are 1 inside the box, 0 outside it,
and raised-cosine ramps of width ``edge_s`` / ``edge_hz`` just inside its edges (no ramp at 0 Hz or
Nyquist, so a whole-band selection is untouched there), and inverted by the DSTFT's weighted
overlap-add. With M = 1 everywhere the inverse gives back the input exactly; a band mask gives the
part of the signal in that band with the time edges faded in and out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from .config import db_scale
from .pitch import instantaneous_frequency, scalloping

__all__ = ["Excerpt", "Region", "frames", "mask", "masked_inverse", "resynthesize", "measure", "frame_peaks"]


@dataclass(frozen=True)
class Region:
    """A box in time (s, stream time) × frequency (Hz), with an optional label."""

    t0: float
    t1: float
    f0: float
    f1: float
    label: str = ""

    def normalized(self) -> Region:
        """The same box with t0 <= t1 and f0 <= f1."""
        t0, t1 = sorted((float(self.t0), float(self.t1)))
        f0, f1 = sorted((float(self.f0), float(self.f1)))
        return Region(t0, t1, f0, f1, self.label)


@dataclass
class Excerpt:
    """A stretch of analysed audio: the input samples and the θ the engine used for each frame.

    audio: float32 [L], stream samples ``start .. start + L``.
    theta: float32 [F], θ (samples) of frames ``first_frame .. first_frame + F``; frame n is
        centred at stream sample n·``hop``.
    time0: stream time (s) of stream sample 0.
    settings: the engine's settings (``normalization`` among them), kept for exports.
    """

    audio: np.ndarray
    start: int
    theta: np.ndarray
    first_frame: int
    sample_rate: float
    n_fft: int
    hop: int
    time0: float = 0.0
    settings: dict = field(default_factory=dict)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def normalization(self) -> str:
        """The window gain the frames were taken with ("l1" unless the settings say otherwise)."""
        return self.settings.get("normalization") or "l1"

    def frame_time(self, n) -> np.ndarray:
        """Stream time (s) of frame(s) ``n``."""
        return self.time0 + np.asarray(n) * (self.hop / self.sample_rate)

    def frequencies(self) -> np.ndarray:
        """Bin frequencies (Hz), [N/2 + 1]."""
        return np.arange(self.n_bins) * (self.sample_rate / self.n_fft)

    def frame_range(self, t0: float, t1: float) -> tuple[int, int]:
        """Frames n0 .. n1 (end excluded) whose centres lie in [t0, t1] s, within the excerpt; t0 and
        t1 must be finite."""
        if not (math.isfinite(t0) and math.isfinite(t1)):
            raise ValueError(f"the region's times must be finite seconds, got {t0!r}..{t1!r}")
        per = self.sample_rate / self.hop
        lo = max(math.ceil((t0 - self.time0) * per - 1e-9), self.first_frame)
        hi = min(math.floor((t1 - self.time0) * per + 1e-9) + 1, self.first_frame + len(self.theta))
        return lo, max(lo, hi)

    def settings_json(self) -> str:
        """Every analysis setting as JSON (sample rate, N, H and the engine's own)."""
        keep = {
            k: v for k, v in self.settings.items() if isinstance(v, str | int | float | bool | tuple | None)
        }
        return json.dumps(
            {**keep, "sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop_length": self.hop}
        )


def _context(ex: Excerpt) -> int:
    return -(-(ex.n_fft // 2) // ex.hop)


def _segment(ex: Excerpt, n0: int, n1: int):
    """(samples, θ) of the frames n0 - c .. n1 + c (c frames of context), as a DSTFT input whose
    frame j is stream frame n0 - c + j; zeros where the excerpt has no samples."""
    import torch

    c = _context(ex)
    s0 = (n0 - c) * ex.hop
    length = (n1 - 1 + c - (n0 - c)) * ex.hop + 1
    x = np.zeros(length, dtype=np.float32)
    a, b = max(s0, ex.start), min(s0 + length, ex.start + len(ex.audio))
    if b > a:
        x[a - s0 : b - s0] = ex.audio[a - ex.start : b - ex.start]
    idx = np.clip(np.arange(n0 - c, n1 + c) - ex.first_frame, 0, len(ex.theta) - 1)
    theta = np.asarray(ex.theta, dtype=np.float32)[idx]
    return torch.from_numpy(x), torch.from_numpy(theta)


def _transform(ex: Excerpt, theta):
    from .transform import DSTFT

    norm = ex.normalization
    return DSTFT(ex.n_fft, ex.hop, norm, win_min=float(theta.min()), win_max=float(ex.n_fft))


def frames(ex: Excerpt, n0: int, n1: int) -> np.ndarray:
    """The complex frames n0 .. n1 (end excluded) as the engine emitted them: [n1 - n0, N/2 + 1],
    complex64. Needs the samples they reach (n·H ± N/2) in the excerpt; zeros are used beyond it."""
    if not ex.first_frame <= n0 < n1 <= ex.first_frame + len(ex.theta):
        raise ValueError(
            f"frames must lie in {ex.first_frame}..{ex.first_frame + len(ex.theta)}, got {n0}..{n1}"
        )
    x, theta = _segment(ex, n0, n1)
    c = _context(ex)
    spec = _transform(ex, theta)(x, theta)
    return spec[:, c : c + n1 - n0].T.contiguous().numpy()


def _ramp(v: np.ndarray, lo: float, hi: float, edge: float, open_lo: bool, open_hi: bool) -> np.ndarray:
    """1 inside [lo, hi], 0 outside, raised-cosine ramps of width ``edge`` just inside each end
    (none at an open end)."""
    out = ((v >= lo) & (v <= hi)).astype(np.float64)
    if edge > 0:
        for end, is_open, sign in ((lo, open_lo, 1.0), (hi, open_hi, -1.0)):
            if is_open:
                continue
            u = sign * (v - end) / edge  # 0 at the edge, 1 at ``edge`` inside
            inside = (u >= 0) & (u < 1)
            out[inside] *= np.sin(0.5 * np.pi * u[inside]) ** 2
    return out


def mask(
    times: np.ndarray,
    freqs: np.ndarray,
    region: Region,
    nyquist: float,
    edge_s: float | None = None,
    edge_hz: float | None = None,
) -> np.ndarray:
    """The smooth-edged mask of ``region`` on a grid: [len(times), len(freqs)] float32 in [0, 1].

    ``edge_s`` (default min(20 ms, a quarter of the duration)) and ``edge_hz`` (default min(50 Hz,
    a quarter of the band)) are the widths of the raised-cosine ramps inside the box. A band that
    reaches 0 Hz or ``nyquist`` has no ramp there.
    """
    r = region.normalized()
    if edge_s is None:
        edge_s = min(0.02, (r.t1 - r.t0) / 4)
    if edge_hz is None:
        edge_hz = min(50.0, (r.f1 - r.f0) / 4)
    if edge_s < 0 or edge_hz < 0:
        raise ValueError(f"edge_s and edge_hz must be >= 0, got {edge_s!r}, {edge_hz!r}")
    a = _ramp(np.asarray(times, float), r.t0, r.t1, edge_s, False, False)
    b = _ramp(np.asarray(freqs, float), r.f0, r.f1, edge_hz, r.f0 <= 0, r.f1 >= nyquist)
    return np.outer(a, b).astype(np.float32)


def masked_inverse(ex: Excerpt, n0: int, n1: int, weights) -> tuple[np.ndarray, int]:
    """The weighted overlap-add of the frames n0 .. n1 (end excluded) and ``ceil(N/2H)`` frames of
    context either side, each multiplied by ``weights(times, freqs)`` ([frames, N/2 + 1], real, given
    the frames' stream times in s and the bin frequencies in Hz).

    Returns (y, s0): float32 samples and the stream sample of y[0]. A sample whose windows all
    belong to frames of weight 0 is exactly 0.
    """
    import torch

    x, theta = _segment(ex, n0, n1)
    c = _context(ex)
    t = _transform(ex, theta)
    spec = t(x, theta)  # [M, F]
    m = np.asarray(weights(ex.frame_time(np.arange(n0 - c, n1 + c)), ex.frequencies()), np.float32)
    y = t.inverse(spec * torch.from_numpy(m.T), theta, length=x.shape[0]).numpy()
    return y, (n0 - c) * ex.hop


def resynthesize(
    ex: Excerpt, region: Region, edge_s: float | None = None, edge_hz: float | None = None
) -> np.ndarray:
    """The masked resynthesis of ``region`` (see the module docstring): float32 samples from
    stream time t0 to t1 (round(t·sr) samples each)."""
    r = region.normalized()
    n0, n1 = ex.frame_range(r.t0, r.t1)
    if n1 <= n0:
        raise ValueError(f"the region {r.t0:.3f}..{r.t1:.3f} s holds no analysed frame")
    y, s0 = masked_inverse(
        ex, n0, n1, lambda times, freqs: mask(times, freqs, r, ex.sample_rate / 2, edge_s, edge_hz)
    )
    k0 = round((r.t0 - ex.time0) * ex.sample_rate) - s0
    k1 = round((r.t1 - ex.time0) * ex.sample_rate) - s0
    out = np.zeros(k1 - k0, dtype=np.float32)
    a, b = max(k0, 0), min(k1, len(y))
    if b > a:
        out[a - k0 : b - k0] = y[a:b]
    return out


def _band(ex: Excerpt, r: Region) -> tuple[int, int]:
    """Bins lo .. hi (end excluded) of the band f0 .. f1 of ``r`` (normalized): those whose centre lies
    in it, or the one at or above f0 when none does. The band must reach into 0 .. Nyquist: a band
    wholly outside holds nothing to measure (the nearest bin's reading would be its leak)."""
    nyquist = ex.sample_rate / 2
    if math.isnan(r.f0) or math.isnan(r.f1) or r.f1 < 0 or r.f0 > nyquist:
        raise ValueError(f"the region's band {r.f0:g}..{r.f1:g} Hz must overlap 0..{nyquist:g} Hz")
    f = ex.frequencies()
    lo = int(np.searchsorted(f, r.f0, side="left"))
    hi = int(np.searchsorted(f, r.f1, side="right"))
    return min(lo, ex.n_bins - 1), max(hi, min(lo, ex.n_bins - 1) + 1)


def frame_peaks(ex: Excerpt, region: Region) -> dict:
    """Per frame of ``region``: ``frame`` index, ``time`` (s), ``theta`` (samples), the loudest bin's
    refined ``peak_hz`` (phase-derivative, see :mod:`rtdstft.pitch`) and ``peak_db`` (dB re a
    full-scale sine, corrected for scalloping), restricted to the region's band. Arrays of equal
    length.

    ``peak_hz`` of frame n is the mean of the instantaneous frequencies over the hops n-1 → n and
    n → n+1 (at frame n's loudest bin): each is the frequency half a hop before or after frame n's
    centre, so their mean is centred on it (exact for a linear chirp); at the excerpt's ends, or
    next to a silent frame, the one hop there is; with no hop (a one-frame excerpt), the bin's
    frequency. NaN for a frame of digital silence (its ``peak_db`` is -240).
    """
    return _frame_peaks(ex, region.normalized())[0]


def _frame_peaks(ex: Excerpt, r: Region) -> tuple[dict, np.ndarray]:
    """(:func:`frame_peaks`, the region's frames [k, N/2 + 1])."""
    n0, n1 = ex.frame_range(r.t0, r.t1)
    if n1 <= n0:
        raise ValueError(f"the region {r.t0:.3f}..{r.t1:.3f} s holds no analysed frame")
    first, last = ex.first_frame, ex.first_frame + len(ex.theta)
    a0 = max(n0 - 1, first)  # one frame either side, for the phase advances into and out of each
    spec = frames(ex, a0, min(n1 + 1, last))
    k = n1 - n0
    own = spec[n0 - a0 : n0 - a0 + k]
    lo, hi = _band(ex, r)
    mag = np.abs(own[:, lo:hi])
    bins = lo + np.argmax(mag, axis=1)
    i = np.arange(k) + (n0 - a0)  # the region's frames, as rows of spec
    total = np.zeros(k)
    count = np.zeros(k)
    for a, b in ((i - 1, i), (i, i + 1)):  # the hops into and out of each frame
        ok = (a >= 0) & (b < len(spec))
        f = instantaneous_frequency(
            spec[a[ok], bins[ok]], spec[b[ok], bins[ok]], bins[ok], ex.hop, ex.n_fft, ex.sample_rate
        )
        has = np.isfinite(f)  # NaN: a silent frame at either end of the hop
        rows = np.flatnonzero(ok)[has]
        total[rows] += f[has]
        count[rows] += 1
    # No hop (a one-frame excerpt): the bin's own frequency, unless the frame is silent.
    df = ex.sample_rate / ex.n_fft
    loud = mag[np.arange(k), bins - lo] > 0
    peak_hz = np.where(count > 0, total / np.maximum(count, 1), np.where(loud, bins * df, np.nan))
    theta = np.asarray(ex.theta[n0 - first : n1 - first], np.float32)
    offset = np.nan_to_num(peak_hz / df - bins)  # none: silent, level -240
    gain = scalloping(theta, ex.n_fft, offset)
    peak = mag[np.arange(k), bins - lo] / np.maximum(gain, 1e-6)
    columns = {
        "frame": np.arange(n0, n1),
        "time": ex.frame_time(np.arange(n0, n1)),
        "theta": theta,
        "peak_hz": peak_hz,
        "peak_db": 20 * np.log10(np.maximum(peak * db_scale(ex.normalization, ex.n_fft, theta), 1e-12)),
    }
    return columns, own


def measure(ex: Excerpt, region: Region) -> dict:
    """Measurements of ``region`` (a hard box, no ramps):

    ``start``, ``end``, ``duration`` (s, stream time), ``low``, ``high`` (Hz), ``peak_hz`` (refined
    frequency of the loudest cell), ``peak_db`` (its level, dB re a full-scale sine), ``energy_db``
    (mean power of the box's band over its duration, dB re a full-scale sine: by Parseval,
    2 Σ_m |S[n, m]|² / (N Σ_j w_n[j]²) per frame, averaged), ``median_theta_ms``.
    """
    r = region.normalized()
    peaks, spec = _frame_peaks(ex, r)
    best = int(np.argmax(peaks["peak_db"]))
    lo, hi = _band(ex, r)
    import torch

    from .windows import hann_window

    theta = torch.from_numpy(peaks["theta"].astype(np.float64))[None]
    norm = ex.normalization
    w2 = (hann_window(theta, ex.n_fft, norm)[0] ** 2).sum(-1).numpy()
    power = 2 * (np.abs(spec[:, lo:hi].astype(np.complex128)) ** 2).sum(axis=1) / (ex.n_fft * w2)
    mean_power = float(np.mean(power))
    return {
        "start": r.t0,
        "end": r.t1,
        "duration": r.t1 - r.t0,
        "low": r.f0,
        "high": r.f1,
        "peak_hz": float(peaks["peak_hz"][best]),
        "peak_db": float(peaks["peak_db"][best]),
        "energy_db": 10 * math.log10(max(mean_power / 0.5, 1e-30)),
        "median_theta_ms": float(1000 * np.median(peaks["theta"]) / ex.sample_rate),
    }
