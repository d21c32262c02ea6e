"""The edit panel: a gain (-inf .. +24 dB) on the current selection, with a smooth mask edge set in
ms and Hz; preview, apply, undo / redo (several edits stack), and export of the edited recording.

What is edited is the replayed file (the whole of it; every channel, through the θ of its mono
mix, the θ the picture shows) or, for a live input, the audio the history holds, through the θ the
picture drew (with a θ per band, the shortest of them: one θ track serves every edit). The edits
are :class:`rtdstft.edit.Edit` values in stream time (a file replayed from its start has stream
time = file time); every result comes from :func:`rtdstft.edit.spectral_edit`, so the preview,
the exported file and what the library writes for the same list of edits agree. The file's
samples and their θ are computed once per file and settings, in the engine thread; the history's
are copied in the GUI thread (which owns it) and edited in the engine thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from rtdstft.config import StreamConfig
from rtdstft.edit import MAX_GAIN_DB, Edit, edit_file, engine_theta, spectral_edit, write_audio
from rtdstft.selection import Region

#: The spin box's lowest value, shown as "-inf" (removal).
GAIN_FLOOR_DB = -120.0
#: Seconds of unedited context played before and after the edited region by the preview.
PREVIEW_CONTEXT_S = 0.5
SUBTYPES = ("same as source", "PCM_16", "PCM_24", "FLOAT")
#: The file dialog's choices for an edited history (which has no source file).
HISTORY_FILTERS = "WAV audio (*.wav);;FLAC audio (*.flac)"


def within(edits: list[Edit], start: float, duration: float) -> list[Edit]:
    """``edits`` (stream time) on a signal that starts at stream time ``start`` s and lasts
    ``duration`` s: shifted to its clock, cut to it, those outside it left out."""
    out = []
    for e in edits:
        r = e.region
        t0, t1 = max(r.t0 - start, 0.0), min(r.t1 - start, duration)
        if t1 > t0:
            out.append(Edit(Region(t0, t1, r.f0, r.f1, r.label), e.gain_db, e.edge_ms, e.edge_hz))
    return out


def _describe(e: Edit) -> str:
    r = e.region
    gain = "-inf" if e.gain_db == -math.inf else f"{e.gain_db:+.1f}"
    return f"{gain} dB  {r.t0:.2f}–{r.t1:.2f} s  {r.f0:.0f}–{r.f1:.0f} Hz"


class _Apply(QtGui.QUndoCommand):
    def __init__(self, panel: EditPanel, edit: Edit) -> None:
        super().__init__(f"gain {_describe(edit)}")
        self.panel, self.edit = panel, edit

    def redo(self) -> None:
        self.panel.edits.append(self.edit)
        self.panel._refill()

    def undo(self) -> None:
        self.panel.edits.pop()
        self.panel._refill()


class EditPanel(QtWidgets.QGroupBox):
    """Gains on selections of the replayed file or of the history, undoable, previewed and exported.

    Args:
        region: returns the current selection (s × Hz: on the replayed file's clock, else the
            stream's) or None; raises ValueError for one that spans a seek or a loop.
        source: returns the path of the file being replayed, or None (a live input: the history
            is edited).
        history: returns the window's :class:`~.history.History`.
        config: returns the engine's settings (at the file's rate).
        run: runs a function in the engine thread and returns its result.
        play: plays ``make()`` (mono float32) at a rate to an output device (``EngineWorker.play``).
        device: returns the output device chosen in the device panel.

    Signals:
        changed(list): the applied edits after every apply, undo or redo.
    """

    changed = QtCore.pyqtSignal(list)

    def __init__(
        self,
        region: Callable[[], Region | None],
        source: Callable[[], str | None],
        history: Callable[[], object],
        config: Callable[[], StreamConfig],
        run: Callable[[Callable], object],
        play: Callable,
        device: Callable[[], object],
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._region, self._source, self._history, self._config = region, source, history, config
        self._run, self._play, self._device = run, play, device
        self.edits: list[Edit] = []
        self._cache: tuple | None = None  # see _analysed
        self.stack = QtGui.QUndoStack(self)
        self.gain = QtWidgets.QDoubleSpinBox()
        self.gain.setRange(GAIN_FLOOR_DB, MAX_GAIN_DB)
        self.gain.setSpecialValueText("-inf")  # the floor removes
        self.gain.setSuffix(" dB")
        self.gain.setDecimals(1)
        self.gain.setValue(GAIN_FLOOR_DB)
        self.gain.setToolTip(f"-inf (remove) .. +{MAX_GAIN_DB:g} dB on the selection")
        self.edge_ms = QtWidgets.QDoubleSpinBox()
        self.edge_ms.setRange(0.0, 1000.0)
        self.edge_ms.setValue(10.0)
        self.edge_ms.setSuffix(" ms")
        self.edge_ms.setToolTip("the mask's smooth edge in time, inside the selection")
        self.edge_hz = QtWidgets.QDoubleSpinBox()
        self.edge_hz.setRange(0.0, 10000.0)
        self.edge_hz.setValue(50.0)
        self.edge_hz.setSuffix(" Hz")
        self.edge_hz.setToolTip("the mask's smooth edge in frequency, inside the selection")
        self.subtype = QtWidgets.QComboBox()
        self.subtype.addItems(SUBTYPES)
        form = QtWidgets.QFormLayout()
        form.addRow("gain", self.gain)
        form.addRow("edge", self.edge_ms)
        form.addRow("", self.edge_hz)
        form.addRow("export as", self.subtype)
        self.preview_button = QtWidgets.QPushButton("▶ Preview")
        self.preview_button.setToolTip("the edited selection with a little context, to the output device")
        self.apply_button = QtWidgets.QPushButton("Apply")
        self.undo_button = QtWidgets.QPushButton("Undo")
        self.redo_button = QtWidgets.QPushButton("Redo")
        self.export_button = QtWidgets.QPushButton("Export edited…")
        buttons = QtWidgets.QGridLayout()
        for i, b in enumerate(
            (self.preview_button, self.apply_button, self.undo_button, self.redo_button, self.export_button)
        ):
            buttons.addWidget(b, i // 2, i % 2)
        self.list = QtWidgets.QListWidget()
        self.list.setMaximumHeight(90)
        col = QtWidgets.QVBoxLayout(self)
        col.addLayout(form)
        col.addLayout(buttons)
        col.addWidget(self.list)
        col.addStretch(1)  # a tall tab keeps the rows together at the top
        self.preview_button.clicked.connect(self.preview)
        self.apply_button.clicked.connect(self.apply)
        self.undo_button.clicked.connect(self.stack.undo)
        self.redo_button.clicked.connect(self.stack.redo)
        self.export_button.clicked.connect(self._export_dialog)
        self.stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.stack.canRedoChanged.connect(self.redo_button.setEnabled)
        self.undo_button.setEnabled(False)
        self.redo_button.setEnabled(False)

    # -- the edit on the current selection ---------------------------------------------------------

    def pending(self) -> Edit | None:
        """The edit the controls describe on the current selection (None without one)."""
        r = self._region()
        if r is None:
            return None
        g = self.gain.value()
        gain = -math.inf if g <= GAIN_FLOOR_DB else g
        return Edit(r.normalized(), gain, self.edge_ms.value(), self.edge_hz.value())

    def _pending_or_say(self, title: str) -> Edit | None:
        """:meth:`pending`, or None after a warning saying why there is none (a selection that
        spans a seek or a loop of the replayed file: two stretches of it)."""
        try:
            return self.pending()
        except ValueError as exc:
            QtWidgets.QMessageBox.warning(self, title, str(exc))
            return None

    def apply(self) -> None:
        """Add the pending edit to the stack (undoable)."""
        e = self._pending_or_say("Cannot apply")
        if e is not None:
            self.stack.push(_Apply(self, e))

    def clear(self) -> None:
        """A new source: no edits, nothing to undo."""
        self.stack.clear()
        self.edits = []
        self._cache = None
        self._refill()

    def _refill(self) -> None:
        self.list.clear()
        for e in self.edits:
            self.list.addItem(_describe(e))
        self.export_button.setEnabled(bool(self.edits))
        self.changed.emit(list(self.edits))

    # -- results -----------------------------------------------------------------------------------

    def _analysed(self) -> tuple:
        """(path, the window's config, samples [T, C] float64, rate, θ [F] of the mono mix, the
        config at the file's rate) of the replayed file, computed once per file and settings (in
        the calling thread)."""
        import soundfile as sf

        path, cfg = self._source(), self._config()
        if self._cache is None or self._cache[:2] != (path, cfg):
            x, sr = sf.read(path, dtype="float64", always_2d=True)
            cfg = cfg if cfg.sample_rate == sr else cfg.replace(sample_rate=sr)
            self._cache = (path, self._config(), x, sr, engine_theta(x, cfg), cfg)
        return self._cache

    def _job(self, t0: float | None = None, t1: float | None = None) -> tuple[float, Callable]:
        """(rate, ``edit(edits)``): ``edit`` returns ([T, C] samples, stream time of the first) of
        what is edited, with ``edits``; call it in the engine thread. For a live input the
        history's audio (t0 .. t1 s when given) is copied here, in the GUI thread that owns it."""
        if self._source() is not None:

            def edit_file_samples(edits: list[Edit]) -> tuple[np.ndarray, float]:
                _, _, x, sr, theta, cfg = self._analysed()
                return spectral_edit(x, sr, edits, config=cfg, theta=theta).audio, 0.0

            return self._config().sample_rate, edit_file_samples
        h = self._history()
        x, theta, start = h.signal(t0, t1)
        sr = h.sample_rate
        cfg = StreamConfig(**h.settings) if h.settings else self._config()

        def edit_history(edits: list[Edit]) -> tuple[np.ndarray, float]:
            held = within(edits, start, len(x) / sr)
            y = spectral_edit(x, sr, held, config=cfg, theta=theta).audio if held else x
            return y[:, None], start

        return sr, edit_history

    def edited(self, edits: list[Edit] | None = None) -> tuple[np.ndarray, float, float]:
        """The file, or the audio the history holds, with ``edits`` (default the applied ones):
        ([T, C] samples, rate, stream time of the first sample)."""
        sr, edit = self._job()
        y, start = edit(self.edits if edits is None else edits)
        return y, sr, start

    def _preview_job(self) -> tuple[float, Callable[[], np.ndarray]]:
        """(rate, ``make()``): the samples :meth:`preview_samples` describes; the history's part
        is copied now, ``make`` edits it (in the engine thread)."""
        e = self.pending()
        edits = [*self.edits, e]
        t0, t1 = e.region.t0 - PREVIEW_CONTEXT_S, e.region.t1 + PREVIEW_CONTEXT_S
        cfg = self._config()
        # Beyond the played span, room for the frames whose windows reach into it.
        margin = 2 * cfg.n_fft / cfg.sample_rate + max(x.edge_ms or 0.0 for x in edits) / 1000
        sr, edit = self._job(t0 - margin, t1 + margin)

        def make() -> np.ndarray:
            y, start = edit(edits)
            a = max(0, int((t0 - start) * sr))
            b = min(y.shape[0], int(math.ceil((t1 - start) * sr)))
            return y[a:b].mean(axis=1).astype(np.float32)

        return sr, make

    def preview_samples(self) -> np.ndarray:
        """The applied edits and the pending one, from the selection's start minus the context
        to its end plus the context: mono float32 (channels averaged)."""
        if self.pending() is None:
            return np.zeros(0, np.float32)
        return self._preview_job()[1]()

    def preview(self) -> None:
        """Play :meth:`preview_samples` to the output device (computed in the engine thread)."""
        if self._pending_or_say("Cannot preview") is None:
            return
        try:
            sr, make = self._preview_job()
        except ValueError as exc:  # the history holds nothing there any more
            QtWidgets.QMessageBox.warning(self, "Cannot preview", str(exc))
            return
        self._play(make, sr, self._device())

    def export(self, path: str | Path, subtype: str | None = None) -> Path:
        """Write the applied edits to ``path``. A replayed file: the whole file, same rate and
        channels, the source's subtype where the format takes it, or ``subtype``; saving over the
        source replaces it only once the new file is complete. A live input: the audio the
        history holds (from its oldest whole frame to its newest), mono at the stream's rate, 32-bit
        float where the format takes it, or ``subtype``. Whole or not at all."""
        edits = list(self.edits)
        if self._source() is None:
            sr, edit = self._job()

            def write() -> None:
                write_audio(path, edit(edits)[0], sr, subtype)

        else:

            def write() -> None:
                src, _cfg, _x, _sr, theta, cfg = self._analysed()
                edit_file(src, path, edits, config=cfg, subtype=subtype, overwrite=True, theta=theta)

        self._run(lambda _worker: write())  # in the engine thread; what it raises is raised here
        return Path(path)

    def _export_dialog(self) -> None:
        src = self._source()
        choice = self.subtype.currentText()
        subtype = None if choice == SUBTYPES[0] else choice
        if src is None:
            start, filters = str(Path.cwd() / "history-edited.wav"), HISTORY_FILTERS
        else:
            start, filters = str(Path(src).with_name(Path(src).stem + "-edited" + Path(src).suffix)), ""
        # The dialog asks before replacing an existing file (the source included): that is on purpose.
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export edited recording", start, filters)
        if path:
            try:
                self.export(path, subtype)
            except (OSError, RuntimeError, ValueError) as exc:  # soundfile's errors are RuntimeErrors
                QtWidgets.QMessageBox.warning(self, "Cannot export", str(exc))
