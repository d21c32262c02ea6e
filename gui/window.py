"""The main window: transport bar, spectrogram + θ track + level meter, side panels, status bar.

It wires the parts and owns no DSP: controls post settings to the :class:`EngineWorker`; a 60 Hz
timer takes the worker's finished frames and hands them to the views. Between the engine's blocks
(K frames at a time) the picture scrolls smoothly by the wall clock under a fixed "seconds ago"
axis, lagging one block behind the newest column so the right edge never shows a gap.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from rtdstft import audio
from rtdstft.config import StreamConfig

from . import priority
from .controls import SPEEDS, AnalysisPanel, DevicePanel, DisplayPanel
from .edit import EditPanel
from .history import History
from .meter import LevelMeter
from .selection import SelectionPanel
from .settings import open_settings, read
from .spectrogram import SpectrogramView
from .worker import EngineWorker, Frames, Geometry, Jump, Samples, Stats

REDRAW_HZ = 60
#: Engine threads that did not end when their window closed (never destroyed while running).
_STUCK_WORKERS: list = []
AUDIO_FILTER = "Audio files (*.wav *.flac *.ogg *.aiff *.aif *.mp3);;All files (*)"


def _fmt_time(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60)
    return f"{int(m)}:{s:04.1f}"


class MainWindow(QtWidgets.QMainWindow):
    """The application window.

    Args:
        settings_path: INI file of the settings (default: see :mod:`.settings`).
        recordings_dir: where Ctrl+R writes ``rec-*.wav`` (default: ``rtdstft`` in the user's
            music folder, e.g. ``~/Music/rtdstft``; made when the first recording starts).
        overrides: engine settings from the command line (``n_fft``, ``hop_length``, ``adapt``),
            applied over the saved ones. Giving N or H turns "suit the sample rate" off; what is
            not given of N, H and θ then takes the engine's defaults for them (StreamConfig's).
        engine_process: run the transform in a child process of its own (no interpreter lock
            shared with the GUI); see :class:`.worker.EngineWorker`.
    """

    def __init__(
        self,
        settings_path: str | None = None,
        recordings_dir: str | None = None,
        overrides: dict | None = None,
        engine_process: bool = False,
    ) -> None:
        super().__init__()
        self.setWindowTitle("rtdstft — adaptive spectrogram")
        self.settings = open_settings(settings_path)
        music = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.StandardLocation.MusicLocation)
        self.recordings_dir = Path(recordings_dir or Path(music) / "rtdstft")
        self.stats = Stats()
        self.error_dialog: QtWidgets.QMessageBox | None = None
        self.redraws = 0
        self._arrival = (0.0, 0.0)  # (stream time of the newest column, wall clock when it came)
        self._right = 0.0
        self._geometry: Geometry | None = None
        self._shut_down = False
        self._gui_nice: int | None = None  # the GUI thread's nice value before "engine first"

        self.analysis = AnalysisPanel()
        self.display = DisplayPanel()
        self.devices = DevicePanel()
        self.view = SpectrogramView()
        self.history = History(60.0 * self.display.history.value())
        self.view.attach(self.history)
        self.meter = LevelMeter()
        self._build_transport()
        self._build_layout()
        self._build_status()
        self._build_shortcuts()
        self.setAcceptDrops(True)

        self._refresh_devices()
        self._restore()
        if overrides:
            v = {**self.analysis.values(), **overrides}
            if {"n_fft", "hop_length"} & set(overrides):
                geometry = ("n_fft", "hop_length", "win_length", "win_min", "win_max")
                cfg = StreamConfig(**{k: overrides.get(k) for k in geometry})
                v = {**v, **{k: getattr(cfg, k) for k in geometry}, "auto": False}
            self.analysis.set_values(v)
        self._apply_display(self.display.values())
        self.worker = EngineWorker(
            self.analysis.config(), auto=self.analysis.auto.isChecked(), engine_process=engine_process
        )
        self.worker.stats.connect(self._on_stats)
        self.worker.message.connect(self._on_message)
        self.worker.file_error.connect(self._on_file_error)
        self.worker.opened.connect(self._on_opened)
        self.selection = SelectionPanel(
            lambda: self.history,
            lambda fn: self.worker.call(fn, timeout=60.0),  # a long selection takes a while
            self.worker.submit,
            self.worker.play,
            lambda: self.devices.output.currentData(),
        )
        self.selection_dock.setWidget(self.selection)
        self.selection.changed.connect(self.view.show_region)
        self.source_path: str | None = None  # the replayed file (edits apply to it, else the history)
        self.edit = EditPanel(
            self._selected_in_file,
            lambda: self.source_path,
            lambda: self.history,
            lambda: self.worker.config,
            lambda fn: self.worker.call(fn, timeout=600.0),
            self.worker.play,
            lambda: self.devices.output.currentData(),
        )
        self.edit_dock = QtWidgets.QDockWidget("Edit")
        self.edit_dock.setObjectName("edit")
        self.edit_dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.edit_dock.setWidget(self.edit)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.edit_dock)
        # One tab each: stacked, the three panels left the settings a single row at the default size.
        self.tabifyDockWidget(self.settings_dock, self.selection_dock)
        self.tabifyDockWidget(self.selection_dock, self.edit_dock)
        self.settings_dock.raise_()
        self.view.selecting.connect(self._on_selecting)
        self.analysis.changed.connect(self._on_analysis)
        self.display.changed.connect(self._apply_display)
        self.devices.listen.connect(self.open_mic)
        self.devices.monitor.connect(self.worker.set_monitor)
        self.worker.set_speed(self.speed.currentData())
        self.worker.set_loop(self.loop.isChecked())
        self.worker.start()
        # Only now: threads inherit their creator's nice value, and the engine's must stay at 0.
        self._gui_tid = priority.this_thread()
        self._gui_nice = priority.nice(self._gui_tid)
        self._engine_first(self.display.engine_first.isChecked())
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.redraw)
        self.timer.start(1000 // REDRAW_HZ)

    # -- building ---------------------------------------------------------------------------------

    def _build_transport(self) -> None:
        bar = QtWidgets.QToolBar("Transport")
        bar.setObjectName("transport")
        bar.setMovable(False)
        bar.setIconSize(QtCore.QSize(18, 18))
        self.addToolBar(bar)
        style = self.style()
        icon = QtWidgets.QStyle.StandardPixmap
        self.open_action = bar.addAction(
            style.standardIcon(icon.SP_DialogOpenButton), "Open…", self.open_dialog
        )
        self.open_action.setToolTip("Open an audio file (Ctrl+O)")
        self.play_action = bar.addAction(style.standardIcon(icon.SP_MediaPause), "Pause", self.toggle_play)
        self.play_action.setToolTip("Play / pause (Space)")
        self.seek = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.seek.setRange(0, 1000)
        self.seek.setMinimumWidth(220)
        self.seek.setToolTip("Position in the file")
        self.seek.sliderReleased.connect(self._on_seek)  # a drag seeks once, where it ends
        # A click on the groove or a key moves the slider without a drag: that seeks too.
        self.seek.valueChanged.connect(lambda: None if self.seek.isSliderDown() else self._on_seek())
        bar.addWidget(self.seek)
        self.position = QtWidgets.QLabel("0:00.0 / 0:00.0")
        self.position.setMinimumWidth(110)
        self.position.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        bar.addWidget(self.position)
        self.speed = QtWidgets.QComboBox()
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.setToolTip("Replay speed")
        self.speed.currentIndexChanged.connect(lambda: self.worker.set_speed(self.speed.currentData()))
        bar.addWidget(self.speed)
        self.loop = QtWidgets.QCheckBox("loop")
        self.loop.toggled.connect(lambda on: self.worker.set_loop(on))
        bar.addWidget(self.loop)
        bar.addSeparator()
        self.record_action = bar.addAction("● Rec", self.toggle_record)
        self.record_action.setCheckable(True)
        self.record_action.setToolTip(f"Record the raw input to {self.recordings_dir}/rec-*.wav (Ctrl+R)")
        self.freeze_action = bar.addAction("Freeze", lambda: self.display.freeze.toggle())
        self.freeze_action.setCheckable(True)
        self.export_action = bar.addAction(
            style.standardIcon(icon.SP_DialogSaveButton), "Export", self.export_dialog
        )
        self.export_action.setToolTip("Export the view to PNG (Ctrl+E)")
        self.live_action = bar.addAction("⏭ Live", self.view_live)
        self.live_action.setToolTip("Back to the present after looking back (End)")
        self.live_action.setEnabled(False)

    def _build_layout(self) -> None:
        self.source_label = QtWidgets.QLabel("no source")
        self.source_label.setStyleSheet("font-weight: 600; color: #e0e0e6;")
        self.banner = QtWidgets.QLabel()
        self.banner.setStyleSheet("color: #ff8a65;")
        self.banner.setVisible(False)
        self.readout = QtWidgets.QLabel("")
        self.readout.setStyleSheet("font-family: monospace; color: #c8c8d0;")
        self.readout.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        header = QtWidgets.QHBoxLayout()
        header.addWidget(self.source_label)
        header.addWidget(self.banner, 1)
        header.addWidget(self.readout)
        body = QtWidgets.QHBoxLayout()
        body.setSpacing(2)
        body.addWidget(self.view, 1)
        body.addWidget(self.meter)
        central = QtWidgets.QWidget()
        outer = QtWidgets.QVBoxLayout(central)
        outer.setContentsMargins(6, 4, 6, 2)
        outer.addLayout(header)
        outer.addLayout(body, 1)
        self.setCentralWidget(central)
        self.view.hovered.connect(self._on_hover)
        self.view.live_changed.connect(self.live_action.setDisabled)

        panels = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(panels)
        for panel in (self.analysis, self.display, self.devices):
            col.addWidget(panel)
        col.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(panels)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_dock = QtWidgets.QDockWidget("Settings")
        self.settings_dock.setObjectName("settings")
        self.settings_dock.setWidget(scroll)
        self.settings_dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        panels.setMinimumWidth(250)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.settings_dock)
        self.selection_dock = QtWidgets.QDockWidget("Selection")
        self.selection_dock.setObjectName("selection")
        self.selection_dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.selection_dock)

    def _build_status(self) -> None:
        bar = self.statusBar()
        self.status = {}
        for key, tip in (
            ("rtf", "engine time / audio time"),
            ("dropped", "blocks lost"),
            ("latency", "input to resynthesis (analysis: frame centre to picture)"),
            ("device", "source"),
            ("rate", "sample rate"),
        ):
            label = QtWidgets.QLabel()
            label.setToolTip(tip)
            label.setContentsMargins(8, 0, 8, 0)
            bar.addPermanentWidget(label)
            self.status[key] = label

    def _build_shortcuts(self) -> None:
        for keys, slot in (
            ("Space", self.toggle_play),
            ("Ctrl+O", self.open_dialog),
            ("Ctrl+E", self.export_dialog),
            ("Ctrl+R", self.toggle_record),
            ("Ctrl+Shift+E", self.export_view_dialog),
        ):
            sc = QtGui.QShortcut(QtGui.QKeySequence(keys), self)
            sc.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(slot)

    # -- sources ----------------------------------------------------------------------------------

    def open_file(self, path: str | Path) -> None:
        """Replay ``path``; an unreadable file gives a dialog and leaves the current source."""
        self.worker.open_file(str(path))

    def open_mic(self, device=None, sample_rate: int = 48000) -> None:
        self.worker.open_mic(device, sample_rate)

    def open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open audio file", str(self.recordings_dir), AUDIO_FILTER
        )
        if path:
            self.open_file(path)

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 (Qt's name)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 (Qt's name)
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            self.open_file(files[0])
            event.acceptProposedAction()

    def _refresh_devices(self) -> None:
        try:
            devices, error = audio.list_devices(), ""
        except audio.AudioDeviceError as exc:
            devices, error = [], str(exc)
        self.devices.set_devices(devices, error)
        self.no_input = ""
        if not any(d["max_input_channels"] > 0 for d in devices):
            self.no_input = f"No input device found{': ' + error if error else ''}."
            self._say(self.no_input)

    # -- transport --------------------------------------------------------------------------------

    def toggle_play(self) -> None:
        self.worker.set_playing(not self.stats.playing)
        self.stats.playing = not self.stats.playing
        self._show_playing()

    def _show_playing(self) -> None:
        icon = QtWidgets.QStyle.StandardPixmap
        playing = self.stats.playing
        self.play_action.setIcon(
            self.style().standardIcon(icon.SP_MediaPause if playing else icon.SP_MediaPlay)
        )
        self.play_action.setText("Pause" if playing else "Play")

    def _on_seek(self) -> None:
        if self.stats.kind == "file" and self.stats.duration > 0:
            self.worker.seek(self.seek.value() / 1000 * self.stats.duration)

    def toggle_record(self) -> None:
        recording = not bool(self.stats.recording)
        self.worker.set_recording(str(self.recordings_dir) if recording else None, self._on_recording)
        self.stats.recording = "…" if recording else ""
        self.record_action.setChecked(recording)

    def _on_recording(self, path, error: Exception | None) -> None:
        """The worker has started (``path``) or ended (None) the recording, or could not start it
        (``error``): the button shows what it did, not what was asked."""
        self.stats.recording = str(path) if path is not None else ""
        self.record_action.setChecked(path is not None)
        if error is not None:
            self._say(f"record: {error}")

    # -- export -----------------------------------------------------------------------------------

    def export_png(self, path: str | Path) -> bool:
        """Save the spectrogram and θ track as shown to a PNG; True on success."""
        return self.view.grab().save(str(path), "PNG")

    def export_dialog(self) -> None:
        default = str(Path.cwd() / f"rtdstft-{time.strftime('%Y%m%d-%H%M%S')}.png")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export view", default, "PNG image (*.png)")
        if path:
            ok = self.export_png(path)
            self.statusBar().showMessage(f"saved {path}" if ok else f"could not write {path}", 5000)

    def export_view(self, path: str | Path) -> Path:
        """The data of the visible view (its time range and band, from the history): complex frames,
        θ, times, frequencies and settings as NPZ (``.npz``), or levels in dB as CSV (``.csv``)."""
        return self.selection.export_view(path, self.view.region_of(self.view.visible()))

    def export_view_dialog(self) -> None:
        default = str(Path.cwd() / f"rtdstft-{time.strftime('%Y%m%d-%H%M%S')}.npz")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export the view's data", default, "NumPy NPZ (*.npz);;CSV (*.csv)"
        )
        if path:
            try:
                self.statusBar().showMessage(f"saved {self.export_view(path)}", 5000)
            except (OSError, ValueError) as exc:
                self.statusBar().showMessage(f"could not write {path}: {exc}", 8000)

    # -- from the worker --------------------------------------------------------------------------

    def redraw(self) -> None:
        """Timer: take finished frames and levels from the worker, update the views, scroll."""
        items, (peak, rms) = self.worker.take()
        frozen = self.display.freeze.isChecked()
        for item in items:
            if isinstance(item, Samples):
                self.history.add_audio(item.audio)
            elif isinstance(item, Frames):
                self.history.add_frames(item.db, item.theta, item.time)
                if not frozen:
                    self.view.append(item.db, item.theta, item.time)
                    self._arrival = (float(item.time[-1]), time.monotonic())
            elif isinstance(item, Geometry):
                self._new_geometry(item)
            elif isinstance(item, Jump):  # a loop (or skipped samples): the file's clock jumps
                self.history.jump(item.time, item.file_time)
                self.view.set_marks([t for t, _ in self.history.marks[1:]])
        self.meter.set_level(peak, rms)
        if not self.view.live:
            self.view.refresh_history()
        elif not frozen and self._geometry is not None:
            self._scroll()

    def _scroll(self) -> None:
        newest, arrived = self._arrival
        g = self._geometry
        block = g.config.block_frames * g.hop / g.sample_rate
        rate = self.speed.currentData() if self.stats.kind == "file" else 1.0
        moving = self.stats.playing and newest > 0
        est = newest - block + ((time.monotonic() - arrived) * rate if moving else block)
        right = min(max(est, self._right), newest)
        if right != self._right:
            self._right = right
            self.view.scroll_to(right)
            self.redraws += 1

    def _on_selecting(self, rect: QtCore.QRectF, done: bool) -> None:
        """Shift + drag on the spectrogram: the box follows the mouse; on release it is measured.
        Drawing a box holds the view still (it leaves the live picture)."""
        if self.view.live:
            self.view._looked()
        region = self.view.region_of(rect)
        if done:
            self.selection.set_region(region)
            self.selection_dock.raise_()  # its measurements
        else:
            self.view.show_region(region)

    def _selected_in_file(self):
        """The selection for an edit: on the file's clock when a file is replayed (stream time
        goes on across seeks and loops; :meth:`.history.History.file_span`, a ValueError when it
        spans one), else as drawn."""
        r = self.selection.region
        if r is None or self.source_path is None:
            return r
        t0, t1 = self.history.file_span(r.t0, r.t1)
        return dataclasses.replace(r, t0=t0, t1=t1)

    def view_live(self) -> None:
        """Back to the live picture after looking back (the End key)."""
        self.view.go_live()
        self.view.scroll_to(self._right)

    def _new_geometry(self, g: Geometry) -> None:
        self._geometry = g
        if g.continues:  # a seek: the history and the picture go on, with a mark
            self.history.mark(g.time0, g.file_time)
            self.view.set_marks([t for t, _ in self.history.marks[1:]])
            self.statusBar().showMessage(f"seek to {_fmt_time(g.file_time)}: the history goes on", 5000)
            return
        if self.history.frames:  # it cannot span two engines' streams: say that it starts again
            a, b = self.history.time_span()
            self.statusBar().showMessage(
                f"history cleared ({a:.1f}–{b:.1f} s): the analysis started again "
                "(another source, or a new N, H, bands or rate)",
                10000,
            )
        seconds = 60.0 * self.display.history.value()
        if seconds != self.history.seconds:  # a new length starts with the next stream
            self.history = History(seconds)
            self.view.attach(self.history)
        self.history.reset(g.sample_rate, g.n_fft, g.hop, g.time0, g.config.as_dict(), g.file_time)
        self.view.reset(g.sample_rate, g.n_fft, g.hop, g.time0, g.config.band_edges)
        self.view.set_marks([])
        self._arrival, self._right = (g.time0, time.monotonic()), g.time0
        self.analysis.set_sample_rate(g.sample_rate)
        if self.analysis.auto.isChecked():  # show what the rate chose
            self.analysis.set_values({**self.analysis.values(), **g.config.as_dict(), "auto": True})
        self.view.theta.set_bounds(*g.config.theta_range)

    def _on_stats(self, s: Stats) -> None:
        recording = self.stats.recording
        self.stats = s
        if recording == "…" and not s.recording:  # the worker has not started it yet
            s.recording = recording
        self._show_playing()
        self.record_action.setChecked(bool(s.recording))
        st = self.status
        st["rtf"].setText(f"RTF {s.rtf:.3f}")
        st["dropped"].setText(f"dropped {s.dropped_blocks}")
        st["latency"].setText(f"latency {s.latency_ms:.0f} ms (analysis {s.analysis_latency_ms:.0f})")
        st["device"].setText(s.device or "—")
        st["rate"].setText(f"{s.sample_rate:g} Hz" if s.sample_rate else "")
        if s.nonfinite:
            st["dropped"].setText(f"dropped {s.dropped_blocks} · NaN/inf {s.nonfinite}")
        is_file = s.kind == "file"
        for w in (self.seek, self.speed, self.loop):
            w.setEnabled(is_file)
        if is_file and not self.seek.isSliderDown() and s.duration > 0:
            with QtCore.QSignalBlocker(self.seek):
                self.seek.setValue(int(1000 * s.position / s.duration))
            self.position.setText(f"{_fmt_time(s.position)} / {_fmt_time(s.duration)}")
        elif not is_file:
            self.position.setText("live" if s.kind == "mic" else "—")

    def _say(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setVisible(bool(text))
        self.statusBar().showMessage(text, 15000)

    def _on_message(self, level: str, text: str) -> None:
        if level == "error":
            self._say(text)
        else:
            self.statusBar().showMessage(text, 8000)

    def _on_file_error(self, path: str, reason: str) -> None:
        box = QtWidgets.QMessageBox(
            QtWidgets.QMessageBox.Icon.Warning,
            "Cannot open file",
            f"Cannot open {path}",
            QtWidgets.QMessageBox.StandardButton.Ok,
            self,
        )
        box.setInformativeText(reason)
        box.open()  # window-modal, does not block the event loop
        self.error_dialog = box

    def _on_opened(self, kind: str, name: str) -> None:
        self._say(self.no_input if kind == "file" else "")
        self.source_path = name if kind == "file" else None
        self.edit.clear()
        if kind == "file":
            self.settings.setValue("source/last_file", name)
            self.source_label.setText(Path(name).name)
        else:
            self.source_label.setText(f"microphone: {name}")

    def _on_hover(self, info: dict) -> None:
        if not info:
            self.readout.setText("")
            return
        parts = [f"t {info['time']:7.3f} s"]
        if "freq" in info:
            parts += [f"f {info['freq']:7.1f} Hz", f"{info['db']:6.1f} dBFS"]
        band = f" (band {info['theta_band'] + 1})" if "theta_band" in info else ""
        parts.append(f"θ {info['theta_ms']:5.1f} ms{band}")
        if "peak_hz" in info:
            parts.append(f"peak {info['peak_hz']:8.2f} Hz {info['peak_db']:6.1f} dB")
            parts.append(f"{info['note']} {info['cents']:+.0f}¢")
        self.readout.setText("   ".join(parts))

    # -- settings ---------------------------------------------------------------------------------

    def _on_analysis(self, changes: dict) -> None:
        self.worker.configure(**changes)
        if self._geometry is not None and not {"n_fft", "hop_length", "bands"} & set(changes):
            try:
                self.view.theta.set_bounds(*self.analysis.config().theta_range)
            except ValueError:
                pass  # the worker refuses it and says why

    def _apply_display(self, v: dict) -> None:
        if "floor" in v or "ceiling" in v:
            self.view.set_levels(v.get("floor", self.view.levels[0]), v.get("ceiling", self.view.levels[1]))
        if "colormap" in v:
            self.view.set_colormap(v["colormap"])
        if "span" in v:
            self.view.set_span(v["span"])
            self._right = self._arrival[0]
        if "log" in v or "mel" in v or "notes" in v:
            d = self.display
            self.view.set_scale(
                "log" if d.log.isChecked() else "mel" if d.mel.isChecked() else "linear", d.notes.isChecked()
            )

        if "harmonics" in v or "a4" in v:
            self.view.set_harmonics(self.display.harmonics.isChecked(), self.display.a4.value())
        if "freeze" in v:
            self.freeze_action.setChecked(v["freeze"])
        if "engine_first" in v and self._gui_nice is not None:
            self._engine_first(v["engine_first"])

    def _engine_first(self, on: bool) -> None:
        """The GUI thread at nice :data:`.priority.ENGINE_FIRST_NICE` (on) or back at its own."""
        if self._gui_nice is None:
            return
        target = max(self._gui_nice, priority.ENGINE_FIRST_NICE) if on else self._gui_nice
        why = priority.set_nice(self._gui_tid, target)
        if why:
            self.statusBar().showMessage(why, 8000)

    def _restore(self) -> None:
        s = self.settings
        for panel in (self.analysis, self.display, self.devices):
            panel.restore(s)
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1360, 820)
        with QtCore.QSignalBlocker(self.loop), QtCore.QSignalBlocker(self.speed):
            self.loop.setChecked(read(s, "transport/loop", False))
            i = self.speed.findData(read(s, "transport/speed", 1.0))
            self.speed.setCurrentIndex(i if i >= 0 else SPEEDS.index(1.0))

    def save_settings(self) -> None:
        s = self.settings
        for panel in (self.analysis, self.display, self.devices):
            panel.save(s)
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("transport/loop", self.loop.isChecked())
        s.setValue("transport/speed", self.speed.currentData())
        s.sync()

    def last_file(self) -> str | None:
        path = read(self.settings, "source/last_file", "")
        return path if path and Path(path).is_file() else None

    def shut_down(self) -> None:
        """Stop redrawing, save the settings and end the engine thread (which closes the source,
        the monitor and the recorder). Safe to call more than once."""
        if self._shut_down:
            return
        self._shut_down = True
        self.timer.stop()
        self.save_settings()
        self._engine_first(False)  # the thread lives on (a test's, a second window's)
        if not self.worker.stop():
            # Destroying a running QThread aborts the process: keep it referenced and say so.
            _STUCK_WORKERS.append(self.worker)
            print("rtdstft-gui: the engine thread did not stop within 5 s", file=sys.stderr)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.shut_down()
        super().closeEvent(event)
