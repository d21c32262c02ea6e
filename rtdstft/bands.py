r"""The banded DSTFT: a window length per frequency band, with an exact inverse.

A perfect-reconstruction split cuts the signal into B bands at the edges f_1 < ... < f_{B-1} (Hz),
and each band gets its own time-varying DSTFT; the picture is the sum of the band spectra:

    L_b  = a zero-phase (symmetric, centred) linear-phase FIR low-pass at f_b, b = 1..B-1
    x_0  = L_1 x,   x_b = (L_{b+1} - L_b) x,   x_{B-1} = x - L_{B-1} x
    S[m, n] = Σ_b DSTFT(x_b; θ_{b, n})[m, n]

The bands telescope: Σ_b x_b = x sample by sample, whatever the filters, so inverting each band's
DSTFT by its weighted overlap-add (exact for any θ sequence with θ > H) and summing the bands gives x
back to float precision. With one θ for every band, S is the DSTFT of x. The band signals are taken
on the signal's own samples 0..T-1 (their filter tails outside are dropped; the sum stays exact).

Each low-pass is a Kaiser-windowed sinc (stopband 80 dB) whose transition is half its edge wide, so
the split is octave-like: narrow in hertz where the bands are narrow. The filters are zero-phase, so
the bands stay aligned with x; a streaming split needs D samples of look-ahead, D the longest
filter's half-length: that is the latency the split adds.

Default edges (:func:`default_band_edges`): geometric between 250 Hz and 8 kHz (at most a quarter of
the rate), band centres in log frequency. Pitch and the ear's resolution are logarithmic in
frequency, and so is what a window must resolve: below ~500 Hz the harmonics of voices and bass
notes lie tens of hertz apart and need windows of 40 ms and more; from 0.5 to 4 kHz formants and
melodies are served by medium windows; above 4 kHz fricatives, consonant bursts, cymbals and
hi-hats are broadband and brief and want windows of a few ms.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .transform import DSTFT, check_signal

__all__ = [
    "DEFAULT_GUI_BANDS",
    "MAX_BANDS",
    "BandSplit",
    "banded_dstft",
    "band_bins",
    "check_band_edges",
    "default_band_edges",
    "split_delay",
]

#: The bands the application starts with: low (harmonics), two middle (formants), high (noise, attacks).
DEFAULT_GUI_BANDS = 4
#: The most bands the streaming engine accepts.
MAX_BANDS = 8
#: Stopband attenuation of the split's low-passes, dB.
STOPBAND_DB = 80.0
#: Default edges span this range (Hz), capped at a quarter of the sample rate.
EDGE_RANGE_HZ = (250.0, 8000.0)


def default_band_edges(bands: int, sample_rate: float) -> tuple[float, ...]:
    """B - 1 edges (Hz) for ``bands`` = B bands: geometric between 250 Hz and min(8 kHz, rate/4),
    edge i at lo·(hi/lo)^((i + 1/2)/(B - 1)); e.g. at 48 kHz B = 2: 1414 Hz; B = 4: 445, 1414,
    4490 Hz. Empty for B = 1."""
    _check_bands(bands)
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate!r}")
    lo, hi = EDGE_RANGE_HZ[0], min(EDGE_RANGE_HZ[1], sample_rate / 4)
    lo = min(lo, hi / 2)
    return tuple(lo * (hi / lo) ** ((i + 0.5) / (bands - 1)) for i in range(bands - 1))


def _check_bands(bands) -> int:
    if isinstance(bands, bool) or not isinstance(bands, (int, np.integer)) or not 1 <= bands <= MAX_BANDS:
        raise ValueError(f"bands must be an integer in [1, {MAX_BANDS}], got {bands!r}")
    return int(bands)


def check_band_edges(edges, sample_rate: float, n_fft: int | None = None) -> tuple[float, ...]:
    """Edges (Hz) as a tuple of floats, increasing, inside (0, 0.4·rate) (room for the transition
    band of half an edge above the edge); with ``n_fft``, at least one bin apart (no empty band)."""
    try:
        out = tuple(float(e) for e in edges)
    except TypeError:
        raise ValueError(f"band_edges must be a sequence of frequencies in Hz, got {edges!r}") from None
    if len(out) + 1 > MAX_BANDS:
        raise ValueError(f"band_edges must hold at most {MAX_BANDS - 1} edges, got {len(out)}")
    top = 0.4 * sample_rate
    if any(not (0 < e < top) for e in out) or any(a >= b for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"band_edges must increase strictly within (0, {top:g}) Hz, got {list(out)}")
    if n_fft is not None:
        bins = band_bins(out, sample_rate, n_fft)
        if np.any(np.diff(bins) < 1):
            raise ValueError(
                f"band_edges must lie at least one bin ({sample_rate / n_fft:g} Hz) apart and above "
                f"0 Hz for n_fft = {n_fft}, got {list(out)}"
            )
    return out


def band_bins(edges, sample_rate: float, n_fft: int) -> np.ndarray:
    """Bin edges e_0 = 0 < e_1 < ... < e_B = N/2 + 1 of the bands: band b holds the bins whose centre
    frequency m·rate/N lies in [f_b, f_{b+1})."""
    inner = [math.ceil(f * n_fft / sample_rate - 1e-9) for f in edges]
    return np.array([0, *inner, n_fft // 2 + 1], dtype=np.int64)


def _half_length(cutoff: float, sample_rate: float) -> int:
    """Kaiser's estimate of the half-length of a low-pass at ``cutoff`` Hz, transition cutoff/2 wide."""
    width = 2 * math.pi * (cutoff / 2) / sample_rate
    return math.ceil((STOPBAND_DB - 7.95) / (2.285 * width) / 2)


def split_delay(edges, sample_rate: float) -> int:
    """D, the look-ahead (samples) of the split at ``edges`` (Hz): its longest filter's half-length."""
    return max((_half_length(f, sample_rate) for f in edges), default=0)


def lowpass_kernel(cutoff: float, sample_rate: float, half_length: int | None = None) -> np.ndarray:
    """Zero-phase Kaiser-windowed-sinc low-pass at ``cutoff`` Hz (-6 dB there), transition cutoff/2
    wide, 80 dB stopband, unit gain at 0 Hz: float64 [2h + 1], centred (h = ``half_length`` when
    given, else the Kaiser estimate)."""
    need = _half_length(cutoff, sample_rate)
    h = need if half_length is None else max(half_length, need)
    j = np.arange(-h, h + 1, dtype=np.float64)
    fc = cutoff / sample_rate
    taper = np.zeros(2 * h + 1)
    taper[h - need : h + need + 1] = np.kaiser(2 * need + 1, 0.1102 * (STOPBAND_DB - 8.7))
    k = 2 * fc * np.sinc(2 * fc * j) * taper
    return k / k.sum()


class BandSplit:
    """The perfect-reconstruction split of a signal into bands, offline or streaming.

    Args:
        edges: B - 1 band edges in Hz (see :func:`check_band_edges`); empty for one band.
        sample_rate: Hz.

    ``split(x)`` gives the bands of a whole signal, [B, T]. ``push(block)`` streams: it returns the
    band samples that became computable, [B, n], each band sample k needing input up to k + D
    (``delay``); ``finish()`` returns the last D, as if zeros followed the input. Everything runs
    in float64; bands are returned in the input's float dtype.
    """

    def __init__(self, edges, sample_rate: float) -> None:
        self.edges = check_band_edges(edges, sample_rate)
        self.sample_rate = float(sample_rate)
        self.bands = len(self.edges) + 1
        self.delay = split_delay(self.edges, sample_rate)
        if self.edges:
            self.kernels = np.stack([lowpass_kernel(f, sample_rate, self.delay) for f in self.edges])
        else:
            self.kernels = np.zeros((0, 1))
        self._spectra: dict[int, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        """Forgets the input (a new stream): D zeros precede the first sample."""
        self._history = np.zeros(self.delay)  # inputs not yet centred: x[-D .. -1] at the start

    def _lows(self, seg: np.ndarray) -> np.ndarray:
        """L_b applied to seg where the kernels fit: [B - 1, len(seg) - 2D], by FFT convolution in
        chunks (overlap-save; torch's FFT, a third faster than numpy's at these sizes)."""
        n_out, span = seg.shape[0] - 2 * self.delay, 2 * self.delay + 1
        if n_out <= 16:  # a few samples (one-sample blocks): direct sums
            windows = np.lib.stride_tricks.sliding_window_view(seg, span)
            return self.kernels @ windows.T
        size = 1 << math.ceil(math.log2(min(n_out, 8 * span) + span - 1))
        step = size - span + 1
        spectra = self._spectra.get(size)
        if spectra is None:
            spectra = self._spectra[size] = torch.fft.rfft(torch.from_numpy(self.kernels), size)
        out = np.empty((len(self.edges), n_out))
        x = torch.from_numpy(seg)
        for i in range(0, n_out, step):
            part = x[i : i + step + span - 1]
            y = torch.fft.irfft(torch.fft.rfft(part, size) * spectra, size)
            out[:, i : i + step] = y[:, span - 1 : part.shape[0]].numpy()
        return out

    def _bands(self, seg: np.ndarray, dtype) -> np.ndarray:
        d = self.delay
        centre = seg[d : seg.shape[0] - d]
        if not self.edges:
            return centre[None].astype(dtype)
        lows = self._lows(seg)
        out = np.empty((self.bands, centre.shape[0]), dtype)
        out[0] = lows[0]
        out[1:-1] = lows[1:] - lows[:-1]
        out[-1] = centre - lows[-1]
        return out

    def split(self, x) -> np.ndarray:
        """The bands of a whole signal x [T] (zeros outside): [B, T], Σ_b = x."""
        x = np.asarray(x)
        seg = np.concatenate([np.zeros(self.delay), x.astype(np.float64), np.zeros(self.delay)])
        return self._bands(seg, x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)

    def push(self, block: np.ndarray) -> np.ndarray:
        """Streams ``block``; returns the next band samples [B, n] (n = len(block) once D samples
        have arrived: band sample k needs input up to k + D)."""
        seg = np.concatenate([self._history, block.astype(np.float64)])
        if seg.shape[0] <= 2 * self.delay:
            self._history = seg
            return np.zeros((self.bands, 0), block.dtype)
        self._history = seg[seg.shape[0] - 2 * self.delay :]  # x[k - D .. k + D - 1] of the next k
        return self._bands(seg, block.dtype)

    def finish(self, dtype=np.float64) -> np.ndarray:
        """The last D band samples, as if zeros followed the input; resets for a new stream."""
        out = self.push(np.zeros(self.delay, dtype))
        self.reset()
        return out


def banded_dstft(
    x: torch.Tensor,
    win_length,
    n_fft: int = 2048,
    hop_length: int = 256,
    sample_rate: float = 48000,
    band_edges=None,
    bands: int | None = None,
    normalization: str = "l1",
    win_min: float | None = None,
    win_max: float | None = None,
    return_bands: bool = False,
) -> torch.Tensor:
    """The banded DSTFT of a whole signal (module docstring): S = Σ_b DSTFT(x_b; θ_b).

    Args:
        x: real tensor [T], float32 or float64.
        win_length: θ in samples, [B, F] (per band and frame, F = 1 + T // H), [B] (per band) or a
            float (every band).
        n_fft, hop_length, normalization, win_min, win_max: as for :class:`rtdstft.DSTFT`.
        sample_rate: Hz, to place the band edges.
        band_edges: B - 1 edges in Hz; default :func:`default_band_edges` of ``bands``.
        bands: B when ``band_edges`` is not given (default: the number of rows of ``win_length``).
        return_bands: also return each band's spectrum.

    Returns:
        S: complex [N/2 + 1, F]; with ``return_bands``, (S, S_b [B, N/2 + 1, F]).
    """
    x = check_signal(x)
    if x.dim() != 1:
        raise ValueError(f"x must be one signal [T], got shape {tuple(x.shape)}")
    theta = torch.as_tensor(win_length, dtype=x.dtype)
    if band_edges is None:
        if bands is None:
            bands = theta.shape[0] if theta.dim() >= 1 else 1
        band_edges = default_band_edges(_check_bands(bands), sample_rate)
    split = BandSplit(band_edges, sample_rate)
    b = split.bands
    parts = torch.from_numpy(split.split(x.detach().cpu().numpy())).to(x.device)
    t = DSTFT(n_fft, hop_length, normalization, win_min, win_max)
    if theta.dim() == 0:
        theta = theta.reshape(1, 1).expand(b, 1)
    elif theta.dim() == 1:
        if theta.shape[0] != b:
            raise ValueError(f"win_length must have one value per band ({b}), got shape {tuple(theta.shape)}")
        theta = theta[:, None]
    elif theta.shape[0] != b:
        raise ValueError(f"win_length must be [B = {b}, F], got shape {tuple(theta.shape)}")
    if theta.shape[-1] == 1:
        theta = theta.expand(b, t.num_frames(x.shape[-1])).contiguous()
    spec_b = t(parts, theta.to(x.device))
    spec = spec_b.sum(0)
    return (spec, spec_b) if return_bands else spec
