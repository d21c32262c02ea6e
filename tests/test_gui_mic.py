"""The microphone path of the application: a tone played into the
PulseAudio null sink with sounddevice is captured by the window's microphone source (the sink's
monitor is the default capture device) and appears at its frequency in the picture."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from audio_helpers import audio_test, tone  # noqa: E402

TONE_HZ = 1500.0
RATE = 48000


def _pick(devices: list[dict], key: str) -> int | None:
    """The PulseAudio device through ALSA ('pulse'), else the default one."""
    for d in devices:
        if d[key] > 0 and d["name"] == "pulse":
            return d["index"]
    return None


@audio_test
def test_tone_into_the_null_sink_appears_at_its_frequency(qtbot, tmp_path):
    import sounddevice as sd
    from rtdstft_gui.spectrogram import lookup_table
    from rtdstft_gui.window import MainWindow

    from rtdstft import audio

    devices = audio.list_devices()
    w = MainWindow(settings_path=str(tmp_path / "settings.ini"), recordings_dir=str(tmp_path / "rec"))
    qtbot.addWidget(w)
    w.resize(1360, 820)
    w.show()
    try:
        assert w.devices.listen_button.isEnabled()
        w.open_mic(_pick(devices, "max_input_channels"), RATE)
        qtbot.waitUntil(lambda: w.stats.kind == "mic", timeout=10000)
        signal = tone(TONE_HZ, 2.5, RATE, amplitude=0.5)
        sd.play(signal, RATE, device=_pick(devices, "max_output_channels"))
        qtbot.wait(2200)
        sd.stop()
        img = w.view.image
        times = img.shown_times()
        latest = np.nanmax(times)
        recent = np.flatnonzero((times > latest - 1.5) & (times < latest - 0.3))
        assert len(recent) > 10, "no columns from the microphone"
        # The picture: in those columns the brightest row is the tone's row.
        lut = lookup_table(w.view.cmap)
        order = np.argsort(lut)
        pix = w.view.picture()[:, recent]
        level = order[np.clip(np.searchsorted(lut[order], pix), 0, 255)]
        rows = np.argmax(level, axis=0)
        assert np.median(np.abs(rows - w.view.row_of(TONE_HZ))) <= 2, rows
        # And the stored spectrum of those columns peaks at the tone's frequency.
        slots = (img.pos + recent) % img.width
        peaks_hz = np.argmax(img.db[slots], axis=1) * w.view.sample_rate / w.view.n_fft
        assert np.median(np.abs(peaks_hz - TONE_HZ)) < 30, peaks_hz
    finally:
        w.close()
