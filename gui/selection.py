"""The selection panel: the time × frequency box drawn on the spectrogram (Shift + drag), its
measurements, its band-limited replay, its exports, and the list of labelled selections.

The panel holds no samples: every action takes an :class:`~rtdstft.selection.Excerpt` from the
window's :class:`~.history.History` and runs the math of :mod:`rtdstft.selection` in the engine
thread (the GUI thread never runs a transform). The measurement does not wait for it: the panel
says "measuring…" and fills in when the engine thread answers, a newer selection superseding an
older one still pending (which is then not computed at all if it has not started).

Clocks: the selections (drawn and kept) are in stream time (s of analysis since the source
started, going on across a replay's seeks and loops). What a user reads or lines up with the
recording is on the FILE's clock (:meth:`~.history.History.file_time`): the measured start and
end, the kept list, label files (a label that spans a seek or a loop is refused, when kept and
when saved: it is two places of the file), and the ``time`` of the NPZ and CSV exports (per
frame, so it jumps back at a seek or a loop).
Loading a label file maps the file's times back to where the history analysed them
(:meth:`~.history.History.stream_span`). A live input (microphone) has no file: its clock is
stream time, seconds since the input started.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtWidgets

from rtdstft import export, selection
from rtdstft.selection import Region

FIELDS = ("start", "end", "duration", "low", "high", "peak", "energy", "median θ")
LABEL_FILTERS = "Audacity labels (*.txt);;Raven selection table (*.txt *.selections.txt)"


def _fmt(m: dict) -> list[tuple[str, str]]:
    return [
        ("start", f"{m['start']:.3f} s"),
        ("end", f"{m['end']:.3f} s"),
        ("duration", f"{m['duration']:.3f} s"),
        ("low", f"{m['low']:.1f} Hz"),
        ("high", f"{m['high']:.1f} Hz"),
        ("peak", f"{m['peak_hz']:.2f} Hz, {m['peak_db']:.1f} dB"),
        ("energy", f"{m['energy_db']:.1f} dB"),
        ("median θ", f"{m['median_theta_ms']:.1f} ms"),
    ]


class SelectionPanel(QtWidgets.QGroupBox):
    """The current selection (measured, playable, exportable) and the list of kept ones.

    Args:
        history: returns the window's current :class:`~.history.History`.
        run: runs a function in the engine thread and returns its result (``EngineWorker.call``).
        submit: runs a function in the engine thread and hands its result to a callback in the
            GUI thread, without waiting (``EngineWorker.submit``).
        play: plays ``make()`` to the output (``EngineWorker.play``-like: make, rate, device).
        device: returns the output device chosen in the device panel.

    Signals:
        changed(object): the current :class:`Region` (or None).
        measured(dict): the current selection's measurement arrived ({} if it failed).
    """

    changed = QtCore.pyqtSignal(object)
    measured = QtCore.pyqtSignal(dict)

    def __init__(
        self,
        history: Callable[[], object],
        run: Callable[[Callable], object],
        submit: Callable[[Callable, Callable], None],
        play: Callable,
        device: Callable[[], object],
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)  # the dock around it carries the title
        self._history, self._run, self._submit = history, run, submit
        self._play, self._device = play, device
        self.region: Region | None = None
        self.measurement: dict = {}
        self._asked: object = None  # the measurement asked for last; older answers are dropped
        self.regions: list[Region] = []
        self.fields = {}
        form = QtWidgets.QFormLayout()
        for name in FIELDS:
            self.fields[name] = QtWidgets.QLabel("—")
            self.fields[name].setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(name, self.fields[name])
        self.hint = QtWidgets.QLabel("Shift + drag on the spectrogram")
        self.hint.setStyleSheet("color: #9090a0;")
        buttons = QtWidgets.QGridLayout()
        self.play_button = QtWidgets.QPushButton("▶ Play")
        self.play_button.setToolTip("the selection's band, resynthesised, to the output device")
        self.wav_button = QtWidgets.QPushButton("WAV…")
        self.npz_button = QtWidgets.QPushButton("NPZ…")
        self.csv_button = QtWidgets.QPushButton("CSV…")
        self.add_button = QtWidgets.QPushButton("Keep")
        for i, b in enumerate(
            (self.play_button, self.wav_button, self.npz_button, self.csv_button, self.add_button)
        ):
            buttons.addWidget(b, i // 3, i % 3)
            b.setEnabled(False)
        self.label = QtWidgets.QLineEdit()
        self.label.setPlaceholderText("label")
        self.list = QtWidgets.QListWidget()
        self.list.setMaximumHeight(110)
        self.save_button = QtWidgets.QPushButton("Save labels…")
        self.load_button = QtWidgets.QPushButton("Load labels…")
        col = QtWidgets.QVBoxLayout(self)
        col.addWidget(self.hint)
        col.addLayout(form)
        col.addLayout(buttons)
        col.addWidget(self.label)
        col.addWidget(self.list)
        files = QtWidgets.QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        col.addLayout(files)
        col.addStretch(1)  # a tall tab keeps the rows together at the top
        self.play_button.clicked.connect(self.play)
        self.wav_button.clicked.connect(lambda: self._dialog("WAV audio (*.wav)", ".wav", self.export_wav))
        self.npz_button.clicked.connect(lambda: self._dialog("NumPy NPZ (*.npz)", ".npz", self.export_npz))
        self.csv_button.clicked.connect(lambda: self._dialog("CSV (*.csv)", ".csv", self.export_csv))
        self.add_button.clicked.connect(lambda: self.keep(self.label.text()))
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button.clicked.connect(self._load_dialog)
        self.list.currentRowChanged.connect(self._picked)

    # -- the current selection --------------------------------------------------------------------

    def set_region(self, region: Region | None) -> None:
        """Make ``region`` (stream time s × Hz), cut to the frames the history holds, the current
        selection and ask the engine thread to measure it; the fields say "measuring…" until it
        answers (:attr:`measured`)."""
        self.region = None if region is None else self._held(region.normalized())
        self.measurement = {}
        ask = self._asked = object()
        self._show("measuring…" if self.region is not None else "—")
        if self.region is not None:
            try:
                ex, r = self._excerpt(), self.region  # taken here: the history is the GUI thread's
            except ValueError as exc:
                self._measured(ask, None, exc)
            else:

                def measure(_):
                    # Superseded before its turn: not worth the engine thread's time.
                    return None if ask is not self._asked else selection.measure(ex, r)

                self._submit(measure, lambda result, error: self._measured(ask, result, error))
        self.changed.emit(self.region)

    def _held(self, r: Region) -> Region:
        """``r`` cut to the times of the frames the history holds (a box drawn past the newest
        frame or before the oldest measures, labels and exports what was analysed); as it is when
        the history holds none of it (its actions then say so)."""
        h = self._history()
        a, b = h.time_span()
        if h.frames == 0 or r.t1 < a or r.t0 > b:
            return r
        return Region(max(r.t0, a), min(r.t1, b), r.f0, r.f1, r.label)

    def _measured(self, ask: object, result: dict | None, error: Exception | None) -> None:
        if ask is not self._asked:
            return  # a newer selection was made meanwhile
        if result:  # start and end on the file's clock, as the readout and the list show them
            h, t = self._history(), (result["start"], result["end"])
            try:
                start, end = h.file_span(*t)
            except ValueError:  # across a jump: each end where it is in the file
                start, end = (float(h.file_time(x)) for x in t)
            result = {**result, "start": start, "end": end}
        self.measurement = result or {}
        if error is not None:
            self.hint.setText(str(error))
        self._show("—")
        self.measured.emit(self.measurement)

    def _show(self, empty: str) -> None:
        """The fields of :attr:`measurement`, or ``empty`` in each; the buttons need a measurement."""
        m = self.measurement
        for name, text in _fmt(m) if m else ((n, empty) for n in self.fields):
            self.fields[name].setText(text)
        for b in (self.play_button, self.wav_button, self.npz_button, self.csv_button, self.add_button):
            b.setEnabled(bool(m))

    def _excerpt(self):
        r = self.region
        return self._history().excerpt(r.t0, r.t1, 0.5 * (r.f0 + r.f1))

    def resynthesis(self) -> np.ndarray:
        """The selection's masked resynthesis (float32, its duration at the stream's rate)."""
        ex, r = self._excerpt(), self.region
        return self._run(lambda _: selection.resynthesize(ex, r))

    def play(self) -> None:
        """Play the selection's resynthesis to the output device chosen in the device panel."""
        if self.region is None:
            return
        try:
            ex, r = self._excerpt(), self.region
        except ValueError as exc:  # its frames have left the history
            self.hint.setText(str(exc))
            return
        self._play(lambda: selection.resynthesize(ex, r), ex.sample_rate, self._device())

    # -- exports ----------------------------------------------------------------------------------

    def export_wav(self, path: str | Path) -> Path:
        """The resynthesis (what :meth:`play` plays) as a float WAV."""
        import soundfile as sf

        y = self.resynthesis()
        sf.write(str(path), y, int(round(self._history().sample_rate)), subtype="FLOAT")
        return Path(path)

    def export_npz(self, path: str | Path) -> Path:
        """The selection's complex frames (all bins), θ, times, frequencies, settings and mask, in
        the layout of :mod:`rtdstft.export`."""
        ex, r = self._excerpt(), self.region
        n0, n1 = ex.frame_range(r.t0, r.t1)
        spec = self._run(lambda _: selection.frames(ex, n0, n1))
        n = np.arange(n0, n1)
        times, freqs = ex.frame_time(n), ex.frequencies()
        m = selection.mask(times, freqs, r, ex.sample_rate / 2)
        theta = ex.theta[n0 - ex.first_frame : n1 - ex.first_frame]
        at = self._history().file_time(times)  # the file's clock; frame_index stays the stream's
        return export.write_npz(path, spec, theta, at, n, freqs, ex.settings_json(), mask=m)

    def export_csv(self, path: str | Path) -> Path:
        """θ and the refined peak frequency of every frame of the selection (``time_s`` on the
        file's clock; ``frame`` the stream's frame index)."""
        ex, r = self._excerpt(), self.region
        cols = self._run(lambda _: selection.frame_peaks(ex, r))
        cols = {**cols, "time": self._history().file_time(np.asarray(cols["time"]))}
        return export.write_frames_csv(path, cols, ex.sample_rate)

    def export_view(self, path: str | Path, region: Region) -> Path:
        """The complex frames of ``region`` (the visible view), its band's bins only, as the NPZ
        layout of :mod:`rtdstft.export` (``.npz``) or as a CSV of levels in dB (``.csv``); times
        on the file's clock."""
        r = region.normalized()
        ex = self._history().excerpt(r.t0, r.t1, 0.5 * (r.f0 + r.f1))
        n0, n1 = ex.frame_range(r.t0, r.t1)
        if n1 <= n0:
            raise ValueError(f"the view {r.t0:.3f}..{r.t1:.3f} s holds no analysed frame")
        spec = self._run(lambda _: selection.frames(ex, n0, n1))
        freqs = ex.frequencies()
        band = (freqs >= r.f0) & (freqs <= r.f1)
        n = np.arange(n0, n1)
        theta = ex.theta[n0 - ex.first_frame : n1 - ex.first_frame]
        at = self._history().file_time(ex.frame_time(n))
        if Path(path).suffix.lower() == ".csv":
            return export.write_spectrum_csv(
                path, spec[:, band], theta, at, freqs[band], ex.n_fft, ex.normalization
            )
        return export.write_npz(path, spec[:, band], theta, at, n, freqs[band], ex.settings_json())

    def _dialog(self, filt: str, suffix: str, write: Callable) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export selection", f"selection{suffix}", filt)
        if path:
            try:
                write(path)
            except (OSError, RuntimeError, ValueError) as exc:  # soundfile's errors are RuntimeErrors
                self.hint.setText(f"could not write {path}: {exc}")

    # -- the list ---------------------------------------------------------------------------------

    def keep(self, label: str = "") -> None:
        """Add the current selection, with ``label``, to the list; refused (the hint says why)
        when it spans a seek or a loop of the replayed file, which no label can say."""
        if self.region is None:
            return
        r = self.region
        try:
            self._history().file_span(r.t0, r.t1)
        except ValueError as exc:
            self.hint.setText(f"not kept: {exc}")
            return
        self.regions.append(Region(r.t0, r.t1, r.f0, r.f1, label))
        self._refill()

    def _refill(self) -> None:
        h = self._history()
        with QtCore.QSignalBlocker(self.list):
            self.list.clear()
            for r in self.regions:  # the times a label file gets (the file's clock)
                try:
                    t0, t1 = h.file_span(r.t0, r.t1)
                except ValueError:  # kept from an earlier source, across a jump of this one
                    t0, t1 = r.t0, r.t1
                self.list.addItem(f"{r.label or '—'}  {t0:.2f}–{t1:.2f} s  {r.f0:.0f}–{r.f1:.0f} Hz")

    def _picked(self, row: int) -> None:
        if 0 <= row < len(self.regions):
            self.set_region(self.regions[row])

    def _mapped(self, regions: list[Region], to: Callable) -> list[Region]:
        """``regions`` with their times mapped by ``to`` (t0, t1) -> (t0, t1); a ValueError names
        the label it fails on."""
        out = []
        for i, r in enumerate(regions, 1):
            try:
                t0, t1 = to(r.t0, r.t1)
            except ValueError as exc:
                raise ValueError(f"label {i} ({r.label!r}): {exc}") from None
            out.append(Region(t0, t1, r.f0, r.f1, r.label))
        return out

    def save_labels(self, path: str | Path, raven: bool = False) -> Path:
        """The list as an Audacity label track, or a Raven selection table (``raven``; a time-only
        label, loaded from an Audacity track, reaches up to the recording's Nyquist frequency).
        Times on the file's clock (:meth:`~.history.History.file_span`; a live input's: s since it
        started); ValueError, nothing written, if a label spans a seek or a loop."""
        h = self._history()
        regions = self._mapped(self.regions, h.file_span)
        if raven:
            return export.write_raven_table(path, regions, nyquist=h.sample_rate / 2)
        return export.write_audacity_labels(path, regions)

    def load_labels(self, path: str | Path) -> list[Region]:
        """Replace the list by the labels of an Audacity label track or a Raven selection table
        (told apart by the Raven header), their file times mapped to where the history analysed
        them (:meth:`~.history.History.stream_span`, the inverse of :meth:`save_labels`);
        ValueError, the list unchanged, if one was not analysed in one stretch."""
        with open(path, encoding="utf-8") as fh:
            raven = fh.readline().startswith("Selection\t")
        read = export.read_raven_table if raven else export.read_audacity_labels
        self.regions = self._mapped(read(path), self._history().stream_span)
        self._refill()
        return self.regions

    def _save_dialog(self) -> None:
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(self, "Save labels", "labels.txt", LABEL_FILTERS)
        if path:
            try:
                self.save_labels(path, raven=chosen.startswith("Raven"))
            except (OSError, ValueError) as exc:
                QtWidgets.QMessageBox.warning(self, "Cannot save labels", str(exc))

    def _load_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load labels", "", LABEL_FILTERS)
        if path:
            try:
                self.load_labels(path)
            except (OSError, ValueError) as exc:
                QtWidgets.QMessageBox.warning(self, "Cannot load labels", str(exc))
