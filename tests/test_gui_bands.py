"""The application with a θ per band: the bands control reaches the engine, the θ panel becomes an
image over time × band, and on a low tone under clicks the top band's θ is shorter than the
bottom band's; the cursor readout gives the θ of the band under the cursor."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

from rtdstft.scenes import click_train, steady_tones  # noqa: E402

SR = 16000
WAIT_MS = 30000


@pytest.fixture
def low_tone_under_clicks(tmp_path) -> str:
    x = steady_tones(4.0, SR, (150.0,)) + click_train(4.0, SR, rate=10.0)
    x = x + 1e-4 * np.random.default_rng(0).standard_normal(len(x))
    path = tmp_path / "low.wav"
    sf.write(path, x.astype(np.float32), SR, subtype="FLOAT")
    return str(path)


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(
        settings_path=str(tmp_path / "settings.ini"),
        recordings_dir=str(tmp_path / "rec"),
        overrides={"n_fft": 2048, "hop_length": 128, "bands": 1},
    )
    qtbot.addWidget(w)
    w.resize(1360, 820)
    w.show()
    yield w
    w.close()


def test_bands_control_reaches_engine_and_theta_image_shows_short_windows_on_top(
    qtbot, window, low_tone_under_clicks
):
    w = window
    w.speed.setCurrentIndex(w.speed.findData(4.0))
    w.open_file(low_tone_under_clicks)
    qtbot.waitUntil(lambda: w.view.image is not None and w.view.image.count > 0, timeout=WAIT_MS)
    assert not w.view.theta.band_image.isVisible() and w.view.theta.curve.isVisible()

    w.analysis.bands.setValue(4)  # the user turns the control: a new engine with 4 bands
    qtbot.waitUntil(lambda: w.worker.call(lambda wk: wk.engine.bands) == 4, timeout=WAIT_MS)
    w.worker.seek(0.0)
    w.worker.set_playing(True)

    def enough() -> bool:
        t, ms = w.view.theta.shown()
        return ms.ndim == 2 and np.isfinite(ms[:, 0]).sum() > 300

    qtbot.waitUntil(enough, timeout=WAIT_MS)
    theta = w.view.theta
    assert theta.bands == 4 and theta.band_image.isVisible() and theta.colorbar.isVisible()
    assert not theta.curve.isVisible()
    assert theta.band_edges == w.worker.call(lambda wk: wk.engine.band_edges)
    shown = theta.band_image.image
    assert shown is not None and shown.shape == (4, theta.width)
    t, ms = theta.shown()
    ok = np.isfinite(ms).all(axis=1)
    top, bottom = np.median(ms[ok, -1]), np.median(ms[ok, 0])
    assert top < bottom, (top, bottom)

    # The readout under the cursor: θ of the band holding the frequency.
    newest = float(np.nanmax(t))
    low, high = w.view.readout(newest, 100.0), w.view.readout(newest, 6000.0)
    assert low["theta_band"] == 0 and high["theta_band"] == 3
    assert low["theta_ms"] == pytest.approx(ms[np.nanargmax(t), 0])
    assert high["theta_ms"] == pytest.approx(ms[np.nanargmax(t), 3])
    assert w.view.readout(newest, None, theta_band=3)["theta_ms"] == high["theta_ms"]


def test_looking_back_the_readout_gives_the_theta_the_history_holds_for_that_time_and_band(
    qtbot, window, tmp_path
):
    """Looking back beyond what the θ panel last drew live, the readout's θ is the history's θ of the
    band under the cursor at that time (clicks alone first, then steady tones: the θ differ)."""
    x = np.concatenate([click_train(8.0, SR, rate=10.0), steady_tones(8.0, SR, (150.0, 3000.0))])
    x = x + 1e-4 * np.random.default_rng(1).standard_normal(len(x))
    path = tmp_path / "clicks_then_tones.wav"
    sf.write(path, x.astype(np.float32), SR, subtype="FLOAT")
    w = window
    w.analysis.bands.setValue(4)  # before there is an engine: the file's engine takes it
    w.speed.setCurrentIndex(w.speed.findData(4.0))
    w.open_file(str(path))
    qtbot.waitUntil(lambda: w.view.history is not None and w.view.history.bands == 4, timeout=WAIT_MS)
    history = lambda: w.view.history  # noqa: E731
    qtbot.waitUntil(
        lambda: history() is not None and history().frames * history().hop / SR > 15.0, timeout=WAIT_MS
    )
    for t, f in ((2.0, 3000.0), (2.0, 150.0), (12.0, 3000.0)):
        want = history().readout(t, f)
        got = w.view.readout(t, f)
        assert got["theta_band"] == history().band_of(f)
        assert got["theta_ms"] == pytest.approx(want["theta_ms"]), (t, f)
    # and the clicks' θ differs from the tones' in the top band, so the check above can tell them apart
    clicks, tones = history().readout(2.0, 3000.0), history().readout(12.0, 3000.0)
    assert clicks["theta_ms"] != pytest.approx(tones["theta_ms"])
