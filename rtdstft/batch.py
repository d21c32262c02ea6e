"""Corpus analysis: the adaptive analysis of many audio files, one Parquet row per file.

:func:`analyze_file` runs one file through the streaming engine (``rtdstft analyze`` uses it too, so
a file gets the same θ track either way). :func:`run_batch` does it for a corpus:

- inputs: files, folders (searched recursively for audio extensions), glob patterns, or CSV
  manifests (``.csv`` with a ``path`` column; relative paths are taken from the manifest's folder);
- output: a folder holding a Parquet dataset, ``part-NNNNNN.parquet`` shards of at most
  ``shard_files`` rows, each written to a temporary name and renamed when complete, so that a killed
  run leaves whole shards or none (``pyarrow.dataset.dataset(OUT)`` or ``pandas.read_parquet(OUT)``
  read it); with ``spectrogram=True`` also ``_spectrograms/<name>.npy``, float16 dB,
  [bins, frames] (Parquet readers skip names that start with ``_``);
- resumable: a file whose path, size and mtime match a good row already in OUT is skipped (unless
  ``overwrite``) if that row was analysed with the settings the options give now (and, with
  ``spectrogram``, has its spectrogram); a file whose row is an error is tried again on every run
  (it may have been restored with its old size and mtime, or its failure was transient: a full
  disk, a network file system, a killed worker), as make or rsync would; a file analysed again
  gets its new row in place of the old one in the old row's shard, one atomic rename, so that a
  reader, or a run killed at any moment, sees each file's old row or its new one, never both;
- one run at a time: a run holds OUT (a lock file, :data:`LOCK_NAME`, let go when the run ends,
  however it ends) and a second run on it is refused while the first runs;
- a file that cannot be analysed (empty, truncated, not audio, unreadable) becomes a row with
  ``status = "error"`` and its message; the run goes on;
- local processes (``workers``, one torch thread each by default; a worker holds the analyses of
  at most ``batch_files`` files at a time, and rows go to disk a shard at a time, so memory does
  not grow with the corpus), or a Ray Data pipeline on a Ray cluster (``ray_address``), which
  gives the same rows;
- files side by side: a worker runs up to ``batch_files`` files of one configuration through one
  lockstep engine (:func:`analyze_rows`), each file's θ and row exactly those it gets alone, at a
  fraction of the per-block overhead (short files, thousands of them, are the case it is for).

Row (one per file): path (absolute; a byte of a name that is not UTF-8 written as ``\\xNN``, see
:func:`path_text`), size (bytes), mtime_ns, sample_rate (Hz), channels (of the
file; several are mixed down to mono as ``rtdstft analyze`` does), frames (samples per channel),
duration (s), settings (JSON of the engine's StreamConfig), theta (θ per frame, samples, float32),
frame_times (frame centres, s), theta_median (samples), share_min and share_max (share of frames at
the shortest and longest θ allowed), entropy_mean (mean local entropy of the emitted spectrogram,
nats, with the engine's measure and radius), spectrogram (path relative to OUT, or null), status
("ok"; "cut short": the file holds fewer samples than its header states and was analysed as
far as it decodes; "error": not analysed), error (message or note, or null).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import json
import math
import os
import re
import socket
import stat
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import fit_name
from .errors import ParameterError
from .threads import torch_threads

if TYPE_CHECKING:
    from .config import StreamConfig

__all__ = [
    "FileAnalysis",
    "BatchSummary",
    "analyze_file",
    "analyze_row",
    "analyze_rows",
    "engine_config",
    "check_config",
    "expand_inputs",
    "run_batch",
    "AUDIO_EXTENSIONS",
]

#: File extensions a folder is searched for (those libsndfile reads, lower case, with the dot).
AUDIO_EXTENSIONS = (
    ".wav",
    ".wave",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aif",
    ".aiff",
    ".aifc",
    ".au",
    ".snd",
    ".caf",
    ".w64",
    ".rf64",
)
#: Frames fed to the engine per read, in units of its adaptation blocks.
READ_BLOCKS = 8
SHARD_PATTERN = re.compile(r"^part-(\d{6})\.parquet$")
#: Level of a silent bin in the spectrograms written, dB re a full-scale sine.
DB_FLOOR = -240.0
SPECTROGRAM_DIR = "_spectrograms"  # "_": not read as part of the Parquet dataset


def _extra(name: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"{name} is needed here: pip install 'rtdstft[{extra}]' ({exc})") from exc


# -- settings ------------------------------------------------------------------------------------


#: Rates at which :func:`run_batch` checks the engine options before it starts: options that no
#: rate accepts are refused at once; others are refused file by file, in the rows.
CHECK_RATES = (8000, 16000, 22050, 44100, 48000, 96000)


def engine_config(options: Mapping[str, Any] | None, sample_rate: float) -> StreamConfig:
    """The engine's settings for a file at ``sample_rate`` Hz: ``options`` (StreamConfig fields such
    as ``n_fft``, ``hop_length``, ``adapt``, ``win_min``, ``win_max``, ``radius``; None or missing
    ones take the defaults) over the settings that suit the rate, as ``rtdstft analyze`` builds them
    (:meth:`StreamConfig.for_rate`).

    Raises ValueError naming the field and its valid range.
    """
    from .config import StreamConfig

    given = dict(options or {})
    unknown = set(given) - (set(StreamConfig.fields()) - {"sample_rate"})
    if unknown:
        raise ParameterError(
            f"unknown engine options {sorted(unknown)}; known: {', '.join(StreamConfig.fields()[1:])}"
        )
    return StreamConfig.for_rate(sample_rate, **given)


def check_config(make: Callable[[float], Any]) -> None:
    """Raises the error of ``make(rate)`` for the first of :data:`CHECK_RATES` when every one of
    them fails (options no file could take); else returns."""
    first: Exception | None = None
    for rate in CHECK_RATES:
        try:
            make(rate)
            return
        except Exception as exc:  # noqa: BLE001 - re-raised below when no rate takes the options
            first = first or exc
    assert first is not None
    raise first


# -- one file ------------------------------------------------------------------------------------


@dataclass
class FileAnalysis:
    """What :func:`analyze_file` found: θ per frame (samples) at frame centres ``times`` (s), for the
    ``frames`` samples per channel that the file held."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    config: StreamConfig
    theta: np.ndarray
    times: np.ndarray
    #: The samples per channel the file's header states when it holds fewer (cut short), else None.
    declared_frames: int | None = None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def cut_short(self) -> bool:
        """True when the file held fewer samples than its header states; ``frames`` is what it held."""
        return self.declared_frames is not None


def analyze_file(
    path: str | Path,
    config: Mapping[str, Any] | Callable[[float], StreamConfig] | None = None,
    channel: int | None = None,
    on_output: Callable[[Any, StreamConfig, int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    device: str = "cpu",
) -> FileAnalysis:
    """The adaptive analysis of one file, block by block through a :class:`~rtdstft.StreamingDSTFT`.

    Args:
        path: the audio file (anything libsndfile reads).
        config: the engine's settings: StreamConfig fields over the defaults that suit the file's
            rate (see :func:`engine_config`), or a function from the rate (Hz) to a StreamConfig.
        channel: None mixes all channels down to mono; an int (0-based) takes that channel.
        on_output: called with each :class:`~rtdstft.stream.StreamOutput`, the engine's settings
            and the file's frame count F, in order (the spectra of frames 0, 1, ... F-1).
        on_progress: called with (samples read, samples in the file) after each read.
        device: torch device of the engine.

    Raises:
        AudioFileError: missing, empty, unreadable, not audio, or not a regular file; ValueError: a
        bad option or channel. A file cut short is read up to where it stops decoding
        (``cut_short`` tells).
    """
    from .audio import FileSource
    from .stream import StreamingDSTFT

    with FileSource(path, channel=channel, realtime=False) as src:
        cfg = config(src.sample_rate) if callable(config) else engine_config(config, src.sample_rate)
        engine = StreamingDSTFT(config=cfg, device=device)
        n_frames = 1 + src.frames // cfg.hop_length
        theta = np.full((n_frames, cfg.bands) if cfg.bands > 1 else n_frames, np.nan, np.float32)
        block = READ_BLOCKS * cfg.block_frames * cfg.hop_length

        def take(out: Any) -> None:
            theta[out.frame_index] = out.win_length
            if on_output is not None:
                on_output(out, cfg, n_frames)

        while (x := src.read(block)).size:
            take(engine.process(x))
            if on_progress is not None:
                on_progress(src.tell(), src.frames)
        take(engine.flush())
        sr, channels, frames, declared = src.sample_rate, src.file_channels, src.frames, src.declared_frames
    n_frames = 1 + frames // cfg.hop_length  # fewer than planned if the file was cut short
    theta = theta[:n_frames]
    if np.isnan(theta).any():  # the engine emits every frame 0..F-1 by construction
        raise RuntimeError("the engine did not emit every frame")
    times = np.arange(n_frames) * (cfg.hop_length / sr)
    return FileAnalysis(Path(path), sr, channels, frames, cfg, theta, times, declared)


class _LocalEntropy:
    """The mean local entropy of a spectrogram that arrives in pieces (frames in order), equal to
    ``rtdstft.entropy(S, kind, alpha, radius=r).mean()`` over the whole. Frames are scored in runs
    of at least ``run`` frames, each with the r frames before it and the r after it as neighbours;
    the unscored frames and 2r more are kept, so memory is bounded whatever the length."""

    def __init__(self, kind: str, alpha: float, radius: int, run: int = 512) -> None:
        self.kind, self.alpha, self.radius, self.run = kind, alpha, radius, run
        self._held: list[np.ndarray] = []  # |S|² [k, bins] of the frames not yet scored, r before them
        self._rows = 0
        self._scored_from = 0  # row where the unscored frames start
        self.total = 0.0
        self.count = 0

    def add(self, spec: np.ndarray, final: bool = False) -> None:
        """Frames ``spec`` [k, bins] (complex), the next ones; ``final`` when no more follow."""
        if spec.shape[0]:
            self._held.append(np.square(np.abs(spec)).astype(np.float32))
            self._rows += spec.shape[0]
        r = self.radius
        if not self._held or (not final and self._rows - r - self._scored_from < self.run):
            return
        import torch

        from .entropy import entropy

        held = np.concatenate(self._held) if len(self._held) > 1 else self._held[0]
        end = held.shape[0] if final else held.shape[0] - r  # frames whose neighbours have all come
        if end > self._scored_from:
            # Clipping at the array's ends is the signal's ends (first frame, final frame).
            lo = max(0, self._scored_from - r)
            hi = min(held.shape[0], end + r)
            p = torch.from_numpy(np.ascontiguousarray(held[lo:hi].T))
            h = entropy(p, kind=self.kind, alpha=self.alpha, power=1.0, radius=r).numpy()
            part = h[self._scored_from - lo : end - lo].astype(np.float64)
            self.total += float(part.sum())
            self.count += part.size
            self._scored_from = end
        keep = max(0, held.shape[0] - 2 * r)
        self._held = [held[keep:]]
        self._rows = held.shape[0] - keep
        self._scored_from -= keep

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan


# -- rows ----------------------------------------------------------------------------------------


def _schema() -> Any:
    pa = _extra("pyarrow", "batch")
    return pa.schema(
        [
            ("path", pa.string()),
            ("size", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("sample_rate", pa.int32()),
            ("channels", pa.int32()),
            ("frames", pa.int64()),
            ("duration", pa.float64()),
            ("settings", pa.string()),
            ("theta", pa.list_(pa.float32())),
            ("frame_times", pa.list_(pa.float64())),
            ("theta_median", pa.float32()),
            ("share_min", pa.float32()),
            ("share_max", pa.float32()),
            ("entropy_mean", pa.float32()),
            ("spectrogram", pa.string()),
            ("status", pa.string()),
            ("error", pa.string()),
        ]
    )


def _stat(path: str) -> tuple[int | None, int | None]:
    """(size in bytes, mtime in ns) of a regular file, else (None, None)."""
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block the reader
        return None, None
    return int(st.st_size), int(st.st_mtime_ns)


def _spectrogram_name(path: str) -> str:
    """``_spectrograms/STEM-DIGEST.npy``: the file's stem (as :func:`path_text` writes it), cut where
    the name with its temporary suffix (``.tmp-XXXXXXXX``) would pass 255 bytes, and 16 hex digits
    of the path's SHA-1."""
    import hashlib

    digest = hashlib.sha1(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    name = fit_name(path_text(Path(path).stem), f"-{digest}.npy", 255 - len(".tmp-12345678"))
    return f"{SPECTROGRAM_DIR}/{name}"


def path_text(path: str) -> str:
    """``path`` as the dataset's ``path`` column holds it: UTF-8 text, each byte of the name that
    is not UTF-8 (a name in Latin-1 from an old archive, which Python holds as a lone surrogate)
    written as ``\\xNN``, since Arrow strings are UTF-8. Other paths are as they are."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _reserve(path: Path) -> None:
    """Allocates the disk blocks of the (sparse) file ``path`` now: a memory-mapped page written
    where the disk is full kills the process with SIGBUS, while this raises OSError (ENOSPC), which
    becomes the file's error row. Where the system or the file system cannot allocate ahead,
    nothing is done."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise


def analyze_row(
    path: str,
    options: Mapping[str, Any] | None,
    out_dir: str | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """One dataset row for ``path`` (see the module's docstring); never raises for a bad file: its
    row has ``status = "error"`` and the message (``"cut short"`` and a note for a file that holds
    fewer samples than its header states, analysed as far as it decodes). ``out_dir``: where to
    write the dB spectrogram (``_spectrograms/`` under it), or None for none."""
    maker = _RowMaker(path, out_dir)
    try:
        maker.check()
        return maker.finish(analyze_file(path, options, on_output=maker.take, device=device))
    except Exception as exc:  # a bad file is a row, never the end of the run
        return maker.fail(exc)
    finally:
        maker.close()


class _RowMaker:
    """One file's row in the making: the engine's outputs go to :meth:`take` in order (the local
    entropy's meter, the spectrogram's memory-mapped file), then :meth:`finish` or :meth:`fail`
    gives the row, and :meth:`close` removes what a failure left."""

    def __init__(self, path: str, out_dir: str | None) -> None:
        self.path, self.out_dir = path, out_dir
        self.row = _row(path)
        self.spec_rel = _spectrogram_name(path) if out_dir is not None else None
        self.tmp: Path | None = None
        self.meter: _LocalEntropy | None = None
        self.image: np.ndarray | None = None

    def check(self) -> None:
        """Raises OSError when the path is no regular file (the row's size is then unknown)."""
        if self.row["size"] is None:
            raise OSError(
                f"{self.path}: not a regular file that can be read (missing, a folder, a FIFO, ...)"
            )

    def take(self, out: Any, cfg: StreamConfig, n_frames: int) -> None:
        """The next frames (a StreamOutput's spec, win_length, frame_index) of a file of ``n_frames``."""
        if self.meter is None:
            self.meter = _LocalEntropy(cfg.entropy, cfg.alpha, cfg.radius)
        self.meter.add(out.spec, final=False)
        if self.spec_rel is not None and out.n_frames:
            if self.image is None:
                self.tmp = Path(self.out_dir, self.spec_rel + f".tmp-{uuid.uuid4().hex[:8]}")
                self.tmp.parent.mkdir(parents=True, exist_ok=True)
                self.image = np.lib.format.open_memmap(
                    self.tmp, mode="w+", dtype=np.float16, shape=(cfg.n_fft // 2 + 1, n_frames)
                )
                _reserve(self.tmp)
            idx = out.frame_index
            self.image[:, idx[0] : idx[-1] + 1] = cfg.to_dbfs(out.spec, out.win_length, DB_FLOOR).T

    def finish(self, result: FileAnalysis) -> dict[str, Any]:
        """The row of a file analysed to its end."""
        meter, image, out_dir, spec_rel = self.meter, self.image, self.out_dir, self.spec_rel
        assert meter is not None
        meter.add(np.zeros((0, result.config.n_fft // 2 + 1), np.complex64), final=True)
        if image is not None:
            n_frames = result.theta.shape[0]
            if n_frames < image.shape[1]:  # cut short: fewer frames than its header promised
                np.save(Path(out_dir, spec_rel + ".tmp-cut"), np.asarray(image[:, :n_frames]))
                os.replace(Path(out_dir, spec_rel + ".tmp-cut.npy"), self.tmp)
            else:
                image.flush()
            self.image = None
            del image
            os.replace(self.tmp, Path(out_dir, spec_rel))
            self.tmp = None
        row = self.row
        row.update(_summary(result, meter.mean))
        row["spectrogram"] = spec_rel
        if result.cut_short:
            row.update(
                status="cut short",
                error=f"the file holds {result.frames} samples per channel, its header states "
                f"{result.declared_frames}; analysed what it holds",
            )
        return row

    def fail(self, exc: Exception) -> dict[str, Any]:
        """The error row of a file whose analysis raised ``exc``."""
        message = " ".join(str(exc).split()) or type(exc).__name__
        return _row(self.path, f"{type(exc).__name__}: {message}")

    def close(self) -> None:
        self.image = None
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                self.tmp.unlink()
            self.tmp = None


# -- files in lockstep ---------------------------------------------------------------------------

#: Files of one configuration analysed side by side by default (``rtdstft batch --batch-files``).
BATCH_FILES = 32
#: The most torch threads a worker may be given.
MAX_THREADS = 256


def lockstep_ready(cfg: StreamConfig) -> bool:
    """Whether files with settings ``cfg`` can go through :class:`~rtdstft.online.LockstepAdapter`:
    one band, θ adapted by the bracket and parabola (no gradient steps), a θ range wider than a
    point. Other files are analysed alone, with the same rows."""
    return cfg.adapt and cfg.bands == 1 and cfg.steps == 0 and cfg.win_min < cfg.win_max


def analyze_rows(
    paths: Sequence[str],
    options: Mapping[str, Any] | None,
    out_dir: str | None = None,
    device: str = "cpu",
    batch_files: int = BATCH_FILES,
) -> list[dict[str, Any]]:
    """The rows of ``paths``, in order, each exactly the row :func:`analyze_row` gives.

    Files are grouped by their engine settings (files of one sample rate share them), each group
    sorted longest first and cut into runs of ``batch_files`` files that go through one
    :class:`~rtdstft.online.LockstepAdapter` side by side, a block of K frames of every file per
    step; a file that ends leaves its run, the others go on. A file that cannot be opened, whose
    settings the lockstep does not take (:func:`lockstep_ready`), or whose run fails, is analysed
    alone by :func:`analyze_row`.
    """
    if isinstance(batch_files, bool) or not isinstance(batch_files, int) or batch_files < 1:
        raise ParameterError(f"batch_files must be an integer >= 1 (files side by side), got {batch_files!r}")
    rows: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[tuple[int, str, StreamConfig]]] = {}
    configs: dict[int, StreamConfig | None] = {}  # by sample rate (None: refused)
    for path in paths:
        probe = _probe(path, options, configs) if batch_files > 1 else None
        if probe is None:
            rows[path] = analyze_row(path, options, out_dir, device)
        else:
            cfg, frames = probe
            groups.setdefault(json.dumps(cfg.as_dict(), sort_keys=True), []).append((frames, path, cfg))
    for group in groups.values():
        group.sort(key=lambda t: -t[0])  # longest first: the runs stay full while files end
        for i in range(0, len(group), batch_files):
            run = group[i : i + batch_files]
            rows.update(_lockstep_rows([p for _, p, _ in run], run[0][2], options, out_dir, device, configs))
    return [rows[p] for p in paths]


def _probe(
    path: str, options: Mapping[str, Any] | None, configs: dict[int, StreamConfig | None]
) -> tuple[StreamConfig, int] | None:
    """(engine settings, samples per channel the header states) of a file the lockstep can take,
    else None (the file is then analysed alone, which also makes the row of a bad one).
    ``configs``: the settings by sample rate found so far (None where refused), added to."""
    if _stat(path)[0] is None:
        return None
    try:
        import soundfile as sf

        from .audio import sf_path

        info = sf.info(sf_path(path))
    except Exception:  # noqa: BLE001 - analysed alone, which reports the error in its row
        return None
    cfg = _rate_config(options, info.samplerate, configs)
    return (cfg, int(info.frames)) if cfg is not None and lockstep_ready(cfg) else None


def _rate_config(
    options: Mapping[str, Any] | None, rate: int, configs: dict[int, StreamConfig | None]
) -> StreamConfig | None:
    """:func:`engine_config` at ``rate``, remembered in ``configs``; None where it refuses."""
    if rate not in configs:
        try:
            configs[rate] = engine_config(options, rate)
        except Exception:  # noqa: BLE001 - such files are analysed alone, their rows say why
            configs[rate] = None
    return configs[rate]


def _lockstep_rows(
    paths: Sequence[str],
    cfg: StreamConfig,
    options: Mapping[str, Any] | None,
    out_dir: str | None,
    device: str,
    configs: dict[int, StreamConfig | None],
) -> dict[str, dict[str, Any]]:
    """{path: row} of files of settings ``cfg``, run side by side (see :func:`analyze_rows`)."""
    import torch

    from .online import LockstepAdapter

    lanes: list[_Lane] = []
    rows: dict[str, dict[str, Any]] = {}
    try:
        for path in paths:
            lane = _Lane(path, cfg, lambda rate: _rate_config(options, rate, configs), out_dir)
            if lane.error is not None or lane.src is None:
                rows[path] = lane.end(lane.error)
            else:
                lanes.append(lane)
        if not lanes:
            return rows
        adapter = LockstepAdapter(cfg.n_fft, len(lanes), device=device, **cfg.adapter_settings())
        theta = np.full(len(lanes), float(np.clip(cfg.win_length, cfg.win_min, cfg.win_max)))
        active = list(range(len(lanes)))
        while active:
            by_count: dict[int, list[int]] = {}
            for j in active:
                count = lanes[j].next_block()
                if count:
                    by_count.setdefault(count, []).append(j)
            for count, js in by_count.items():
                frames = torch.from_numpy(np.stack([lanes[j].frames(count) for j in js])).to(device)
                t, spec = adapter.step(frames, theta[js], cfg.win_min, cfg.win_max, items=js)
                spec = spec.cpu().numpy()
                for q, j in enumerate(js):
                    theta[j] = t[q]
                    lanes[j].emit(spec[q], t[q])
            still = []
            for j in active:
                if lanes[j].done:
                    rows[lanes[j].path] = lanes[j].end(lanes[j].error)
                else:
                    still.append(j)
            active = still
    except Exception as exc:  # noqa: BLE001 - a run that fails as a whole: its files are analysed alone
        for lane in lanes:
            lane.close()
        # The rows stay right, but say so: a fault of the side-by-side path would otherwise show
        # only as a slower run.
        warnings.warn(
            f"files side by side failed ({type(exc).__name__}: {exc}); analysing these {len(paths)} "
            "files one at a time",
            RuntimeWarning,
            stacklevel=2,
        )
        return {p: rows[p] if p in rows else analyze_row(p, options, out_dir, device) for p in paths}
    return rows


class _Lane:
    """One file of a lockstep run: its reader (the reads :func:`analyze_file` makes), its samples
    with the N/2 zeros before them, its θ track, and its row in the making, which gets the frames in
    the pieces the streaming engine would emit them in (the local entropy's sums are added in that
    order)."""

    def __init__(self, path: str, cfg: StreamConfig, config: Callable[[int], Any], out_dir: str | None):
        from .audio import FileSource

        self.path, self.cfg = path, cfg
        self.maker = _RowMaker(path, out_dir)
        self.src: Any = None
        self.error: Exception | None = None
        try:
            self.maker.check()
            self.src = FileSource(path, realtime=False)
            if config(self.src.sample_rate) != cfg:
                raise RuntimeError("the file's settings changed since it was probed")
        except Exception as exc:  # noqa: BLE001 - the row says what happened
            self.error = exc
            return
        h, n = cfg.hop_length, cfg.n_fft
        self.read_size = READ_BLOCKS * cfg.block_frames * h
        self.planned = 1 + self.src.frames // h  # the spectrogram's width (as analyze_file plans it)
        self.theta = np.full(self.planned, np.nan, np.float32)
        self.buf = np.zeros(n // 2, np.float32)  # padded samples from padded index ``buf_start``
        self.buf_start = 0
        self.samples = 0  # samples read
        self.total: int | None = None  # samples in the file, once its end was read
        self.next_frame = 0
        self.pending: list[tuple[np.ndarray, float]] = []  # emitted blocks not yet handed on
        self.handed = 0  # frames handed on to the row
        self.cuts: list[int] = []  # frame counts after which the streaming engine emits
        self.done = False

    def _read(self) -> None:
        from .stream import zero_nonfinite

        cfg = self.cfg
        x = self.src.read(self.read_size)
        if not x.size:
            self.total = self.samples
            return
        x = zero_nonfinite(x.astype(np.float32, copy=False))[0]  # as the streaming engine does
        self.buf = np.concatenate([self.buf, x])
        self.samples += x.shape[0]
        # The engine emits, after this read, the whole blocks of the frames whose samples are in.
        ready = max(0, (cfg.n_fft // 2 + self.samples - cfg.n_fft) // cfg.hop_length + 1)
        self.cuts.append(ready - ready % cfg.block_frames)

    def next_block(self) -> int:
        """Reads what the next block needs; returns its frame count (0 when the lane has failed)."""
        cfg = self.cfg
        k, h, n = cfg.block_frames, cfg.hop_length, cfg.n_fft
        try:
            need = (self.next_frame + k - 1) * h + n // 2  # samples the block's last frame covers
            while self.total is None and self.samples < need:
                self._read()
        except Exception as exc:  # noqa: BLE001 - this file fails; the others go on
            self.error, self.done = exc, True
            return 0
        if self.total is None:
            return k
        return min(k, 1 + self.total // h - self.next_frame)

    def frames(self, count: int) -> np.ndarray:
        """The next block's ``count`` frames [count, N] (zeros after the file's end)."""
        h, n = self.cfg.hop_length, self.cfg.n_fft
        lo = self.next_frame * h - self.buf_start
        hi = lo + (count - 1) * h + n
        if hi > self.buf.shape[0]:
            self.buf = np.concatenate([self.buf, np.zeros(hi - self.buf.shape[0], np.float32)])
        item = self.buf.itemsize
        # A view, frame i at sample lo + i·H (np.ndarray: a tenth of as_strided's per-call cost).
        return np.ndarray((count, n), self.buf.dtype, self.buf, lo * item, (h * item, item))

    def emit(self, spec: np.ndarray, theta: float) -> None:
        """Takes the block's spectra [count, M] at θ; hands on what the engine would have emitted."""
        cfg = self.cfg
        self.next_frame += spec.shape[0]
        self.pending.append((spec, theta))
        drop = self.next_frame * cfg.hop_length - self.buf_start  # samples no later frame needs
        if drop > 0:
            self.buf = self.buf[drop:]
            self.buf_start += drop
        last = self.total is not None and self.next_frame >= 1 + self.total // cfg.hop_length
        while self.cuts and self.cuts[0] <= self.handed:
            self.cuts.pop(0)
        self.done = last
        if last or (self.cuts and self.next_frame >= self.cuts[0]):
            try:
                self._hand_on()
            except Exception as exc:  # noqa: BLE001 - this file fails (as it would alone); the others go on
                self.error, self.done = exc, True

    def _hand_on(self) -> None:
        from .stream import StreamOutput

        cfg = self.cfg
        spec = np.concatenate([p[0] for p in self.pending])
        theta = np.concatenate([np.full(p[0].shape[0], p[1], np.float32) for p in self.pending])
        index = np.arange(self.handed, self.handed + spec.shape[0], dtype=np.int64)
        self.pending = []
        self.theta[index] = theta
        out = StreamOutput(
            spec, theta, index, index * (cfg.hop_length / cfg.sample_rate), np.zeros(0, np.float32)
        )
        self.handed += spec.shape[0]
        self.maker.take(out, cfg, self.planned)

    def end(self, error: Exception | None) -> dict[str, Any]:
        """The lane's row (closes its reader)."""
        try:
            if error is not None:
                return self.maker.fail(error)
            src, cfg = self.src, self.cfg
            frames = src.frames
            n_frames = 1 + frames // cfg.hop_length
            theta = self.theta[:n_frames]
            if np.isnan(theta).any():
                raise RuntimeError("the engine did not emit every frame")
            times = np.arange(n_frames) * (cfg.hop_length / src.sample_rate)
            result = FileAnalysis(
                Path(self.path),
                src.sample_rate,
                src.file_channels,
                frames,
                cfg,
                theta,
                times,
                src.declared_frames,
            )
            return self.maker.finish(result)
        except Exception as exc:  # noqa: BLE001 - a bad file is a row
            return self.maker.fail(exc)
        finally:
            self.close()

    def close(self) -> None:
        if self.src is not None:
            self.src.close()
            self.src = None
        self.maker.close()


def _row(path: str, error: str | None = None) -> dict[str, Any]:
    """A row for ``path`` with its size and mtime, the rest empty: ``status`` "ok", or "error" and
    ``error``."""
    size, mtime = _stat(path)
    row: dict[str, Any] = dict.fromkeys(_schema().names)
    status = "ok" if error is None else "error"
    row.update(path=path_text(path), size=size, mtime_ns=mtime, status=status, error=error)
    return row


def _settings_json(cfg: StreamConfig) -> str:
    """The row's ``settings``: every field of the engine's StreamConfig as JSON, keys sorted."""
    return json.dumps(cfg.as_dict(), sort_keys=True)


def _summary(result: FileAnalysis, entropy_mean: float) -> dict[str, Any]:
    cfg, theta = result.config, result.theta
    # θ rests exactly on a bound up to the rounding of exp(log θ).
    at_min = theta <= cfg.win_min * (1 + 1e-5)
    at_max = theta >= cfg.win_max * (1 - 1e-5)
    return dict(
        sample_rate=result.sample_rate,
        channels=result.channels,
        frames=result.frames,
        duration=result.duration,
        settings=_settings_json(cfg),
        theta=theta.astype(np.float32),
        frame_times=result.times.astype(np.float64),
        theta_median=float(np.median(theta)),
        share_min=float(at_min.mean()),
        share_max=float(at_max.mean()),
        entropy_mean=entropy_mean,
    )


def _table(rows: Sequence[Mapping[str, Any]]) -> Any:
    pa = _extra("pyarrow", "batch")
    schema = _schema()
    columns = {name: [r[name] for r in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)


def _analyze_many(
    paths: Sequence[str],
    options: Mapping[str, Any] | None,
    out_dir: str | None,
    device: str,
    batch_files: int,
) -> tuple[list[dict[str, Any]], int]:
    """Rows of ``paths`` (:func:`analyze_rows`) and this process's peak resident memory so far (bytes)."""
    return analyze_rows(paths, options, out_dir, device, batch_files), _peak_rss()


def _peak_rss() -> int:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


# -- inputs --------------------------------------------------------------------------------------


def expand_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """The audio files named by ``inputs``, absolute, in order, each once: a file as it is; a
    folder, every file under it with an extension of :data:`AUDIO_EXTENSIONS`; a pattern with
    ``*``, ``?`` or ``[`` (``**`` crosses folders), each file it matches and every folder it
    matches as a folder; a ``.csv`` manifest, its ``path`` column.

    Raises ParameterError (a ValueError) naming an input that matches nothing or a manifest
    without ``path`` (or not UTF-8 text).
    """
    found: list[str] = []
    for item in inputs:
        text = str(item)
        p = Path(text)
        if p.is_dir():
            found.extend(_folder_files(p))
        elif p.suffix.lower() == ".csv" and p.is_file():
            found.extend(_manifest_files(p))
        elif p.exists() or p.is_symlink():
            found.append(text)
        elif glob.has_magic(text):
            hits = sorted(glob.glob(text, recursive=True))
            if not hits:
                raise ParameterError(f"input pattern {text!r} matches no file")
            for h in hits:  # a folder it matches is searched, as the shell's expansion would name it
                found.extend(_folder_files(Path(h)) if Path(h).is_dir() else [h])
        else:
            raise ParameterError(f"input {text!r}: no such file, folder or pattern")
    seen: set[str] = set()
    out = []
    for f in found:
        a = os.path.abspath(f)
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out


def _manifest_files(manifest: Path) -> list[str]:
    """The ``path`` column of the CSV file ``manifest``, UTF-8 with or without the byte-order mark
    that spreadsheets write; relative paths are taken from the manifest's folder, empty ones skipped."""
    import csv

    found = []
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if "path" not in (reader.fieldnames or []):
                columns = ", ".join(reader.fieldnames or [])
                raise ParameterError(f"manifest {manifest} has no 'path' column (columns: {columns})")
            for rec in reader:
                entry = (rec["path"] or "").strip()
                if "\0" in entry:
                    raise ParameterError(f"manifest {manifest}, line {reader.line_num}: a path holds a NUL")
                if entry:
                    q = Path(entry)
                    found.append(str(q if q.is_absolute() else manifest.parent / q))
    except UnicodeDecodeError as exc:
        raise ParameterError(
            f"manifest {manifest} is not UTF-8 text ({exc.reason}); save it as UTF-8"
        ) from None
    except csv.Error as exc:
        raise ParameterError(f"manifest {manifest} is not a CSV file that can be read ({exc})") from None
    return found


def _folder_files(folder: Path) -> list[str]:
    """Every file under ``folder`` with an extension of :data:`AUDIO_EXTENSIONS`, sorted."""
    return sorted(str(q) for q in folder.rglob("*") if q.suffix.lower() in AUDIO_EXTENSIONS and q.is_file())


# -- the dataset ---------------------------------------------------------------------------------


#: The columns of a row that say whether it stands on a re-run (:meth:`_Dataset.is_done`).
_DONE_COLUMNS = ("path", "size", "mtime_ns", "status", "sample_rate", "settings", "spectrogram")


class _Dataset:
    """The shards in OUT: which files they hold, the next shard number, atomic commits."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for leftover in root.glob(".tmp-*"):  # a killed run's shard in the making: never committed
            leftover.unlink(missing_ok=True)
        spec_dir = root / SPECTROGRAM_DIR
        if spec_dir.is_dir():
            for leftover in spec_dir.glob("*.tmp-*"):
                leftover.unlink(missing_ok=True)
        # path: (size, mtime_ns, status, shard number, sample_rate, settings, spectrogram) of its row
        self.done: dict[str, tuple[Any, ...]] = {}
        self.next_shard = 0
        pq = _extra("pyarrow.parquet", "batch")
        for shard, number in self.shards():
            self.next_shard = max(self.next_shard, number + 1)
            table = pq.read_table(shard, columns=list(_DONE_COLUMNS))
            for path, size, mtime, status, rate, settings, spec in zip(
                *(table.column(c).to_pylist() for c in _DONE_COLUMNS), strict=True
            ):
                # A later shard supersedes an earlier one.
                self.done[path] = (size, mtime, status, number, rate, settings, spec)

    def shards(self) -> list[tuple[Path, int]]:
        found = []
        for p in self.root.iterdir():
            m = SHARD_PATTERN.match(p.name)
            if m:
                found.append((p, int(m.group(1))))
        return sorted(found, key=lambda t: t[1])

    def is_done(self, path: str, settings_at: Callable[[int], str | None], spectrogram: bool) -> bool:
        """Whether the row of ``path`` stands: it is no error row, the file has its size and mtime,
        and the row was analysed with the settings ``settings_at(its rate)`` (a JSON string,
        :func:`_settings_json`) and, when ``spectrogram``, has its spectrogram. An error row never
        stands: the same size and mtime do not say that the failure will recur (a file restored
        from a backup keeps them; a full disk or a network file system fails once)."""
        entry = self.done.get(path_text(path))
        if entry is None or entry[0] is None or entry[2] == "error" or entry[:2] != _stat(path):
            return False
        rate, settings, spec = entry[4:]
        if settings != settings_at(rate):
            return False
        return not spectrogram or (spec is not None and (self.root / spec).is_file())

    def commit(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Path, int]]:
        """Writes ``rows``: the row of a file that has one already replaces it in that row's shard
        (the shard rewritten, then renamed onto itself: the file has its old row or its new one at
        every moment, never both nor none); the others go to the next shard. Returns (shard, rows
        written to it) for each shard written."""
        pa = _extra("pyarrow", "batch")
        pq = _extra("pyarrow.parquet", "batch")
        pc = _extra("pyarrow.compute", "batch")
        by_shard: dict[int, list[Mapping[str, Any]]] = {}
        for r in rows:
            entry = self.done.get(r["path"])
            by_shard.setdefault(self.next_shard if entry is None else entry[3], []).append(r)
        written = []
        for number, new in sorted(by_shard.items()):
            final = self.root / f"part-{number:06d}.parquet"
            table = _table(new)
            if number != self.next_shard:
                try:
                    old = pq.read_table(final)
                except FileNotFoundError:  # gone since the run started: the rows start it again
                    old = table.slice(0, 0)
                keep = pc.invert(pc.is_in(old.column("path"), value_set=table.column("path")))
                kept = old.filter(keep).select(table.schema.names).cast(table.schema)
                table = pa.concat_tables([kept, table])
            self._write(table, final)
            written.append((final, len(new)))
            for r in new:
                self.done[r["path"]] = (r["size"], r["mtime_ns"], r["status"], number) + tuple(
                    r[c] for c in _DONE_COLUMNS[4:]
                )
        if self.next_shard in by_shard:
            self.next_shard += 1
        return written

    def _write(self, table: Any, final: Path) -> None:
        """Writes ``table`` to ``final`` whole or not at all: a temporary file, fsynced, renamed."""
        pq = _extra("pyarrow.parquet", "batch")
        tmp = self.root / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def prune(self) -> int:
        """Removes rows superseded by a later shard's row for the same path (a dataset from a
        version that added a file's new row to a new shard, killed before it removed the old one);
        shards rewritten atomically (a shard left empty is deleted). Returns the rows removed."""
        pq = _extra("pyarrow.parquet", "batch")
        pc = _extra("pyarrow.compute", "batch")
        removed = 0
        for shard, number in self.shards():
            paths = pq.read_table(shard, columns=["path"]).column("path").to_pylist()
            keep = [self.done.get(p, (None, None, "", number))[3] == number for p in paths]
            if all(keep):
                continue
            removed += keep.count(False)
            if not any(keep):
                shard.unlink()
                continue
            table = pq.read_table(shard).filter(
                pc.field("path").isin([p for p, k in zip(paths, keep, strict=True) if k])
            )
            self._write(table, shard)
        return removed


# -- runs ----------------------------------------------------------------------------------------


@dataclass
class BatchSummary:
    """What :func:`run_batch` did: files named, analysed now, skipped (done before), failed (rows
    with an error among the files named, this run's or an earlier one's), seconds of audio analysed
    now, wall-clock seconds, shards written, the largest peak resident memory of a local worker
    (bytes; None on Ray, where the cluster's dashboard shows it), files cut short (analysed as far
    as they decode; not failed)."""

    files: int
    analysed: int
    skipped: int
    failed: int
    audio_seconds: float
    seconds: float
    shards: int
    output: Path
    worker_peak_bytes: int | None = None
    cut_short: int = 0
    #: Of ``analysed``: files whose row was an error, tried again.
    retried: int = 0

    @property
    def speed(self) -> float:
        """Seconds of audio analysed per wall-clock second (× real time)."""
        return self.audio_seconds / self.seconds if self.seconds > 0 else math.inf

    def line(self) -> str:
        return (
            f"batch: {self.files} files: {self.analysed} analysed"
            + (f" ({self.retried} retried after an error)" if self.retried else "")
            + f", {self.skipped} skipped (done before), {self.failed} failed"
            + (f", {self.cut_short} cut short" if self.cut_short else "")
            + f"; {self.audio_seconds / 3600:.3f} h of audio in {self.seconds:.1f} s "
            f"({self.speed:.0f}x real time); {self.shards} shard(s) written to {self.output}"
            + (
                f"; peak memory per worker {self.worker_peak_bytes / 2**20:.0f} MB"
                if self.worker_peak_bytes
                else ""
            )
        )


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _init_worker(threads: int = 1) -> None:
    import torch

    torch.set_num_threads(threads)


def _local_results(
    todo: Sequence[str],
    options: Mapping[str, Any] | None,
    out_dir: str | None,
    workers: int,
    device: str,
    peak: list[int],
    log: Callable[[str], None] | None = None,
    batch_files: int = BATCH_FILES,
    threads: int = 1,
) -> Iterator[dict[str, Any]]:
    """Rows of ``todo`` as they finish: in this process for one worker, else a process pool, a few
    tasks in flight per worker so that memory does not grow with the corpus; a task is up to
    ``batch_files`` files (:func:`analyze_rows`), each worker runs ``threads`` torch threads.
    ``peak[0]`` is raised to the largest peak resident memory of a worker (bytes).

    A worker that dies (the out-of-memory killer, a crash in a decoder) takes its pool with it, and
    which of the files in flight killed it is not known: each of them is then run alone in a worker
    of its own, and one that kills that worker too becomes an error row; the run goes on."""
    if workers == 1:
        try:
            with torch_threads(threads):
                for chunk in _chunks(todo, 4 * batch_files):  # a few runs' worth: grouped longest first
                    yield from analyze_rows(chunk, options, out_dir, device, batch_files)
        finally:
            peak[0] = max(peak[0], _peak_rss())
        return
    job = (options, out_dir, device, batch_files)
    tasks = _chunks(todo, max(1, min(batch_files, len(todo) // (workers * 8) or 1)))
    while True:
        lost: list[list[str]] = []
        yield from _pool_rows(tasks, job, workers, 4 * workers, lost, peak, threads)
        if not lost:
            return
        alone = iter([[p] for chunk in lost for p in chunk])
        if log is not None:
            log(f"a worker process died: the {sum(map(len, lost))} files in flight are run again, one by one")
        while True:
            died: list[list[str]] = []
            yield from _pool_rows(alone, job, 1, 1, died, peak, threads)
            if not died:
                break
            yield _row(died[0][0], "WorkerDied: the worker process died analysing this file (out of memory?)")


def _pool_rows(
    tasks: Iterator[list[str]],
    job: tuple,
    workers: int,
    in_flight: int,
    lost: list[list[str]],
    peak: list[int],
    threads: int = 1,
) -> Iterator[dict[str, Any]]:
    """Rows of ``tasks`` (lists of paths, taken as needed) from a new pool of ``workers`` processes
    (forkserver, or spawn where there is none: never a fork of a process whose torch threads run),
    ``in_flight`` tasks at most. If a worker dies, the tasks then in flight go to ``lost`` and the
    rest stay in ``tasks``."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    context = mp.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["rtdstft.batch", "rtdstft.stream", "rtdstft.audio"])
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        pending: dict[Any, list[str]] = {}

        def submit() -> None:
            chunk = next(tasks, None)
            if chunk is None:
                return
            try:
                pending[pool.submit(_analyze_many, chunk, *job)] = chunk
            except BrokenProcessPool:  # a worker died since the last result came in
                lost.append(chunk)

        for _ in range(in_flight):
            submit()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                chunk = pending.pop(fut)
                try:
                    rows, rss = fut.result()
                except BrokenProcessPool:
                    lost.append(chunk)
                    continue
                peak[0] = max(peak[0], rss)
                yield from rows
                if not lost:
                    submit()


def _ray_results(
    todo: Sequence[str],
    options: Mapping[str, Any] | None,
    out_dir: str | None,
    address: str | None,
    device: str,
    batch_files: int = BATCH_FILES,
    threads: int = 1,
) -> Iterator[dict[str, Any]]:
    """Rows of ``todo`` through a Ray Data pipeline: the paths as a dataset, ``map_batches`` through
    :func:`analyze_rows` on the cluster's workers (one CPU each, ``threads`` torch threads),
    ``batch_files`` paths a batch, streamed back as Arrow batches."""
    ray = _extra("ray", "scale")
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    # As bytes: Arrow strings are UTF-8, and a file's name need not be.
    items = [{"path": os.fsencode(p)} for p in todo]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(todo), 200)))
    ds = ds.map_batches(
        _RayAnalysis,
        fn_constructor_kwargs=dict(
            options=dict(options or {}),
            out_dir=out_dir,
            device=device,
            batch_files=batch_files,
            threads=threads,
        ),
        batch_size=batch_files,
        batch_format="pyarrow",
        concurrency=(1, max(1, int(ray.available_resources().get("CPU", 1)))),
        num_cpus=1,
        num_gpus=1 if device.startswith("cuda") else 0,
    )
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        yield from batch.to_pylist()


#: Seconds a Ray cluster's address is given to accept a connection before the run is refused.
RAY_CONNECT_TIMEOUT = 10.0


def check_ray_address(address: str | None) -> None:
    """Refuses, in one line and within :data:`RAY_CONNECT_TIMEOUT` s, a Ray cluster address that no
    cluster answers at: ``ray.init`` itself waits minutes on one. ``address`` as :func:`run_batch`
    takes it: None, "auto" and "local" are Ray's to resolve; "host:port" (the head's GCS port) and
    "ray://host:port" (a Ray Client server) are tried with a TCP connection first.

    Raises ParameterError (a ValueError) for an address of another form, or one that refuses or
    does not answer.
    """
    if address is None or address in ("auto", "local"):
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ParameterError(
            f"Ray address {address!r} must be 'auto', 'local', HOST:PORT or ray://HOST:PORT "
            "(PORT in 1..65535)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ParameterError(
            f"no Ray cluster answers at {address!r} ({reason}); start one there with "
            "'ray start --head', or give another address"
        ) from None


class _RayAnalysis:
    """The Ray Data stage: a batch of paths -> their rows as an Arrow table."""

    def __init__(
        self, options: dict[str, Any], out_dir: str | None, device: str, batch_files: int, threads: int
    ) -> None:
        _init_worker(threads)
        self.options, self.out_dir, self.device, self.batch_files = options, out_dir, device, batch_files

    def __call__(self, batch: Any) -> Any:
        paths = [os.fsdecode(p) for p in batch.column("path").to_pylist()]
        return _table(analyze_rows(paths, self.options, self.out_dir, self.device, self.batch_files))


#: The file in OUT that a run holds locked while it writes there (hidden: no Parquet reader takes it).
LOCK_NAME = ".rtdstft-batch.lock"


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Holds the dataset folder ``root`` for one run: an exclusive ``flock`` on ``root/LOCK_NAME``,
    which holds the process id. Two runs on one folder took the same shard numbers and removed each
    other's shards in the making; the kernel lets go of the lock when its process ends, however
    it ends (SIGKILL included), so no stale lock is left. Where there is no ``flock`` (Windows), or
    the folder cannot be written (nothing can be committed there either), runs are not guarded.

    Raises ParameterError (a ValueError) while another process holds ``root``.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise ParameterError(
                f"output {root} is in use by another run of rtdstft batch"
                + (f" (process {holder})" if holder.isdigit() else "")
                + "; run again when it has ended"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _check_writable(root: Path, shard: int, spectrogram: bool) -> None:
    """Raises ParameterError (a ValueError) naming ``root`` when the shard numbered ``shard`` (or,
    with ``spectrogram``, a spectrogram) could not be created there: a read-only file system, a
    folder of another user. Leaves nothing behind."""
    from .atomic import check_creatable

    try:
        check_creatable(root / f"part-{shard:06d}.parquet")
        if spectrogram:
            check_creatable(root / SPECTROGRAM_DIR / "check.npy")
    except OSError as exc:
        raise ParameterError(f"output {root} cannot be written: {exc.strerror or exc}") from None


def run_batch(
    inputs: Iterable[str | Path],
    output: str | Path,
    options: Mapping[str, Any] | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    use_ray: bool = False,
    overwrite: bool = False,
    spectrogram: bool = False,
    shard_files: int = 1000,
    shard_seconds: float = 60.0,
    device: str = "cpu",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    batch_files: int = BATCH_FILES,
    threads: int = 1,
) -> BatchSummary:
    """The adaptive analysis of every file named by ``inputs`` into the Parquet dataset ``output``
    (a folder; see the module's docstring for the rows and the layout).

    Args:
        inputs: files, folders, glob patterns or CSV manifests (see :func:`expand_inputs`).
        output: the dataset's folder (created; an existing one is resumed).
        options: the engine's settings, StreamConfig fields over the defaults that suit each
            file's rate, as ``rtdstft analyze`` takes them (see :func:`engine_config`); options
            that no rate accepts are refused before any file is read.
        workers: local processes (>= 1; default: the CPU cores); 1 runs in this process.
        use_ray, ray_address: run on a Ray cluster instead: ``ray_address`` as ``ray.init`` takes it
            (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``), None for ``RAY_ADDRESS`` or else a
            new local cluster.
        overwrite: analyse again files that ``output`` already holds (without it: files new or
            changed since, rows of other settings, and every row with an error).
        spectrogram: also write each file's dB spectrogram, float16 [bins, frames], under
            ``output/_spectrograms``.
        shard_files, shard_seconds: a shard is committed every ``shard_files`` rows (>= 1) or
            ``shard_seconds`` (> 0), whichever comes first.
        device: torch device of the engines ("cpu", "cuda", ...).
        progress: draw a progress bar (tqdm) on stderr: files/s and hours of audio per second.
        log: called with a line for each shard committed and each worker process that died
            (default: nothing).
        batch_files: files of one configuration analysed side by side in a worker (>= 1; see
            :func:`analyze_rows`); the rows are the same whatever it is.
        threads: torch threads per worker (>= 1).
    """
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers must be an integer >= 1 (processes), got {workers!r}")
    if isinstance(shard_files, bool) or not isinstance(shard_files, int) or shard_files < 1:
        raise ParameterError(f"shard_files must be an integer >= 1 (rows per shard), got {shard_files!r}")
    if isinstance(batch_files, bool) or not isinstance(batch_files, int) or batch_files < 1:
        raise ParameterError(f"batch_files must be an integer >= 1 (files side by side), got {batch_files!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ParameterError(
            f"threads must be an integer in 1..{MAX_THREADS} (torch threads per worker), got {threads!r}"
        )
    if not (isinstance(shard_seconds, (int, float)) and shard_seconds > 0):
        raise ParameterError(f"shard_seconds must be > 0 (seconds), got {shard_seconds!r}")
    check_config(lambda rate: engine_config(options, rate))
    if device != "cpu":
        import torch

        try:
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError) as exc:
            raise ParameterError(f"device {device!r} is not available: {exc}") from None
    if use_ray:
        check_ray_address(ray_address)
    paths = expand_inputs(inputs)
    root = Path(output)
    if root.exists() and not root.is_dir():
        raise ParameterError(f"output {root} is a file; it must be a folder (the Parquet dataset)")
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root):
        data = _Dataset(root)
        configs: dict[int, StreamConfig | None] = {}

        @functools.cache
        def settings_at(rate: int) -> str | None:  # None: options this rate refuses (such rows are errors)
            cfg = _rate_config(options, rate, configs)
            return None if cfg is None else _settings_json(cfg)

        todo = [p for p in paths if overwrite or not data.is_done(p, settings_at, spectrogram)]
        skipped = len(paths) - len(todo)
        retried = sum(1 for p in todo if data.done.get(path_text(p), (None,) * 3)[2] == "error")
        if todo:  # refused now rather than at the first commit, a shard's work later
            _check_writable(root, data.next_shard, spectrogram)
        out_dir = str(root) if spectrogram else None
        peak = [0]
        t0 = time.perf_counter()
        rows = (
            _ray_results(todo, options, out_dir, ray_address, device, batch_files, threads)
            if use_ray
            else _local_results(
                todo, options, out_dir, min(workers, len(todo) or 1), device, peak, log, batch_files, threads
            )
        )
        tqdm = _extra("tqdm", "batch").tqdm
        bar = tqdm(total=len(todo), unit="file", disable=not progress, file=sys.stderr, smoothing=0.1)
        audio_seconds = 0.0
        shards = 0
        held: list[dict[str, Any]] = []
        last_commit = time.monotonic()

        def commit() -> None:
            nonlocal held, shards, last_commit
            if held:
                for shard, count in data.commit(held):
                    shards += 1
                    if log is not None:
                        log(f"committed {shard.name}: {count} rows")
            held = []
            last_commit = time.monotonic()

        with bar:
            for row in rows:
                held.append(row)
                if row["status"] != "error":
                    audio_seconds += row["duration"]
                bar.update(1)
                hours_per_s = audio_seconds / 3600 / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix_str(f"{hours_per_s:.3g} h audio/s", refresh=False)
                if len(held) >= shard_files or time.monotonic() - last_commit >= shard_seconds:
                    commit()
            commit()
        data.prune()
        seconds = time.perf_counter() - t0
        status = [data.done.get(path_text(p), (0, 0, "error"))[2] for p in paths]
        failed, cut = status.count("error"), status.count("cut short")
        summary = BatchSummary(len(paths), len(todo), skipped, failed, audio_seconds, seconds, shards, root)
        summary.worker_peak_bytes, summary.cut_short, summary.retried = peak[0] or None, cut, retried
        return summary
