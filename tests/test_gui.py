"""The desktop application, offscreen with pytest-qt: a synthetic file through the whole
application, every control reaching the engine and changing the picture, errors that never crash,
settings that persist.

Every test drives a real MainWindow: the worker thread runs the real StreamingDSTFT on synthetic
files written here, and the checks read the picture the window shows (its pixels mapped back
through the colour table), the θ track and the engine's settings as the worker reports them.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from PyQt6 import QtCore, QtGui, QtWidgets  # noqa: E402
from rtdstft_gui import worker as worker_module  # noqa: E402
from rtdstft_gui.spectrogram import lookup_table  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

from rtdstft import audio  # noqa: E402
from rtdstft.bands import DEFAULT_GUI_BANDS  # noqa: E402
from rtdstft.config import StreamConfig  # noqa: E402

SR = 16000
WAIT_MS = 20000


# -- synthetic recordings ------------------------------------------------------------------------

CLICKS = (0.25, 0.5, 0.75)
TONE_HZ = 1000.0
CHIRP = (2.0, 3.0, 500.0, 6000.0)  # start s, end s, f0 Hz, f1 Hz


def scene(sr: int = SR) -> np.ndarray:
    """0-1 s clicks at CLICKS, 1-2 s a 1 kHz tone (amplitude 0.5), 2-3 s a fast linear chirp,
    3-4 s a slow one (1 -> 1.5 kHz, whose best window lies between the bounds)."""
    x = np.zeros(4 * sr, dtype=np.float32)
    for c in CLICKS:
        x[int(c * sr)] = 0.9
    t = np.arange(sr) / sr
    x[sr : 2 * sr] = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    t0, t1, f0, f1 = CHIRP
    x[2 * sr : 3 * sr] = 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * (t1 - t0))))
    x[3 * sr :] = 0.5 * np.sin(2 * np.pi * (1000 * t + 500 * t**2 / 2))
    return x


def chirp_freq(t: float) -> float:
    t0, t1, f0, f1 = CHIRP
    return f0 + (f1 - f0) * (t - t0) / (t1 - t0)


@pytest.fixture(scope="module")
def scene_wav(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("gui") / "scene.wav"
    sf.write(path, scene(), SR, subtype="FLOAT")
    return str(path)


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("gui") / "tone.wav"
    t = np.arange(2 * SR) / SR
    sf.write(path, (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32), SR)
    return str(path)


# -- the window ----------------------------------------------------------------------------------


@pytest.fixture
def make_window(qtbot, tmp_path):
    """make_window(**kw) -> a shown MainWindow with its settings and recordings in tmp_path.
    N = 2048, H = 256 (θ 512 .. 2048), one θ for all frequencies (bands = 1) unless ``overrides``
    says otherwise (``{}``: the window's own choice, suited to the sample rate)."""
    windows = []

    def make(settings: str | None = None, **kw) -> MainWindow:
        kw.setdefault("overrides", {"n_fft": 2048, "hop_length": 256, "bands": 1})
        w = MainWindow(
            settings_path=settings or str(tmp_path / "settings.ini"),
            recordings_dir=str(tmp_path / "recordings"),
            **kw,
        )
        qtbot.addWidget(w)
        w.resize(1360, 820)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()


def engine(w: MainWindow) -> dict:
    """The running engine's settings, read in the worker thread."""
    return w.worker.call(lambda wk: wk.engine_settings())


def levels(w: MainWindow) -> np.ndarray:
    """The shown picture as colour-table indices 0..255 [rows, columns], row 0 = lowest."""
    lut = lookup_table(w.view.cmap)
    order = np.argsort(lut)
    pix = w.view.picture()
    return order[np.clip(np.searchsorted(lut[order], pix), 0, 255)]


def column_times(w: MainWindow) -> np.ndarray:
    return w.view.image.shown_times()


def replay(qtbot, w: MainWindow, path: str, until: float, speed: float = 4.0) -> None:
    """Replay ``path`` from its start at ``speed``× and wait until the picture reaches ``until`` s."""
    w.speed.setCurrentIndex(w.speed.findData(speed))
    w.open_file(path)
    qtbot.waitUntil(
        lambda: w.view.image is not None and w.view.image.count > 0 and np.nanmax(column_times(w)) >= until,
        timeout=WAIT_MS,
    )


def restart(qtbot, w: MainWindow, until: float) -> None:
    """Open the file again (a fresh engine, a fresh picture) and wait until the picture reaches
    ``until``."""
    old = w.view.image
    w.open_file(w.source_path)
    qtbot.waitUntil(
        lambda: w.view.image is not old and w.view.image.count > 0 and np.nanmax(column_times(w)) >= until,
        timeout=WAIT_MS,
    )


@pytest.fixture
def every_sample(monkeypatch):
    """A replay that falls behind the wall clock catches up instead of skipping ahead, so every
    sample of the file reaches the engine and the picture of a whole file depends on the file and
    the settings alone, not on how busy the machine is."""
    monkeypatch.setattr(worker_module, "MAX_BACKLOG_S", 1e6)


def playing(w: MainWindow) -> bool:
    """Whether the worker is replaying, asked in its own thread (after every command posted)."""
    return bool(w.worker.call(lambda wk: wk.playing))


def whole_file(qtbot, w: MainWindow) -> tuple[np.ndarray, np.ndarray]:
    """Wait until the replay (started or restarted just before) reaches the end of the file, take
    every frame it made, and return the picture (colour-table indices) and the θ track."""
    qtbot.waitUntil(lambda: not playing(w), timeout=WAIT_MS)
    w.redraw()
    return levels(w), w.view.theta.shown()[1]


def play_again(qtbot, w: MainWindow) -> tuple[np.ndarray, np.ndarray]:
    """From the start once more (the file opened again: a fresh engine with the current settings,
    a fresh picture): :func:`whole_file`."""
    w.open_file(w.source_path)
    qtbot.waitUntil(lambda: playing(w), timeout=WAIT_MS)
    return whole_file(qtbot, w)


def freq_row(w: MainWindow, f: float) -> int:
    return int(round(w.view.row_of(f)))


# -- a synthetic file through the whole application ----------------------------------------------


def test_replay_puts_chirp_ridge_clicks_and_theta_where_expected(qtbot, make_window, scene_wav, every_sample):
    w = make_window()
    replay(qtbot, w, scene_wav, until=2.95)
    lv = levels(w).astype(float)
    times = column_times(w)
    rows = lv.shape[0]

    # The chirp's ridge: in every column of 2.1-2.9 s the loudest row is the chirp's frequency.
    for c in np.flatnonzero((times > 2.1) & (times < 2.9)):
        expected = freq_row(w, chirp_freq(times[c]))
        assert abs(int(np.argmax(lv[:, c])) - expected) <= max(3, rows // 60), times[c]

    # The clicks: broadband columns at the click times, quiet columns between them.
    broadband = lv[rows // 10 :, :].mean(axis=0)
    hop_s = w.view.hop / w.view.sample_rate * w.view.image.group
    for c in CLICKS:
        near = np.abs(times - c) <= 1.5 * hop_s
        assert broadband[near].max() > 120, c
    between = (np.abs(times - 0.375) < 0.04) | (np.abs(times - 0.625) < 0.04)
    assert broadband[between].max() < 40

    # θ: short on the clicks, long on the tone.
    t_ms, theta = w.view.theta.shown()
    on_clicks = np.concatenate([theta[np.abs(t_ms - c) < 0.02] for c in CLICKS])
    on_tone = theta[(t_ms > 1.3) & (t_ms < 1.9)]
    assert on_clicks.min() < 0.6 * np.median(on_tone)
    assert np.median(on_tone) > 0.8 * 1000 * engine(w)["win_max"] / SR


# -- every control reaches the engine and changes the picture ------------------------------------


ANALYSIS_CHANGES = [
    # (widget, value, engine key, expected engine value, settings made first)
    ("n_fft", 1024, "n_fft", 1024, {}),
    ("hop", 128, "hop_length", 128, {}),
    ("adapt", False, "adapt", False, {}),
    ("win_length", 400, "win_length", 400.0, {"adapt": False}),
    ("win_min", 1200, "win_min", 1200.0, {}),
    ("win_max", 900, "win_max", 900.0, {}),
    ("steps", 2, "steps", 2, {}),
    ("lr", 0.02, "lr", 0.02, {"steps": 2}),
    ("smoothness", 2.0, "smoothness", 2.0, {}),
    ("entropy", "renyi", "entropy", "renyi", {}),
    ("alpha", 0.5, "alpha", 0.5, {"entropy": "renyi"}),
    ("radius", 0, "radius", 0, {}),
]


def _set(widget, value) -> None:
    if isinstance(widget, QtWidgets.QComboBox):
        widget.setCurrentIndex(widget.findData(value))
    elif isinstance(widget, QtWidgets.QCheckBox):
        widget.setChecked(value)
    else:
        widget.setValue(value)


def test_replaying_a_file_twice_draws_the_same_picture(qtbot, make_window, scene_wav, every_sample):
    # What the control tests below rely on: with the same settings, the same picture and θ.
    w = make_window()
    w.loop.setChecked(False)
    replay(qtbot, w, scene_wav, until=0.1)
    first_pix, first_theta = whole_file(qtbot, w)
    again_pix, again_theta = play_again(qtbot, w)
    assert np.nanmax(column_times(w)) >= 3.9
    assert np.array_equal(first_pix, again_pix)
    assert np.array_equal(first_theta, again_theta, equal_nan=True)


@pytest.mark.parametrize(
    "name,value,key,expected,first", ANALYSIS_CHANGES, ids=[c[0] for c in ANALYSIS_CHANGES]
)
def test_analysis_control_reaches_engine_and_changes_picture(
    qtbot, make_window, scene_wav, every_sample, name, value, key, expected, first
):
    # The whole file under setting A, then the whole file under setting B: the same samples, so
    # any difference comes from the control.
    w = make_window()
    w.loop.setChecked(False)
    for widget, v in first.items():
        _set(getattr(w.analysis, widget), v)
    replay(qtbot, w, scene_wav, until=0.1)
    before_pix, before_theta = whole_file(qtbot, w)
    assert engine(w)[key] != expected

    _set(getattr(w.analysis, name), value)
    qtbot.waitUntil(lambda: engine(w)[key] == pytest.approx(expected), timeout=WAIT_MS)
    after_pix, after_theta = play_again(qtbot, w)
    assert np.nanmax(column_times(w)) >= 3.9
    changed = (
        before_pix.shape != after_pix.shape
        or np.any(before_pix != after_pix)
        or not np.array_equal(before_theta, after_theta, equal_nan=True)
    )
    assert changed, f"{name} reached the engine but the picture did not change"


def test_display_controls_change_the_picture(qtbot, make_window, scene_wav, every_sample):
    # The whole file drawn, nothing more to come: what changes now, the control changed.
    w = make_window()
    w.loop.setChecked(False)
    replay(qtbot, w, scene_wav, until=0.1)
    whole_file(qtbot, w)
    base, base_lv = w.view.picture().copy(), levels(w)
    w.redraw()
    assert np.array_equal(w.view.picture(), base)
    d = w.display

    # The floor and the ceiling move the colour range: more pixels at its bottom, then at its top.
    _set(d.floor, -60.0)
    lv = levels(w)
    assert (lv == 0).sum() > (base_lv == 0).sum()
    _set(d.ceiling, -20.0)
    lv2 = levels(w)
    assert (lv2 == 255).sum() > (lv == 255).sum()
    # Each colour map recolours the same levels (viridis repeats two colours: a level may read
    # as its neighbour).
    for cmap in ("gray", "viridis", "inferno"):
        before = w.view.picture().copy()
        _set(d.colormap, cmap)
        assert w.view.cmap == cmap and np.any(w.view.picture() != before), cmap
        assert np.abs(levels(w) - lv2).max() <= 1, cmap
    # The log axis moves the 1 kHz tone (1-2 s) to its row on a log scale.
    _set(d.log, True)
    assert w.view.log
    tone = (column_times(w) > 1.2) & (column_times(w) < 1.8)
    loudest = np.median(np.argmax(levels(w)[:, tone], axis=0))
    assert abs(loudest - freq_row(w, TONE_HZ)) <= 2
    assert abs(freq_row(w, TONE_HZ) - TONE_HZ / (SR / 2) * levels(w).shape[0]) > 10
    width = w.view.image.width
    _set(d.span, 5.0)
    assert w.view.image.width < width and w.view.span == 5.0


def test_freeze_holds_the_picture_while_replay_goes_on(qtbot, make_window, scene_wav):
    w = make_window()
    replay(qtbot, w, scene_wav, until=1.0, speed=1.0)
    w.freeze_action.trigger()
    assert w.display.freeze.isChecked()
    frozen = w.view.picture().copy()
    position = w.stats.position
    qtbot.waitUntil(lambda: w.stats.position > position + 0.3, timeout=WAIT_MS)
    assert np.array_equal(w.view.picture(), frozen)
    w.display.freeze.setChecked(False)
    qtbot.waitUntil(lambda: not np.array_equal(w.view.picture(), frozen), timeout=WAIT_MS)


def test_transport_pause_seek_speed_loop(qtbot, make_window, scene_wav):
    w = make_window()
    replay(qtbot, w, scene_wav, until=0.3, speed=1.0)
    # Space pauses: the position stops.
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not playing(w), timeout=WAIT_MS)
    paused_at = w.worker.call(lambda wk: wk.source.position)
    qtbot.waitUntil(lambda: w.stats.position == paused_at, timeout=WAIT_MS)  # reported as it is
    qtbot.wait(400)
    assert w.worker.call(lambda wk: wk.source.position) == paused_at
    assert not w.stats.playing and w.stats.position == paused_at
    qtbot.keyClick(w, QtCore.Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: w.stats.playing and w.stats.position > paused_at + 0.05, timeout=WAIT_MS)
    # The seek slider: release at 2/3 of the file; the analysis goes on from there, after what
    # came before (kept, with a mark where the file jumped).
    w.seek.setSliderDown(True)  # a drag: the value follows the held handle, no seek yet
    w.seek.setValue(667)
    w.seek.setSliderDown(False)  # released (sliderReleased): one seek
    qtbot.waitUntil(lambda: len(w.history.marks) == 2, timeout=WAIT_MS)
    jump, to = w.history.marks[1]
    assert to == pytest.approx(0.667 * w.stats.duration, abs=0.01) and w.history.first_frame == 0
    qtbot.waitUntil(lambda: np.nanmax(column_times(w)) >= jump + 0.1, timeout=WAIT_MS)
    newest = float(np.nanmax(column_times(w)))
    assert w.history.file_time(newest) == pytest.approx(to + newest - jump)
    # Speed: seconds of the file taken by the engine per second of the worker's clock, both read
    # at one moment in the worker's thread (loops counted), over 1.5 s.
    w.loop.setChecked(True)

    def consumed() -> tuple[float, float]:
        def ask(wk):
            src = wk.source
            return time.monotonic(), (src.loops * src.frames + src.tell()) / src.sample_rate

        return w.worker.call(ask)

    def rate(speed: float) -> float:
        w.speed.setCurrentIndex(w.speed.findData(speed))
        qtbot.waitUntil(lambda: w.worker.call(lambda wk: wk.source.speed) == speed, timeout=WAIT_MS)
        t0, p0 = consumed()
        qtbot.waitUntil(lambda: time.monotonic() > t0 + 1.5, timeout=WAIT_MS)
        t1, p1 = consumed()
        return (p1 - p0) / (t1 - t0)

    assert 0.6 < rate(1.0) < 1.4
    assert 2.8 < rate(4.0) < 5.2
    # Loop: past the end the replay goes on from the start.
    qtbot.waitUntil(lambda: np.nanmax(column_times(w)) > 4.5, timeout=WAIT_MS)
    assert w.stats.playing and w.stats.position < 4.0


def test_looping_keeps_the_axis_and_the_readout_in_the_file(qtbot, make_window, scene_wav):
    w = make_window()
    w.loop.setChecked(True)
    replay(qtbot, w, scene_wav, until=5.0)  # the 4 s file, once and a bit
    axis = w.view.plot.getAxis("bottom").range
    assert axis == pytest.approx([-w.view.span, 0.0])  # "seconds before now", not stream time
    newest = float(np.nanmax(column_times(w)))
    info = w.view.readout(newest, TONE_HZ)
    assert info["time"] == pytest.approx(newest - 4.0, abs=0.05) and info["time"] < 4.0


def test_cursor_readout_shows_the_tone_frequency(qtbot, make_window, tone_wav):
    w = make_window()
    replay(qtbot, w, tone_wav, until=1.5)
    w.worker.set_playing(False)
    qtbot.waitUntil(lambda: not w.stats.playing, timeout=WAIT_MS)
    w.redraw()  # the last frames in, the picture at rest
    t = float(np.nanmedian(column_times(w)))
    info = w.view.readout(t, TONE_HZ)
    assert info["db"] == pytest.approx(-6.0, abs=1.5)  # amplitude 0.5 is -6 dBFS at the peak

    # The mouse on the pixel nearest the tone. A pixel spans more than an FFT bin here, so that
    # pixel may read the bin beside the tone's, which the window's main lobe keeps within 6 dB.
    vb, view = w.view.plot.vb, w.view

    def pixel(freq: float) -> QtCore.QPoint:
        return view.mapFromScene(vb.mapViewToScene(QtCore.QPointF(t - w.view.now, freq)))

    def freq_at(p: QtCore.QPoint) -> float:
        return vb.mapSceneToView(view.mapToScene(p)).y()

    hz_per_pixel = abs(freq_at(pixel(TONE_HZ)) - freq_at(pixel(TONE_HZ) + QtCore.QPoint(0, 1)))
    pos = min(
        (pixel(TONE_HZ) + QtCore.QPoint(0, dy) for dy in range(-2, 3)),
        key=lambda p: abs(freq_at(p) - TONE_HZ),
    )
    under = w.view.readout_at(view.mapToScene(pos))
    qtbot.mouseMove(view.viewport(), pos)
    qtbot.waitUntil(lambda: "Hz" in w.readout.text(), timeout=5000)
    text = w.readout.text()
    freq = float(text.split("f ")[1].split(" Hz")[0])
    db = float(text.split("Hz")[1].split("dBFS")[0])
    assert freq == pytest.approx(under["freq"], abs=0.051) and db == pytest.approx(under["db"], abs=0.051), (
        text
    )
    assert abs(freq - TONE_HZ) <= hz_per_pixel / 2 + 0.1, text
    assert db > -12.5, text
    assert "θ" in text and "ms" in text


def test_keys_open_export_record(qtbot, make_window, scene_wav, tone_wav, tmp_path, monkeypatch):
    w = make_window()
    replay(qtbot, w, scene_wav, until=0.5, speed=1.0)
    # Ctrl+O: the open dialog, then the chosen file replays.
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (tone_wav, ""))
    )
    qtbot.keyClick(w, QtCore.Qt.Key.Key_O, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: w.source_label.text() == "tone.wav", timeout=WAIT_MS)
    # Ctrl+E: export the view to PNG.
    png = tmp_path / "export.png"
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(png), ""))
    )
    qtbot.keyClick(w, QtCore.Qt.Key.Key_E, QtCore.Qt.KeyboardModifier.ControlModifier)
    image = QtGui.QImage(str(png))
    assert not image.isNull() and image.width() > 200
    # Ctrl+R: record the raw input to recordings/rec-*.wav, written as it goes; again stops.
    qtbot.keyClick(w, QtCore.Qt.Key.Key_R, QtCore.Qt.KeyboardModifier.ControlModifier)
    rec_dir = tmp_path / "recordings"
    qtbot.waitUntil(lambda: rec_dir.is_dir() and any(rec_dir.glob("rec-*.wav")), timeout=WAIT_MS)
    rec = next(rec_dir.glob("rec-*.wav"))
    qtbot.waitUntil(lambda: sf.info(str(rec)).frames > SR // 4, timeout=WAIT_MS)  # while recording
    qtbot.keyClick(w, QtCore.Qt.Key.Key_R, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not w.stats.recording, timeout=WAIT_MS)
    x, rate = sf.read(str(rec))
    assert rate == SR and len(x) > SR // 4
    assert 0.3 < np.max(np.abs(x)) < 0.6  # the 0.5 tone, raw


def test_drag_and_drop_opens_the_file(qtbot, make_window, scene_wav, tone_wav):
    w = make_window()
    replay(qtbot, w, scene_wav, until=0.2)
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(tone_wav)])
    pos = QtCore.QPointF(200, 200)
    actions = QtCore.Qt.DropAction.CopyAction
    enter = QtGui.QDragEnterEvent(
        pos.toPoint(), actions, mime, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    )
    w.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QtGui.QDropEvent(
        pos, actions, mime, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    )
    w.dropEvent(drop)
    qtbot.waitUntil(lambda: w.source_label.text() == "tone.wav", timeout=WAIT_MS)


# -- analysis defaults suit the sample rate ------------------------------------------------------


def test_defaults_follow_the_file_rate_until_the_user_chooses(qtbot, make_window, tmp_path, tone_wav):
    t = np.arange(24000) / 24000
    path = tmp_path / "tone24k.wav"
    sf.write(path, (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32), 24000)
    w = make_window(overrides={})
    assert w.analysis.auto.isChecked()
    w.open_file(path)
    qtbot.waitUntil(lambda: w.view.sample_rate == 24000, timeout=WAIT_MS)  # the GUI has it too
    e, shown = engine(w), w.analysis.values()
    # N 2048, H 64, θ 128 .. 2040 (5.3 .. 85 ms); the application's first start has a θ per band
    suited = StreamConfig.for_rate(24000, bands=DEFAULT_GUI_BANDS)
    assert e == suited.as_dict()
    for key in ("n_fft", "hop_length", "win_min", "win_max"):
        assert shown[key] == getattr(suited, key), key
    assert "5.3 ms" in w.analysis._ms[w.analysis.win_min].text()

    # The user picks H: the rate no longer decides, a 16 kHz file keeps the user's choice.
    _set(w.analysis.hop, 128)
    assert not w.analysis.auto.isChecked()
    w.open_file(tone_wav)
    qtbot.waitUntil(lambda: w.view.sample_rate == SR, timeout=WAIT_MS)
    assert (engine(w)["n_fft"], engine(w)["hop_length"]) == (2048, 128)
    # Ticked again: the defaults of the current rate come back.
    w.analysis.auto.setChecked(True)
    suited = StreamConfig.for_rate(SR, bands=DEFAULT_GUI_BANDS)
    qtbot.waitUntil(lambda: engine(w)["hop_length"] == suited.hop_length, timeout=WAIT_MS)
    assert engine(w) == suited.as_dict()


# -- errors never crash --------------------------------------------------------------------------


def test_no_input_device_says_so_and_file_replay_works(qtbot, make_window, monkeypatch, scene_wav):
    def no_mic(*a, **k):
        raise audio.AudioDeviceError("there is no default input device; input devices: none")

    monkeypatch.setattr(audio, "list_devices", lambda: [])
    monkeypatch.setattr(audio, "MicrophoneSource", no_mic)
    w = make_window()
    assert "No input device" in w.banner.text() and w.banner.isVisibleTo(w)
    assert not w.devices.listen_button.isEnabled()
    w.open_mic(None, 48000)
    qtbot.waitUntil(lambda: "no input" in w.banner.text(), timeout=WAIT_MS)
    replay(qtbot, w, scene_wav, until=1.0)
    assert "No input device" in w.banner.text()


@pytest.mark.parametrize("content", [b"", b"this is not audio" * 100, None], ids=["empty", "text", "missing"])
def test_unreadable_file_gives_a_dialog_and_the_app_goes_on(qtbot, make_window, scene_wav, tmp_path, content):
    w = make_window()
    replay(qtbot, w, scene_wav, until=0.5, speed=1.0)
    bad = tmp_path / "bad.wav"
    if content is not None:
        bad.write_bytes(content)
    w.open_file(bad)
    qtbot.waitUntil(lambda: w.error_dialog is not None and w.error_dialog.isVisible(), timeout=WAIT_MS)
    assert "bad.wav" in w.error_dialog.text()
    latest = np.nanmax(column_times(w))
    qtbot.waitUntil(lambda: np.nanmax(column_times(w)) > latest + 0.2, timeout=WAIT_MS)
    assert w.source_label.text() == "scene.wav"
    w.error_dialog.accept()


class VanishingMic:
    """A microphone that delivers a tone, then reports the device lost (as MicrophoneSource does
    when PortAudio's finished callback fires without a stop)."""

    def __init__(self, device=None, sample_rate=48000, **kw):
        self.sample_rate = sample_rate
        self.device_name = "fake USB mic"
        self.error = None
        self.ring = audio.SampleRing(sample_rate)
        self.overruns = 0
        self.reads = 0
        self.closed = False

    def start(self):
        pass

    def stop(self):
        pass

    def close(self):
        self.closed = True

    @property
    def available(self):
        return 480  # a block is always waiting, as with a live device

    def read_available(self):
        self.reads += 1
        if self.reads == 60:
            self.error = audio.AudioDeviceError("input device 3 ('fake USB mic') stopped unexpectedly")
        t = (np.arange(480) + 480 * self.reads) / self.sample_rate
        return (0.3 * np.sin(2 * np.pi * 800 * t)).astype(np.float32)


def test_device_lost_mid_stream_stops_with_a_message(qtbot, make_window, monkeypatch):
    monkeypatch.setattr(audio, "MicrophoneSource", VanishingMic)
    w = make_window()
    w.open_mic(None, 48000)
    qtbot.waitUntil(lambda: w.view.image is not None and w.view.image.count > 5, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "input stopped" in w.banner.text(), timeout=WAIT_MS)
    assert "fake USB mic" in w.banner.text()
    assert w.worker.call(lambda wk: wk.source) is None
    assert w.isVisible()


def test_a_call_into_the_engine_thread_raises_what_it_raised(make_window):
    """The selection and edit panels run their maths through ``worker.call``: an error there must
    reach them as itself (they show it), not as the call's time-out after a silent wait."""
    w = make_window()

    def fail(_worker):
        raise ValueError("the history holds nothing there")

    with pytest.raises(ValueError, match="holds nothing"):
        w.worker.call(fail, timeout=600.0)
    assert w.worker.call(lambda wk: 7) == 7  # the thread goes on


def test_nan_samples_do_not_blank_the_picture(qtbot, make_window, tmp_path, every_sample):
    t = np.arange(3 * SR) / SR
    x = (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
    x[int(1.0 * SR) : int(1.2 * SR)] = np.nan
    x[int(1.5 * SR)] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    w = make_window()
    replay(qtbot, w, str(path), until=2.9)
    lv = levels(w)
    times = column_times(w)
    row = freq_row(w, TONE_HZ)
    tone_level = lv[max(row - 2, 0) : row + 3].max(axis=0)
    after = (times > 1.6) & (times < 2.9)
    before = (times > 0.2) & (times < 0.9)
    assert after.sum() > 20
    assert np.all(tone_level[after] > 200) and np.all(tone_level[before] > 200)
    assert w.stats.nonfinite >= int(0.2 * SR)


# -- settings persist across a restart -----------------------------------------------------------


def test_settings_persist_across_restart(qtbot, make_window, tmp_path, scene_wav):
    ini = str(tmp_path / "persist.ini")
    w = make_window(settings=ini, overrides={})
    a, d = w.analysis, w.display
    _set(a.n_fft, 1024)
    _set(a.hop, 128)
    _set(a.adapt, False)
    _set(a.win_length, 700)
    _set(a.entropy, "renyi")
    _set(a.alpha, 2.0)
    _set(a.smoothness, 0.5)
    _set(d.colormap, "gray")
    _set(d.floor, -80.0)
    _set(d.span, 6.0)
    _set(d.log, True)
    _set(d.engine_first, False)
    w.speed.setCurrentIndex(w.speed.findData(2.0))
    w.loop.setChecked(True)
    w.open_file(scene_wav)
    qtbot.waitUntil(lambda: w.source_label.text() == "scene.wav", timeout=WAIT_MS)
    assert engine(w)["n_fft"] == 1024
    w.close()

    w2 = make_window(settings=ini, overrides={})
    v = w2.analysis.values()
    assert (v["n_fft"], v["hop_length"], v["adapt"], v["win_length"]) == (1024, 128, False, 700)
    assert (v["entropy"], v["alpha"], v["smoothness"]) == ("renyi", 2.0, 0.5)
    assert w2.display.values() | {"freeze": False} == {
        "floor": -80.0,
        "ceiling": 0.0,
        "colormap": "gray",
        "span": 6.0,
        "log": True,
        "mel": False,
        "notes": False,
        "history": 10.0,
        "a4": 440.0,
        "harmonics": False,
        "freeze": False,
        "engine_first": False,
    }
    assert w2.view.cmap == "gray" and w2.view.log and w2.view.span == 6.0
    assert w2.speed.currentData() == 2.0 and w2.loop.isChecked()
    assert w2.last_file() == scene_wav
    w2.open_file(w2.last_file())
    qtbot.waitUntil(lambda: engine(w2).get("n_fft") == 1024, timeout=WAIT_MS)
    e = engine(w2)
    assert (e["hop_length"], e["adapt"], e["win_length"], e["entropy"], e["alpha"]) == (
        128,
        False,
        700.0,
        "renyi",
        2.0,
    )
