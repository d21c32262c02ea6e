"""The ``rtdstft`` command: ``devices | analyze | resynth | record | bench | reproduce``.

- ``analyze FILE -o PICTURE.png [--csv THETA.csv]``: the whole file through the adaptive streaming
  engine, block by block; a picture of the spectrogram in dB (time in s, frequency in Hz, colour bar)
  over the window-length track θ in ms, and optionally θ per frame as CSV.
- ``resynth IN OUT``: every channel through its own engine, overlap-add resynthesis written to OUT
  with the engine's latency removed; prints the SNR of the resynthesis against the input.
- ``record OUT --seconds S``: a microphone to a file, written as it goes.
- ``devices``: the audio devices PortAudio sees.
- ``bench`` and ``reproduce``: hand their arguments to :func:`rtdstft.bench.main` and
  :func:`rtdstft.experiments.main`.

Long jobs draw a progress bar on stderr when it is a terminal (or with ``--progress``). A missing or
unreadable file, an unknown device or a bad parameter ends the command with one line on stderr,
``rtdstft: error: ...``, and exit status 2. matplotlib, soundfile and sounddevice are imported only
by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np

from .config import StreamConfig
from .entropy import ENTROPY_KINDS

__all__ = ["main", "build_parser", "Progress"]

PROG = "rtdstft"
EXIT_ERROR = 2
#: Most spectrogram columns drawn in the picture; longer files are max-pooled over time to this.
MAX_COLUMNS = 2400
#: Frames fed to the engine per read, in units of its adaptation blocks.
READ_BLOCKS = 8


class CommandError(Exception):
    """A bad parameter or path found by the command itself; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``prog: error: ... (see prog --help)``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)


class _RawFormatter(argparse.RawDescriptionHelpFormatter, _Formatter):
    """Keeps the top-level description's paragraphs as written."""


# -- progress ------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a stream (stderr by default): ``label [####----]  42%  ETA 0:03``.

    Redrawn in place with ``\\r`` at most every ``interval`` seconds; :meth:`close` draws 100 % (or
    where it stopped) and ends the line. When ``enabled`` is False nothing is ever written, so logs
    that are not terminals stay clean.

    Args:
        total: units of work (samples, frames; > 0).
        label: what is being done, a few words.
        enabled: draw at all.
        stream: where to draw (default ``sys.stderr``).
        width: characters of the bar.
        interval: seconds between redraws at most.
    """

    def __init__(
        self,
        total: int,
        label: str,
        enabled: bool,
        stream: IO[str] | None = None,
        width: int = 30,
        interval: float = 0.1,
    ) -> None:
        self.total = max(1, int(total))
        self.label = label
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.interval = interval
        self.done = 0
        self._t0 = time.monotonic()
        self._drawn = -math.inf
        self._drawn_done = -1
        self._closed = False

    def update(self, done: int) -> None:
        """Set the units done so far; redraws if ``interval`` has passed."""
        self.done = min(int(done), self.total)
        now = time.monotonic()
        if self.enabled and now - self._drawn >= self.interval:
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = self.done / self.total
        filled = int(round(frac * self.width))
        elapsed = now - self._t0
        if self.done >= self.total:
            tail = f"{_clock(elapsed)}"
        elif self.done > 0:
            tail = f"ETA {_clock(elapsed * (self.total - self.done) / self.done)}"
        else:
            tail = "ETA --:--"
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {100 * frac:3.0f}%  {tail}   ")
        self.stream.flush()
        self._drawn, self._drawn_done = now, self.done

    def close(self) -> None:
        """Draw the final state and end the line; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            if self._drawn_done != self.done:
                self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 60}:{seconds % 60:02d}"
        if seconds < 3600
        else f"{seconds // 3600}h{seconds // 60 % 60:02d}"
    )


def _progress_enabled(args: argparse.Namespace) -> bool:
    return bool(args.progress) or sys.stderr.isatty()


# -- argument types ------------------------------------------------------------------------------


def _number(text: str, kind: type, test: Callable[[float], bool], what: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value) or not test(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v > 0, "an integer >= 1")


def _nonneg_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def _positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a number > 0")


def _device(text: str) -> int | str:
    """An audio device: an index (digits) or a name (anything else)."""
    return int(text) if text.strip().isdigit() else text


# -- engine settings -----------------------------------------------------------------------------


#: The engine options and the StreamConfig fields they set.
ENGINE_OPTIONS = {
    "n_fft": "--n-fft",
    "hop_length": "--hop",
    "win_min": "--win-min",
    "win_max": "--win-max",
    "win_length": "--win-length",
    "block_frames": "--block-frames",
    "steps": "--steps",
    "entropy": "--entropy",
    "alpha": "--alpha",
    "radius": "--radius",
    "smoothness": "--smoothness",
    "lr": "--lr",
    "steadiness": "--steadiness",
    "bands": "--bands",
}
_FIELD_NAMES = re.compile(r"\b(" + "|".join(ENGINE_OPTIONS) + r")\b")


def _engine_config(args: argparse.Namespace, sample_rate: float) -> StreamConfig:
    """The engine's settings from the options: those given over the defaults that suit the rate
    (see :meth:`StreamConfig.for_rate`). A bad value ends the command with the config's message,
    written with the option names."""
    given = {field: getattr(args, field) for field in ENGINE_OPTIONS if getattr(args, field) is not None}
    try:
        return StreamConfig.for_rate(sample_rate, adapt=not args.no_adapt, **given)
    except (ValueError, TypeError) as exc:
        raise CommandError(_FIELD_NAMES.sub(lambda m: ENGINE_OPTIONS[m.group(1)], str(exc))) from None


def _describe(cfg: StreamConfig) -> str:
    sr = cfg.sample_rate
    mode = "adaptive" if cfg.adapt else "fixed"
    if cfg.bands > 1:
        mode += f" ({cfg.bands} bands)"
    lo, hi = cfg.theta_range
    return (
        f"n_fft {cfg.n_fft}, hop {cfg.hop_length} ({1000 * cfg.hop_length / sr:.2f} ms), {mode} θ "
        f"in {1000 * lo / sr:.1f}..{1000 * hi / sr:.1f} ms"
    )


def _open_file(path: str, channel: int | None) -> Any:
    """A FileSource (not paced) on ``path``, mixed down to mono or on ``channel``."""
    from .audio import FileSource

    src = FileSource(path, realtime=False)
    if channel is None:
        return src
    count = src.file_channels
    src.close()
    if not 0 <= channel < count:
        raise CommandError(
            f"--channel must be in 0..{count - 1} for {path} ({count} channel(s)), got {channel}"
        )
    return FileSource(path, channel=channel, realtime=False)


# -- analyze -------------------------------------------------------------------------------------


class _PooledSpectrogram:
    """|S| of a stream's frames, max-pooled over groups of ``pool`` consecutive frames so that at
    most ``max_columns`` columns are kept whatever the file's length (preallocated)."""

    def __init__(self, n_frames: int, n_bins: int, max_columns: int = MAX_COLUMNS) -> None:
        self.n_frames = n_frames
        self.pool = max(1, -(-n_frames // max_columns))
        self.mag = np.zeros((-(-n_frames // self.pool), n_bins), np.float32)

    def add(self, frame_index: np.ndarray, spec: np.ndarray) -> None:
        """Frames ``frame_index`` (consecutive, ascending) with spectra ``spec`` [k, n_bins]."""
        if frame_index.size == 0:
            return
        cols = frame_index // self.pool
        starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
        pooled = np.maximum.reduceat(np.abs(spec), starts, axis=0)
        target = cols[starts]
        self.mag[target] = np.maximum(self.mag[target], pooled)


def _picture_formats() -> dict[str, str]:
    from matplotlib.figure import Figure

    return Figure().canvas.get_supported_filetypes()


def _check_picture_path(path: Path) -> None:
    formats = _picture_formats()
    ext = path.suffix.lstrip(".").lower()
    if ext not in formats:
        raise CommandError(
            f"-o {path}: unknown picture format {path.suffix or '(no extension)'!r}; "
            f"use one of {', '.join('.' + f for f in sorted(formats))}"
        )


def _write_picture(
    path: Path,
    image: _PooledSpectrogram,
    times: np.ndarray,
    theta: np.ndarray,
    cfg: StreamConfig,
    db_range: float,
    title: str,
) -> None:
    """Spectrogram in dB re full scale (``image`` holds |S| scaled by the engine's dB scale) over
    the θ track in ms (θ [F]), or over an image of θ per band (θ [F, B], the bands of ``cfg``), on
    one time axis."""
    from matplotlib.figure import Figure

    sr, n_fft, hop = cfg.sample_rate, cfg.n_fft, cfg.hop_length
    db = 20 * np.log10(np.maximum(image.mag.T, 1e-12))
    top = float(db.max())
    duration = image.n_frames * hop / sr
    x0 = -0.5 * hop / sr
    x1 = x0 + image.mag.shape[0] * image.pool * hop / sr
    df = sr / n_fft

    fig = Figure(figsize=(12, 7.5), dpi=110, layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1.1], width_ratios=[60, 1])
    ax = fig.add_subplot(grid[0, 0])
    cax = fig.add_subplot(grid[0, 1])
    ax_theta = fig.add_subplot(grid[1, 0], sharex=ax)
    shown = ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        vmin=top - db_range,
        vmax=top,
        extent=(x0, x1, -0.5 * df, (db.shape[0] - 0.5) * df),
    )
    ax.set_ylim(0, sr / 2)
    ax.set_xlim(0, duration)
    ax.set_ylabel("frequency (Hz)")
    ax.tick_params(labelbottom=False)
    ax.set_title(title, fontsize=10)
    fig.colorbar(shown, cax=cax, label="level (dB re full-scale sine)")

    theta_ms = 1000 * theta / sr
    lo, hi = (1000 * t / sr for t in cfg.theta_range)
    if theta.ndim == 2:  # one θ per band: an image over time × band, colour = θ
        bands = theta.shape[1]
        track = ax_theta.imshow(
            theta_ms.T,
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            cmap="viridis",
            vmin=lo,
            vmax=hi,
            extent=(x0, x0 + len(times) * hop / sr, -0.5, bands - 0.5),
        )
        edges = [0.0, *cfg.band_edges, sr / 2]
        ax_theta.set_yticks(range(bands))
        ax_theta.set_yticklabels([f"{_hz(a)}–{_hz(b)}" for a, b in zip(edges, edges[1:], strict=False)])
        ax_theta.set_ylabel("band (Hz)")
        fig.colorbar(track, cax=fig.add_subplot(grid[1, 1]), label="θ (ms)")
    else:
        ax_theta.plot(times, theta_ms, drawstyle="steps-mid", color="tab:blue", linewidth=1.2)
        pad = 0.05 * (hi - lo) or 0.05 * hi
        ax_theta.set_ylim(lo - pad, hi + pad)
        ax_theta.set_ylabel("window length θ (ms)")
        ax_theta.grid(True, alpha=0.3)
    ax_theta.set_xlabel("time (s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def _hz(f: float) -> str:
    return f"{f / 1000:.3g}k" if f >= 1000 else f"{f:.0f}"


def _write_theta_csv(path: Path, times: np.ndarray, theta: np.ndarray, sample_rate: float) -> None:
    """frame,time_s,win_length_samples,win_length_ms; with θ [F, B] the last two per band
    (win_length_samples_b0, ..., win_length_ms_b0, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    per_band = theta.reshape(len(theta), -1)
    ms = 1000 * per_band / sample_rate
    rows = (
        f"{n},{t:.6f}," + ",".join(f"{v:.3f}" for v in w) + "," + ",".join(f"{v:.4f}" for v in m)
        for n, (t, w, m) in enumerate(zip(times.tolist(), per_band.tolist(), ms.tolist(), strict=True))
    )
    if theta.ndim == 1:
        header = "frame,time_s,win_length_samples,win_length_ms"
    else:
        b = range(theta.shape[1])
        header = ",".join(
            ["frame", "time_s", *(f"win_length_samples_b{i}" for i in b), *(f"win_length_ms_b{i}" for i in b)]
        )
    with open(path, "w", newline="") as f:
        f.write(header + "\n")
        f.write("\n".join(rows))
        f.write("\n")


def cmd_analyze(args: argparse.Namespace) -> int:
    """``rtdstft analyze``: picture (and CSV) of the adaptive spectrogram of a file."""
    from .stream import StreamingDSTFT

    picture = Path(args.output)
    _check_picture_path(picture)
    with _open_file(args.file, args.channel) as src:
        cfg = _engine_config(args, src.sample_rate)
        engine = StreamingDSTFT(config=cfg)
        n_frames = 1 + src.frames // cfg.hop_length
        image = _PooledSpectrogram(n_frames, cfg.n_fft // 2 + 1)
        theta = np.full((n_frames, cfg.bands) if cfg.bands > 1 else n_frames, np.nan)
        block = READ_BLOCKS * cfg.block_frames * cfg.hop_length

        def take(out: Any) -> None:
            # |S| in units of a full-scale sine's amplitude, so that the picture reads dBFS.
            # (with a θ per band, the bands' shortest: "l1" windows scale alike whatever θ)
            shortest = out.win_length if out.win_length.ndim == 1 else out.win_length.min(-1)
            image.add(out.frame_index, np.abs(out.spec) * cfg.db_scale(shortest)[:, None])
            theta[out.frame_index] = out.win_length

        with Progress(src.frames, "analyze", _progress_enabled(args)) as bar:
            while True:
                x = src.read(block)
                if x.size == 0:
                    break
                take(engine.process(x))
                bar.update(src.tell())
            take(engine.flush())
        sr, channels, frames = src.sample_rate, src.file_channels, src.frames
    if np.isnan(theta).any():  # the engine emits every frame 0..F-1 by construction
        raise RuntimeError("the engine did not emit every frame")
    times = np.arange(n_frames) * (cfg.hop_length / sr)
    which = (
        "mono" if channels == 1 else "mono mix-down" if args.channel is None else f"channel {args.channel}"
    )
    title = f"{Path(args.file).name}: {frames / sr:.2f} s at {sr} Hz, {which}; {_describe(cfg)}"
    _write_picture(picture, image, times, theta, cfg, args.db_range, title)
    print(f"{args.file}: {n_frames} frames; {_describe(cfg)}")
    theta_ms = 1000 * theta / sr
    print(
        f"θ median {np.median(theta_ms):.1f} ms (min {theta_ms.min():.1f}, max {theta_ms.max():.1f}); "
        f"wrote {picture}"
    )
    if args.csv:
        _write_theta_csv(Path(args.csv), times, theta, sr)
        print(f"wrote {args.csv}")
    return 0


# -- resynth -------------------------------------------------------------------------------------


def _snr_db(signal_energy: float, error_energy: float) -> float:
    if error_energy == 0:
        return math.inf
    if signal_energy == 0:
        return -math.inf
    return 10 * math.log10(signal_energy / error_energy)


def cmd_resynth(args: argparse.Namespace) -> int:
    """``rtdstft resynth``: every channel through its own engine, OUT = the overlap-add output with
    the engine's latency removed; prints the SNR against the input."""
    import soundfile

    from .audio import Recorder
    from .stream import StreamingDSTFT

    src_path, out_path = Path(args.input), Path(args.output)
    if out_path.exists() and src_path.exists() and out_path.resolve() == src_path.resolve():
        raise CommandError(f"OUT must differ from IN ({src_path}): the input would be overwritten")
    first = _open_file(args.input, args.channel)
    if args.channel is None and first.file_channels > 1:
        first.close()
        sources = [_open_file(args.input, c) for c in range(first.file_channels)]
    else:
        sources = [first]
    try:
        sr, frames = first.sample_rate, first.frames
        cfg = _engine_config(args, sr)
        engines = [StreamingDSTFT(config=cfg) for _ in sources]
        subtype = args.subtype
        if subtype is None:
            in_subtype = soundfile.info(str(src_path)).subtype
            out_format = out_path.suffix.lstrip(".").upper()
            known = out_format in soundfile.available_formats()
            subtype = in_subtype if known and soundfile.check_format(out_format, in_subtype) else None
        latency = engines[0].latency
        block = READ_BLOCKS * cfg.block_frames * cfg.hop_length
        pending = np.zeros((0, len(sources)), np.float64)  # input samples awaiting their resynthesis
        skip = latency
        written = 0
        signal_energy = error_energy = 0.0

        with Recorder(out_path, sr, channels=len(sources), subtype=subtype) as rec:

            def emit(y: np.ndarray) -> None:
                nonlocal skip, pending, written, signal_energy, error_energy
                drop = min(skip, y.shape[0])
                skip -= drop
                y = y[drop:][: frames - written]
                if not y.shape[0]:
                    return
                x, pending = pending[: y.shape[0]], pending[y.shape[0] :]
                signal_energy += float(np.sum(np.square(x)))
                error_energy += float(np.sum(np.square(x - y)))
                rec.write(y.astype(np.float32) if len(sources) > 1 else y[:, 0].astype(np.float32))
                written += y.shape[0]

            with Progress(frames, "resynth", _progress_enabled(args)) as bar:
                while True:
                    xs = [s.read(block) for s in sources]
                    if xs[0].size == 0:
                        break
                    x = np.stack(xs, axis=1)
                    pending = np.concatenate([pending, x])
                    emit(np.stack([e.process(c).audio for e, c in zip(engines, xs, strict=True)], axis=1))
                    bar.update(sources[0].tell())
                emit(np.stack([e.flush().audio for e in engines], axis=1))
    finally:
        for s in sources:
            s.close()
    if written != frames:
        raise RuntimeError(f"wrote {written} samples of {frames}")
    snr = _snr_db(signal_energy, error_energy)
    channels = "mono" if len(sources) == 1 else f"{len(sources)} channels"
    print(
        f"{args.input}: {frames} samples at {sr} Hz, {channels}; {_describe(cfg)}; latency {latency} samples"
    )
    print(f"wrote {out_path} ({rec.subtype})")
    print(f"SNR {snr:.1f} dB (resynthesis against the input, before writing)")
    return 0


# -- record --------------------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace) -> int:
    """``rtdstft record``: a microphone to OUT for ``--seconds``, written block by block."""
    from .audio import AudioDeviceError, MicrophoneSource, Recorder

    target = int(round(args.seconds * args.rate))
    if target < 1:
        raise CommandError(
            f"--seconds must be > 0 and give at least one sample at {args.rate} Hz, got {args.seconds:g}"
        )
    mic = MicrophoneSource(device=args.device, sample_rate=args.rate, channel=args.channel)
    try:
        with Recorder(args.output, args.rate, subtype=args.subtype) as rec:
            with Progress(target, "record", _progress_enabled(args)) as bar:
                mic.start()
                while rec.frames < target:
                    x = mic.read(target - rec.frames)
                    if x.size:
                        rec.write(x)
                        bar.update(rec.frames)
                    else:
                        time.sleep(0.01)
                    if mic.error is not None:
                        raise AudioDeviceError(
                            f"{mic.error}; {args.output} holds the first {rec.duration:.2f} s"
                        )
    finally:
        mic.close()
    print(
        f"recorded {rec.duration:.2f} s at {args.rate} Hz from input device {mic.device} "
        f"({mic.device_name!r}) to {args.output}; samples dropped: {mic.dropped}, "
        f"input overflows: {mic.overruns}"
    )
    return 0


# -- devices, bench, reproduce -------------------------------------------------------------------


def cmd_devices(args: argparse.Namespace) -> int:
    """``rtdstft devices``: the table of :func:`rtdstft.audio.format_devices`."""
    from .audio import format_devices

    print(format_devices())
    return 0


def _delegate(name: str, argv: list[str]) -> int:
    """``bench`` and ``reproduce``: the rest of the command line goes to the module's ``main``."""
    import importlib

    module = {"bench": "rtdstft.bench", "reproduce": "rtdstft.experiments"}[name]
    try:
        target = importlib.import_module(module)
    except ImportError as exc:
        raise CommandError(f"`{PROG} {name}` is not available: {exc}") from exc
    status = target.main(argv)
    return 0 if status is None else int(status)


# -- parser --------------------------------------------------------------------------------------

_DESCRIPTION = """\
A real-time adaptive spectrogram: a streaming differentiable STFT whose window length θ adapts to
the signal, frame block by frame block, by lowering a local entropy.

Units: n_fft, hop and window lengths in samples; times in s; θ in the outputs in samples and ms.
Errors print one line, `rtdstft: error: ...`, and exit with status 2."""


def _engine_options(parser: argparse.ArgumentParser) -> None:
    """The engine's settings as options; their ranges are checked by StreamConfig, which the
    defaults come from too."""
    d = StreamConfig()
    g = parser.add_argument_group("engine (StreamingDSTFT)")
    g.add_argument(
        "--n-fft",
        dest="n_fft",
        type=int,
        metavar="N",
        help="frame support and FFT size, even, samples (default: suited to the rate, as in the GUI: the "
        "smallest power of two holding 85 ms, e.g. 1024 at 8 kHz, 2048 at 16-24 kHz, 4096 at 44.1-48 kHz)",
    )
    g.add_argument(
        "--hop",
        dest="hop_length",
        type=int,
        metavar="H",
        help="samples between frames, 1..N/2 (default: the power of two nearest 2.5 ms, e.g. 32 at "
        "8-16 kHz, 64 at 24 kHz, 128 at 48 kHz; N/8 with --n-fft)",
    )
    g.add_argument(
        "--win-min",
        type=float,
        metavar="S",
        help="shortest window θ, samples, in (H, win-max] (default: 2H, about 5 ms)",
    )
    g.add_argument(
        "--win-max",
        type=float,
        metavar="S",
        help="longest window θ, samples, in (H, N] (default: 85 ms; N with --n-fft or --hop)",
    )
    g.add_argument(
        "--win-length",
        type=float,
        metavar="S",
        help="the fixed θ with --no-adapt, else the starting θ; samples (default: sqrt(win-min * win-max))",
    )
    g.add_argument("--no-adapt", action="store_true", help="keep θ fixed at --win-length (default: adapt)")
    g.add_argument(
        "--block-frames",
        type=int,
        metavar="K",
        help=f"frames per adaptation block, >= 1; latency grows with K*H (default: {d.block_frames})",
    )
    g.add_argument(
        "--steps",
        type=int,
        help="0: refine each block's bracket search by a parabola; n >= 1: by n gradient steps "
        f"instead (default: {d.steps})",
    )
    g.add_argument(
        "--entropy",
        choices=ENTROPY_KINDS,
        help=f"concentration measure (default: {d.entropy})",
    )
    g.add_argument("--alpha", type=float, help=f"Rényi order, > 0 and != 1 (default: {d.alpha:g})")
    g.add_argument(
        "--radius",
        type=int,
        metavar="R",
        help=f"local entropy neighbourhood, frames either side, >= 0 (default: {d.radius})",
    )
    g.add_argument(
        "--smoothness",
        type=float,
        metavar="LAMBDA",
        help=f"penalty on (log θ_b - log θ_b-1)^2 between blocks, >= 0 (default: {d.smoothness:g})",
    )
    g.add_argument("--lr", type=float, help=f"gradient step in log θ, > 0 (default: {d.lr:g})")
    g.add_argument(
        "--steadiness",
        type=float,
        metavar="NATS",
        help="how much better (nats per unit of |Δ log θ|) a new θ must be before θ moves, >= 0 "
        f"(default: {d.steadiness:g})",
    )
    g.add_argument(
        "--bands",
        type=int,
        metavar="B",
        help=f"1: one θ for all frequencies; B in 2..8: a θ per octave-like band, 250 Hz..8 kHz "
        f"(default: {d.bands})",
    )


def _channel_and_progress(parser: argparse.ArgumentParser, what: str, default_channels: str) -> None:
    parser.add_argument(
        "--channel",
        type=_nonneg_int,
        metavar="C",
        help=f"{what} channel C alone (0-based; default: {default_channels})",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="draw a progress bar on stderr even when it is not a terminal (where it is drawn anyway)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``rtdstft`` (``bench`` and ``reproduce`` are listed here but their
    arguments are parsed by their own modules)."""
    from . import __version__

    parser = _Parser(prog=PROG, description=_DESCRIPTION, formatter_class=_RawFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "devices",
        help="list the audio devices",
        formatter_class=_Formatter,
        description="List the audio devices PortAudio sees: index, input/output channels, "
        "default rate (Hz), name and host API; > marks the default input.",
    )
    p.set_defaults(run=cmd_devices)

    p = sub.add_parser(
        "analyze",
        help="adaptive spectrogram picture (and θ CSV) of a file",
        formatter_class=_Formatter,
        description="Run the whole FILE (WAV, FLAC, OGG, ... at its own rate) through the adaptive "
        "streaming engine, block by block, and draw the spectrogram in dB re full scale (time in s, "
        "frequency in Hz, colour bar in dB) above the window length θ in ms, on the same time axis.",
    )
    p.add_argument("file", metavar="FILE", help="the audio file")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PICTURE",
        help="the picture to write; format from the extension (.png, .pdf, .svg, ...)",
    )
    p.add_argument(
        "--csv",
        metavar="THETA.csv",
        help="also write θ per frame: frame,time_s,win_length_samples,win_length_ms",
    )
    p.add_argument(
        "--db-range",
        type=_positive_float,
        default=80.0,
        metavar="DB",
        help="colour range below the loudest bin, dB (default: 80)",
    )
    _channel_and_progress(p, "analyze", "mono mix-down")
    _engine_options(p)
    p.set_defaults(run=cmd_analyze)

    p = sub.add_parser(
        "resynth",
        help="resynthesise a file through the adaptive engine, print the SNR",
        formatter_class=_Formatter,
        description="Run every channel of IN through its own adaptive engine, write the overlap-add "
        "resynthesis (the engine's latency removed: same length, rate and channels) to OUT, format "
        "from its extension, and print the SNR in dB of the resynthesis against the input.",
    )
    p.add_argument("input", metavar="IN", help="the audio file to resynthesise")
    p.add_argument("output", metavar="OUT", help="the file to write (.wav, .flac, .ogg, ...)")
    p.add_argument(
        "--subtype",
        metavar="SUBTYPE",
        help="libsndfile subtype of OUT, e.g. PCM_16, PCM_24, FLOAT (default: IN's when OUT's "
        "format takes it, else the format's default)",
    )
    _channel_and_progress(p, "resynthesise", "every channel, each through its own engine")
    _engine_options(p)
    p.set_defaults(run=cmd_resynth)

    p = sub.add_parser(
        "record",
        help="record a microphone to a file",
        formatter_class=_Formatter,
        description="Record mono audio from an input device to OUT, written block by block (a killed "
        "process leaves a valid file); the format comes from OUT's extension.",
    )
    p.add_argument("output", metavar="OUT", help="the file to write (.wav, .flac, .ogg, ...)")
    p.add_argument(
        "--seconds",
        type=_positive_float,
        required=True,
        metavar="S",
        help="how long to record, seconds (> 0)",
    )
    p.add_argument(
        "--device",
        type=_device,
        metavar="D",
        help="input device: an index or (part of) a name from `rtdstft devices` (default: the default input)",
    )
    p.add_argument(
        "--rate", type=_positive_int, default=48000, metavar="R", help="sample rate, Hz (default: 48000)"
    )
    p.add_argument(
        "--subtype", default="PCM_16", metavar="SUBTYPE", help="libsndfile subtype (default: PCM_16)"
    )
    _channel_and_progress(p, "record input", "mono mix-down of the first two")
    p.set_defaults(run=cmd_record)

    for name, text in (
        ("bench", "speed benchmarks (arguments: `rtdstft bench --help`)"),
        (
            "reproduce",
            "reproduce a seed-paper experiment: fsdd | tracking | grid "
            "(arguments: `rtdstft reproduce --help`)",
        ),
    ):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``rtdstft`` command line ``argv`` (default ``sys.argv[1:]``); returns the exit status:
    0 done (``--help`` included), 2 a bad parameter, path or device (one line on stderr), 130
    interrupted. argparse's exits (and those of ``bench`` / ``reproduce``) become return values."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in ("bench", "reproduce"):
            return _delegate(argv[0], argv[1:])
        args = build_parser().parse_args(argv)
        from .audio import AudioDeviceError, AudioFileError

        try:
            return args.run(args)
        except (AudioFileError, AudioDeviceError, ValueError, TypeError, OSError) as exc:
            raise CommandError(_one_line(exc)) from exc
    except CommandError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
