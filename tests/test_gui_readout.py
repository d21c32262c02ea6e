"""The cursor readout in the real application (offscreen): the mouse over a replayed tone on the
mel and log axes reads the frequency under the pointer, the refined peak (below the bin spacing),
its note and cents; the harmonic cursor marks the multiples of the peak."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from PyQt6 import QtCore, QtGui  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

from rtdstft.pitch import to_axis  # noqa: E402

SR = 48000


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """A window that has replayed 0-2 s of 440 Hz then 2-4 s of 1000 Hz (N = 2048, H = 256: bins
    23.4 Hz apart, neither tone on a bin)."""
    tmp = tmp_path_factory.mktemp("readout")
    t = np.arange(4 * SR) / SR
    x = 0.5 * np.where(t < 2, np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 1000 * t))
    sf.write(tmp / "tones.wav", x.astype(np.float32), SR, subtype="FLOAT")
    w = MainWindow(
        settings_path=str(tmp / "s.ini"),
        recordings_dir=str(tmp),
        overrides={"n_fft": 2048, "hop_length": 256},
    )
    w.resize(1360, 820)
    w.show()
    w.speed.setCurrentIndex(w.speed.findData(2.0))
    w.open_file(tmp / "tones.wav")
    for _ in range(600):
        if w.history.frames >= 1 + 4 * SR // 256:
            break
        qapp.processEvents()
        QtCore.QThread.msleep(20)
    w.redraw()
    yield w
    w.close()


def hover(qtbot, w: MainWindow, t: float, f: float) -> tuple[str, float]:
    """Move the mouse to (stream time t s, f Hz); the readout text and the Hz of one pixel there."""
    vb = w.view.plot.vb
    y = float(to_axis(f, w.view.scale))
    pos = w.view.mapFromScene(vb.mapViewToScene(QtCore.QPointF(t - w.view.now, y)))
    w.readout.setText("")
    qtbot.wait(50)  # pyqtgraph drops mouse moves that come within 10 ms of the last one
    port = w.view.viewport()
    nothing = QtCore.Qt.MouseButton.NoButton
    move = QtGui.QMouseEvent(
        QtCore.QEvent.Type.MouseMove,
        QtCore.QPointF(pos),
        QtCore.QPointF(port.mapToGlobal(pos)),
        nothing,
        nothing,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    QtCore.QCoreApplication.sendEvent(port, move)
    qtbot.waitUntil(lambda: "peak" in w.readout.text(), timeout=5000)
    px = w.view.visible().height() / vb.height()
    from rtdstft.pitch import from_axis

    return w.readout.text(), float(from_axis(y + px, w.view.scale) - f)


def field(text: str, key: str, unit: str) -> float:
    return float(text.split(key)[1].split(unit)[0])


@pytest.mark.parametrize("scale", ["mel", "log"])
def test_readout_reads_the_tones_and_notes(qtbot, window, scale):
    w = window
    (w.display.mel if scale == "mel" else w.display.log).setChecked(True)
    assert w.view.scale == scale
    qtbot.wait(100)

    text, px_hz = hover(qtbot, w, 1.0, 440.0)
    assert abs(field(text, "f ", "Hz") - 440.0) <= px_hz, text  # the pointer's frequency
    peak = field(text, "peak ", "Hz")
    assert abs(1200 * np.log2(peak / 440.0)) <= 2, text
    assert "A4" in text and abs(field(text, "A4 ", "¢")) <= 2, text

    text, px_hz = hover(qtbot, w, 3.0, 1000.0)
    assert abs(field(text, "f ", "Hz") - 1000.0) <= px_hz, text
    assert abs(field(text, "peak ", "Hz") - 1000.0) <= 0.5, text  # bins are 23.4 Hz apart
    assert "B5" in text, text  # 1000 Hz is B5 +21 cents
    assert field(text, "B5 ", "¢") == pytest.approx(21, abs=2)


def test_harmonic_cursor_and_tuning(qtbot, window):
    w = window
    w.display.log.setChecked(True)
    w.display.harmonics.setChecked(True)
    w.display.a4.setValue(442.0)
    text, _ = hover(qtbot, w, 1.0, 440.0)
    assert field(text, "A4 ", "¢") == pytest.approx(1200 * np.log2(440 / 442), abs=2)  # -7.8 cents
    lines = w.view.harmonic_lines
    assert lines[0].isVisible() and 10 ** lines[0].value() == pytest.approx(880.0, abs=1.0)
    assert 10 ** lines[2].value() == pytest.approx(4 * 440.0, abs=2.0)
    w.display.harmonics.setChecked(False)
    assert not any(line.isVisible() for line in lines)
