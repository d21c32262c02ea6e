"""Label files and exports of a replayed file are on the FILE's clock: the history's stream time
goes on across seeks and loops, its marks (:meth:`History.file_time`) map it back. Unit tests of
the mapping, and the real application replaying a short file in a loop (offscreen, pytest-qt)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from rtdstft_gui.history import History  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

from rtdstft.selection import Region  # noqa: E402

SR = 16000
WAIT_MS = 120000


def filled(seconds: float, history_seconds: float = 60.0) -> History:
    """A history of ``seconds`` of silent frames at 16 kHz, N = 256, H = 64, from stream time 0."""
    h = History(history_seconds)
    h.reset(SR, 256, 64)
    n = int(seconds * SR / 64)
    for a in range(0, n, 500):
        k = np.arange(a, min(a + 500, n))
        h.add_frames(np.full((len(k), 129), -80.0), np.full(len(k), 128.0), k * 64 / SR)
    return h


def test_file_span_maps_through_seeks_and_loops_and_refuses_a_jump_inside():
    h = filled(6.0)
    h.jump(1.0, 0.0)  # a 1 s file looped at stream time 1 s
    h.mark(2.5, 0.25)  # then seeked to 0.25 s at stream time 2.5 s
    assert h.file_span(0.2, 0.7) == pytest.approx((0.2, 0.7))
    assert h.file_span(1.2, 1.5) == pytest.approx((0.2, 0.5))
    assert h.file_span(2.5, 3.0) == pytest.approx((0.25, 0.75))  # starting at the mark is one stretch
    for t0, t1, at in ((0.8, 1.2, "1.000"), (2.4, 2.6, "2.500")):
        with pytest.raises(ValueError, match=f"spans a jump in the file at {at} s"):
            h.file_span(t0, t1)
    # The inverse: the newest stretch that analysed the file's times whole.
    assert h.stream_span(0.3, 0.5) == pytest.approx((2.55, 2.75))  # after the seek (0.25 at 2.5)
    assert h.stream_span(0.2, 0.5) == pytest.approx((1.2, 1.5))  # the seek went past 0.2 s
    h.reset(SR, 256, 64, file_time=0.5)  # opened at 0.5 s into the file,
    h.mark(1.0, 3.0)  # seeked to 3 s at stream time 1 s: 1.4 .. 1.6 s of the file only across it
    with pytest.raises(ValueError, match="not analysed in one stretch"):
        h.stream_span(1.4, 1.6)
    assert h.stream_span(1.2, 1.4) == pytest.approx((0.7, 0.9))


def test_a_live_input_keeps_stream_time():
    h = filled(3.0)
    h.reset(SR, 256, 64, time0=5.0)  # a microphone: no file time, the clock is the stream's
    assert h.file_span(5.5, 6.0) == (5.5, 6.0) and h.stream_span(5.5, 6.0) == (5.5, 6.0)


def test_marks_outlive_the_stretches_the_history_forgets():
    """A kept selection's label maps to the file after the history has wrapped past its stretch
    and past the seek that ended it."""
    h = filled(1.0, history_seconds=1.0)
    h.mark(1.0, 10.0)  # seek to 10 s at stream time 1 s
    for a in range(250, 250 * 4, 250):  # 3 more seconds: the history holds the last one only
        k = np.arange(a, a + 250)
        h.add_frames(np.full((250, 129), -80.0), np.full(250, 128.0), k * 64 / SR)
    assert h.time_span()[0] > 2.5
    h.jump(4.0, 0.0)  # a later mark (a loop) must not drop the earlier ones
    assert h.file_span(0.2, 0.4) == pytest.approx((0.2, 0.4))
    assert h.file_span(3.2, 3.4) == pytest.approx((12.2, 12.4))


def loop_with_room(h: History, before: float, after: float) -> float | None:
    """The stream time (s) of a loop of the replayed file with no other mark (a busy machine's
    replay skips samples when the engine falls behind: a mark too) and the history's ends at least
    ``before`` s before it and ``after`` s after it; None while there is none."""
    times = [m[0] for m in h.marks]
    oldest, newest = h.time_span()
    return next(
        (
            s
            for s, a in h.marks[1:]
            if a == 0.0
            and oldest <= s - before
            and s + after <= newest
            and not any(s - before < t < s + after for t in times if t != s)
        ),
        None,
    )


@pytest.fixture
def looped(qtbot, tmp_path):
    """A window that replayed a 1 s file (a 1 kHz tone, 16 kHz) in a loop at 4 × real time until
    its history held a loop with 0.3 s before it and 0.6 s after it free of other marks, then
    paused. (The waits are on state, generous: on a busy machine the engine falls behind, and
    the replay skips samples and takes longer.)"""
    path = tmp_path / "second.wav"
    t = np.arange(SR) / SR
    sf.write(path, (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR, subtype="FLOAT")
    w = MainWindow(
        settings_path=str(tmp_path / "settings.ini"),
        recordings_dir=str(tmp_path / "rec"),
        overrides={"n_fft": 512, "hop_length": 128, "bands": 1},
    )
    qtbot.addWidget(w)
    w.show()
    w.loop.setChecked(True)
    w.speed.setCurrentIndex(w.speed.findData(4.0))
    w.open_file(str(path))
    qtbot.waitUntil(lambda: loop_with_room(w.history, 0.3, 0.6) is not None, timeout=WAIT_MS)
    w.worker.set_playing(False)
    qtbot.waitUntil(lambda: not w.worker.call(lambda wk: wk.playing, timeout=60.0), timeout=WAIT_MS)
    w.redraw()
    yield w
    w.close()


def test_labels_and_exports_of_a_looped_replay_are_on_the_files_clock(qtbot, looped, tmp_path):
    w, sel, h = looped, looped.selection, looped.history
    # Each loop is marked where the file starts again (file time 0), right after its last sample.
    loops = [s for s, a in h.marks[1:] if a == 0.0]
    assert loops
    for s in loops:
        assert h.file_time(s - 1e-4) == pytest.approx(1.0 - 1e-4, abs=1e-6)
    s = loop_with_room(h, 0.2, 0.6)
    assert w.view.file_time(s + 0.3) == pytest.approx(0.3)
    sel.set_region(Region(s - 0.2, s + 0.2, 500.0, 1500.0))
    sel.keep("across the loop")
    assert not sel.regions and "spans a jump in the file" in sel.hint.text()
    sel.set_region(Region(s + 0.2, s + 0.5, 500.0, 1500.0))
    sel.keep("after the loop")
    assert len(sel.regions) == 1 and "0.20–0.50 s" in sel.list.item(0).text()
    kept = list(sel.regions)
    for raven, name in ((False, "labels.txt"), (True, "table.selections.txt")):
        path = sel.save_labels(tmp_path / name, raven=raven)
        rows = path.read_text().splitlines()
        begin = rows[0].split("\t")[:2] if not raven else rows[1].split("\t")[3:5]
        assert [float(x) for x in begin] == pytest.approx([0.2, 0.5])
        # Loaded back: where the history analysed those file times (the newest pass), and saved
        # again the same file.
        (loaded,) = sel.load_labels(path)
        assert loaded.t0 >= kept[0].t0 - 1e-9 and h.file_span(loaded.t0, loaded.t1) == pytest.approx(
            (0.2, 0.5)
        )
        assert sel.save_labels(tmp_path / f"again-{name}", raven=raven).read_text() == path.read_text()
        sel.regions = kept
    # The per-frame exports: time on the file's clock too; frame_index stays the stream's.
    sel.set_region(kept[0])
    qtbot.waitUntil(lambda: bool(sel.measurement), timeout=WAIT_MS)
    rows = sel.export_csv(tmp_path / "s.csv").read_text().splitlines()[1:]
    times = np.array([float(r.split(",")[1]) for r in rows])
    assert len(times) > 10 and times.min() >= 0.2 - 1e-6 and times.max() <= 0.5 + 1e-6
    npz = np.load(sel.export_npz(tmp_path / "s.npz"))
    assert np.allclose(npz["time"], times, atol=1e-6)
    assert npz["frame_index"][0] * 128 / SR == pytest.approx(times[0] + s)


def test_an_edit_of_a_looped_replay_applies_to_the_files_stretch_and_refuses_a_loop_inside(
    qtbot, looped, monkeypatch
):
    """An edit applies to the replayed file: a selection after a loop is that stretch of the file;
    one across the loop is two stretches, so the Apply and Preview buttons say why and add nothing
    (an exception out of a slot would abort the application)."""
    from PyQt6 import QtCore, QtWidgets

    w, h = looped, looped.history
    warnings = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", staticmethod(lambda *a: warnings.append(a[-1])))
    s = loop_with_room(h, 0.2, 0.5)
    w.selection.set_region(Region(s - 0.2, s + 0.2, 500.0, 1500.0))
    for button in (w.edit.apply_button, w.edit.preview_button):
        qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
    assert w.edit.edits == [] and len(warnings) == 2 and all("spans a jump" in m for m in warnings)
    w.selection.set_region(Region(s + 0.2, s + 0.5, 500.0, 1500.0))
    qtbot.mouseClick(w.edit.apply_button, QtCore.Qt.MouseButton.LeftButton)
    (edit,) = w.edit.edits
    assert (edit.region.t0, edit.region.t1) == pytest.approx((0.2, 0.5))


def test_a_selection_is_held_frames_only_and_measured_on_the_files_clock(qtbot, looped):
    """A box drawn past the newest frame (or before the oldest) is cut to the frames the history
    holds: its measurement, label and exports cover what was analysed, not the empty rest. The
    measured start and end are on the file's clock, as the readout and the label list are."""
    sel, h = looped.selection, looped.history
    oldest, newest = h.time_span()
    sel.set_region(Region(newest - 0.3, newest + 5.0, 500.0, 1500.0))
    assert sel.region.t0 == newest - 0.3 and sel.region.t1 == pytest.approx(newest)
    sel.set_region(Region(oldest - 5.0, oldest + 0.3, 500.0, 1500.0))
    assert sel.region.t0 == pytest.approx(oldest) and sel.region.t1 == oldest + 0.3
    s = loop_with_room(h, 0.3, 0.5)
    sel.set_region(Region(s + 0.2, s + 0.5, 500.0, 1500.0))
    qtbot.waitUntil(lambda: bool(sel.measurement), timeout=WAIT_MS)
    assert sel.fields["start"].text() == "0.200 s" and sel.fields["end"].text() == "0.500 s"
    assert sel.fields["duration"].text() == "0.300 s"
    sel.set_region(Region(s - 0.3, s, 500.0, 1500.0))  # up to the loop: the file's end, not its start
    qtbot.waitUntil(lambda: bool(sel.measurement), timeout=WAIT_MS)
    assert sel.fields["start"].text() == "0.700 s" and sel.fields["end"].text() == "1.000 s"


def test_the_worker_marks_loops_and_skipped_samples_where_they_happen(qapp, tmp_path):
    """The engine thread's file replay, driven step by step on a fake clock: a loop, and a backlog
    it skips (the engine fell behind by more than MAX_BACKLOG_S), each give a mark, so that the
    history maps every frame to the file sample it was centred on. Its start is not falling
    behind: a backlog before the first block (the engine built) and the first call's time (its
    warm-up) skip nothing, and the file is analysed from its first sample."""
    from rtdstft_gui.worker import MAX_BACKLOG_S, EngineWorker, Frames, Geometry, Jump, Samples

    from rtdstft import audio
    from rtdstft.config import StreamConfig

    path = tmp_path / "ramp.wav"
    sf.write(path, np.zeros(SR, np.float32), SR, subtype="FLOAT")  # 1 s
    now = [0.0]
    worker = EngineWorker(config=StreamConfig(sample_rate=SR, n_fft=256, hop_length=64))
    source = audio.FileSource(str(path), realtime=True, loop=True, clock=lambda: now[0])
    worker._use_source(source, "file", str(path))
    source.start()
    worker.playing = True
    h = History(60.0)
    expected = []  # (stream time of a block's first sample, file sample it read from)
    process = worker.engine.process

    def slow_first_call(block):  # a cold engine's first call: as long as MAX_BACKLOG_S and more
        if not worker._fed:
            now[0] += 2 * MAX_BACKLOG_S
        return process(block)

    worker.engine.process = slow_first_call

    def step(dt: float) -> None:
        now[0] += dt
        fed, t0 = worker._fed, worker._time0
        if worker._step():  # a block of worker._fed - fed samples, ending at the file's tell()
            expected.append((t0 + fed / SR, (source.tell() - (worker._fed - fed)) % SR))
        items, _ = worker.take()
        for item in items:
            if isinstance(item, Geometry):
                h.reset(item.sample_rate, item.n_fft, item.hop, item.time0, {}, item.file_time)
            elif isinstance(item, Jump):
                h.jump(item.time, item.file_time)
            elif isinstance(item, Samples):
                h.add_audio(item.audio)
            elif isinstance(item, Frames):
                h.add_frames(item.db, item.theta, item.time)

    step(2 * MAX_BACKLOG_S)  # a backlog before the first block: not skipped
    for _ in range(50):
        step(0.05)  # 2.5 s: two loops
    step(3 * MAX_BACKLOG_S)  # behind again
    for _ in range(10):
        step(0.05)
    skips = [m for m in h.marks[1:] if m[1] != 0.0]
    loops = [m for m in h.marks[1:] if m[1] == 0.0]
    assert len(skips) == 1 and len(loops) >= 2 and worker.dropped_blocks == 1
    assert expected[0][1] == 0 and expected[1][1] > 0  # from the file's start, on from there
    # Each block's first sample maps to the file sample it was read from, whatever was skipped or
    # looped before it.
    assert len(expected) > 40
    for t, pos in expected:
        assert float(h.file_time(t)) == pytest.approx(pos / SR, abs=1e-9)
    worker._close_source()


def test_the_list_shows_a_region_across_a_jump_of_this_source_as_drawn(looped):
    """A kept list outlives its source (another file opened): a region that spans a jump of the
    new history is listed in stream time instead of failing the list's refill (an exception in a
    slot would abort the application)."""
    sel, h = looped.selection, looped.history
    s = loop_with_room(h, 0.2, 0.2)
    sel.regions = [Region(s - 0.2, s + 0.2, 500.0, 1500.0, "old")]
    sel._refill()
    assert f"{s - 0.2:.2f}–{s + 0.2:.2f} s" in sel.list.item(0).text()
