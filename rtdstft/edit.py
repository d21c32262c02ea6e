r"""Spectral editing: a gain on time-frequency selections, the rest of the signal untouched.

The signal's frames are those the streaming engine emits (:class:`~rtdstft.StreamingDSTFT` run on it
with a :class:`~rtdstft.config.StreamConfig`, or the θ per frame a caller already has, e.g. from a
live view's history): S[n, m] with window lengths θ_n, frame n centred at sample n·H. Each
:class:`Edit` is a selection (:class:`~rtdstft.selection.Region`: t0 .. t1 s × f0 .. f1 Hz) and a
gain g in dB; its mask M[n, m] in [0, 1] is the selection's smooth mask
(:func:`rtdstft.selection.mask`: 1 inside the box, 0 outside it, raised-cosine ramps ``edge_ms`` and
``edge_hz`` wide just inside its edges). Edits stack by multiplying their gains:

    G[n, m] = Π_e (1 + (10^(g_e / 20) - 1) · M_e[n, m])          (-inf dB removes, 0 dB keeps)

The output is the input plus the weighted overlap-add of the change (G - 1)·S
(:func:`rtdstft.selection.masked_inverse`, the engine's exact inverse with the frames' own windows):

    y[k] = x[k] + Σ_n w(k - c_n; θ_n) · irfft((G - 1)·S)[n, k - c_n + N/2]  /  Σ_n w(k - c_n; θ_n)²

Because that inverse gives back S's signal exactly, this is the resynthesis of G·S; and because
(G - 1) is 0 on every frame no mask reaches, the change is exactly 0 on every sample that no such
frame's window covers. So outside the selections and half a window around them the output is the
input sample for sample (bit-exact, also after writing to the source's integer format), and a 0 dB
gain returns the input unchanged.

Channels are edited independently, each with its own engine's θ (as ``rtdstft resynth`` does),
unless the caller gives one θ for all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from .config import StreamConfig
from .errors import ParameterError
from .selection import Excerpt, Region, mask, masked_inverse

__all__ = ["Edit", "EditResult", "spectral_edit", "edit_gain", "edit_file", "engine_theta", "MAX_GAIN_DB"]

#: The largest gain an edit may apply, in dB (a boost beyond this mostly amplifies noise).
MAX_GAIN_DB = 24.0


@dataclass(frozen=True)
class Edit:
    """A selection and the gain applied to it: ``gain_db`` in [-inf, 24] dB (-inf removes what is
    inside, 0 keeps it). ``edge_ms`` and ``edge_hz`` (>= 0) are its mask's smooth edges; None takes
    those given to :func:`spectral_edit`."""

    region: Region
    gain_db: float
    edge_ms: float | None = None
    edge_hz: float | None = None

    @property
    def factor(self) -> float:
        """The linear gain 10^(gain_db / 20) (0 for -inf)."""
        return 0.0 if self.gain_db == -math.inf else 10.0 ** (self.gain_db / 20.0)

    def check(self, duration: float, nyquist: float) -> None:
        """Raises ParameterError naming the field and its valid range for a region outside the
        signal (0 <= t0 < t1, t0 before ``duration`` s; 0 <= f0 < f1, f0 below ``nyquist`` Hz) or a
        gain outside [-inf, 24] dB."""
        r = self.region
        vals = (r.t0, r.t1, r.f0, r.f1)
        if not all(isinstance(v, Real) and math.isfinite(v) for v in vals):
            raise ParameterError(f"region t0, t1, f0 and f1 must be finite numbers, got {vals}")
        if not 0 <= r.t0 < r.t1:
            raise ParameterError(f"region times must satisfy 0 <= t0 < t1 (s), got t0 {r.t0:g}, t1 {r.t1:g}")
        if r.t0 >= duration:
            raise ParameterError(f"region t0 must be inside the signal [0, {duration:.6g}) s, got {r.t0:g}")
        if not 0 <= r.f0 < r.f1:
            raise ParameterError(
                f"region frequencies must satisfy 0 <= f0 < f1 (Hz), got f0 {r.f0:g}, f1 {r.f1:g}"
            )
        if r.f0 >= nyquist:
            raise ParameterError(
                f"region f0 must be below the Nyquist frequency {nyquist:g} Hz, got {r.f0:g}"
            )
        g = self.gain_db
        if not isinstance(g, Real) or math.isnan(g) or g > MAX_GAIN_DB:
            raise ParameterError(f"gain_db must be in [-inf, {MAX_GAIN_DB:g}] dB, got {g!r}")
        _check_edges(self.edge_ms, self.edge_hz)


def _check_edges(edge_ms, edge_hz) -> None:
    for name, v in (("edge_ms", edge_ms), ("edge_hz", edge_hz)):
        if v is not None and not (isinstance(v, Real) and math.isfinite(v) and v >= 0):
            raise ParameterError(f"{name} must be a finite number >= 0, got {v!r}")


@dataclass
class EditResult:
    """audio: the edited signal, shape and dtype of the input. win_length: θ per frame [F] (per channel
    [C, F] for a [T, C] input), samples. touched: bool [T], samples that may differ from the input
    (the rest are the input's own values)."""

    audio: np.ndarray
    win_length: np.ndarray
    touched: np.ndarray


def edit_gain(
    edits: list[Edit], times: np.ndarray, freqs: np.ndarray, nyquist: float, edge_ms: float, edge_hz: float
) -> np.ndarray:
    """G[n, m] of ``edits`` on frames at ``times`` (s) and bins at ``freqs`` (Hz) (see the module
    docstring), float64; ``edge_ms`` and ``edge_hz`` for the edits that do not set their own."""
    gain = np.ones((len(times), len(freqs)))
    for e in edits:
        ms = edge_ms if e.edge_ms is None else e.edge_ms
        hz = edge_hz if e.edge_hz is None else e.edge_hz
        gain *= 1 + (e.factor - 1) * mask(times, freqs, e.region, nyquist, ms / 1000, hz)
    return gain


def engine_theta(x: np.ndarray, config: StreamConfig) -> np.ndarray:
    """θ (samples, float32) of every frame the streaming engine emits for the mono signal x.

    A config with bands > 1 is taken with one band: the edit works on one θ per frame."""
    from .stream import StreamingDSTFT

    # Edits go through one band's frames: a banded engine's θ is per band, its frames a sum.
    engine = StreamingDSTFT(config=config if config.bands == 1 else config.replace(bands=1, band_edges=None))
    theta = np.full(1 + x.shape[0] // config.hop_length, np.nan, np.float32)
    step = 64 * config.block_frames * config.hop_length  # fewer, larger calls: less overhead
    for i in range(0, x.shape[0], step):
        out = engine.process(np.ascontiguousarray(x[i : i + step], np.float32))
        theta[out.frame_index] = out.win_length
    out = engine.flush()
    theta[out.frame_index] = out.win_length
    if np.isnan(theta).any():
        raise RuntimeError("the engine did not emit every frame")
    return theta


def _groups(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Frame ranges merged where they overlap or lie within ``gap`` frames of each other."""
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _edit_channel(
    x: np.ndarray, theta: np.ndarray, cfg: StreamConfig, edits: list[Edit], edge_ms: float, edge_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    sr, n, h = cfg.sample_rate, cfg.n_fft, cfg.hop_length
    ex = Excerpt(np.asarray(x, np.float32), 0, theta, 0, sr, n, h, settings=cfg.as_dict())
    y = np.array(x, copy=True)
    touched = np.zeros(x.shape[0], bool)
    spans = [ex.frame_range(e.region.t0, e.region.t1) for e in edits if e.factor != 1.0]
    spans = [s for s in spans if s[1] > s[0]]
    context = -(-(n // 2) // h)

    def weights(times: np.ndarray, freqs: np.ndarray) -> np.ndarray:
        return edit_gain(edits, times, freqs, sr / 2, edge_ms, edge_hz) - 1

    for n0, n1 in _groups(spans, 2 * context):
        change, s0 = masked_inverse(ex, n0, n1, weights)
        a, b = max(s0, 0), min(s0 + change.shape[0], x.shape[0])
        d = change[a - s0 : b - s0]
        moved = d != 0
        y[a:b][moved] = (x[a:b][moved].astype(np.float64) + d[moved]).astype(x.dtype)
        touched[a:b] |= moved
    return y, touched


def spectral_edit(
    x: np.ndarray,
    sample_rate: float,
    edits: list[Edit],
    edge_ms: float = 10.0,
    edge_hz: float = 50.0,
    config: StreamConfig | None = None,
    theta: np.ndarray | None = None,
) -> EditResult:
    """Applies ``edits`` to x through the streaming engine's frames (see the module docstring).

    Args:
        x: float samples, [T] or [T, C] (channels edited independently), in [-1, 1] nominally.
        sample_rate: Hz.
        edits: :class:`Edit` list; gains stack by multiplication where selections overlap.
        edge_ms, edge_hz: width of the masks' smooth edges in time (ms) and frequency (Hz), >= 0.
        config: the engine's settings; default ``StreamConfig.for_rate(sample_rate)``. Its
            sample_rate must be ``sample_rate``.
        theta: θ per frame (samples, [F] for every channel or [C, F], F = 1 + T // hop) as the
            engine emitted it (a live view's history); default: run the engine on each channel.

    Returns:
        :class:`EditResult`; ``audio`` has x's shape and dtype.
    """
    x = np.asarray(x)
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise ParameterError(f"x must be [T] or [T, C] with T >= 1, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ParameterError(f"x must hold float samples, got dtype {x.dtype}")
    _check_edges(edge_ms, edge_hz)
    cfg = StreamConfig.for_rate(sample_rate) if config is None else config
    if cfg.sample_rate != sample_rate:
        raise ParameterError(
            f"config.sample_rate must be sample_rate {sample_rate:g}, got {cfg.sample_rate:g}"
        )
    duration = x.shape[0] / float(sample_rate)
    for e in edits:
        e.check(duration, sample_rate / 2)
    chans = x[:, None] if x.ndim == 1 else x
    n_frames = 1 + x.shape[0] // cfg.hop_length
    if theta is not None:
        theta = np.asarray(theta, np.float32)
        if theta.shape == (n_frames,):
            theta = np.broadcast_to(theta, (chans.shape[1], n_frames))
        if theta.shape != (chans.shape[1], n_frames):
            raise ParameterError(
                f"theta must be [{n_frames}] or [{chans.shape[1]}, {n_frames}] (frames of the signal), "
                f"got shape {np.shape(theta)}"
            )
    outs, thetas, touched = [], [], np.zeros(x.shape[0], bool)
    for c in range(chans.shape[1]):
        th = engine_theta(chans[:, c], cfg) if theta is None else theta[c]
        y, t = _edit_channel(chans[:, c], th, cfg, edits, edge_ms, edge_hz)
        outs.append(y)
        thetas.append(th)
        touched |= t
    audio = np.stack(outs, axis=1) if x.ndim == 2 else outs[0]
    win = np.stack(thetas) if x.ndim == 2 else thetas[0]
    return EditResult(audio, np.asarray(win), touched)


def edit_file(
    input_path: str | Path,
    output_path: str | Path,
    edits: list[Edit],
    edge_ms: float = 10.0,
    edge_hz: float = 50.0,
    config: StreamConfig | None = None,
    subtype: str | None = None,
    overwrite: bool = False,
    theta: np.ndarray | None = None,
) -> tuple[str, str]:
    """Applies ``edits`` to every channel of the file ``input_path`` (see :func:`spectral_edit`) and
    writes the result to ``output_path``: same rate and channels, IN's subtype where OUT's format
    (from its extension) takes it, or ``subtype``. Integer PCM is rounded to nearest, so samples the
    edits do not reach are written back bit-exact.

    OUT appears whole or not at all (written to a temporary file beside it, renamed when complete).
    OUT naming IN is refused unless ``overwrite``; IN is then replaced only by the complete new file.
    ``config`` must be at the file's rate (default: the settings suited to it).

    Returns OUT's (format, subtype).
    """
    from .atomic import atomic_output
    from .audio import Recorder, check_writable, output_subtype

    sf = _soundfile()
    src, out = Path(input_path), Path(output_path)
    same = out.exists() and src.exists() and out.resolve() == src.resolve()
    if same and not overwrite:
        raise ParameterError(
            f"OUT must differ from IN ({src}) unless overwriting it on purpose (--overwrite)"
        )
    try:
        info = sf.info(str(src))
        x, sr = sf.read(str(src), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ParameterError(f"{src}: cannot read it as audio ({exc})") from None
    fmt, sub = output_subtype(subtype, info.subtype, out)
    check_writable(out, sr, x.shape[1], fmt, sub)
    if config is None:
        config = StreamConfig.for_rate(sr)
    y = spectral_edit(x, sr, edits, edge_ms, edge_hz, config=config, theta=theta).audio
    with atomic_output(out) as part:
        rec = Recorder(part, sr, channels=x.shape[1], subtype=sub, format=fmt)
        try:
            rec.write(y)
            rec.close()
        except BaseException:
            rec.discard()
            raise
    return fmt, sub


def _soundfile():
    import soundfile

    return soundfile
