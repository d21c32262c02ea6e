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
gain returns the input unchanged. A NaN or ±inf sample is analysed as 0, as the engine takes it,
and is written back as it is.

Every channel is edited with one θ track: the engine's θ of the signal's mono mix (what a live
view of the file shows, so that the picture and the edit agree), or the θ the caller gives (a live
view's history).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from .config import StreamConfig
from .errors import ParameterError
from .selection import Excerpt, Region, mask, masked_inverse
from .stream import zero_nonfinite

__all__ = [
    "Edit",
    "EditResult",
    "spectral_edit",
    "edit_gain",
    "edit_file",
    "engine_theta",
    "mono_mix",
    "write_audio",
    "MAX_GAIN_DB",
]

#: The largest gain an edit may apply, in dB (a boost beyond this mostly amplifies noise).
MAX_GAIN_DB = 24.0
#: Complex values (frames × bins) in one masked inverse: a longer selection is cut into pieces.
PIECE_BINS = 1 << 21


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
    """audio: the edited signal, shape and dtype of the input. win_length: θ per frame [F] (samples),
    the same for every channel. touched: bool [T], samples that may differ from the input
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


def mono_mix(x: np.ndarray) -> np.ndarray:
    """The mono signal a live view of x analyses, float32 [T]: x itself for [T], else the mean of
    its channels [T, C] taken in float32 (as a file replay mixes down)."""
    x = np.asarray(x)
    if x.ndim == 1 or x.shape[1] == 1:
        return np.ascontiguousarray(x.reshape(x.shape[0]), np.float32)
    return np.mean(x.astype(np.float32), axis=1, dtype=np.float32)


def _block_samples(config: StreamConfig) -> int:
    """Samples per engine call (and per block read from a file): fewer, larger calls cost less."""
    return 64 * config.block_frames * config.hop_length


def engine_theta(x: np.ndarray, config: StreamConfig) -> np.ndarray:
    """θ (samples, float32 [1 + T // hop]) of every frame the streaming engine emits for x: [T],
    or [T, C] taken as its mono mix (:func:`mono_mix`, what a live view of the file shows).

    A config with bands > 1 is taken with one band: the edit works on one θ per frame."""
    x = np.asarray(x)
    step = _block_samples(config)
    return _theta_of_blocks((x[i : i + step] for i in range(0, x.shape[0], step)), config)[0]


def _theta_of_blocks(blocks: Iterable[np.ndarray], config: StreamConfig) -> tuple[np.ndarray, int]:
    """(:func:`engine_theta`, T) of the signal given as consecutive blocks ([L] or [L, C]), in one
    streaming pass: memory holds one block and the θ track."""
    from .stream import StreamingDSTFT

    # Edits go through one band's frames: a banded engine's θ is per band, its frames a sum.
    engine = StreamingDSTFT(config=config if config.bands == 1 else config.replace(bands=1, band_edges=None))
    index, win, total = [], [], 0
    for block in blocks:
        total += block.shape[0]
        out = engine.process(mono_mix(block))
        index.append(out.frame_index)
        win.append(out.win_length)
    out = engine.flush()
    theta = np.full(1 + total // config.hop_length, np.nan, np.float32)
    theta[np.concatenate([*index, out.frame_index])] = np.concatenate([*win, out.win_length])
    if np.isnan(theta).any():
        raise RuntimeError("the engine did not emit every frame")
    return theta, total


def _groups(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Frame ranges merged where they overlap or lie within ``gap`` frames of each other."""
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _pieces(theta: np.ndarray, cfg: StreamConfig, edits: list[Edit], n_samples: int):
    """The masked inverses the edits need, in sample order: (n0, n1, a, b), frames n0 .. n1 (end
    excluded) whose change is kept for samples a .. b.

    Selections within 2c frames of each other (c = ceil(N / 2H), a window's reach) share one
    inverse; a long one is cut into pieces of at most ``PIECE_BINS`` bins, each kept from its
    first frame's centre to the next piece's. Each inverse takes c frames more either side than
    it keeps: every window that reaches a kept sample is then in it, so the cuts change nothing
    but rounding, and memory stays bounded however long the selection."""
    h = cfg.hop_length
    ex = Excerpt(np.zeros(0, np.float32), 0, theta, 0, cfg.sample_rate, cfg.n_fft, h)
    spans = [ex.frame_range(e.region.t0, e.region.t1) for e in edits if e.factor != 1.0]
    size = max(1, PIECE_BINS // (cfg.n_fft // 2 + 1))
    c = -(-(cfg.n_fft // 2) // h)
    for g0, g1 in _groups([s for s in spans if s[1] > s[0]], 2 * c):
        cuts = [*range(g0, g1, size), g1]
        for n0, n1 in zip(cuts[:-1], cuts[1:], strict=True):
            yield n0, n1, (0 if n0 == g0 else n0 * h), (n_samples if n1 == g1 else n1 * h)


def _changes(read, theta, cfg, edits, n_samples, edge_ms, edge_hz):
    """(k0, d): the change d [L, C] (float32) that the edits make to samples k0 .. k0 + L of a
    signal of ``n_samples`` samples, in sample order, the pieces not overlapping; ``read(a, b)``
    returns its samples a .. b as [b - a, C] (called with non-decreasing a)."""
    sr, n, h = cfg.sample_rate, cfg.n_fft, cfg.hop_length
    c = -(-(n // 2) // h)

    def weights(times: np.ndarray, freqs: np.ndarray) -> np.ndarray:
        return edit_gain(edits, times, freqs, sr / 2, edge_ms, edge_hz) - 1

    settings = cfg.as_dict()
    for n0, n1, a, b in _pieces(theta, cfg, edits, n_samples):
        lo, hi = max((n0 - 2 * c) * h, 0), min((n1 + 2 * c - 1) * h + 1, n_samples)
        x = zero_nonfinite(read(lo, hi))[0]  # as the engine takes them (θ came from that view)
        outs = []
        for ch in range(x.shape[1]):
            ex = Excerpt(np.asarray(x[:, ch], np.float32), lo, theta, 0, sr, n, h, settings=settings)
            y, s0 = masked_inverse(ex, n0 - c, n1 + c, weights)
            outs.append(y)
        k0, k1 = max(a, s0, 0), min(b, s0 + len(outs[0]), n_samples)
        if k1 > k0:
            yield k0, np.stack([y[k0 - s0 : k1 - s0] for y in outs], axis=1)


def _add(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """x + d in x's dtype where d is not 0 (in place), the rest untouched; returns where."""
    moved = d != 0
    x[moved] = (x[moved].astype(np.float64) + d[moved]).astype(x.dtype)
    return moved


def _check_theta(theta, n_frames: int) -> np.ndarray:
    theta = np.asarray(theta, np.float32)
    if theta.shape != (n_frames,):
        raise ParameterError(
            f"theta must be [{n_frames}] (one θ per frame of the signal, for every channel), "
            f"got shape {np.shape(theta)}"
        )
    return theta


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
        x: float samples, [T] or [T, C], in [-1, 1] nominally.
        sample_rate: Hz.
        edits: :class:`Edit` list; gains stack by multiplication where selections overlap.
        edge_ms, edge_hz: width of the masks' smooth edges in time (ms) and frequency (Hz), >= 0.
        config: the engine's settings; default ``StreamConfig.for_rate(sample_rate)``. Its
            sample_rate must be ``sample_rate``.
        theta: θ per frame (samples, [F], F = 1 + T // hop) as the engine emitted it (a live view's
            history), used for every channel; default: the engine's θ of x's mono mix
            (:func:`engine_theta`).

    Returns:
        :class:`EditResult`; ``audio`` has x's shape and dtype.
    """
    x = np.asarray(x)
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise ParameterError(f"x must be [T] or [T, C] with T >= 1, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ParameterError(f"x must hold float samples, got dtype {x.dtype}")
    _check_edges(edge_ms, edge_hz)
    cfg = _config_at(config, sample_rate)
    for e in edits:
        e.check(x.shape[0] / float(sample_rate), sample_rate / 2)
    n_frames = 1 + x.shape[0] // cfg.hop_length
    theta = engine_theta(x, cfg) if theta is None else _check_theta(theta, n_frames)
    chans = x[:, None] if x.ndim == 1 else x
    y = chans.copy()
    touched = np.zeros(x.shape[0], bool)
    changes = _changes(lambda a, b: chans[a:b], theta, cfg, edits, x.shape[0], edge_ms, edge_hz)
    for k0, d in changes:
        touched[k0 : k0 + len(d)] |= _add(y[k0 : k0 + len(d)], d).any(axis=1)
    return EditResult(y[:, 0] if x.ndim == 1 else y, theta, touched)


def _config_at(config: StreamConfig | None, sample_rate: float) -> StreamConfig:
    cfg = StreamConfig.for_rate(sample_rate) if config is None else config
    if cfg.sample_rate != sample_rate:
        raise ParameterError(
            f"config.sample_rate must be sample_rate {sample_rate:g}, got {cfg.sample_rate:g}"
        )
    return cfg


class _Forward:
    """Samples a .. b of a signal read block by block ([L, C] blocks), for non-decreasing a: it
    holds only what lies from the last a on."""

    def __init__(self, blocks: Iterable[np.ndarray], channels: int) -> None:
        self._blocks = iter(blocks)
        self._buf = np.zeros((0, channels))
        self._end = 0  # samples read so far; the buffer ends there

    def get(self, a: int, b: int) -> np.ndarray:
        self._drop_before(a)
        while self._end < b:
            block = next(self._blocks, None)
            if block is None:
                break
            self._buf = np.concatenate([self._buf, block])
            self._end += len(block)
            self._drop_before(a)
        start = self._end - len(self._buf)
        return self._buf[a - start : b - start]

    def _drop_before(self, a: int) -> None:
        start = self._end - len(self._buf)
        if a > start:
            self._buf = self._buf[a - start :]


@contextlib.contextmanager
def _output(path: Path, sample_rate: int, channels: int, fmt: str, subtype: str):
    """Yields ``write(block)`` for a file at ``path`` that appears whole once the block ends
    cleanly, and not at all otherwise."""
    from .atomic import atomic_output
    from .audio import Recorder

    with atomic_output(path) as part:
        rec = Recorder(part, sample_rate, channels=channels, subtype=subtype, format=fmt, name=path)
        try:
            yield rec.write
            rec.close()
        except BaseException:
            rec.discard()
            raise


def write_audio(
    path: str | Path, y: np.ndarray, sample_rate: float, subtype: str | None = None
) -> tuple[str, str]:
    """Writes float samples y ([T] or [T, C]) to ``path`` (format from its extension, e.g. .wav,
    .flac): ``subtype`` (e.g. PCM_16, PCM_24, FLOAT), default 32-bit float where the format takes
    it, else the format's default; integer PCM rounded to nearest. The file appears whole or not
    at all. Returns (format, subtype)."""
    from .audio import check_writable, output_subtype

    y = np.asarray(y)
    channels = 1 if y.ndim == 1 else y.shape[1]
    sr = int(round(sample_rate))
    fmt, sub = output_subtype(subtype, "FLOAT", path)
    check_writable(path, sr, channels, fmt, sub)
    with _output(Path(path), sr, channels, fmt, sub) as write:
        write(y)
    return fmt, sub


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
    """Applies ``edits`` to every channel of the file ``input_path`` (see :func:`spectral_edit`:
    the same result, θ of the file's mono mix unless ``theta`` is given) and writes the result to
    ``output_path``: same rate and channels, IN's subtype where OUT's format (from its extension)
    takes it, or ``subtype``. Integer PCM is rounded to nearest, so samples the edits do not reach
    are written back bit-exact.

    The file is streamed, never held whole: one pass runs the engine over it for θ (skipped when
    ``theta`` is given), a second copies it to OUT block by block, adding the edits' changes,
    which are computed in pieces of bounded size. Memory is a few blocks and the θ track (4 bytes
    a frame), whatever the file's length.

    OUT appears whole or not at all (written to a temporary file beside it, renamed when complete).
    OUT naming IN is refused unless ``overwrite``; IN is then replaced only by the complete new file.
    ``config`` must be at the file's rate (default: the settings suited to it).

    Returns OUT's (format, subtype).
    """
    from .audio import check_writable, output_subtype

    sf = _soundfile()
    src, out = Path(input_path), Path(output_path)
    same = out.exists() and src.exists() and out.resolve() == src.resolve()
    if same and not overwrite:
        raise ParameterError(
            f"OUT must differ from IN ({src}) unless overwriting it on purpose (--overwrite)"
        )
    _check_edges(edge_ms, edge_hz)
    try:
        info = sf.info(str(src))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ParameterError(f"{src}: cannot read it as audio ({exc})") from None
    sr, channels = info.samplerate, info.channels
    cfg = _config_at(StreamConfig.for_rate(sr) if config is None else config, sr)
    for e in edits:  # all but "inside the signal", which needs its length
        e.check(math.inf, sr / 2)
    fmt, sub = output_subtype(subtype, info.subtype, out)
    check_writable(out, sr, channels, fmt, sub)
    step = _block_samples(cfg)

    def blocks(f):
        try:
            yield from f.blocks(step, dtype="float64", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise ParameterError(f"{src}: cannot read it as audio ({exc})") from None

    if theta is None:
        with sf.SoundFile(str(src)) as f:
            theta, n_samples = _theta_of_blocks(blocks(f), cfg)
    else:
        n_samples = info.frames
        theta = _check_theta(theta, 1 + n_samples // cfg.hop_length)
    for e in edits:
        e.check(n_samples / sr, sr / 2)
    with sf.SoundFile(str(src)) as fin, sf.SoundFile(str(src)) as fcopy:
        source = _Forward(blocks(fin), channels)
        changes = _changes(source.get, theta, cfg, edits, n_samples, edge_ms, edge_hz)
        pending = next(changes, None)
        with _output(out, sr, channels, fmt, sub) as write:
            pos = 0
            for block in blocks(fcopy):
                end = pos + len(block)
                while pending is not None and pending[0] < end:
                    k0, d = pending
                    a, b = max(k0, pos), min(k0 + len(d), end)
                    _add(block[a - pos : b - pos], d[a - k0 : b - k0])
                    if k0 + len(d) > end:
                        break  # the rest of this change falls in the next block
                    pending = next(changes, None)
                write(block)
                pos = end
    return fmt, sub


def _soundfile():
    import soundfile

    return soundfile
