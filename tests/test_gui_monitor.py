"""Monitoring to an output device: the application replays a tone with monitoring on;
the PulseAudio null sink is its output, and what reaches the sink is captured from the sink's
monitor through rtdstft.audio.MicrophoneSource (the capture device), so the test hears what a user
would: the tone, at its frequency, from the resynthesis."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from audio_helpers import audio_test, block_peaks, tone  # noqa: E402

TONE_HZ = 1200.0
RATE = 48000


def _pulse(devices: list[dict], key: str) -> int | None:
    """The PulseAudio device through ALSA ('pulse'), else None (the default one)."""
    return next((d["index"] for d in devices if d[key] > 0 and d["name"] == "pulse"), None)


@audio_test
def test_monitoring_plays_the_resynthesis_to_the_output(qtbot, tmp_path):
    from rtdstft_gui.window import MainWindow

    from rtdstft import audio

    path = tmp_path / "tone.wav"
    sf.write(path, tone(TONE_HZ, 4.0, RATE, amplitude=0.5), RATE)
    devices = audio.list_devices()
    w = MainWindow(
        settings_path=str(tmp_path / "settings.ini"),
        recordings_dir=str(tmp_path / "rec"),
        overrides={"n_fft": 2048, "hop_length": 256},
    )
    qtbot.addWidget(w)
    w.show()
    capture = audio.MicrophoneSource(_pulse(devices, "max_input_channels"), sample_rate=RATE, latency=0.1)
    try:
        panel = w.devices
        panel.output.setCurrentIndex(max(panel.output.findData(_pulse(devices, "max_output_channels")), 0))
        panel.monitor_box.setChecked(True)  # before any source: it opens with the file's rate
        w.open_file(path)
        qtbot.waitUntil(lambda: "resynthesis" in w.stats.monitoring, timeout=10000)
        capture.start()
        qtbot.wait(2000)
        heard = capture.read_available()
        panel.monitor_box.setChecked(False)
        qtbot.waitUntil(lambda: not w.stats.monitoring, timeout=10000)
    finally:
        capture.close()
        w.close()
    assert len(heard) > RATE, "the capture got less than a second"
    _, freqs, levels = block_peaks(heard, RATE)
    loud = levels > 0.1
    assert loud.sum() >= 10, f"the tone did not reach the sink (peak {heard.max():.3f})"
    # Within 2 %: an output opened at 44.1 kHz for this 48 kHz file would be 8 % off. Tighter
    # would fail on a busy machine, where the output drops blocks and the gaps move the peaks of
    # many 43 ms blocks by 5 to 20 Hz.
    assert abs(np.median(freqs[loud]) - TONE_HZ) < 0.02 * TONE_HZ, freqs[loud]
    assert 0.3 < np.percentile(levels[loud], 90) < 0.7  # amplitude 0.5 (resynthesis is exact)
