"""The real audio path: a chirp played into the PulseAudio null sink, captured from its monitor by the
microphone source, analysed live by the adaptive StreamingDSTFT."""

from __future__ import annotations

import time

import numpy as np
from audio_helpers import audio_test, linear_chirp

import rtdstft
from rtdstft.audio import MicrophoneSource, OutputSink


@audio_test
def test_emitted_frames_follow_a_chirp_captured_from_the_null_sink():
    rate, f0, f1, seconds = 48000, 400.0, 4000.0, 2.0
    chirp = linear_chirp(f0, f1, seconds, rate)
    engine = rtdstft.StreamingDSTFT(rate, 2048, 256, adapt=True)
    frames, thetas, indices = [], [], []
    with (
        MicrophoneSource(sample_rate=rate, latency=0.1) as mic,
        OutputSink(sample_rate=rate, latency=0.1) as out,
    ):
        time.sleep(0.2)
        mic.read_available()  # start from silence
        out.write(chirp, block=False)
        deadline = time.monotonic() + seconds + 3.0
        while time.monotonic() < deadline:
            block = mic.read_available()
            if block.size:
                o = engine.process(block)  # the worker's loop: ring -> engine
                frames.append(np.abs(o.spec))
                thetas.append(o.win_length)
                indices.append(o.frame_index)
            time.sleep(0.01)
        assert mic.error is None and out.error is None
    mag = np.concatenate(frames)
    index = np.concatenate(indices)
    freqs = np.fft.rfftfreq(2048, 1 / rate)
    peak = freqs[mag.argmax(1)]
    loud = mag.max(1) > 0.1 * mag.max()
    t = index[loud] * 256 / rate
    f = peak[loud]
    assert (t.max() - t.min()) > 0.8 * seconds, "the chirp was captured"
    # Against the capture's clock the chirp's frequency rises linearly at (f1 - f0) / seconds Hz/s.
    slope, offset = np.polyfit(t, f, 1)
    assert abs(slope - (f1 - f0) / seconds) < 0.1 * (f1 - f0) / seconds
    resid = f - (slope * t + offset)
    assert np.median(np.abs(resid)) < 60.0
    assert np.all(np.isfinite(np.concatenate(thetas)))
