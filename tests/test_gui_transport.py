"""The transport bar and the recorder in the real application (offscreen): what the user does
with them reaches the worker, and what they show follows what the worker does.

Each test drives a real MainWindow over synthetic files; waits are on the worker's state (asked
in its own thread) or on files on disk, never on the clock alone.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from PyQt6 import QtCore  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

WAIT_MS = 20000


def tone(path, sr: int, seconds: float, amplitude: float, hz: float = 1000.0) -> str:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32), sr, subtype="FLOAT")
    return str(path)


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(
        settings_path=str(tmp_path / "settings.ini"),
        recordings_dir=str(tmp_path / "recordings"),
        overrides={"n_fft": 1024, "hop_length": 128, "bands": 1},
    )
    qtbot.addWidget(w)
    w.resize(1360, 820)
    w.show()
    yield w
    w.close()


def worker_state(w: MainWindow, name: str):
    """An attribute of the worker, read in its own thread (after every command posted)."""
    return w.worker.call(lambda wk: getattr(wk, name))


def test_a_recording_never_mixes_two_sources_rates(qtbot, window, tmp_path):
    """Recording goes on when another file is opened, but each file of the recording holds one
    source at that source's rate: 8 kHz samples written into a 16 kHz WAV would play twice as
    fast and an octave up."""
    w = window
    first = tone(tmp_path / "a16k.wav", 16000, 30.0, 0.5)
    second = tone(tmp_path / "b8k.wav", 8000, 30.0, 0.1)
    rec_dir = tmp_path / "recordings"
    w.open_file(first)
    qtbot.waitUntil(lambda: worker_state(w, "kind") == "file", timeout=WAIT_MS)
    w.toggle_record()
    qtbot.waitUntil(lambda: worker_state(w, "recorder") is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: worker_state(w, "recorder").frames > 4000, timeout=WAIT_MS)
    w.open_file(second)
    qtbot.waitUntil(lambda: worker_state(w, "source").path.name == "b8k.wav", timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: (r := worker_state(w, "recorder")) is not None and r.sample_rate == 8000 and r.frames > 2000,
        timeout=WAIT_MS,
    )
    w.toggle_record()
    qtbot.waitUntil(lambda: worker_state(w, "recorder") is None, timeout=WAIT_MS)
    recordings = {}
    for path in sorted(rec_dir.glob("rec-*.wav")):
        x, rate = sf.read(str(path), dtype="float32")
        recordings[rate] = x
    assert sorted(recordings) == [8000, 16000]
    assert 0.45 < np.max(np.abs(recordings[16000])) < 0.55  # the 16 kHz tone alone
    assert 0.05 < np.max(np.abs(recordings[8000])) < 0.15  # the 8 kHz tone alone


def test_record_without_a_source_says_so_and_unchecks(qtbot, window):
    """Ctrl+R when nothing is playing (the input was lost, no file opened): nothing can be
    recorded, and the button must not claim otherwise."""
    w = window
    assert worker_state(w, "source") is None
    w.toggle_record()
    qtbot.waitUntil(lambda: "record" in w.banner.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not w.record_action.isChecked(), timeout=WAIT_MS)
    assert not w.stats.recording


def test_record_to_an_unwritable_folder_says_so_and_unchecks(qtbot, window, tmp_path):
    w = window
    w.open_file(tone(tmp_path / "a.wav", 16000, 30.0, 0.5))
    qtbot.waitUntil(lambda: worker_state(w, "kind") == "file", timeout=WAIT_MS)
    (tmp_path / "a-file").write_text("not a folder")
    w.recordings_dir = tmp_path / "a-file" / "recordings"
    w.toggle_record()
    qtbot.waitUntil(lambda: "cannot create" in w.banner.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not w.record_action.isChecked(), timeout=WAIT_MS)
    assert worker_state(w, "recorder") is None and not w.stats.recording


def test_the_seek_bar_seeks_by_click_and_keys_not_only_by_drag(qtbot, window, tmp_path):
    """A click on the seek bar's groove (a page step) and its keys (End, Home, arrows) move the
    slider; the replay must go where the slider says, as after a drag."""
    w = window
    w.open_file(tone(tmp_path / "long.wav", 16000, 30.0, 0.5))
    qtbot.waitUntil(lambda: worker_state(w, "kind") == "file" and w.stats.duration > 0, timeout=WAIT_MS)
    w.worker.set_playing(False)  # paused: the position moves only by seeking
    qtbot.waitUntil(lambda: not worker_state(w, "playing") and not w.stats.playing, timeout=WAIT_MS)
    frames = worker_state(w, "source").frames

    def position() -> int:
        return w.worker.call(lambda wk: wk.source.tell())

    w.seek.setFocus()
    qtbot.keyClick(w.seek, QtCore.Qt.Key.Key_End)
    assert w.seek.value() == w.seek.maximum()
    qtbot.waitUntil(lambda: position() == frames, timeout=WAIT_MS)
    qtbot.keyClick(w.seek, QtCore.Qt.Key.Key_Home)
    qtbot.waitUntil(lambda: position() == 0, timeout=WAIT_MS)
    # A click on the groove right of the handle: a page step forward.
    groove = w.seek.rect()
    qtbot.mouseClick(
        w.seek, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(groove.right() - 5, groove.center().y())
    )
    value = w.seek.value()
    assert value > 0
    qtbot.waitUntil(lambda: abs(position() - value / 1000 * frames) <= 1, timeout=WAIT_MS)
