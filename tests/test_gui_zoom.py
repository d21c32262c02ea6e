"""Zoom limits of the spectrogram in the real application (offscreen, pytest-qt): the wheel (and
Shift + wheel) and :meth:`SpectrogramView.zoom` stop at a few hops and at the history's length
in time, and at a few bins and the axis' range (0 or its log/mel bottom .. Nyquist) in frequency,
on the linear, log and mel axes."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from rtdstft_gui.spectrogram import MIN_BINS, MIN_HOPS  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402
from test_gui_history import wheel  # noqa: E402

from rtdstft.pitch import from_axis  # noqa: E402

SR, N, H = 16000, 1024, 128
WAIT_MS = 120000


def test_wheel_and_zoom_stop_at_a_few_hops_the_history_a_few_bins_and_the_band(qtbot, tmp_path):
    path = tmp_path / "tone.wav"
    t = np.arange(2 * SR) / SR
    sf.write(path, (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR, subtype="FLOAT")
    w = MainWindow(
        settings_path=str(tmp_path / "settings.ini"),
        recordings_dir=str(tmp_path / "rec"),
        overrides={"n_fft": N, "hop_length": H},
    )
    qtbot.addWidget(w)
    w.resize(1360, 820)
    w.show()
    w.open_file(str(path))
    qtbot.waitUntil(lambda: w.history.frames > 100 and w.view.sample_rate == SR, timeout=WAIT_MS)
    vb, view = w.view.plot.vb, w.view

    def width() -> float:
        x0, x1 = vb.viewRange()[0]
        return x1 - x0

    def band() -> tuple[float, float, float, float]:
        """(low Hz, high Hz, axis low, axis high) of the visible band."""
        y0, y1 = vb.viewRange()[1]
        f0, f1 = from_axis(np.array([y0, y1]), view.scale)
        return float(f0), float(f1), y0, y1

    shortest, longest = MIN_HOPS * H / SR, w.history.seconds
    for zoom_in, zoom_out in (
        (lambda: wheel(w, 60), lambda: wheel(w, -60)),
        (lambda: view.zoom(fx=1e9), lambda: view.zoom(fx=1e-9)),
    ):
        zoom_in()
        qtbot.waitUntil(lambda: not view.live, timeout=WAIT_MS)
        assert width() == pytest.approx(shortest, rel=1e-6)
        zoom_out()
        assert width() == pytest.approx(longest, rel=1e-6)
    narrowest = MIN_BINS * SR / N
    for scale in ("linear", "log", "mel"):
        view.set_scale(scale)
        lo, hi = view.axis_range()
        for zoom_in, zoom_out in (
            (lambda: wheel(w, 60, shift=True), lambda: wheel(w, -60, shift=True)),
            (lambda: view.zoom(fy=1e9), lambda: view.zoom(fy=1e-9)),
        ):
            zoom_in()
            f0, f1, y0, y1 = band()
            assert f1 - f0 >= narrowest * (1 - 1e-4), scale
            assert lo - 1e-9 <= y0 and y1 <= hi + 1e-9
            zoom_out()
            f0, f1, y0, y1 = band()
            assert (y0, y1) == pytest.approx((lo, hi), abs=1e-6 * (hi - lo)), scale
        # At the ends of the axis too: the widened band stays on it.
        vb.setYRange(hi - 1e-9, hi, padding=0)
        f0, f1, y0, y1 = band()
        assert f1 - f0 >= narrowest * (1 - 1e-4) and y1 <= hi + 1e-9 and f1 == pytest.approx(SR / 2), scale
        vb.setYRange(lo, lo + 1e-9, padding=0)
        f0, f1, y0, y1 = band()
        assert f1 - f0 >= narrowest * (1 - 1e-4) and y0 == pytest.approx(lo, abs=1e-9), scale
