"""Time-frequency selections in the real application: a Shift+drag box over a replayed file with
1 kHz and 3 kHz tones at once, played through the PulseAudio null sink and captured from its
monitor (the band-limited replay, and the whole band = the original), exported (NPZ frames equal
to what the engine emitted, WAV equal to what was played, CSV) and kept in label files."""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from audio_helpers import audio_test  # noqa: E402
from PyQt6 import QtCore, QtGui, QtTest, QtWidgets  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

from rtdstft import StreamingDSTFT, audio  # noqa: E402
from rtdstft.config import StreamConfig  # noqa: E402
from rtdstft.export import read_settings  # noqa: E402
from rtdstft.selection import Region  # noqa: E402

RATE = 48000
WAIT_MS = 30000


def tones(seconds: float = 4.0) -> np.ndarray:
    """1 kHz and 3 kHz (amplitude 0.3 each) throughout, and a fast chirp 6 -> 21 kHz (amplitude
    0.5) at 1.2-1.6 s that pulls θ down there, so that θ varies inside the selections."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)
    chirp = (t >= 1.2) & (t < 1.6)
    tc = t[chirp] - 1.2
    x[chirp] += 0.5 * np.sin(2 * np.pi * (6000 * tc + 37500 * tc**2 / 2))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def tones_wav(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("sel") / "tones.wav"
    sf.write(path, tones(), RATE, subtype="FLOAT")
    return str(path)


@pytest.fixture(scope="module")
def replayed(qapp, tmp_path_factory, tones_wav):
    """One window for the module that has replayed the whole tones file at real time (N = 2048,
    H = 256, adaptive θ), so that stream time is file time; the tests then only look back."""
    tmp = tmp_path_factory.mktemp("selwin")
    w = MainWindow(
        settings_path=str(tmp / "settings.ini"),
        recordings_dir=str(tmp / "rec"),
        overrides={"n_fft": 2048, "hop_length": 256, "bands": 1},  # selections recompute one θ per frame
    )
    w.resize(1360, 900)
    w.show()
    # No hold on θ: the short chirp must move θ inside the selections, however briefly.
    w.worker.configure(steadiness=0.0)
    w.open_file(tones_wav)
    deadline = time.monotonic() + WAIT_MS / 1000
    while w.history.frames < 751 and time.monotonic() < deadline:  # 1 + 4 s · 48000 / 256
        QtTest.QTest.qWait(50)
    assert w.history.frames == 751 and w.history.time_span()[1] == pytest.approx(4.0)
    yield w
    w.close()


def drag_box(qtbot, w: MainWindow, t0: float, t1: float, f0: float, f1: float) -> None:
    """Shift + drag on the spectrogram from (t0, f1) to (t1, f0) (stream time s, Hz)."""
    w.view.plot.setXRange(t0 - 0.5 - w.view.now, t1 + 0.5 - w.view.now, padding=0)
    w.view._looked()
    qtbot.wait(100)  # the new range reaches the view's transform at the next layout pass
    vb = w.view.plot.vb
    shift = QtCore.Qt.KeyboardModifier.ShiftModifier
    left = QtCore.Qt.MouseButton.LeftButton

    def at(t: float, f: float) -> QtCore.QPoint:
        return w.view.mapFromScene(vb.mapViewToScene(QtCore.QPointF(t - w.view.now, f)))

    port = w.view.viewport()
    a, b = at(t0, f1), at(t1, f0)

    def send(kind, p: QtCore.QPoint, button, buttons) -> None:
        # QTest's mouseMove carries no pressed buttons in Qt 6: build the events whole.
        g = QtCore.QPointF(port.mapToGlobal(p))
        QtCore.QCoreApplication.sendEvent(
            port, QtGui.QMouseEvent(kind, QtCore.QPointF(p), g, button, buttons, shift)
        )

    kind, none = QtCore.QEvent.Type, QtCore.Qt.MouseButton.NoButton
    send(kind.MouseButtonPress, a, left, left)
    for s in np.linspace(0.1, 1.0, 6):
        send(
            kind.MouseMove,
            QtCore.QPoint(int(a.x() + s * (b.x() - a.x())), int(a.y() + s * (b.y() - a.y()))),
            none,
            left,
        )
    send(kind.MouseButtonRelease, b, left, none)


def test_shift_drag_selects_and_measures(qtbot, replayed):
    w = replayed
    drag_box(qtbot, w, 1.0, 2.5, 700.0, 1300.0)
    qtbot.waitUntil(lambda: bool(w.selection.measurement), timeout=5000)
    r = w.selection.region
    px_t = w.view.visible().width() / w.view.plot.vb.width()
    px_f = w.view.visible().height() / w.view.plot.vb.height()
    assert (r.t0, r.t1) == pytest.approx((1.0, 2.5), abs=3 * px_t)
    assert (r.f0, r.f1) == pytest.approx((700.0, 1300.0), abs=3 * px_f)
    m = w.selection.measurement
    assert abs(m["peak_hz"] - 1000.0) < 0.5
    assert abs(m["peak_db"] - 20 * np.log10(0.3)) < 0.5
    assert abs(m["energy_db"] - 20 * np.log10(0.3)) < 0.5
    assert w.selection.fields["peak"].text().startswith("1000.0")
    assert w.view.region_item.isVisible()


def _capture_play(qtbot, w: MainWindow, region: Region) -> tuple[np.ndarray, np.ndarray]:
    """Play ``region`` to the null sink; (what was played, what the sink's monitor heard)."""
    devices = audio.list_devices()
    pulse_in = next(
        (d["index"] for d in devices if d["max_input_channels"] > 0 and d["name"] == "pulse"), None
    )
    pulse_out = next(
        (d["index"] for d in devices if d["max_output_channels"] > 0 and d["name"] == "pulse"), None
    )
    w.devices.output.setCurrentIndex(max(w.devices.output.findData(pulse_out), 0))
    played: list = []
    w.worker.played.connect(played.append)
    w.selection.set_region(region)
    capture = audio.MicrophoneSource(pulse_in, sample_rate=RATE, latency=0.1)
    try:
        capture.start()
        qtbot.wait(300)
        capture.read_available()
        w.selection.play()
        qtbot.waitUntil(lambda: bool(played), timeout=10000)
        qtbot.wait(int(1000 * len(played[0]) / RATE) + 1200)
        heard = capture.read_available()
    finally:
        capture.close()
    return played[0], heard


def _level(x: np.ndarray, hz: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(spec[np.abs(f - hz) < 15].max())


@audio_test
def test_band_selection_plays_only_its_band_through_the_sink(qtbot, replayed):
    played, heard = _capture_play(qtbot, replayed, Region(1.0, 2.5, 700.0, 1300.0))
    loud = np.flatnonzero(np.abs(heard) > 0.05)
    assert len(loud) > RATE, f"the sink got {len(loud)} loud samples"
    part = heard[loud[0] + RATE // 10 : loud[-1] - RATE // 10]  # inside the fades
    ratio = 20 * np.log10(_level(part, 1000) / _level(part, 3000))
    assert ratio >= 40, ratio
    assert 0.25 < np.percentile(np.abs(part), 99.5) < 0.35  # the 1 kHz tone, amplitude 0.3


def _without_silences(x: np.ndarray, shortest: int = 32) -> np.ndarray:
    """``x`` less every run of at least ``shortest`` silent samples (|x| < 1e-4): what an output
    underrun inserts. The tones here cross zero far too steeply to have such runs."""
    quiet = np.concatenate([[False], np.abs(x) < 1e-4, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    keep = np.ones(len(x), bool)
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start >= shortest:
            keep[start:stop] = False
    return x[keep]


def _where(heard: np.ndarray, probe: np.ndarray, lo: int, hi: int, near: int) -> int | None:
    """The start in ``heard[lo:hi]`` where ``probe`` fits (squared error 60 dB below its energy;
    the largest correlation would go to a louder stretch) nearest to ``near``, since a periodic
    stretch fits every period. None where it fits nowhere."""
    lo = max(lo, 0)
    window = heard[lo : hi + len(probe)].astype(np.float64)
    if len(window) < len(probe):
        return None
    p = probe.astype(np.float64)
    energy = np.concatenate([[0.0], np.cumsum(window**2)])
    error = energy[len(p) :] - energy[: -len(p)] - 2 * np.correlate(window, p, mode="valid") + p @ p
    fits = lo + np.flatnonzero(error <= 1e-6 * (p @ p))
    return int(fits[np.argmin(np.abs(fits - near))]) if len(fits) else None


def _follow(heard: np.ndarray, inner: np.ndarray, original: np.ndarray) -> tuple[float, int]:
    """Follow ``inner`` (what was played) through ``heard`` (what the sink's monitor captured)
    10 ms at a time; a block is heard when it equals ``original`` there within 60 dB.

    A busy machine can starve the output callback, which inserts silence (an underrun; removed
    here first) and can make PulseAudio drop what then arrives behind its read index, or starve
    the capture, which loses samples. The rest then resumes elsewhere in ``heard``: found again
    from the next 50 ms, within 0.5 s. The block across such a gap is not heard.

    Returns (the fraction of ``inner`` heard, blocks not heard).
    """
    heard = _without_silences(heard)
    block, probe_len = RATE // 100, RATE // 20
    # The first delay from the chirp (``inner`` from 0.1 s), which fits only once: its first
    # 50 ms that fits somewhere whole.
    for start in range(RATE // 10, RATE // 2, probe_len):
        found = _where(heard, inner[start : start + probe_len], 0, len(heard), 0)
        if found is not None:
            delay = found - start
            break
    else:
        return 0.0, 0
    heard_samples = missed = 0
    for i in range(0, len(inner) - block + 1, block):
        got, want = heard[i + delay : i + delay + block], original[i : i + block]
        if len(got) < block:
            break  # the capture ended before the replay: what is left counts as not heard
        if np.sum((got - want) ** 2) <= 1e-6 * np.sum(want**2):
            heard_samples += block
            continue
        missed += 1
        here = i + block + delay
        probe = inner[i + block : i + block + probe_len]
        found = _where(heard, probe, here - RATE // 2, here + RATE // 2, here)
        if found is not None:
            delay = found - (i + block)
    return heard_samples / len(inner), missed


@audio_test
def test_whole_band_selection_plays_the_original(qtbot, replayed):
    played, heard = _capture_play(qtbot, replayed, Region(1.0, 2.5, 0.0, RATE / 2))
    x = tones()
    inner = played[RATE // 10 : -RATE // 10]  # inside the 20 ms fades and the windows over them
    original = x[int(1.1 * RATE) : int(1.1 * RATE) + len(inner)]
    assert 10 * np.log10(np.sum(original**2) / np.sum((inner - original) ** 2)) > 60
    # What the sink heard is that, delayed, sample for sample. Where a busy machine cut gaps, what
    # it lost was not heard: three quarters of the selection must be. A wrong rate, gain or band
    # gets none of it through, a cut tail half.
    fraction, missed = _follow(heard, inner, original)
    assert fraction >= 0.75, (fraction, missed)


@audio_test  # it plays the selection to the output device
def test_exports_equal_the_engine_and_the_played_audio(qtbot, replayed, tmp_path):
    w = replayed
    w.selection.set_region(Region(1.0, 2.0, 700.0, 1300.0))
    played: list = []
    w.worker.played.connect(played.append)
    w.devices.output.setCurrentIndex(0)
    w.selection.play()
    qtbot.waitUntil(lambda: bool(played), timeout=10000)

    # NPZ: the frames equal what the engine emits for the same input (θ as it chose).
    z = np.load(w.selection.export_npz(tmp_path / "sel.npz"), allow_pickle=False)
    settings = read_settings(z)
    config = StreamConfig(**{k: settings[k] for k in StreamConfig.fields()})  # every setting is there
    engine = StreamingDSTFT(config=config)
    x = tones()
    outs = [engine.process(x[i : i + 4096]) for i in range(0, len(x), 4096)] + [engine.flush()]
    spec = np.concatenate([o.spec for o in outs])
    theta = np.concatenate([o.win_length for o in outs])
    n = z["frame_index"]
    assert z["time"] == pytest.approx(n * 256 / RATE)
    assert np.max(np.abs(z["spec"] - spec[n])) <= 1e-6 * np.abs(spec).max()
    np.testing.assert_allclose(z["theta"], theta[n], rtol=1e-6)
    assert z["theta"].min() < 0.5 * z["theta"].max()  # θ moved inside the selection
    assert z["freq"][1] == pytest.approx(RATE / 2048) and z["mask"].shape == z["spec"].shape
    assert (z["mask"][:, z["freq"] > 1400] == 0).all() and z["mask"].max() == 1

    # WAV: the audio that was played.
    wav, sr = sf.read(w.selection.export_wav(tmp_path / "sel.wav"), dtype="float32")
    assert sr == RATE and np.array_equal(wav, played[0])

    # CSV: θ and the refined peak of every frame.
    rows = w.selection.export_csv(tmp_path / "sel.csv")
    lines = rows.read_text().splitlines()
    assert lines[0].startswith("frame,time_s,win_length_samples")
    peaks = np.array([float(line.split(",")[4]) for line in lines[1:]])
    assert len(peaks) == len(n) and np.median(np.abs(peaks - 1000)) < 0.5


def test_kept_selections_save_and_load_as_label_files(qtbot, replayed, tmp_path):
    sel = replayed.selection
    for region, label in (
        (Region(0.5, 1.5, 700, 1300, ""), "low tone"),
        (Region(2.0, 3.0, 2500, 3500, ""), "high"),
    ):
        sel.set_region(region)
        sel.keep(label)
    assert sel.list.count() == 2 and "low tone" in sel.list.item(0).text()
    kept = list(sel.regions)
    for raven, name in ((False, "labels.txt"), (True, "table.selections.txt")):
        path = sel.save_labels(tmp_path / name, raven=raven)
        sel.regions = []
        assert sel.load_labels(path) == kept
    first = (tmp_path / "labels.txt").read_text().splitlines()[:2]
    assert first == ["0.500000\t1.500000\tlow tone", "\\\t700.000000\t1300.000000"]
    assert (
        (tmp_path / "table.selections.txt").read_text().startswith("Selection\tView\tChannel\tBegin Time (s)")
    )
    sel.list.setCurrentRow(1)  # picking a kept one makes it the selection, measured
    qtbot.waitUntil(lambda: bool(sel.measurement), timeout=5000)
    assert sel.region == kept[1] and abs(sel.measurement["peak_hz"] - 3000) < 0.5
    # An Audacity label without a band saved as a Raven table reaches the recording's Nyquist
    # frequency: Raven's High Freq column takes numbers, not 'inf'.
    plain = tmp_path / "plain.txt"
    plain.write_text("1.0\t2.0\tno band\n")
    sel.load_labels(plain)
    row = sel.save_labels(tmp_path / "plain.selections.txt", raven=True).read_text().splitlines()[1]
    assert float(row.split("\t")[6]) == sel._history().sample_rate / 2


def test_view_export_has_the_layout_of_analyze_npz(qtbot, replayed, tmp_path, tones_wav, monkeypatch):
    from rtdstft.cli import main

    w = replayed
    w.view.plot.setXRange(1.0 - w.view.now, 3.0 - w.view.now, padding=0)
    w.view.plot.setYRange(500.0, 3500.0, padding=0)
    w.view._looked()
    target = tmp_path / "view.npz"
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), ""))
    )
    w.view.setFocus()
    qtbot.keyClick(
        w,
        QtCore.Qt.Key.Key_E,
        QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier,
    )
    qtbot.waitUntil(target.exists, timeout=10000)
    view = np.load(target, allow_pickle=False)
    assert view["time"][0] == pytest.approx(1.0, abs=256 / RATE) and view["time"][-1] == pytest.approx(
        3.0, abs=256 / RATE
    )
    assert view["freq"][0] >= 500 and view["freq"][-1] <= 3500 and view["freq"][-1] > 3450

    cli = tmp_path / "cli.npz"
    argv = ["analyze", tones_wav, "--npz", str(cli), "--n-fft", "2048", "--hop", "256", "--steadiness", "0"]
    assert main(argv) == 0  # the settings of the window (no hold on θ)
    whole = np.load(cli, allow_pickle=False)
    assert set(whole.files) == set(view.files)
    assert whole["spec"].shape == (751, 1025) and whole["time"][-1] == pytest.approx(4.0)
    n, band = view["frame_index"], np.isin(whole["freq"], view["freq"])
    assert np.max(np.abs(view["spec"] - whole["spec"][n][:, band])) <= 1e-6 * np.abs(whole["spec"]).max()
    np.testing.assert_allclose(view["theta"], whole["theta"][n], rtol=1e-6)
    for key in ("n_fft", "hop_length", "win_min", "win_max", "adapt", "sample_rate"):
        assert read_settings(view)[key] == read_settings(whole)[key], key

    w.export_view(tmp_path / "view.csv")
    rows = (tmp_path / "view.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:2] == ["time_s", "win_length_samples"] and len(header) == 2 + len(view["freq"])
    first = np.array(rows[1].split(","), float)
    k = int(np.argmin(np.abs(view["freq"] - 1000)))
    assert first[2 + k] == pytest.approx(20 * np.log10(0.3), abs=1.5)  # the 1 kHz tone's bin


def test_the_measurement_does_not_block_the_gui_and_the_newest_selection_wins(qtbot, replayed):
    """The engine thread is held busy (a command that waits): a selection then returns at once
    saying "measuring…", the GUI's event loop runs meanwhile, a second selection supersedes the
    first, and once the engine thread is free the panel fills with the second's measurement only."""
    import threading

    sel = replayed.selection
    answers: list[dict] = []
    sel.measured.connect(answers.append)
    release, holding = threading.Event(), threading.Event()

    def hold(_):
        holding.set()
        release.wait(30)

    replayed.worker.post(lambda: hold(None))
    assert holding.wait(10)
    try:
        sel.set_region(Region(0.5, 1.5, 700, 1300))
        assert sel.fields["peak"].text() == "measuring…" and not sel.play_button.isEnabled()
        ticked: list[bool] = []
        QtCore.QTimer.singleShot(0, lambda: ticked.append(True))
        qtbot.waitUntil(lambda: bool(ticked), timeout=2000)  # the event loop runs meanwhile
        sel.set_region(Region(2.0, 3.0, 2500, 3500))
        assert not answers and sel.measurement == {}
    finally:
        release.set()
    qtbot.waitUntil(lambda: bool(answers), timeout=10000)
    qtbot.wait(200)  # an answer to the first selection would come by now: none does
    assert len(answers) == 1 and abs(answers[0]["peak_hz"] - 3000) < 0.5
    assert sel.measurement is answers[0] and sel.fields["peak"].text().startswith("3000.0")
    assert sel.play_button.isEnabled()
    sel.measured.disconnect(answers.append)


def test_a_selection_export_or_play_that_fails_says_why_and_the_app_goes_on(qtbot, tmp_path, monkeypatch):
    """The selection's buttons after its frames have left the history (another file opened: a
    new stream), and an export into a folder that cannot be made: each says why in the panel's
    hint. An exception out of a button's slot aborts a PyQt6 application (pytest-qt fails the
    test on it)."""
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    sf.write(first, tones(3.0), RATE, subtype="FLOAT")
    sf.write(second, tones(30.0)[: 30 * RATE], RATE, subtype="FLOAT")
    w = MainWindow(
        settings_path=str(tmp_path / "settings.ini"),
        recordings_dir=str(tmp_path / "rec"),
        overrides={"n_fft": 1024, "hop_length": 256, "bands": 1},
    )
    qtbot.addWidget(w)
    w.show()
    w.speed.setCurrentIndex(w.speed.findData(4.0))
    w.open_file(first)
    qtbot.waitUntil(lambda: w.history.frames > 1 + int(2.6 * RATE) // 256, timeout=WAIT_MS)
    sel = w.selection
    sel.set_region(Region(2.0, 2.3, 500.0, 1500.0))
    qtbot.waitUntil(lambda: sel.wav_button.isEnabled(), timeout=WAIT_MS)
    # An export into a "folder" that is a file.
    missing = tmp_path / "not-a-folder"
    missing.write_text("a file")
    for button, suffix in ((sel.wav_button, ".wav"), (sel.npz_button, ".npz"), (sel.csv_button, ".csv")):
        target = str(missing / f"sel{suffix}")
        monkeypatch.setattr(
            QtWidgets.QFileDialog, "getSaveFileName", staticmethod(lambda *a, t=target, **k: (t, ""))
        )
        sel.hint.setText("")
        qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
        assert "could not" in sel.hint.text() and "not-a-folder" in sel.hint.text()
    sel.keep("a")
    warnings = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", staticmethod(lambda *a: warnings.append(a[-1])))
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(missing / "l.txt"), ""))
    )
    qtbot.mouseClick(sel.save_button, QtCore.Qt.MouseButton.LeftButton)
    assert len(warnings) == 1 and "not-a-folder" in warnings[0]
    # Another file: the history starts again and no longer holds the selection's frames.
    # (At a quarter of real time, paused at once: it is seconds of the wall clock from 2.0 s.)
    resets = w.history._resets
    w.speed.setCurrentIndex(w.speed.findData(0.25))
    w.open_file(second)
    qtbot.waitUntil(lambda: w.history._resets > resets and w.history.frames > 0, timeout=WAIT_MS)
    w.worker.set_playing(False)
    qtbot.waitUntil(lambda: not w.worker.call(lambda wk: wk.playing), timeout=WAIT_MS)
    w.redraw()
    assert w.history.time_span()[1] < 2.0
    target = str(tmp_path / "sel.wav")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (target, "")))
    for button in (sel.wav_button, sel.play_button):
        sel.hint.setText("")
        qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
        assert "holds nothing" in sel.hint.text()
    assert w.isVisible()
    w.close()
