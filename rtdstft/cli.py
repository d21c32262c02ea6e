"""The ``rtdstft`` command: ``devices | analyze | batch | resynth | record | bench | reproduce``.

- ``analyze FILE -o PICTURE.png [--csv THETA.csv]``: the whole file through the adaptive streaming
  engine, block by block; a picture of the spectrogram in dB (time in s, frequency in Hz, colour bar)
  over the window-length track θ in ms, and optionally θ per frame as CSV.
- ``batch INPUT... -o OUT``: ``analyze``'s θ track and summaries for a corpus, one Parquet row
  per file, resumable, on local processes or a Ray cluster (:mod:`rtdstft.batch`).
- ``resynth IN OUT``: every channel through its own engine, overlap-add resynthesis written to OUT
  with the engine's latency removed; prints the SNR of the resynthesis against the input.
- ``record OUT --seconds S``: a microphone to a file, written as it goes (FLAC, OGG, MP3 through a WAV
  converted at the end).
- ``devices``: the audio devices PortAudio sees.
- ``bench`` and ``reproduce``: hand their arguments to :func:`rtdstft.bench.main` and
  :func:`rtdstft.experiments.main`.

Every output file is written under a temporary name and renamed when complete: it is whole or
absent, after an error or Ctrl-C too. Inputs are regular files (a pipe is refused); a file cut short
is read as far as it goes, with a warning. Long jobs draw a tqdm progress bar on stderr when it is a
terminal (or with ``--progress``). A missing or unreadable file, an unknown device, a bad parameter or
settings too large for the memory end the command with one line on stderr, ``rtdstft: error: ...``,
and exit status 2; any other exception is a bug and shows its traceback. matplotlib, soundfile and
sounddevice are imported only by the subcommands that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .batch import BATCH_FILES, MAX_THREADS, READ_BLOCKS, path_text
from .config import StreamConfig
from .entropy import ENTROPY_KINDS
from .errors import ParameterError
from .threads import torch_threads

__all__ = ["main", "build_parser", "CommandError"]

PROG = "rtdstft"
EXIT_ERROR = 2
#: Most spectrogram columns drawn in the picture; longer files are max-pooled over time to this.
MAX_COLUMNS = 2400


class CommandError(ParameterError):
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


# -- progress and messages ----------------------------------------------------------------------


def _progress(total: int, label: str, args: argparse.Namespace) -> Any:
    """A tqdm bar on stderr over ``total`` samples, drawn only when stderr is a terminal or with
    ``--progress`` (logs that are not terminals stay clean)."""
    from tqdm import tqdm

    enabled = _progress_enabled(args)
    return tqdm(
        total=max(1, int(total)),
        desc=label,
        unit=" samples",
        unit_scale=True,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.1,
    )


def _progress_enabled(args: argparse.Namespace) -> bool:
    return bool(args.progress) or sys.stderr.isatty()


def _advance(bar: Any, done: int) -> None:
    """Move ``bar`` to ``done`` samples."""
    bar.update(max(0, min(done, bar.total) - bar.n))


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _warn_cut_short(src: Any) -> None:
    if src.cut_short:
        _warn(
            f"{src.path} was cut short: it holds {src.frames} samples per channel, its header states "
            f"{src.declared_frames}; used what it holds"
        )


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


def _threads(text: str) -> int:
    return _number(text, int, lambda v: 1 <= v <= MAX_THREADS, f"an integer in 1..{MAX_THREADS}")


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


def _engine_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The engine settings given by the options, as StreamConfig fields (the rest take the rate's
    defaults)."""
    given = {field: getattr(args, field) for field in ENGINE_OPTIONS if getattr(args, field) is not None}
    return {**given, "adapt": not args.no_adapt}


def _engine_config(args: argparse.Namespace, sample_rate: float) -> StreamConfig:
    """The engine's settings from the options: those given over the defaults that suit the rate
    (see :meth:`StreamConfig.for_rate`). A bad value ends the command with the config's message,
    written with the option names."""
    try:
        return StreamConfig.for_rate(sample_rate, **_engine_fields(args))
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


#: Bytes the engine holds per sample of N per frame in flight (candidates, spectra, windows, their
#: workspaces), a lower bound measured at N = 2048 .. 131072 and K = 8 .. 1024.
ENGINE_BYTES_PER_FRAME_SAMPLE = 200


def _available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable on Linux, else all of it)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_memory(cfg: StreamConfig, channels: int) -> int:
    """Refuse, before anything is allocated, settings whose buffers would not fit in memory, naming
    the options that make them large; returns the samples read from the file per step."""
    n_fft, hop, k, radius = cfg.n_fft, cfg.hop_length, cfg.block_frames, cfg.radius
    block = READ_BLOCKS * k * hop
    # Each engine's frames in flight, and the read block as float32 samples plus float64 copies.
    need = channels * (ENGINE_BYTES_PER_FRAME_SAMPLE * n_fft * (k + 2 * radius) + 20 * block)
    have = _available_memory()
    if need > have:
        raise CommandError(
            f"--n-fft {n_fft}, --hop {hop}, --block-frames {k}, --radius {radius}: the engine's buffers "
            f"would take about {need / 2**30:.3g} GiB, more than the {have / 2**30:.3g} GiB of memory "
            "available; use a smaller --n-fft or --block-frames"
        )
    return block


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

    def trim(self, n_frames: int) -> None:
        """Keep the columns of the first ``n_frames`` frames (a file that held fewer than planned)."""
        self.n_frames = min(self.n_frames, n_frames)
        self.mag = self.mag[: -(-self.n_frames // self.pool)]

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
    fig.savefig(path)


def _hz(f: float) -> str:
    return f"{f / 1000:.3g}k" if f >= 1000 else f"{f:.0f}"


def _write_theta_csv(path: Path, times: np.ndarray, theta: np.ndarray, sample_rate: float) -> None:
    """frame,time_s,win_length_samples,win_length_ms; with θ [F, B] the last two per band
    (win_length_samples_b0, ..., win_length_ms_b0, ...)."""
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
    """``rtdstft analyze``: picture, θ CSV and NPZ of the complex frames of a file (any of them)."""
    from .atomic import atomic_output, check_creatable
    from .batch import analyze_file

    if args.output is None and args.npz is None:
        raise CommandError("analyze needs -o PICTURE, --npz PATH or both")
    picture = None if args.output is None else Path(args.output)
    if picture is not None:
        _check_picture_path(picture)
    given = {opt: Path(p) for opt, p in (("-o", picture), ("--csv", args.csv), ("--npz", args.npz)) if p}
    source = Path(args.file)
    for opt, path in given.items():  # an output renamed onto FILE would replace the recording
        if path.exists() and source.exists() and path.resolve() == source.resolve():
            raise CommandError(f"{opt} {path} is the audio file FILE: the input would be overwritten")
    seen: dict[Path, str] = {}
    for opt, path in given.items():
        if (first := seen.setdefault(path.resolve(), opt)) != opt:
            raise CommandError(f"{first} and {opt} name the same file {path}: give each its own")
    for path in (picture, args.csv, args.npz):  # before the analysis, not after it
        if path is not None:
            try:
                check_creatable(path)
            except OSError as exc:
                where = f": {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
                raise CommandError(f"{path}: cannot write it ({exc.strerror or exc}{where})") from None
    if args.channel is not None:
        _open_file(args.file, args.channel).close()  # a bad --channel named as the option
    image: _PooledSpectrogram | None = None
    # The complex frames themselves for --npz (8 bytes a bin: 90 MB a minute at 48 kHz, N = 2048).
    spec: np.ndarray | None = None

    def take(out: Any, cfg: StreamConfig, n_frames: int) -> None:
        nonlocal image, spec
        if image is None:
            image = _PooledSpectrogram(n_frames, cfg.n_fft // 2 + 1)
            if args.npz:
                spec = np.zeros((n_frames, cfg.n_fft // 2 + 1), np.complex64)
        # |S| in units of a full-scale sine's amplitude, so that the picture reads dBFS.
        # (with a θ per band, the bands' shortest: "l1" windows scale alike whatever θ)
        shortest = out.win_length if out.win_length.ndim == 1 else out.win_length.min(-1)
        image.add(out.frame_index, np.abs(out.spec) * cfg.db_scale(shortest)[:, None])
        if spec is not None:
            spec[out.frame_index] = out.spec

    bar: Any = None

    def advance(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = _progress(total, "analyze", args)
        _advance(bar, done)

    def config(sample_rate: float) -> StreamConfig:
        cfg = _engine_config(args, sample_rate)
        _check_memory(cfg, 1)
        return cfg

    try:
        result = analyze_file(args.file, config, channel=args.channel, on_output=take, on_progress=advance)
    finally:
        if bar is not None:
            bar.close()
    _warn_cut_short(result)
    cfg, sr, channels, frames = result.config, result.sample_rate, result.channels, result.frames
    theta, times, n_frames = result.theta, result.times, result.theta.shape[0]
    assert image is not None
    image.trim(n_frames)  # fewer than planned if the file was cut short
    which = (
        "mono" if channels == 1 else "mono mix-down" if args.channel is None else f"channel {args.channel}"
    )
    title = f"{path_text(Path(args.file).name)}: {frames / sr:.2f} s at {sr} Hz, {which}; {_describe(cfg)}"
    # All files or none: each is written to a part file, renamed into place once all are written.
    written = [p for p in (picture, args.csv, args.npz) if p is not None]
    with contextlib.ExitStack() as stack:
        if picture is not None:
            _write_picture(
                stack.enter_context(atomic_output(picture)), image, times, theta, cfg, args.db_range, title
            )
        if args.csv:
            _write_theta_csv(stack.enter_context(atomic_output(args.csv)), times, theta, sr)
        if spec is not None:
            from .export import write_npz

            freqs = np.arange(cfg.n_fft // 2 + 1) * (sr / cfg.n_fft)
            part = stack.enter_context(atomic_output(args.npz))
            write_npz(part, spec[:n_frames], theta, times, np.arange(n_frames), freqs, cfg.as_dict())
    print(f"{args.file}: {n_frames} frames; {_describe(cfg)}")
    theta_ms = 1000 * theta / sr
    print(
        f"θ median {np.median(theta_ms):.1f} ms (min {theta_ms.min():.1f}, max {theta_ms.max():.1f}); "
        f"wrote {', '.join(map(str, written[:-1]))}{' and ' if len(written) > 1 else ''}{written[-1]}"
    )
    return 0


# -- resynth -------------------------------------------------------------------------------------


def _snr_db(signal_energy: float, error_energy: float) -> float:
    if error_energy == 0:
        return math.inf
    if signal_energy == 0:
        return -math.inf
    return 10 * math.log10(signal_energy / error_energy)


def _written_snr(input_path: Path, output_path: Path, channel: int | None) -> tuple[float, int]:
    """(SNR in dB of the file written against the input, non-finite input samples) over the input
    samples that are finite; ``channel``: the one input channel that was resynthesised."""
    import soundfile

    signal_energy = error_energy = 0.0
    nonfinite = 0
    with soundfile.SoundFile(str(input_path)) as original, soundfile.SoundFile(str(output_path)) as again:
        while True:
            try:
                x = original.read(65536, dtype="float64", always_2d=True)
            except (RuntimeError, OSError):  # a cut-short input ends where it breaks
                break
            y = again.read(x.shape[0], dtype="float64", always_2d=True)
            if channel is not None:
                x = x[:, channel : channel + 1]
            n = min(x.shape[0], y.shape[0])
            if n == 0:
                break
            x, y = x[:n], y[:n]
            finite = np.isfinite(x)
            nonfinite += int(finite.size - np.count_nonzero(finite))
            signal_energy += float(np.sum(np.square(x, where=finite, out=np.zeros_like(x))))
            error_energy += float(np.sum(np.square(x - y, where=finite, out=np.zeros_like(x))))
    return _snr_db(signal_energy, error_energy), nonfinite


def cmd_resynth(args: argparse.Namespace) -> int:
    """``rtdstft resynth``: every channel through its own engine, OUT = the overlap-add output with
    the engine's latency removed, written whole or not at all; prints the SNR of OUT against the
    input."""
    import torch

    from .atomic import atomic_output
    from .audio import PCM_BITS, Recorder, check_writable, output_subtype
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
        sr = first.sample_rate
        fmt, subtype = output_subtype(args.subtype, first.subtype, out_path)
        cfg = _engine_config(args, sr)
        block = _check_memory(cfg, len(sources))
        check_writable(out_path, sr, len(sources), fmt, subtype)
        # float32 resynthesis is exact to ~1e-7 of full scale, finer than 16 bits but not 24; nor
        # for A-law, which decodes to the top of a code's interval (1e-7 above it is the next code).
        precise = PCM_BITS.get(first.subtype, 0) > 16 or first.subtype in ("DOUBLE", "ALAW")
        dtype = torch.float64 if precise else torch.float32
        engines = [StreamingDSTFT(config=cfg, dtype=dtype) for _ in sources]
        latency = engines[0].latency
        skip, fed, written = latency, 0, 0
        with atomic_output(out_path) as part:
            rec = Recorder(part, sr, channels=len(sources), subtype=subtype, format=fmt, name=out_path)
            try:

                def emit(y: np.ndarray) -> None:
                    nonlocal skip, written
                    drop = min(skip, y.shape[0])
                    skip -= drop
                    y = y[drop:][: fed - written]
                    rec.write(y if len(sources) > 1 else y[:, 0])
                    written += y.shape[0]

                with _progress(first.frames, "resynth", args) as bar:
                    while (xs := [s.read(block) for s in sources])[0].size:
                        fed += xs[0].size
                        emit(np.stack([e.process(c).audio for e, c in zip(engines, xs, strict=True)], 1))
                        _advance(bar, fed)
                    emit(np.stack([e.flush().audio for e in engines], axis=1))
                rec.close()
            except BaseException:
                rec.discard()
                raise
        _warn_cut_short(first)
    finally:
        for s in sources:
            s.close()
    if written != fed:
        raise RuntimeError(f"wrote {written} samples of {fed}")
    snr, nonfinite = _written_snr(src_path, out_path, args.channel)
    channels = "mono" if len(sources) == 1 else f"{len(sources)} channels"
    print(f"{args.input}: {fed} samples at {sr} Hz, {channels}; {_describe(cfg)}; latency {latency} samples")
    print(f"wrote {out_path} ({fmt}, {subtype})")
    if nonfinite:
        print(f"replaced {nonfinite} non-finite input samples (NaN or inf) by 0")
    over = "the finite input samples" if nonfinite else "the input"
    print(f"SNR {snr:.1f} dB ({out_path.name} as written, against {over})")
    return 0


# -- edit ----------------------------------------------------------------------------------------


def cmd_edit(args: argparse.Namespace) -> int:
    """``rtdstft edit``: gains on time-frequency regions of every channel, the rest bit-exact."""
    import soundfile

    from .edit import Edit, edit_file
    from .selection import Region

    if not args.region:
        raise CommandError("edit needs at least one --region T0 T1 F0 F1 GAIN_DB")
    try:
        sr = soundfile.info(str(args.input)).samplerate
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise CommandError(f"{args.input}: cannot read it as audio ({_one_line(exc)})") from None
    cfg = _engine_config(args, sr)
    edits = [Edit(Region(t0, t1, f0, f1), g) for t0, t1, f0, f1, g in args.region]
    fmt, subtype = edit_file(
        args.input, args.output, edits, args.edge_ms, args.edge_hz, cfg, args.subtype, args.overwrite
    )
    print(f"{args.input}: {len(edits)} edit(s) at {sr} Hz; {_describe(cfg)}")
    print(f"wrote {args.output} ({fmt}, {subtype})")
    return 0


# -- record --------------------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace) -> int:
    """``rtdstft record``: a microphone to OUT for ``--seconds``, written block by block; Ctrl-C
    ends the recording early and keeps what was recorded."""
    from .audio import AudioDeviceError, MicrophoneSource, Recorder

    target = int(round(args.seconds * args.rate))
    if target < 1:
        raise CommandError(
            f"--seconds must be > 0 and give at least one sample at {args.rate} Hz, got {args.seconds:g}"
        )
    rec = Recorder(args.output, args.rate, subtype=args.subtype)
    interrupted, lost = False, None
    try:
        mic = MicrophoneSource(device=args.device, sample_rate=args.rate, channel=args.channel)
    except BaseException:
        rec.discard()
        raise
    if rec.writing != rec.path:
        print(f"recording to {rec.writing}; it becomes {rec.path} when the recording ends", flush=True)
    try:
        with _progress(target, "record", args) as bar:
            mic.start()
            while rec.frames < target and lost is None:
                x = mic.read(target - rec.frames)
                if x.size:
                    rec.write(x)
                    _advance(bar, rec.frames)
                else:
                    time.sleep(0.01)
                lost = mic.error
    except KeyboardInterrupt:
        interrupted = True
    finally:
        mic.close()
    rec.close()
    if lost is not None:
        raise AudioDeviceError(f"{lost}; {rec.path} holds the first {rec.duration:.2f} s")
    print(
        f"recorded {rec.duration:.2f} s at {args.rate} Hz from input device {mic.device} "
        f"({mic.device_name!r}) to {args.output} ({rec.format}, {rec.subtype}); samples dropped: "
        f"{mic.dropped}, input overflows: {mic.overruns}" + ("; stopped by Ctrl-C" if interrupted else "")
    )
    return 130 if interrupted else 0


# -- batch ---------------------------------------------------------------------------------------


def cmd_batch(args: argparse.Namespace) -> int:
    """``rtdstft batch``: the adaptive analysis of a corpus into a Parquet dataset; exit status 1
    when any file failed."""
    from .batch import CHECK_RATES, check_config, run_batch

    check_config(lambda rate: _engine_config(args, rate))  # the options named as on the command line
    # Each worker holds at least one engine: refuse what no worker could hold, as analyze does.
    workers = 1 if args.ray is not None else args.workers or os.cpu_count() or 1
    for rate in CHECK_RATES:
        try:
            cfg = _engine_config(args, rate)
        except CommandError:  # a rate these options refuse: its files' rows will say so
            continue
        _check_memory(cfg, workers)
    try:
        summary = run_batch(
            args.inputs,
            args.output,
            options=_engine_fields(args),
            workers=args.workers,
            use_ray=args.ray is not None,
            ray_address=args.ray or None,
            overwrite=args.overwrite,
            spectrogram=args.spectrogram,
            shard_files=args.shard_files,
            batch_files=args.batch_files,
            threads=args.threads,
            device=args.device,
            progress=_progress_enabled(args),
            log=(lambda line: print(line, file=sys.stderr)) if args.verbose else None,
        )
    except ImportError as exc:
        raise CommandError(str(exc)) from exc
    print(summary.line())
    return 1 if summary.failed else 0


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
        "--threads",
        type=_threads,
        default=1,
        metavar="N",
        help=f"torch threads of the engine (batch: of each worker), 1..{MAX_THREADS} (default: 1: "
        "its FFTs are small, and on a busy machine more threads cost far more than they gain)",
    )
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
        help="how much better (nats per unit of |Δ log θ|) a new θ must be before θ moves while the "
        "level holds (within 6 dB), >= 0 "
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


def _out_subtype_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--subtype",
        metavar="SUBTYPE",
        help="libsndfile subtype of OUT, e.g. PCM_16, PCM_24, FLOAT (default: IN's when OUT's "
        "format takes it, else the format's default)",
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
        metavar="PICTURE",
        help="the picture to write; format from the extension (.png, .pdf, .svg, ...)",
    )
    p.add_argument(
        "--npz",
        metavar="PATH",
        help="also (or instead) write every complex frame, θ, frame times, bin frequencies and the "
        "settings to an NPZ (numpy.load reads it; layout in the README)",
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
    _out_subtype_option(p)
    _channel_and_progress(p, "resynthesise", "every channel, each through its own engine")
    _engine_options(p)
    p.set_defaults(run=cmd_resynth)

    p = sub.add_parser(
        "edit",
        help="change time-frequency regions of a file by a gain, the rest bit-exact",
        formatter_class=_Formatter,
        description="Multiply each --region of every channel of IN (T0..T1 s × F0..F1 Hz, a smooth "
        "edge just inside it) by GAIN_DB through the adaptive engine's frames (one θ track for all "
        "channels: that of their mono mix) and write OUT: same rate and channels, IN's subtype where "
        "OUT's format takes it. Samples farther than half a window from every region are copied "
        "(bit-exact in integer PCM). The file is streamed (memory does not grow with its length). "
        "OUT appears whole or not at all; OUT = IN needs --overwrite and replaces IN only once the "
        "new file is complete.",
    )
    p.add_argument("input", metavar="IN", help="the audio file to edit")
    p.add_argument("output", metavar="OUT", help="the file to write (.wav, .flac, .ogg, ...)")
    p.add_argument(
        "--region",
        nargs=5,
        type=float,
        action="append",
        metavar=("T0", "T1", "F0", "F1", "GAIN_DB"),
        help="a region and its gain: 0 <= T0 < T1 s (T0 inside the file), 0 <= F0 < F1 Hz (F0 below "
        "Nyquist), GAIN_DB in [-inf, 24] (-inf removes); repeatable, gains multiply where regions overlap",
    )
    p.add_argument(
        "--edge-ms",
        type=float,
        default=10.0,
        metavar="MS",
        help="the mask's edge in time, ms, >= 0 (default: 10)",
    )
    p.add_argument(
        "--edge-hz",
        type=float,
        default=50.0,
        metavar="HZ",
        help="the mask's edge in frequency, Hz, >= 0 (default: 50)",
    )
    _out_subtype_option(p)
    p.add_argument(
        "--overwrite", action="store_true", help="allow OUT = IN (IN replaced only when OUT is complete)"
    )
    _engine_options(p)
    p.set_defaults(run=cmd_edit)

    p = sub.add_parser(
        "record",
        help="record a microphone to a file",
        formatter_class=_Formatter,
        description="Record mono audio from an input device to OUT, format from its extension (WAV, "
        "WAVEX, W64, RF64, AIFF, AU, CAF, FLAC, OGG, MP3). WAV-like formats are written block by block "
        "(a killed process leaves a valid file); FLAC, OGG, MP3 and ALAC are recorded to OUT.partial.wav "
        "and converted when the recording ends (that WAV is kept if it does not end normally). Ctrl-C "
        "ends the recording early and keeps it.",
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
        "--subtype",
        metavar="SUBTYPE",
        help="libsndfile subtype, e.g. PCM_16, PCM_24, FLOAT (default: the format's: PCM_16; VORBIS for "
        ".ogg, MPEG_LAYER_III for .mp3)",
    )
    _channel_and_progress(p, "record input", "mono mix-down of the first two")
    p.set_defaults(run=cmd_record)

    p = sub.add_parser(
        "batch",
        help="adaptive analysis of a corpus into a Parquet dataset, one row per file",
        formatter_class=_Formatter,
        description="Analyse every file named by INPUT... as `analyze` does (same engine options and "
        "defaults) and write a Parquet dataset to the folder OUT, one row per file: path, size, "
        "mtime, rate, channels, duration, settings, the θ track and frame times, summaries, status "
        "and error. A re-run skips the files OUT already holds (same path, size and mtime, analysed "
        "with the same engine settings and, with --spectrogram, with their spectrogram); shards "
        "are written whole or not at all, so a killed run is resumed by running it again. A bad "
        "file becomes a row with its error, and a re-run tries it again (a file fixed or restored, "
        "a failure that passed), keeping every good row; its new row replaces the old one in one "
        "atomic rename. One run at a time per OUT: a second is refused while one runs. Exit status 1 "
        "when any file failed, 2 on a bad option or an OUT in use.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="a file, a folder (searched recursively for audio files), a glob pattern (quote it; ** "
        "crosses folders) or a CSV manifest with a `path` column",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the dataset's folder")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="local processes, one torch thread each (default: the CPU cores; 1: in this process)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run as a Ray Data pipeline: on the cluster at ADDRESS (e.g. auto, host:6379, "
        "ray://host:10001), else RAY_ADDRESS's, else a new local one (needs rtdstft[scale]); write "
        "--ray=ADDRESS, or --ray after the inputs",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="analyse again every file OUT already holds (without it: only new or changed files, rows "
        "of other engine settings, and error rows)",
    )
    p.add_argument(
        "--spectrogram",
        action="store_true",
        help="also write each file's spectrogram in dB, float16 [bins, frames], to OUT/_spectrograms",
    )
    p.add_argument(
        "--shard-files",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="rows per shard at most; a shard is also committed every 60 s (default: 1000)",
    )
    p.add_argument(
        "--batch-files",
        type=_positive_int,
        default=BATCH_FILES,
        metavar="K",
        help="files of one sample rate analysed side by side in a worker, longest first (1: one at a "
        f"time); the rows are the same whatever K is (default: {BATCH_FILES})",
    )
    p.add_argument(
        "--device", default="cpu", help="torch device of the engines: cpu, cuda, cuda:1 ... (default: cpu)"
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="a line on stderr for every shard committed and every worker process that died",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="draw a progress bar on stderr even when it is not a terminal (where it is drawn anyway)",
    )
    _engine_options(p)
    p.set_defaults(run=cmd_batch)

    for name, text in (
        ("bench", "speed benchmarks (arguments: `rtdstft bench --help`)"),
        (
            "reproduce",
            "reproduce a seed-paper experiment: fsdd | tracking | grid | tf-figure "
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
        if argv and argv[0] == "edit":  # a gain of -inf is a value, not an option
            argv = [" -inf" if a.lower() in ("-inf", "-infinity") else a for a in argv]
        args = build_parser().parse_args(argv)
        from .audio import AudioDeviceError, AudioFileError

        try:
            with torch_threads(getattr(args, "threads", None)):
                return args.run(args)
        except (AudioFileError, AudioDeviceError, OSError) as exc:
            raise CommandError(_one_line(exc)) from exc
    except ParameterError as exc:  # CommandError and the engine's validation errors
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
