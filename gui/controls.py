"""The side panels: analysis settings (reach the engine), display settings (reach the views), and
input/output devices. Each panel emits what changed and keeps its own QSettings group.

Window lengths are set in samples (what the engine takes) and shown in ms beside the field.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from rtdstft.bands import DEFAULT_GUI_BANDS, MAX_BANDS
from rtdstft.config import RATE_FIELDS, StreamConfig
from rtdstft.entropy import ENTROPY_KINDS

from .settings import read
from .spectrogram import COLORMAPS
from .worker import suited_to_rate

N_FFTS = (256, 512, 1024, 2048, 4096, 8192)
HOPS = (32, 64, 128, 256, 512, 1024)
ENTROPY_LABELS = {"shannon": "Shannon", "renyi": "Rényi"}
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000, 96000)


def _spin(
    lo: float, hi: float, value: float, step: float, decimals: int | None = None, suffix: str = ""
) -> QtWidgets.QAbstractSpinBox:
    if decimals is None:
        box = QtWidgets.QSpinBox()
    else:
        box = QtWidgets.QDoubleSpinBox()
        box.setDecimals(decimals)
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)  # act on Enter / arrows, not on every typed digit
    return box


def _combo(items) -> QtWidgets.QComboBox:
    box = QtWidgets.QComboBox()
    for label, data in items:
        box.addItem(label, data)
    return box


def _select(box: QtWidgets.QComboBox, data) -> None:
    i = box.findData(data)
    if i >= 0:
        box.setCurrentIndex(i)


class AnalysisPanel(QtWidgets.QGroupBox):
    """n_fft, hop, θ bounds, adaptation on/off (off: a fixed θ), learning rate, smoothness, entropy
    kind (Shannon, Rényi α) and neighbourhood radius.

    "suit the sample rate" (on by default, key ``auto``): N, H and the θ fields follow
    :meth:`StreamConfig.for_rate <rtdstft.config.StreamConfig.for_rate>` of each new source (θ
    about 5 .. 85 ms); setting any of them by hand turns it off, so the user's choice stays.
    Defaults and ranges come from :class:`~rtdstft.config.StreamConfig`.

    Signals:
        changed(dict): engine settings (StreamingDSTFT names) whose value the user changed.
    """

    changed = QtCore.pyqtSignal(dict)
    GROUP = "analysis"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Analysis", parent)
        d = StreamConfig()
        self.sample_rate = d.sample_rate
        self.n_fft = _combo((str(n), n) for n in N_FFTS)
        self.hop = _combo((str(h), h) for h in HOPS)
        self.adapt = QtWidgets.QCheckBox("adapt θ online")
        self.auto = QtWidgets.QCheckBox("suit N, H, θ to the sample rate")
        self.auto.setToolTip(
            "θ from about 5 ms to 85 ms at any sample rate; off once you set N, H or θ yourself"
        )
        self.win_length = _spin(16, 8192, 1024, 32)
        self.win_min = _spin(16, 8192, 512, 32)
        self.win_max = _spin(16, 8192, 2048, 32)
        self.steps = _spin(0, 8, d.steps, 1, suffix=" per block")
        self.lr = _spin(0.001, 2.0, d.lr, 0.01, 3)
        self.smoothness = _spin(0.0, 10.0, d.smoothness, 0.01, 3)
        self.entropy = _combo((ENTROPY_LABELS.get(k, k), k) for k in ENTROPY_KINDS)
        self.alpha = _spin(0.1, 20.0, d.alpha, 0.5, 2)
        self.radius = _spin(0, 32, d.radius, 1, suffix=" frames")
        self.bands = _spin(1, MAX_BANDS, DEFAULT_GUI_BANDS, 1)
        self.bands.setToolTip(
            "1: one θ for all frequencies; B > 1: a θ per octave-like band (250 Hz .. 8 kHz), so that "
            "low sounds get long windows while high ones get short ones at the same moment"
        )
        self._ms = {}
        form = QtWidgets.QFormLayout(self)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow(self.auto)
        form.addRow("FFT size N", self.n_fft)
        form.addRow("hop H", self.hop)
        form.addRow(self.adapt)
        form.addRow("bands (θ per band)", self.bands)
        for label, box in (("fixed θ", self.win_length), ("θ min", self.win_min), ("θ max", self.win_max)):
            row = QtWidgets.QHBoxLayout()
            row.addWidget(box, 1)
            self._ms[box] = QtWidgets.QLabel()
            self._ms[box].setMinimumWidth(58)
            row.addWidget(self._ms[box])
            form.addRow(label, row)
            box.valueChanged.connect(self._update_ms)
        form.addRow("gradient steps", self.steps)
        form.addRow("learning rate", self.lr)
        form.addRow("smoothness λ", self.smoothness)
        form.addRow("entropy", self.entropy)
        form.addRow("Rényi α", self.alpha)
        form.addRow("radius r", self.radius)
        self.set_values(self.initial_values())
        self._connect()

    def initial_values(self) -> dict:
        """Values on first start: the engine's defaults, suited to the sample rate."""
        suited = StreamConfig.for_rate(self.sample_rate, bands=DEFAULT_GUI_BANDS)
        return {**self._shown(suited), "auto": True}

    @staticmethod
    def _shown(cfg: StreamConfig) -> dict:
        return {k: v for k, v in cfg.as_dict().items() if k in _FIELDS}

    def config(self) -> StreamConfig:
        """The settings shown, as a StreamConfig at the current sample rate (ValueError if the
        fields do not make a valid one)."""
        return StreamConfig(sample_rate=self.sample_rate, **{k: self.values()[k] for k in _FIELDS})

    def _connect(self) -> None:
        self.n_fft.currentIndexChanged.connect(lambda: self._geometry("n_fft"))
        self.hop.currentIndexChanged.connect(lambda: self._geometry("hop_length"))
        self.adapt.toggled.connect(lambda on: self._emit("adapt"))
        self.bands.valueChanged.connect(lambda: self._emit("bands"))
        self.auto.toggled.connect(self._auto_toggled)
        for key in ("win_length", "win_min", "win_max", "steps", "lr", "smoothness", "alpha", "radius"):
            getattr(self, key).valueChanged.connect(lambda _v, k=key: self._emit(k))
        self.entropy.currentIndexChanged.connect(lambda: self._emit("entropy"))

    def values(self) -> dict:
        """All settings, StreamingDSTFT names and units (samples), and ``auto``."""
        return {
            "auto": self.auto.isChecked(),
            "n_fft": self.n_fft.currentData(),
            "hop_length": self.hop.currentData(),
            "adapt": self.adapt.isChecked(),
            "win_length": float(self.win_length.value()),
            "win_min": float(self.win_min.value()),
            "win_max": float(self.win_max.value()),
            "steps": self.steps.value(),
            "lr": self.lr.value(),
            "smoothness": self.smoothness.value(),
            "entropy": self.entropy.currentData(),
            "alpha": self.alpha.value(),
            "radius": self.radius.value(),
            "bands": self.bands.value(),
        }

    def set_values(self, v: dict) -> None:
        """Show ``v`` without emitting ``changed``."""
        blockers = [QtCore.QSignalBlocker(w) for w in self.findChildren(QtWidgets.QWidget)]
        _select(self.n_fft, int(v["n_fft"]))
        _select(self.hop, int(v["hop_length"]))
        self._limit()  # before the θ fields, so that their new values are not clamped to old bounds
        self.auto.setChecked(bool(v.get("auto", False)))
        self.adapt.setChecked(bool(v["adapt"]))
        for key in ("win_length", "win_min", "win_max", "steps", "radius"):
            getattr(self, key).setValue(int(round(float(v[key]))))
        self.bands.setValue(int(v.get("bands", DEFAULT_GUI_BANDS)))
        for key in ("lr", "smoothness", "alpha"):
            getattr(self, key).setValue(float(v[key]))
        _select(self.entropy, v["entropy"])
        del blockers
        self._limit()
        self._update_ms()
        self._enable()

    def set_sample_rate(self, sample_rate: float) -> None:
        self.sample_rate = float(sample_rate)
        self._update_ms()

    def _limit(self) -> None:
        """Keep the θ fields (whole samples) inside the engine's limits for this N and H."""
        cfg = _config(self.n_fft.currentData(), self.hop.currentData())
        if cfg is None:
            return
        above, most = cfg.theta_limits
        for box in (self.win_length, self.win_min, self.win_max):
            with QtCore.QSignalBlocker(box):
                box.setRange(above + 1, most)

    def _update_ms(self) -> None:
        for box, label in self._ms.items():
            label.setText(f"{1000 * box.value() / self.sample_rate:.1f} ms")

    def _enable(self) -> None:
        self.win_length.setEnabled(not self.adapt.isChecked())
        for w in (self.win_min, self.win_max, self.steps, self.smoothness, self.entropy, self.radius):
            w.setEnabled(self.adapt.isChecked())
        self.lr.setEnabled(self.adapt.isChecked() and self.steps.value() > 0)
        self.alpha.setEnabled(self.adapt.isChecked() and self.entropy.currentData() == "renyi")

    def _auto_toggled(self, on: bool) -> None:
        if on:
            try:
                shown = self.config()
            except ValueError:
                shown = StreamConfig(sample_rate=self.sample_rate)
            suited = suited_to_rate(shown, self.sample_rate)
            self.set_values({**self.values(), **self._shown(suited), "auto": True})
            # The starting / fixed θ is not sent: the engine derives it (the field shows it rounded).
            self.changed.emit(
                {**{k: getattr(suited, k) for k in RATE_FIELDS}, "auto": True, "win_length": None}
            )
        else:
            self.changed.emit({"auto": False})

    def _manual(self) -> None:
        """The user set N, H or θ: the sample rate no longer decides them."""
        with QtCore.QSignalBlocker(self.auto):
            self.auto.setChecked(False)

    def _geometry(self, key: str) -> None:
        self._manual()
        n, h = self.n_fft.currentData(), self.hop.currentData()
        if _config(n, h) is None:  # the engine refuses this hop with this N: the largest it takes
            with QtCore.QSignalBlocker(self.hop):
                _select(self.hop, max(x for x in HOPS if _config(n, x) is not None))
        self._limit()
        self.changed.emit({k: self.values()[k] for k in ("auto", *_GEOMETRY)})

    def _emit(self, key: str) -> None:
        self._enable()
        if key in ("win_length", "win_min", "win_max"):
            self._manual()
            self._order_windows(key)
            v = self.values()
            self.changed.emit({k: v[k] for k in ("auto", "win_length", "win_min", "win_max")})
            return
        self.changed.emit({key: self.values()[key]})

    def _order_windows(self, key: str) -> None:
        """Keep θ min <= fixed θ <= θ max (the engine refuses anything else): the field the
        user moved wins, the others follow it."""
        lo, wl, hi = self.win_min, self.win_length, self.win_max
        with QtCore.QSignalBlocker(lo), QtCore.QSignalBlocker(wl), QtCore.QSignalBlocker(hi):
            if key == "win_length":
                lo.setValue(min(lo.value(), wl.value()))
                hi.setValue(max(hi.value(), wl.value()))
            elif key == "win_min":
                hi.setValue(max(hi.value(), lo.value()))
                wl.setValue(min(max(wl.value(), lo.value()), hi.value()))
            else:
                lo.setValue(min(lo.value(), hi.value()))
                wl.setValue(min(max(wl.value(), lo.value()), hi.value()))
        self._update_ms()

    def save(self, s: QtCore.QSettings) -> None:
        for key, value in self.values().items():
            s.setValue(f"{self.GROUP}/{key}", value)

    def restore(self, s: QtCore.QSettings) -> None:
        """The saved settings, or the first-start values where they are missing or do not make a
        valid StreamConfig (an edited or older file)."""
        base = self.initial_values()
        saved = {k: read(s, f"{self.GROUP}/{k}", d) for k, d in base.items()}
        try:
            StreamConfig(**{k: saved[k] for k in _FIELDS})
        except (ValueError, TypeError):
            saved = base
        self.set_values(saved)


#: The StreamConfig fields the analysis panel shows.
_FIELDS = (
    "n_fft",
    "hop_length",
    "adapt",
    "win_length",
    "win_min",
    "win_max",
    "steps",
    "lr",
    "smoothness",
    "entropy",
    "alpha",
    "radius",
    "bands",
)
#: What changes with N and H, and what "suit the sample rate" sets.
_GEOMETRY = (*RATE_FIELDS, "win_length")


def _config(n_fft: int, hop_length: int) -> StreamConfig | None:
    """The default StreamConfig of N and H, None where the engine refuses them together."""
    try:
        return StreamConfig(n_fft=n_fft, hop_length=hop_length)
    except ValueError:
        return None


class DisplayPanel(QtWidgets.QGroupBox):
    """dB floor and ceiling, colour map, time span, frequency axis (linear, log or mel; note
    names on the log axis), history length, freeze, engine first (the GUI thread at a lower
    priority than the engine's: :mod:`.priority`).

    Signals:
        changed(dict): keys ``floor``, ``ceiling`` (dBFS), ``colormap``, ``span`` (s), ``log``,
            ``mel``, ``notes``, ``history`` (minutes), ``freeze``, ``engine_first``, whichever
            changed.
    """

    changed = QtCore.pyqtSignal(dict)
    GROUP = "display"
    DEFAULTS = {
        "floor": -100.0,
        "ceiling": 0.0,
        "colormap": "magma",
        "span": 10.0,
        "log": False,
        "mel": False,
        "notes": False,
        "history": 10.0,
        "a4": 440.0,
        "harmonics": False,
        "engine_first": True,
    }

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Display", parent)
        self.floor = _spin(-200, 0, -100, 5, 0, " dBFS")
        self.ceiling = _spin(-120, 40, 0, 5, 0, " dBFS")
        self.colormap = _combo((c, c) for c in COLORMAPS)
        self.span = _spin(1, 120, 10, 1, 1, " s")
        self.log = QtWidgets.QCheckBox("log frequency axis")
        self.mel = QtWidgets.QCheckBox("mel frequency axis")
        self.notes = QtWidgets.QCheckBox("note names on the log axis")
        self.history = _spin(1, 60, 10, 1, 0, " min")
        self.a4 = _spin(400, 480, 440, 0.5, 1, " Hz")
        self.a4.setToolTip("tuning of A4 for the note names of the readout")
        self.harmonics = QtWidgets.QCheckBox("harmonic cursor")
        self.history.setToolTip("how much of the analysis to keep for looking back (from the next source)")
        self.freeze = QtWidgets.QCheckBox("freeze picture")
        self.engine_first = QtWidgets.QCheckBox("engine first")
        self.engine_first.setChecked(True)
        self.engine_first.setToolTip(
            "the GUI thread gives way to the analysis when both want a CPU (Linux; no effect elsewhere)"
        )
        form = QtWidgets.QFormLayout(self)
        form.addRow("floor", self.floor)
        form.addRow("ceiling", self.ceiling)
        form.addRow("colours", self.colormap)
        form.addRow("time span", self.span)
        form.addRow(self.log)
        form.addRow(self.mel)
        form.addRow(self.notes)
        form.addRow("history", self.history)
        form.addRow("A4", self.a4)
        form.addRow(self.harmonics)
        form.addRow(self.freeze)
        form.addRow(self.engine_first)
        self.floor.valueChanged.connect(lambda: self._levels("floor"))
        self.ceiling.valueChanged.connect(lambda: self._levels("ceiling"))
        self.colormap.currentIndexChanged.connect(lambda: self._emit("colormap"))
        self.span.valueChanged.connect(lambda: self._emit("span"))
        self.log.toggled.connect(lambda on: self._axis(self.mel, on, "log"))
        self.mel.toggled.connect(lambda on: self._axis(self.log, on, "mel"))
        self.notes.toggled.connect(lambda: self._emit("notes"))
        self.history.valueChanged.connect(lambda: self._emit("history"))
        self.a4.valueChanged.connect(lambda: self._emit("a4"))
        self.harmonics.toggled.connect(lambda: self._emit("harmonics"))
        self.freeze.toggled.connect(lambda: self._emit("freeze"))
        self.engine_first.toggled.connect(lambda: self._emit("engine_first"))

    def values(self) -> dict:
        return {
            "floor": self.floor.value(),
            "ceiling": self.ceiling.value(),
            "colormap": self.colormap.currentData(),
            "span": self.span.value(),
            "log": self.log.isChecked(),
            "mel": self.mel.isChecked(),
            "notes": self.notes.isChecked(),
            "history": self.history.value(),
            "a4": self.a4.value(),
            "harmonics": self.harmonics.isChecked(),
            "freeze": self.freeze.isChecked(),
            "engine_first": self.engine_first.isChecked(),
        }

    def _levels(self, key: str) -> None:
        if self.floor.value() >= self.ceiling.value() - 5:  # keep a usable range
            other = self.ceiling if key == "floor" else self.floor
            with QtCore.QSignalBlocker(other):
                other.setValue(self.floor.value() + 5 if key == "floor" else self.ceiling.value() - 5)
        self.changed.emit({"floor": self.floor.value(), "ceiling": self.ceiling.value()})

    def _emit(self, key: str) -> None:
        self.changed.emit({key: self.values()[key]})

    def _axis(self, other: QtWidgets.QCheckBox, on: bool, key: str) -> None:
        """Log and mel exclude each other."""
        if on:
            with QtCore.QSignalBlocker(other):
                other.setChecked(False)
        self._emit(key)

    def save(self, s: QtCore.QSettings) -> None:
        for key in self.DEFAULTS:
            s.setValue(f"{self.GROUP}/{key}", self.values()[key])

    def restore(self, s: QtCore.QSettings) -> None:
        v = {k: read(s, f"{self.GROUP}/{k}", d) for k, d in self.DEFAULTS.items()}
        with QtCore.QSignalBlocker(self.floor), QtCore.QSignalBlocker(self.ceiling):
            self.floor.setValue(v["floor"])
            self.ceiling.setValue(v["ceiling"])
        with QtCore.QSignalBlocker(self.colormap):
            _select(self.colormap, v["colormap"] if v["colormap"] in COLORMAPS else "magma")
        with QtCore.QSignalBlocker(self.span):
            self.span.setValue(v["span"])
        for key in ("log", "mel", "notes", "harmonics", "engine_first"):
            with QtCore.QSignalBlocker(getattr(self, key)):
                getattr(self, key).setChecked(v[key] and not (key == "mel" and v["log"]))
        for key in ("history", "a4"):
            with QtCore.QSignalBlocker(getattr(self, key)):
                getattr(self, key).setValue(v[key])


class DevicePanel(QtWidgets.QGroupBox):
    """Microphone (device, sample rate, start) and monitoring (output device, what, on/off).

    Signals:
        listen(object, int): start the microphone (device index or None, sample rate Hz).
        monitor(object, object): (output device index or None, "resynthesis" | "raw" | None=off).
    """

    listen = QtCore.pyqtSignal(object, int)
    monitor = QtCore.pyqtSignal(object, object)
    GROUP = "devices"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Input and monitoring", parent)
        self.input = QtWidgets.QComboBox()
        self.rate = _combo((f"{r} Hz", r) for r in SAMPLE_RATES)
        self.listen_button = QtWidgets.QPushButton("Listen to microphone")
        self.no_input = QtWidgets.QLabel()
        self.no_input.setWordWrap(True)
        self.no_input.setStyleSheet("color: #ff8a65;")
        self.output = QtWidgets.QComboBox()
        self.what = _combo((("resynthesis", "resynthesis"), ("raw input", "raw")))
        self.monitor_box = QtWidgets.QCheckBox("monitor on output")
        form = QtWidgets.QFormLayout(self)
        form.addRow("input", self.input)
        form.addRow("rate", self.rate)
        form.addRow(self.listen_button)
        form.addRow(self.no_input)
        form.addRow("output", self.output)
        form.addRow("play", self.what)
        form.addRow(self.monitor_box)
        self.listen_button.clicked.connect(self._listen)
        self.monitor_box.toggled.connect(lambda: self._monitor())
        self.what.currentIndexChanged.connect(lambda: self._monitor())
        self.output.currentIndexChanged.connect(lambda: self._monitor())
        _select(self.rate, 48000)

    def set_devices(self, devices: list[dict], error: str = "") -> None:
        """Fill the pickers from :func:`rtdstft.audio.list_devices`; say so when there is no
        input (``error`` explains why, e.g. PortAudio missing)."""
        for box, key, default_key in (
            (self.input, "max_input_channels", "is_default_input"),
            (self.output, "max_output_channels", "is_default_output"),
        ):
            with QtCore.QSignalBlocker(box):
                box.clear()
                for d in devices:
                    if d[key] > 0:
                        mark = " (default)" if d[default_key] else ""
                        box.addItem(f"{d['index']}: {d['name']}{mark}", d["index"])
        has_input = self.input.count() > 0
        self.input.setEnabled(has_input)
        self.listen_button.setEnabled(has_input)
        self.no_input.setVisible(not has_input)
        self.no_input.setText("" if has_input else f"No input device found. {error}".strip())
        self.output.setEnabled(self.output.count() > 0)
        self.monitor_box.setEnabled(self.output.count() > 0)

    def select_input(self, device) -> None:
        """Pick ``device`` (an index, or a name or part of one) in the input list, if there."""
        for i in range(self.input.count()):
            if device == self.input.itemData(i) or (
                isinstance(device, str) and device.lower() in self.input.itemText(i).lower()
            ):
                self.input.setCurrentIndex(i)
                return

    def _listen(self) -> None:
        self.listen.emit(self.input.currentData(), int(self.rate.currentData()))

    def _monitor(self) -> None:
        on = self.monitor_box.isChecked()
        self.monitor.emit(self.output.currentData(), self.what.currentData() if on else None)

    def save(self, s: QtCore.QSettings) -> None:
        s.setValue(f"{self.GROUP}/input", self.input.currentText())
        s.setValue(f"{self.GROUP}/rate", self.rate.currentData())
        s.setValue(f"{self.GROUP}/output", self.output.currentText())
        s.setValue(f"{self.GROUP}/monitor_what", self.what.currentData())

    def restore(self, s: QtCore.QSettings) -> None:
        for box, key in ((self.input, "input"), (self.output, "output")):
            i = box.findText(read(s, f"{self.GROUP}/{key}", ""))
            if i >= 0:
                with QtCore.QSignalBlocker(box):
                    box.setCurrentIndex(i)
        _select(self.rate, read(s, f"{self.GROUP}/rate", 48000))
        with QtCore.QSignalBlocker(self.what):
            _select(self.what, read(s, f"{self.GROUP}/monitor_what", "resynthesis"))
