"""Looking back through the history in the real application (offscreen, pytest-qt): scroll and
zoom with the keys and the wheel while a file replays, read the axes' ranges and the picture, and
come back to the live view; the analysis goes on meanwhile."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from PyQt6 import QtCore, QtGui  # noqa: E402
from rtdstft_gui.history import History  # noqa: E402
from rtdstft_gui.spectrogram import lookup_table  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

SR = 16000
WAIT_MS = 30000


@pytest.fixture(scope="module")
def two_part_wav(tmp_path_factory) -> str:
    """0-2 s a 1 kHz tone, 2-9 s a 3 kHz tone (amplitude 0.5)."""
    t = np.arange(9 * SR) / SR
    x = np.where(t < 2.0, np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 3000 * t))
    path = tmp_path_factory.mktemp("history") / "two_part.wav"
    sf.write(path, (0.5 * x).astype(np.float32), SR, subtype="FLOAT")
    return str(path)


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(
        settings_path=str(tmp_path / "settings.ini"),
        recordings_dir=str(tmp_path / "rec"),
        overrides={"n_fft": 1024, "hop_length": 128},
    )
    qtbot.addWidget(w)
    w.resize(1360, 820)
    w.show()
    yield w
    w.close()


def loudest_hz(w: MainWindow) -> float:
    """The frequency of the loudest row of the picture shown (median over its columns)."""
    lut = lookup_table(w.view.cmap)
    order = np.argsort(lut)
    pix = w.view.picture()
    lv = order[np.clip(np.searchsorted(lut[order], pix), 0, 255)]
    r = w.view.visible()
    rows = np.argmax(lv, axis=0)[lv.max(axis=0) > 0]
    y = r.top() + (np.median(rows) + 0.5) * r.height() / lv.shape[0]
    return float(10**y) if w.view.scale == "log" else float(y)


def wheel(w: MainWindow, steps: int, shift: bool = False) -> None:
    """Turn the wheel over the middle of the spectrogram (steps > 0: away from the user)."""
    vb = w.view.plot.vb
    centre = w.view.mapFromScene(vb.sceneBoundingRect().center())
    mods = QtCore.Qt.KeyboardModifier.ShiftModifier if shift else QtCore.Qt.KeyboardModifier.NoModifier
    ev = QtGui.QWheelEvent(
        QtCore.QPointF(centre),
        QtCore.QPointF(w.view.mapToGlobal(centre)),
        QtCore.QPoint(0, 0),
        QtCore.QPoint(0, 120 * steps),
        QtCore.Qt.MouseButton.NoButton,
        mods,
        QtCore.Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QtCore.QCoreApplication.sendEvent(w.view.viewport(), ev)


def test_scroll_back_and_zoom_while_the_analysis_goes_on(qtbot, window, two_part_wav):
    w = window
    key = QtCore.Qt.Key
    w.display.span.setValue(2.0)
    w.speed.setCurrentIndex(w.speed.findData(2.0))
    w.open_file(two_part_wav)
    qtbot.waitUntil(lambda: w.history.time_span()[1] > 4.5, timeout=WAIT_MS)
    assert w.view.live and abs(loudest_hz(w) - 3000) < 100  # live: the last 2 s, the 3 kHz tone

    # The keys: zoom out in time (-), then to the oldest history (Home).
    w.view.setFocus()
    before = w.view.visible().width()
    qtbot.keyClick(w.view, key.Key_Minus)
    assert not w.view.live and w.live_action.isEnabled()
    assert w.view.visible().width() == pytest.approx(2 * before, rel=1e-3)
    qtbot.keyClick(w.view, key.Key_Home)
    r = w.view.visible()
    oldest = w.history.time_span()[0]
    assert r.left() + w.view.now == pytest.approx(oldest, abs=0.01)
    assert r.right() + w.view.now < 4.1  # the 0-4 s of the file, long gone from the live view
    t0 = r.left() + w.view.now
    # The picture is the earlier content: the 1 kHz tone in the first half, 3 kHz in the second.
    pix = w.view.picture()
    half = pix.shape[1] // 2
    cols = {}
    for name, part in (("early", slice(0, half - 20)), ("late", slice(half + 20, None))):
        keep = w.view.history_image._pixels
        w.view.history_image._pixels = pix[:, part]
        cols[name] = loudest_hz(w)
        w.view.history_image._pixels = keep
    assert abs(cols["early"] - 1000) < 60 and abs(cols["late"] - 3000) < 60, (cols, t0)

    # The wheel: zoom in time around the pointer; with Shift, in frequency.
    width = w.view.visible().width()
    wheel(w, 3)
    assert w.view.visible().width() < 0.8 * width
    assert w.view.visible().height() == pytest.approx(SR / 2, rel=1e-3)
    wheel(w, 3, shift=True)
    assert w.view.visible().height() < 0.8 * SR / 2
    qtbot.keyClick(w.view, key.Key_Right)  # pan in time by a quarter of the width
    assert w.view.visible().left() > r.left()

    # The analysis goes on while looking back.
    frames = w.history.frames
    qtbot.waitUntil(lambda: w.history.frames > frames + 100, timeout=WAIT_MS)
    assert not w.view.live

    # End: back to the live picture, the last 2 s at full band.
    qtbot.keyClick(w.view, key.Key_End)
    assert w.view.live and not w.live_action.isEnabled()
    r = w.view.visible()
    assert (r.left(), r.right()) == pytest.approx((-2.0, 0.0), abs=1e-6)
    assert (r.top(), r.bottom()) == pytest.approx((0.0, SR / 2), abs=1e-6)
    qtbot.wait(300)
    assert abs(loudest_hz(w) - 3000) < 100


def test_history_memory_at_48k_for_ten_minutes():
    """10 minutes at 48 kHz stay under 400 MB at the application's default and rate-suited N, H."""
    h = History(600.0)
    for n_fft, hop in ((2048, 256), (4096, 128)):
        h.reset(48000, n_fft, hop)
        assert h.nbytes < 400e6, (n_fft, hop, h.nbytes / 1e6)


def test_history_picture_is_the_max_of_what_it_covers():
    """The pyramid gives the same picture as pooling the stored columns directly."""
    rng = np.random.default_rng(3)
    h = History(60.0)
    h.reset(16000, 256, 64)  # 250 frames/s: columns of 2 frames
    n = 12000
    db = rng.uniform(-140, 0, size=(n, 129)).astype(np.float32)
    for i in range(0, n, 37):
        k = slice(i, i + 37)
        h.add_frames(db[k], np.full(len(db[k]), 128.0, np.float32), np.arange(n)[k] * 64 / 16000)
    t0, t1 = 1.0, 40.0
    pic = h.picture(t0, t1, 300)
    assert pic.shape == (300, 129)
    from rtdstft_gui.history import db_to_code

    cols = db_to_code(db).reshape(-1, 2, 129).max(axis=1)  # the stored columns
    ct = h.column_time(np.arange(len(cols)))
    edges = np.linspace(t0, t1, 301)
    px = edges[1] - edges[0]  # a pyramid block is never wider than a pixel
    for p in (1, 150, 298):
        own = (ct >= edges[p]) & (ct < edges[p + 1])
        near = (ct >= edges[p] - px) & (ct < edges[p + 1] + px)
        # A loud column is never lost (a pyramid block may land on the next pixel), nor invented.
        assert (pic[p - 1 : p + 2].max(axis=0) >= cols[own].max(axis=0)).all()
        assert (pic[p] <= cols[near].max(axis=0)).all()  # nor invented


def test_a_seek_keeps_the_history_and_marks_where_it_jumped(qtbot, window, two_part_wav):
    """Seeking from the 1 kHz part to 6 s (the 3 kHz part): what was analysed before stays in
    the history, on the same stream clock; the frames after the seek follow on at the next
    frame's time; a mark says where the file jumped (drawn as a line), and the readout's time
    is the file's on both sides of it."""
    w = window
    w.open_file(two_part_wav)
    qtbot.waitUntil(lambda: w.history.time_span()[1] > 1.5, timeout=WAIT_MS)
    w.worker.seek(6.0)
    qtbot.waitUntil(lambda: len(w.history.marks) == 2, timeout=WAIT_MS)
    jump, to = w.history.marks[1]
    assert to == 6.0 and jump > 1.5
    assert w.statusBar().currentMessage().startswith("seek to 0:06.0")
    qtbot.waitUntil(lambda: w.history.time_span()[1] > jump + 1.0, timeout=WAIT_MS)
    h = w.history
    assert h.time0 == 0.0 and h.first_frame == 0  # nothing was forgotten
    assert round(jump * SR / h.hop) * h.hop == round(jump * SR)  # on the frame grid
    before, after = h.readout(1.0, 1000.0), h.readout(jump + 0.5, 3000.0)
    assert abs(before["peak_hz"] - 1000.0) < 1.0 and abs(after["peak_hz"] - 3000.0) < 1.0
    # The audio (for selections and edits) lies on the same clock: the file's samples from 6 s on.
    x = sf.read(two_part_wav, dtype="float32")[0]
    k = round(jump * SR)
    np.testing.assert_array_equal(h._audio_between(k, k + 4000), x[6 * SR : 6 * SR + 4000])
    assert w.view.readout(1.0, 1000.0)["time"] == pytest.approx(1.0, abs=1e-6)
    assert w.view.readout(jump + 0.5, 3000.0)["time"] == pytest.approx(6.5, abs=h.hop / SR)
    xs, _ = w.view.marks.getData()
    assert list(xs) == [jump, jump]
    # The picture looking back over the seek: 1 kHz on its left, 3 kHz on its right.
    w.view.setFocus()
    w.view.plot.setXRange(jump - 1.2 - w.view.now, jump - 0.2 - w.view.now, padding=0)
    w.view._looked()
    assert abs(loudest_hz(w) - 1000.0) < 100.0
    w.view.plot.setXRange(jump + 0.2 - w.view.now, jump + 0.9 - w.view.now, padding=0)
    w.view._looked()
    assert abs(loudest_hz(w) - 3000.0) < 100.0


@pytest.mark.parametrize("seconds,span,forgets", [(4.0, 3.95, True), (40.0, 8.0, False), (40.0, 35.0, False)])
def test_a_redraw_at_the_live_edge_draws_the_new_columns_only_and_the_same_picture(
    qtbot, seconds, span, forgets
):
    """Looking back with the newest frames in view: each render after new frames arrive equals a
    render from scratch, pixel for pixel, on a linear and a log axis, zoomed in (a pixel per
    column) and out (the pyramid), while the ring forgets its oldest (a 4 s history) or not;
    and it draws only the pixel columns that the new frames reach."""
    from PyQt6 import QtCore
    from rtdstft_gui.lookback import HistoryImage

    rng = np.random.default_rng(7)
    h = History(seconds)
    h.reset(48000, 4096, 128, 0.0, {"bands": 4, "band_edges": (500.0, 2000.0, 6000.0)})  # pools 2 × 2
    lut = lookup_table("magma")
    tones = rng.uniform(-150, 10, size=(64, 2049)).astype(np.float32)

    def feed(k: int) -> None:
        t = (h.frames + np.arange(k)) * h.hop / h.sample_rate
        h.add_frames(tones[rng.integers(0, 64, k)], np.full((k, 4), 1024.0, np.float32), t)

    feed(int(1.1 * span * 375))
    now = h.time_span()[1]
    for scale, (y0, y1) in (("linear", (0.0, 24000.0)), ("log", (np.log10(30.0), np.log10(24000.0)))):
        rect = QtCore.QRectF(QtCore.QPointF(-span, y0), QtCore.QPointF(0.5, y1))  # the future in view
        kept = HistoryImage()
        partial = []
        for _ in range(12):
            feed(int(rng.integers(1, 24)))
            kept.render(h, rect, now, 300, 200, scale, lut, (-100.0, 0.0))
            partial.append(kept.redrawn)
            fresh = HistoryImage()
            fresh.render(h, rect, now, 300, 200, scale, lut, (-100.0, 0.0))
            assert np.array_equal(kept.pixels(), fresh.pixels()), (scale, partial)
        if forgets:  # the oldest columns in view leave the ring: the whole picture changes
            assert h.time_span()[0] > now - span and max(partial) == 300
        else:  # a redraw costs the new columns, not the picture
            assert max(partial[1:]) < 300 // 3, partial


def test_columns_and_pyramid_equal_a_direct_reference_whatever_the_chunks():
    """Frames fed a few at a time (as the redraws feed them) or all at once give the same rings,
    and these equal a direct computation: each stored column the max over its frames and its
    pooled bins of the quantised dB (NaN the lowest), each pyramid entry the max of its 4
    children."""
    from rtdstft_gui.history import db_to_code

    rng = np.random.default_rng(3)
    frames = 3000
    db = rng.uniform(-160, 20, size=(frames, 2049)).astype(np.float32)
    db[rng.random(db.shape) < 0.01] = np.nan
    theta = np.full((frames, 4), 512.0, np.float32)
    t = np.arange(frames) * 128 / 48000
    settings = {"bands": 4, "band_edges": (500.0, 2000.0, 6000.0)}
    small, whole = History(30.0), History(30.0)
    for h in (small, whole):
        h.reset(48000, 4096, 128, 0.0, settings)
    whole.add_frames(db, theta, t)
    i = 0
    while i < frames:
        k = int(rng.integers(1, 13))
        small.add_frames(db[i : i + k], theta[i : i + k], t[i : i + k])
        i += k
    assert small.group == 2 and small.bin_pool == 2 and small.columns == frames // 2
    codes = db_to_code(db)
    codes = np.maximum(codes[:, :2048:2], codes[:, 1:2048:2])  # bins 0-1, 2-3, ...; bin 2048 alone
    codes = np.concatenate([codes, db_to_code(db[:, 2048:])], axis=1)
    reference = codes.reshape(-1, 2, small.rows).max(axis=1)
    for h in (small, whole):
        assert np.array_equal(h.levels[0][: h.columns], reference)
        below, n = reference, h.columns
        for level in h.levels[1:]:
            pad = np.zeros((-(-n // 4) * 4 - n, h.rows), np.uint8)
            below = np.concatenate([below, pad]).reshape(-1, 4, h.rows).max(axis=1)
            n = len(below)
            assert np.array_equal(level[:n], below)


def replay_to_the_end(qtbot, w: MainWindow, tmp_path) -> None:
    """Replays a 1 s, 1 kHz tone at -6 dBFS to its end (no new frames come after it) and draws."""
    t = np.arange(SR) / SR
    path = tmp_path / "tone.wav"
    sf.write(path, (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR, subtype="FLOAT")
    w.open_file(path)
    finished = lambda: w.history.frames > 0 and not w.worker.call(lambda wk: wk.playing)  # noqa: E731
    qtbot.waitUntil(finished, timeout=WAIT_MS)
    w.redraw()


def test_levels_and_colour_map_reach_the_looked_back_picture(qtbot, window, tmp_path):
    """Looking back at a finished replay (no new frames come), the display panel's colour map
    and dB floor must redraw the picture, as they do the live one."""
    w = window
    replay_to_the_end(qtbot, w, tmp_path)
    a, b = w.history.time_span()
    w.view.plot.setXRange(a - w.view.now, b - w.view.now, padding=0)  # the whole file, looked back at
    w.view._looked()
    assert not w.view.live
    w.display.colormap.setCurrentIndex(w.display.colormap.findData("gray"))
    w.redraw()
    pix = w.view.picture()
    red, green, blue = (pix >> 16) & 0xFF, (pix >> 8) & 0xFF, pix & 0xFF
    assert np.any(red > 0) and np.all(red == green) and np.all(green == blue)  # gray: r = g = b
    before = w.view.picture().copy()
    w.display.floor.setValue(-60)
    w.redraw()
    assert np.mean(w.view.picture() & 0xFF) < np.mean(before & 0xFF)  # a higher floor: darker


def tone_columns(w: MainWindow, hz: float) -> int:
    """Columns of the live picture whose row at ``hz`` is bright (colour-table index > 200)."""
    lut = lookup_table(w.view.cmap)
    order = np.argsort(lut)
    pix = w.view.image.image()
    lv = order[np.clip(np.searchsorted(lut[order], pix), 0, 255)]
    return int(np.sum(lv[int(round(w.view.row_of(hz)))] > 200))


def test_a_new_span_or_size_keeps_the_picture_of_a_finished_replay(qtbot, window, tmp_path):
    """The time span and the window's size rebuild the live picture (a column per pixel): with the
    replay finished or paused no new frame comes to fill it, so it is redrawn from the history,
    not left blank."""
    w = window
    replay_to_the_end(qtbot, w, tmp_path)
    assert tone_columns(w, 1000.0) > 20
    newest, old = w.view._latest, w.view.image
    w.display.span.setValue(4.0)
    w.redraw()
    assert w.view.image is not old  # rebuilt
    assert tone_columns(w, 1000.0) > 20
    assert abs(w.view._latest - newest) <= 2 * w.view.image.group * 128 / SR  # up to where it was
    assert np.nanmax(w.view.theta.shown()[1]) > 0  # the θ track too
    w.resize(500, 820)  # fewer pixels: coarser columns
    qtbot.waitUntil(lambda: w.view.image.group > 1, timeout=WAIT_MS)
    w.redraw()
    assert tone_columns(w, 1000.0) > 10
