"""Writing analysis results: the NPZ of complex frames, the per-frame CSV, and label files.

NPZ layout (``numpy.load(path)`` reads it, no pickle, no rtdstft needed):

    spec         complex64 [F, M]   the complex frames, one row per frame (as the engine emits them)
    theta        float32   [F]      window length θ of each frame, samples
    time         float64   [F]      frame centre, s (of the file; the GUI's replay of a file: on the
                                    file's clock, so it jumps back at a seek or a loop; a live
                                    input: s since it started)
    frame_index  int64     [F]      n of each frame (its centre is sample n·H of the stream)
    freq         float64   [M]      frequency of each column, Hz (bins m·sr/N, possibly a sub-band)
    settings     str (0-d)          every analysis setting as JSON: sample_rate, n_fft, hop_length,
                                    normalization, win_min, win_max, adapt, ...
    mask         float32   [F, M]   (selections only) the time-frequency mask of the selection

Level in dB re a full-scale sine: 20 log10(c · |spec|), c = 4 / n_fft for the default "l1" windows
and 4 / θ for "peak" (:func:`rtdstft.config.db_scale`).

Spectrum CSV (:func:`write_spectrum_csv`): one row per frame, ``time_s,win_length_samples`` then
one column per frequency (header: the frequency in Hz) holding that level in dB.

Label files (a list of :class:`~rtdstft.selection.Region`; times as given: the GUI gives them on
the replayed file's clock, a live input's in s since it started):

- Audacity label track (``.txt``): per label a line ``start<TAB>end<TAB>label`` (seconds), followed
  for spectral selections by ``\\<TAB>low<TAB>high`` (Hz), as Audacity's Export Labels writes it; a
  time-only selection (upper frequency inf, what a label without that line reads as) gets no such
  line.
- Raven selection table (``.txt``, tab-separated, one header line): ``Selection, View, Channel,
  Begin Time (s), End Time (s), Low Freq (Hz), High Freq (Hz), Annotation``; a time-only selection
  reaches up to the Nyquist frequency the writer is given (Raven reads numbers only).

Every writer is whole-or-absent (:func:`rtdstft.atomic.atomic_output`): a write that fails leaves
the file as it was before, never a partial or empty one.

Both label formats are line- and tab-delimited with no quoting, so a label's tabs and line breaks
are written as spaces (:func:`label_text`); any other text (non-ASCII included, UTF-8) is kept.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from .atomic import atomic_output
from .config import db_scale
from .selection import Region

__all__ = [
    "write_npz",
    "read_settings",
    "write_frames_csv",
    "write_spectrum_csv",
    "write_audacity_labels",
    "read_audacity_labels",
    "write_raven_table",
    "read_raven_table",
    "RAVEN_HEADER",
    "label_text",
]

RAVEN_HEADER = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Annotation",
)


def write_npz(
    path: str | Path,
    spec: np.ndarray,
    theta: np.ndarray,
    time: np.ndarray,
    frame_index: np.ndarray,
    freq: np.ndarray,
    settings: str | dict,
    mask: np.ndarray | None = None,
) -> Path:
    """Write the NPZ layout of the module docstring (uncompressed); returns the path."""
    spec = np.asarray(spec)
    f, m = spec.shape
    for name, a, n in (
        ("theta", theta, f),
        ("time", time, f),
        ("frame_index", frame_index, f),
        ("freq", freq, m),
    ):
        if np.shape(a) != (n,):
            raise ValueError(f"{name} must have shape ({n},) to match spec {spec.shape}, got {np.shape(a)}")
    arrays = {
        "spec": spec.astype(np.complex64),
        "theta": np.asarray(theta, np.float32),
        "time": np.asarray(time, np.float64),
        "frame_index": np.asarray(frame_index, np.int64),
        "freq": np.asarray(freq, np.float64),
        "settings": np.array(settings if isinstance(settings, str) else json.dumps(settings)),
    }
    if mask is not None:
        arrays["mask"] = np.asarray(mask, np.float32)
    with atomic_output(path) as part, open(part, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)


def read_settings(npz) -> dict:
    """The settings dict of a loaded NPZ (``numpy.load`` result)."""
    return json.loads(str(npz["settings"]))


def write_frames_csv(path: str | Path, columns: dict, sample_rate: float) -> Path:
    """Per-frame CSV: ``frame,time_s,win_length_samples,win_length_ms,peak_hz,peak_db`` from the
    arrays ``frame``, ``time``, ``theta``, ``peak_hz``, ``peak_db`` of ``columns``."""
    with atomic_output(path) as part, open(part, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["frame", "time_s", "win_length_samples", "win_length_ms", "peak_hz", "peak_db"])
        for n, t, w, f, db in zip(
            columns["frame"],
            columns["time"],
            columns["theta"],
            columns["peak_hz"],
            columns["peak_db"],
            strict=True,
        ):
            out.writerow(
                [int(n), f"{t:.6f}", f"{w:.3f}", f"{1000 * w / sample_rate:.4f}", f"{f:.4f}", f"{db:.2f}"]
            )
    return Path(path)


def write_spectrum_csv(
    path: str | Path,
    spec: np.ndarray,
    theta: np.ndarray,
    time: np.ndarray,
    freq: np.ndarray,
    n_fft: int,
    normalization: str = "l1",
) -> Path:
    """The levels (dB re a full-scale sine) of frames ``spec`` [F, M] as a CSV (module docstring)."""
    scale = db_scale(normalization, n_fft, theta)[:, None]
    db = 20 * np.log10(np.maximum(np.abs(spec) * scale, 1e-12))
    table = np.column_stack([np.asarray(time, np.float64), np.asarray(theta, np.float64), db])
    header = ",".join(["time_s", "win_length_samples", *(f"{f:.3f}" for f in freq)])
    fmt = ["%.6f", "%.3f"] + ["%.2f"] * db.shape[1]
    with atomic_output(path) as part:
        np.savetxt(part, table, fmt=fmt, delimiter=",", header=header, comments="")
    return Path(path)


def _write_text(path: str | Path, text: str) -> None:
    """``text`` as UTF-8 at ``path``, whole or not at all (a label that cannot be encoded, such as
    a lone surrogate, leaves the old file)."""
    with atomic_output(path) as part:
        part.write_text(text, encoding="utf-8")


def label_text(label: str) -> str:
    """``label`` with each tab and line break (CR, LF, CRLF and the other Unicode line boundaries)
    replaced by one space: the label files have no quoting, so these would split its row."""
    return " ".join(re.split(r"\r\n|[\t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]", label))


def write_audacity_labels(path: str | Path, regions: list[Region]) -> Path:
    """An Audacity label track with spectral selections (see the module docstring)."""
    lines = []
    for r in regions:
        lines.append(f"{r.t0:.6f}\t{r.t1:.6f}\t{label_text(r.label)}")
        if not math.isinf(r.f1):  # a time-only label, as Audacity writes one
            lines.append(f"\\\t{r.f0:.6f}\t{r.f1:.6f}")
    _write_text(path, "\n".join(lines) + "\n")
    return Path(path)


def read_audacity_labels(path: str | Path) -> list[Region]:
    """The labels of an Audacity label track; a label without a spectral line gets 0 .. inf Hz."""
    regions: list[Region] = []
    for no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            if parts[0] == "\\":
                if not regions:
                    raise ValueError("a frequency line before any label")
                r = regions[-1]
                regions[-1] = Region(r.t0, r.t1, float(parts[1]), float(parts[2]), r.label)
            else:
                label = parts[2] if len(parts) > 2 else ""
                regions.append(Region(float(parts[0]), float(parts[1]), 0.0, float("inf"), label))
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{path}:{no}: not an Audacity label line: {line!r} ({exc})") from None
    return regions


def write_raven_table(path: str | Path, regions: list[Region], nyquist: float | None = None) -> Path:
    """A Raven selection table (see the module docstring).

    Raven's High Freq (Hz) is a number, so a selection without an upper frequency (inf: a time-only
    label, as read from an Audacity label line without a band) is written up to ``nyquist`` (Hz,
    the recording's sample rate / 2): the whole band, as Raven draws a time-only selection. Raises
    ValueError naming ``nyquist`` when such a selection comes without it (nothing is written).
    """
    if nyquist is not None and not (math.isfinite(nyquist) and nyquist > 0):
        raise ValueError(f"nyquist must be a finite frequency > 0 (Hz, sample rate / 2), got {nyquist!r}")
    rows = ["\t".join(RAVEN_HEADER)]
    for i, r in enumerate(regions, 1):
        text = label_text(r.label)
        f1 = r.f1
        if math.isinf(f1):
            if nyquist is None:
                raise ValueError(
                    f"selection {i} ({text!r}) has no upper frequency (inf), which Raven cannot read: "
                    "give nyquist (Hz, the recording's sample rate / 2)"
                )
            f1 = nyquist
        rows.append(f"{i}\tSpectrogram 1\t1\t{r.t0:.6f}\t{r.t1:.6f}\t{r.f0:.3f}\t{f1:.3f}\t{text}")
    _write_text(path, "\n".join(rows) + "\n")
    return Path(path)


def read_raven_table(path: str | Path) -> list[Region]:
    """The selections of a Raven selection table (columns found by their header names)."""
    with open(path, newline="", encoding="utf-8") as fh:
        # Raven does not quote: a field that starts with '"' is text like any other.
        table = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    regions = []
    for no, row in enumerate(table, 2):
        try:
            regions.append(
                Region(
                    float(row["Begin Time (s)"]),
                    float(row["End Time (s)"]),
                    float(row["Low Freq (Hz)"]),
                    float(row["High Freq (Hz)"]),
                    row.get("Annotation") or "",
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{no}: not a Raven selection row ({exc})") from None
    return regions
