"""A live input's history (no file), fed as the microphone path feeds it: it keeps every band's θ,
which looking back draws and the readout and selections use; and the edit panel previews and
exports the audio it holds, edited through the θ the picture drew. The export equals
``spectral_edit`` of the history's audio with the same edits, and outside the edits it is the
history's audio sample for sample."""

from __future__ import annotations

import math
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from audio_helpers import audio_test  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402
from rtdstft_gui.worker import Geometry  # noqa: E402

from rtdstft import StreamingDSTFT, audio  # noqa: E402
from rtdstft.config import StreamConfig  # noqa: E402
from rtdstft.edit import Edit, spectral_edit  # noqa: E402
from rtdstft.selection import Region  # noqa: E402

RATE = 16000
TONE = Region(0.8, 1.6, 2700.0, 3300.0)  # the 3 kHz tone, removed
LOW = Region(1.2, 2.0, 600.0, 1400.0)  # the 1 kHz tone, -12 dB


def two_tones(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)


@pytest.fixture
def window(qtbot, tmp_path):
    """The window, with one torch thread for the engine the test feeds it from (as the engine
    thread has): two threads on a busy two-core machine run its small calls many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    w = MainWindow(settings_path=str(tmp_path / "settings.ini"), recordings_dir=str(tmp_path / "rec"))
    qtbot.addWidget(w)
    w.resize(1360, 900)
    w.show()
    yield w
    w.close()
    torch.set_num_threads(threads)


def feed_like_the_microphone(w: MainWindow, x: np.ndarray, cfg: StreamConfig) -> np.ndarray:
    """What the engine thread does with a microphone's blocks (a new engine announced, each block
    processed and handed over as samples and frames), drained by the window's redraw. Returns
    the θ the engine emitted, [frames, bands]."""
    engine = StreamingDSTFT(config=cfg)
    w.worker.engine, w.worker.config = engine, cfg
    w.worker._push(Geometry(cfg, 0.0))
    block = 8 * cfg.hop_length
    emitted = []
    for i in range(0, len(x), block):
        out = engine.process(x[i : i + block])
        emitted.append(np.asarray(out.win_length).reshape(len(out.frame_index), cfg.bands))
        w.worker._emit(out, x[i : i + block])
        w.redraw()
    return np.concatenate(emitted)


def apply(w: MainWindow, region: Region, gain_db: float) -> None:
    w.selection.set_region(region)
    w.edit.gain.setValue(w.edit.gain.minimum() if gain_db == -math.inf else gain_db)
    w.edit.apply()


def check_export(w: MainWindow, tmp_path, edits: list[Edit]) -> None:
    """The history's export equals the library's edit of the history's audio, bit for bit, and
    is that audio away from the edits (float WAV); a FLAC at 24 bits is the same rounded."""
    x, theta, start = w.history.signal()
    assert start == 0.0 and len(theta) == w.history.frames - w.history.first_frame, (start, len(theta))
    cfg = StreamConfig(**w.history.settings)
    lib = spectral_edit(x, RATE, edits, config=cfg, theta=theta).audio
    wav = w.edit.export(tmp_path / "history.wav")
    y, sr = sf.read(str(wav), dtype="float32")
    assert sr == RATE and sf.info(str(wav)).subtype == "FLOAT" and y.shape == x.shape
    np.testing.assert_array_equal(y, lib)
    reach = cfg.win_max / 2 / RATE
    t = np.arange(len(x)) / RATE
    far = np.ones(len(x), bool)
    for e in edits:
        far &= (t < e.region.t0 - reach) | (t > e.region.t1 + reach)
    assert far.sum() > RATE / 2
    np.testing.assert_array_equal(y[far], x[far])
    assert np.abs(y - x).max() > 0.1, "the edits did not take the 3 kHz tone out"
    flac = w.edit.export(tmp_path / "history.flac", subtype="PCM_24")
    assert sf.info(str(flac)).subtype == "PCM_24"
    q = np.clip(np.rint(lib.astype(np.float64) * 2**23), -(2**23), 2**23 - 1) / 2**23
    np.testing.assert_array_equal(sf.read(str(flac))[0], q)


def test_a_live_history_is_edited_previewed_and_exported(window, tmp_path):
    w = window
    cfg = StreamConfig.for_rate(RATE, bands=4)  # the application's default: a θ per band
    x = two_tones(3.0)
    feed_like_the_microphone(w, x, cfg)
    assert w.source_path is None and w.history.samples == len(x)
    apply(w, TONE, -math.inf)
    apply(w, LOW, -12.0)
    edits = [Edit(TONE, -math.inf, 10.0, 50.0), Edit(LOW, -12.0, 10.0, 50.0)]
    assert w.edit.edits == edits and w.edit.export_button.isEnabled()
    check_export(w, tmp_path, edits)
    # The preview: the applied edits and a pending one, the selection ± 0.5 s, from the same function.
    w.selection.set_region(Region(1.0, 1.4, 100.0, 500.0))
    w.edit.gain.setValue(-6.0)
    p = w.edit.preview_samples()
    assert len(p) == pytest.approx((1.4 - 1.0 + 2 * 0.5) * RATE, abs=2)
    whole = w.edit.edited([*edits, w.edit.pending()])[0][:, 0]
    np.testing.assert_allclose(p, whole[8000 : 8000 + len(p)], atol=1e-6)
    # Undo leaves one edit; the export follows.
    w.edit.stack.undo()
    check_export(w, tmp_path, edits[:1])


@audio_test
def test_a_microphone_history_is_edited_and_exported(window, qtbot, tmp_path):
    """A real microphone stream: tones played into the PulseAudio null sink, captured from its
    monitor, paused; the selection of the 3 kHz tone is removed and the history exported."""
    import sounddevice as sd

    w = window
    devices = audio.list_devices()
    pulse_in = next(d["index"] for d in devices if d["max_input_channels"] > 0 and d["name"] == "pulse")
    pulse_out = next(d["index"] for d in devices if d["max_output_channels"] > 0 and d["name"] == "pulse")
    w.open_mic(pulse_in, RATE)
    qtbot.waitUntil(lambda: w.stats.kind == "mic", timeout=10000)
    sd.play(two_tones(2.5), RATE, device=pulse_out)
    qtbot.wait(2800)
    sd.stop()
    w.toggle_play()  # pause: the history stops growing once the engine thread has paused
    qtbot.waitUntil(lambda: not w.worker.playing, timeout=10000)
    qtbot.wait(500)  # the frames it sent before pausing reach the history
    held = w.history.samples
    qtbot.wait(300)
    assert w.history.samples == held and held > 2 * RATE, (held, w.history.samples)
    # The loud part of the history holds the tones: select the 3 kHz one at its middle (the
    # first maximum of the envelope lies anywhere on the tones' plateau, even 0.4 s from the start
    # of the stream, where a region of ±0.4 s would begin before it).
    x, _theta, start = w.history.signal()
    env = np.convolve(x**2, np.ones(RATE // 2) / (RATE // 2), mode="same")
    assert env.max() > 0.01, f"the tones did not come through the sink (power {env.max():.2g})"
    loud = np.flatnonzero(env > 0.5 * env.max())
    mid = start + 0.5 * (loud[0] + loud[-1]) / RATE
    region = Region(mid - 0.4, mid + 0.4, 2700.0, 3300.0)
    apply(w, region, -math.inf)
    check_export(w, tmp_path, [Edit(region, -math.inf, 10.0, 50.0)])


def test_looking_back_keeps_every_bands_theta(window):
    """With a θ per band the history keeps them all: looking back draws each band's row, the
    readout gives the θ of the band under the cursor, and a selection is recomputed with the θ
    of the band holding its centre."""
    w = window
    cfg = StreamConfig.for_rate(RATE, bands=4)
    t = np.arange(3 * RATE) / RATE
    clicks = np.zeros_like(t)
    clicks[:: RATE // 10] = 0.5
    x = (0.3 * np.sin(2 * np.pi * 300 * t) + clicks).astype(np.float32)  # a low tone, broadband clicks
    emitted = feed_like_the_microphone(w, x, cfg)
    h = w.history
    assert h.bands == 4 and emitted.shape == (h.frames, 4)
    np.testing.assert_array_equal(h.theta[: h.frames], emitted)
    assert np.abs(emitted[:, 0] - emitted[:, 3]).max() > 100, "the bands' θ should differ here"
    w.view.plot.setXRange(0.5 - w.view.now, 2.5 - w.view.now, padding=0)
    w.view._looked()
    image = w.view.theta_history_bands
    assert image.isVisible() and not w.view.theta_history.isVisible()
    shown = image.image  # [bands, points], ms
    assert shown.shape[0] == 4
    times, theta = h.theta_curve(0.5, 2.5, 2 * w.view._pixels()[0])
    np.testing.assert_allclose(shown, 1000 * theta.T / RATE)
    n = 200  # a frame inside the view
    time = n * h.hop / RATE
    for band, freq in enumerate((100.0, 700.0, 1800.0, 6000.0)):  # edges at 397, 1000, 2520 Hz
        assert h.band_of(freq) == band
        info = h.readout(time, freq)
        assert info["theta_ms"] == pytest.approx(1000 * emitted[n, band] / RATE)
        ex = h.excerpt(time - 0.1, time + 0.1, freq)
        np.testing.assert_array_equal(
            ex.theta, emitted[ex.first_frame : ex.first_frame + len(ex.theta), band]
        )
