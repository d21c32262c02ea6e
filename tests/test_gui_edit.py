"""Spectral editing in the real application: a replayed 16-bit file, gains applied on selections
with the edit panel's buttons, undone and redone, stacked, previewed and exported; the exported file
equals what the library writes for the same list of edits, and the source file is left as it was."""

from __future__ import annotations

import math
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from audio_helpers import audio_test  # noqa: E402
from PyQt6 import QtCore, QtTest  # noqa: E402
from rtdstft_gui import worker as worker_module  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

from rtdstft import audio  # noqa: E402
from rtdstft.edit import Edit, engine_theta, spectral_edit  # noqa: E402
from rtdstft.selection import Region  # noqa: E402

RATE = 16000
SECONDS = 2.0
WAIT_MS = 30000


def signal() -> np.ndarray:
    """Stereo: 1 kHz and 3 kHz tones at once (left), noise (right), 16-bit values."""
    t = np.arange(int(SECONDS * RATE)) / RATE
    rng = np.random.default_rng(3)
    left = 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)
    right = 0.05 * rng.standard_normal(t.shape)
    return np.round(np.stack([left, right], axis=1) * 32767) / 32768


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """The window after replaying the whole source file; a replay that falls behind the wall clock
    catches up instead of skipping ahead, so every sample reaches the engine on a busy machine."""
    tmp = tmp_path_factory.mktemp("editwin")
    src = tmp / "source.wav"
    sf.write(str(src), signal(), RATE, subtype="PCM_16")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(worker_module, "MAX_BACKLOG_S", 1e6)
        # One band: the picture is then exactly the frames the edit goes through.
        w = MainWindow(
            settings_path=str(tmp / "settings.ini"), recordings_dir=str(tmp / "rec"), overrides={"bands": 1}
        )
        w.resize(1360, 900)
        w.show()
        w.open_file(str(src))
        samples = int(SECONDS * RATE)

        def replayed() -> bool:
            h = w.history
            return w.source_path == str(src) and h.sample_rate == RATE and h.frames == 1 + samples // h.hop

        deadline = time.monotonic() + WAIT_MS / 1000
        while not replayed() and time.monotonic() < deadline:
            QtTest.QTest.qWait(50)
        assert replayed()
        yield w, src
        w.close()


def click(button) -> None:
    assert button.isEnabled()
    QtTest.QTest.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)


def read16(path) -> np.ndarray:
    return sf.read(str(path), dtype="int16")[0]


def library16(src, edits: list[Edit], cfg) -> np.ndarray:
    x, sr = sf.read(str(src), dtype="float64")
    y = spectral_edit(x, sr, edits, config=cfg).audio
    return np.clip(np.rint(y * 32768), -32768, 32767).astype(np.int16)


def test_stacked_edits_undo_redo_and_export_equal_the_library(window, tmp_path):
    w, src = window
    panel = w.edit
    before = src.read_bytes()
    w.selection.set_region(Region(0.5, 1.2, 2700.0, 3300.0))  # the 3 kHz tone, left channel
    panel.gain.setValue(panel.gain.minimum())  # shown as -inf
    panel.edge_ms.setValue(20.0)
    panel.edge_hz.setValue(80.0)
    click(panel.apply_button)
    w.selection.set_region(Region(0.8, 1.6, 600.0, 1400.0))  # the 1 kHz tone
    panel.gain.setValue(-12.0)
    click(panel.apply_button)
    first = Edit(Region(0.5, 1.2, 2700.0, 3300.0), -math.inf, 20.0, 80.0)
    second = Edit(Region(0.8, 1.6, 600.0, 1400.0), -12.0, 20.0, 80.0)
    assert panel.edits == [first, second] and panel.list.count() == 2
    cfg = w.worker.config
    assert cfg.sample_rate == RATE

    both = tmp_path / "both.wav"
    panel.export(both)
    assert sf.info(str(both)).subtype == "PCM_16" and sf.info(str(both)).channels == 2
    np.testing.assert_array_equal(read16(both), library16(src, [first, second], cfg))

    click(panel.undo_button)
    assert panel.edits == [first] and panel.list.count() == 1
    one = tmp_path / "one.wav"
    panel.export(one, subtype="PCM_24")
    assert sf.info(str(one)).subtype == "PCM_24"
    x = sf.read(str(src))[0]
    y = sf.read(str(one))[0]
    lib = spectral_edit(x, RATE, [first], config=cfg).audio
    np.testing.assert_array_equal(y, np.clip(np.rint(lib * 2**23), -(2**23), 2**23 - 1) / 2**23)
    t = np.arange(x.shape[0]) / RATE
    far = (t < 0.5 - 0.1) | (t > 1.2 + 0.1)
    np.testing.assert_array_equal(y[far], x[far])  # bit-exact away from the edit
    assert np.abs(y - x).max() > 0.1  # the 3 kHz tone is gone under the edit
    assert not np.array_equal(read16(one), read16(both))  # the undone edit is gone from the export

    click(panel.redo_button)
    assert panel.edits == [first, second]
    again = tmp_path / "again.wav"
    panel.export(again)
    assert again.read_bytes()[44:] == both.read_bytes()[44:]  # the same samples as before the undo
    assert src.read_bytes() == before  # exports never touch the source

    # The preview: the applied edits and the pending one, the selection plus 0.5 s either side.
    w.selection.set_region(Region(1.0, 1.4, 2700.0, 3300.0))
    panel.gain.setValue(0.0)
    p = panel.preview_samples()
    assert p.shape[0] == pytest.approx((1.4 - 1.0 + 2 * 0.5) * RATE, abs=2)
    whole = library16(src, [first, second], cfg).astype(np.float64) / 32768
    np.testing.assert_allclose(p, whole[8000 : 8000 + p.shape[0]].mean(axis=1), atol=1e-4)


@audio_test
def test_preview_plays_the_edit_with_context_through_the_sink(qtbot, window):
    w, _src = window
    panel = w.edit
    devices = audio.list_devices()
    pulse_in = next(d["index"] for d in devices if d["max_input_channels"] > 0 and d["name"] == "pulse")
    pulse_out = next(d["index"] for d in devices if d["max_output_channels"] > 0 and d["name"] == "pulse")
    w.devices.output.setCurrentIndex(max(w.devices.output.findData(pulse_out), 0))
    w.selection.set_region(Region(0.6, 1.4, 2700.0, 3300.0))
    panel.gain.setValue(panel.gain.minimum())
    expected = panel.preview_samples()
    played: list = []
    w.worker.played.connect(played.append)
    capture = audio.MicrophoneSource(pulse_in, sample_rate=RATE, latency=0.1)
    try:
        capture.start()
        qtbot.wait(300)
        capture.read_available()
        click(panel.preview_button)
        qtbot.waitUntil(lambda: bool(played), timeout=20000)
        qtbot.wait(int(1000 * len(played[0]) / RATE) + 1200)
        heard = capture.read_available()
    finally:
        capture.close()
    np.testing.assert_array_equal(played[0], expected)
    # The sink heard it: the 3 kHz tone in the 0.5 s of context before, gone under the edit.
    loud = np.flatnonzero(np.abs(heard) > 0.05)
    assert len(loud) and loud[-1] - loud[0] > 0.9 * len(expected), "the sink did not get the preview"
    got = heard[loud[0] :]
    assert len(got) >= len(expected) - RATE // 100, "the capture ended before the preview"

    def level_3k(x: np.ndarray) -> float:
        t = np.arange(len(x)) / RATE
        return 20 * np.log10(abs(np.mean(x * np.exp(-2j * np.pi * 3000 * t))) + 1e-12)

    context = got[: int(0.4 * RATE)]
    edited = got[int(0.7 * RATE) : int(1.2 * RATE)]
    assert level_3k(context) - level_3k(edited) >= 40


def test_the_picture_and_the_edit_share_their_frames(window):
    """The θ the replay drew (the history, of the mono mix the view shows) is the θ the library's
    engine finds offline for the same samples: the edit works on the frames on screen."""
    w, _src = window
    h = w.history
    assert h.first_frame == 0 and h.samples == int(SECONDS * RATE)
    x = h.audio[: h.samples].astype(np.float64)
    theta = engine_theta(x, w.worker.config)
    np.testing.assert_array_equal(h.theta[: h.frames, 0], theta)
    # The stereo file's edit takes that θ, of the mix on screen, for both channels.
    np.testing.assert_array_equal(w.edit._analysed()[4], theta)


def test_edits_of_a_deleted_file_say_why_and_the_engine_goes_on(qtbot, tmp_path, monkeypatch):
    """The replayed file is deleted (its replay goes on from the open handle); the edit panel
    then reads it again for a preview or an export. Both must fail with a message, not take the
    engine thread down (a preview's samples are made there: an exception other than the ones it
    expected ended the thread, and the picture froze for good) nor abort the application."""
    from PyQt6 import QtWidgets

    path = tmp_path / "gone.wav"
    sf.write(path, np.tile(signal(), 10), RATE, subtype="PCM_16")
    w = MainWindow(
        settings_path=str(tmp_path / "s.ini"),
        recordings_dir=str(tmp_path / "rec"),
        overrides={"n_fft": 1024, "hop_length": 128, "bands": 1},
    )
    qtbot.addWidget(w)
    w.show()
    w.open_file(path)
    qtbot.waitUntil(lambda: w.history.frames > 1 + RATE // 128, timeout=WAIT_MS)
    w.selection.set_region(Region(0.2, 0.6, 500.0, 2000.0))
    path.unlink()
    warnings = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", staticmethod(lambda *a: warnings.append(a[-1])))
    click(w.edit.preview_button)
    qtbot.waitUntil(lambda: "gone.wav" in w.banner.text(), timeout=WAIT_MS)
    assert w.worker.isRunning() and w.worker.call(lambda wk: wk.kind) == "file"
    frames = w.history.frames
    qtbot.waitUntil(lambda: w.history.frames > frames, timeout=WAIT_MS)  # the analysis goes on
    click(w.edit.apply_button)
    out = str(tmp_path / "edited.wav")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (out, "")))
    click(w.edit.export_button)
    assert len(warnings) == 1 and "gone.wav" in warnings[0]
    assert w.worker.call(lambda wk: wk.kind) == "file"
    w.close()
