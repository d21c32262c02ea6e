"""rtdstft.audio: file replay, recording, and real PortAudio streams through a PulseAudio null sink.

The tests marked `audio` need the daemon that `scripts/pulse.sh start` brings up (`make test` does);
they are skipped, saying so, only when it is not reachable.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import sounddevice as sd
import soundfile as sf
from audio_helpers import audio_test, block_peaks, linear_chirp, tone

from rtdstft import audio
from rtdstft.audio import (
    AudioDeviceError,
    AudioFileError,
    FileSource,
    MicrophoneSource,
    OutputSink,
    Recorder,
    timestamped_path,
)

ROOT = Path(__file__).resolve().parents[1]
PCM16 = 1.0 / 32768  # one quantisation step


# -- module boundaries ---------------------------------------------------------------------------


def test_modules_import_numpy_only_at_top_level():
    for name in ("audio.py", "ringbuffer.py"):
        tree = ast.parse((ROOT / "rtdstft" / name).read_text())
        everywhere = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        top = {
            alias.name.split(".")[0]
            for node in tree.body
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert "torch" not in everywhere, name
        assert not top & {"sounddevice", "soundfile"}, name


def test_import_rtdstft_loads_no_device_or_file_library():
    code = (
        "import sys, rtdstft, rtdstft.audio, rtdstft.ringbuffer; "
        "print(sorted(m for m in ('sounddevice', 'soundfile', '_sounddevice', '_soundfile') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- FileSource ----------------------------------------------------------------------------------


def write_file(path: Path, data: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    sf.write(str(path), data, sample_rate, subtype=subtype)
    return path


@pytest.fixture
def stereo_flac(tmp_path) -> tuple[Path, np.ndarray]:
    """1 s stereo FLAC at 44.1 kHz: 440 Hz on the left, 1000 Hz on the right."""
    data = np.stack([tone(440, 1.0, 44100), tone(1000, 1.0, 44100, 0.25)], axis=1)
    return write_file(tmp_path / "stereo.flac", data, 44100), data


@pytest.mark.parametrize(
    ("name", "rate", "subtype", "tolerance"),
    [
        ("mono.wav", 48000, "PCM_16", PCM16),
        ("mono24.wav", 96000, "PCM_24", PCM16 / 256),
        ("mono.flac", 16000, "PCM_16", PCM16),
        ("mono.ogg", 22050, "VORBIS", None),  # lossy: compared by spectrum and level
    ],
)
def test_file_source_reads_formats_and_rates(tmp_path, name, rate, subtype, tolerance):
    data = tone(700, 0.5, rate)
    source = FileSource(write_file(tmp_path / name, data, rate, subtype), realtime=False)
    assert source.sample_rate == rate
    assert source.frames == data.shape[0]
    assert source.duration == pytest.approx(0.5)
    got = source.read(source.frames + 10)
    assert got.dtype == np.float32 and got.shape == data.shape
    assert source.finished and source.read(10).shape == (0,)
    if tolerance is not None:
        np.testing.assert_allclose(got, data, atol=tolerance)
    else:
        _, freqs, _ = block_peaks(got, rate, block=4096, hop=4096)
        np.testing.assert_allclose(freqs, 700, atol=10)
        assert np.std(got) == pytest.approx(np.std(data), rel=0.1)


def test_file_source_stereo_mixdown_and_channel_selection(stereo_flac):
    path, data = stereo_flac
    left = FileSource(path, channel=0, realtime=False).read(44100)
    right = FileSource(path, channel=1, realtime=False).read(44100)
    mixed = FileSource(path, realtime=False).read(44100)
    np.testing.assert_allclose(left, data[:, 0], atol=PCM16)
    np.testing.assert_allclose(right, data[:, 1], atol=PCM16)
    np.testing.assert_allclose(mixed, data.mean(axis=1), atol=PCM16)
    assert block_peaks(right, 44100)[1] == pytest.approx(1000, abs=5)
    with pytest.raises(ValueError, match=r"channel must be None \(mix-down\) or in 0\.\.1"):
        FileSource(path, channel=2)


def test_file_source_seek_and_position(stereo_flac):
    path, data = stereo_flac
    source = FileSource(path, channel=0, realtime=False)
    source.seek(0.25)
    assert source.tell() == 11025 and source.position == pytest.approx(0.25)
    np.testing.assert_allclose(source.read(100), data[11025:11125, 0], atol=PCM16)
    assert source.tell() == 11125
    source.seek(1.0)  # the very end is a valid place to be
    assert source.read(5).shape == (0,) and source.finished
    source.seek(0)
    assert not source.finished
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"seconds must be in 0\.\.1 "):
            source.seek(bad)


def test_file_source_loop(tmp_path):
    data = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    path = write_file(tmp_path / "ramp.wav", data, 8000, "FLOAT")
    looped = FileSource(path, loop=True, realtime=False)
    np.testing.assert_array_equal(looped.read(2500), np.concatenate([data, data, data[:500]]))
    assert looped.loops == 2 and not looped.finished
    once = FileSource(path, loop=False, realtime=False)
    assert once.read(2500).shape == (1000,) and once.finished


def test_file_source_unpaced_read_available_returns_blocksize(tmp_path):
    path = write_file(tmp_path / "a.wav", tone(100, 0.1, 8000), 8000)
    source = FileSource(path, realtime=False, blocksize=300)
    sizes = [source.read_available().shape[0] for _ in range(4)]
    assert sizes == [300, 300, 200, 0]


def test_file_source_pacing_follows_the_clock_exactly(tmp_path):
    now = [100.0]
    path = write_file(tmp_path / "a.wav", np.arange(8000, dtype=np.float32) / 8000, 8000, "FLOAT")
    source = FileSource(path, speed=2.0, clock=lambda: now[0])
    assert source.pull().shape == (0,)  # starts the clock
    now[0] += 0.1
    first = source.pull()
    assert first.shape == (1600,)  # 0.1 s × 2 × 8000 Hz
    now[0] += 0.1
    assert source.pull(max_samples=1000).shape == (1000,)
    assert source.due == 600  # what max_samples held back stays due
    source.stop()
    now[0] += 5.0
    assert source.pull().shape == (0,)  # paused
    source.start()
    now[0] += 0.05
    expected = (np.arange(8000, dtype=np.float32) / 8000)[2600:3400]
    np.testing.assert_array_equal(source.read_available(), expected)


def test_file_source_pacing_on_the_wall_clock(tmp_path):
    rate, speed = 16000, 1.5
    path = write_file(tmp_path / "a.wav", tone(300, 3.0, rate), rate)
    source = FileSource(path, speed=speed)
    before_start = time.monotonic()
    source.start()
    after_start = time.monotonic()
    total = 0
    while time.monotonic() - after_start < 0.4:
        total += source.read_available().shape[0]
        time.sleep(0.01)
    before_last = time.monotonic()
    total += source.pull().shape[0]
    after_last = time.monotonic()
    assert (before_last - after_start) * rate * speed - 1 <= total
    assert total <= (after_last - before_start) * rate * speed + 1


def test_file_source_errors_name_the_path(tmp_path):
    missing = tmp_path / "nothing.wav"
    with pytest.raises(AudioFileError, match=r"nothing\.wav: no such file"):
        FileSource(missing)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioFileError, match=r"garbage\.wav: not a readable audio file"):
        FileSource(garbage)
    text = tmp_path / "notes.ogg"
    text.write_text("not audio at all\n")
    with pytest.raises(AudioFileError, match=r"notes\.ogg"):
        FileSource(text)
    with pytest.raises(AudioFileError, match="is a directory"):
        FileSource(tmp_path)
    empty = write_file(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(AudioFileError, match="contains no samples"):
        FileSource(empty)
    assert issubclass(AudioFileError, ValueError)
    good = write_file(tmp_path / "good.wav", tone(100, 0.1, 8000), 8000)
    with pytest.raises(ValueError, match=r"sample_rate=16000 Hz differs from the 8000 Hz"):
        FileSource(good, sample_rate=16000)
    with pytest.raises(ValueError, match="speed must be"):
        FileSource(good, speed=0)


# -- Recorder ------------------------------------------------------------------------------------


def test_recorder_file_is_valid_after_every_block(tmp_path):
    path = tmp_path / "rec.wav"
    signal_ = tone(440, 0.5, 48000)
    with Recorder(path, 48000) as rec:
        for i, block in enumerate(np.array_split(signal_, 7)):
            rec.write(block)
            written = sum(b.shape[0] for b in np.array_split(signal_, 7)[: i + 1])
            assert rec.frames == written
            assert sf.info(str(path)).frames == written  # readable while still being written
            with wave.open(str(path)) as w:  # a strict reader: trusts the header's sizes
                assert w.getnframes() == written
    np.testing.assert_allclose(sf.read(str(path), dtype="float32")[0], signal_, atol=PCM16)


def test_recorder_float_flac_and_stereo(tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, (1000, 2)).astype(np.float32)
    with Recorder(tmp_path / "f.wav", 8000, channels=2, subtype="FLOAT") as rec:
        rec.write(x[:600])
        rec.write(x[600:])
    np.testing.assert_array_equal(sf.read(str(tmp_path / "f.wav"), dtype="float32")[0], x)
    with Recorder(tmp_path / "sub" / "a.flac", 44100) as rec:
        rec.write(x[:, 0])
    assert sf.info(str(tmp_path / "sub" / "a.flac")).frames == 1000
    with pytest.raises(ValueError, match=r"block must have shape \(n,\) for mono or \(n, 2\)"):
        Recorder(tmp_path / "g.wav", 8000, channels=2).write(x[:, 0])


def test_recorder_bad_format_and_subtype(tmp_path):
    with pytest.raises(AudioFileError, match="cannot write audio format 'XYZ'; formats: .*FLAC"):
        Recorder(tmp_path / "a.xyz", 8000)
    with pytest.raises(AudioFileError, match="cannot write audio format 'RAW'"):
        Recorder(tmp_path / "a.raw", 8000)  # headerless: nothing could read it back
    with pytest.raises(ValueError, match="subtype='VORBIS' is not offered for WAV; subtypes: PCM_16"):
        Recorder(tmp_path / "a.wav", 8000, subtype="VORBIS")
    with pytest.raises(AudioFileError, match="a.opus.ogg: cannot write OGG OPUS at 44100 Hz"):
        Recorder(tmp_path / "a.opus.ogg", 44100, subtype="OPUS")  # OPUS: 8..48 kHz, not 44.1
    assert list(tmp_path.iterdir()) == []


def test_timestamped_path(tmp_path):
    first = timestamped_path(tmp_path)
    assert first.parent == tmp_path
    assert re.fullmatch(r"rec-\d{8}-\d{6}\.wav", first.name)
    first.touch()
    second = timestamped_path(tmp_path)
    if second.name[:19] == first.name[:19]:  # same second: a suffix keeps them apart
        assert second.name == first.name[:-4] + "-2.wav"
    assert second != first


# -- devices (real PortAudio through the PulseAudio null sink) -----------------------------------


@audio_test
def test_list_devices_returns_plain_dicts():
    devices = audio.list_devices()
    assert devices and all(set(d) >= {"index", "name", "max_input_channels"} for d in devices)
    assert [d["index"] for d in devices] == list(range(len(devices)))
    assert sum(d["is_default_input"] for d in devices) == 1
    assert sum(d["is_default_output"] for d in devices) == 1
    table = audio.format_devices(devices)
    assert all(d["name"] in table for d in devices)
    assert 48000 in audio.supported_sample_rates(None, "input")


@audio_test
def test_unknown_device_is_named_with_the_devices_there_are():
    names = [d["name"] for d in audio.list_devices() if d["max_input_channels"] > 0]
    with pytest.raises(AudioDeviceError, match="no-such-card-xyz") as info:
        MicrophoneSource(device="no-such-card-xyz")
    assert all(name in str(info.value) for name in names)
    with pytest.raises(AudioDeviceError, match="device=999 is not an input device"):
        MicrophoneSource(device=999)
    with pytest.raises(AudioDeviceError, match="device=-1"):
        OutputSink(device=-1)
    assert issubclass(AudioDeviceError, ValueError)


@audio_test
def test_refused_sample_rate_names_the_accepted_rates():
    with pytest.raises(AudioDeviceError) as info:
        MicrophoneSource(sample_rate=1_000_000)
    message = str(info.value)
    assert "sample_rate=1000000 Hz is refused by input device" in message
    assert re.search(r"Rates it accepts \(Hz\): .*\b44100\b.*\b48000\b", message)
    with pytest.raises(AudioDeviceError, match="sample_rate=50 Hz is refused by output"):
        OutputSink(sample_rate=50)
    with pytest.raises(ValueError, match="sample_rate must be a positive number"):
        MicrophoneSource(sample_rate=-48000)


@audio_test
def test_microphone_captures_a_chirp_played_into_the_null_sink():
    rate, f0, f1, seconds = 48000, 300.0, 3000.0, 2.0
    chirp = linear_chirp(f0, f1, seconds, rate)
    with (
        MicrophoneSource(sample_rate=rate, latency=0.1) as mic,
        OutputSink(sample_rate=rate, latency=0.1) as out,
    ):
        time.sleep(0.2)
        mic.read_available()  # start from silence
        assert out.write(chirp, block=True, timeout=10) == chirp.shape[0]
        assert out.drain(timeout=10)
        time.sleep(0.2)
        captured = mic.read_available()
        assert mic.error is None and out.error is None
        # Our rings lost nothing (the device's own overflows, ``mic.overruns``, are the machine's).
        assert (mic.dropped, out.underruns) == (0, 0)
    starts, freqs, levels = block_peaks(captured, rate)
    loud = levels > 0.25
    assert loud.sum() * 1024 / rate == pytest.approx(seconds, abs=0.15), "chirp length"
    t, f = starts[loud], freqs[loud]
    # The chirp's own time at each block (its centre), from the frequency measured there;
    # against the capture's time that must be a line of slope 1 whose offset is the latency. A
    # busy machine can cut a gap (a starved callback), which moves the offset of every block
    # after it: so nine in ten steps from block to block keep the offset, and the median slope
    # is 1 (a capture at the wrong rate, 44.1 kHz read as 48 kHz, has 1.18).
    t_chirp = (f - f0) / (f1 - f0) * seconds
    inner = (t_chirp > 0.05) & (t_chirp < seconds - 0.05)
    step = np.diff(t[inner] - t_chirp[inner])
    assert np.mean(np.abs(step) < 0.005) >= 0.9, step
    assert np.median(np.diff(t_chirp[inner]) / np.diff(t[inner])) == pytest.approx(1.0, abs=0.01)
    assert f.min() < f0 + 200 and f.max() > f1 - 200 and np.mean(np.diff(f) > 0) >= 0.9


@audio_test
def test_device_lost_mid_stream_is_reported_not_raised():
    errors = []
    mic = MicrophoneSource(on_error=errors.append)
    mic.start()
    deadline = time.monotonic() + 5
    while mic.callbacks == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mic.callbacks > 0 and mic.active
    mic._stream.abort()  # the stream ends under the source, as when a device vanishes
    assert mic.error is not None and errors == [mic.error]
    assert "stopped unexpectedly" in str(mic.error) and mic.device_name in str(mic.error)
    assert not mic.active
    assert mic.read_available().dtype == np.float32  # what was captured can still be read
    mic.close()  # never raises
    mic.close()
    assert errors == [mic.error]  # reported once


@audio_test
def test_failing_callback_aborts_and_reports():
    errors = []
    mic = MicrophoneSource(on_error=errors.append)
    mic._stopping = False  # as if started
    with pytest.raises(sd.CallbackAbort):
        mic._callback(np.zeros(5, dtype=np.float32), 5, None, sd.CallbackFlags())  # wrong shape
    mic._finished()
    assert len(errors) == 1 and re.search(r"stopped unexpectedly: \w*Error", str(errors[0]))
    mic.close()


@audio_test
def test_stalled_device_is_reported_on_read():
    errors = []
    with MicrophoneSource(on_error=errors.append, stall_timeout=0.5) as mic:
        time.sleep(0.1)
        mic.read_available()
        assert mic.error is None
        mic._last_callback -= 10  # no callback for 10 s, as when a device hangs
        mic.read_available()
        assert errors == [mic.error] and "delivered no audio" in str(mic.error)


@audio_test
def test_microphone_callback_mixes_down_selects_channels_and_counts_overflow():
    frames = np.stack([np.full(64, 0.5), np.full(64, -0.25)], axis=1).astype(np.float32)
    overflow = sd.CallbackFlags()
    overflow.input_overflow = True
    mic = MicrophoneSource(channels=2)
    mic._callback(frames, 64, None, overflow)
    mic._callback(frames, 64, None, sd.CallbackFlags())
    assert mic.overruns == 1
    np.testing.assert_array_equal(mic.read(), np.full(128, 0.125, dtype=np.float32))
    mic.close()
    picked = MicrophoneSource(channel=1)
    assert picked.channels == 2
    picked._callback(frames, 64, None, sd.CallbackFlags())
    np.testing.assert_array_equal(picked.read(), frames[:, 1])
    picked.close()
    with pytest.raises(ValueError, match=r"channel must be in 0\.\.31"):
        MicrophoneSource(channel=40)


@audio_test
def test_slow_reader_drops_are_counted():
    with MicrophoneSource(ring_seconds=0.05) as mic:
        time.sleep(0.3)
        assert mic.dropped > 0
        assert mic.read().shape[0] == mic.ring.capacity


@audio_test
def test_output_sink_fills_zeros_and_counts_underruns():
    out = OutputSink(channels=2)
    buffer = np.full((256, 2), 9.0, dtype=np.float32)
    out._callback(buffer, 256, None, sd.CallbackFlags())
    assert out.underruns == 0 and np.all(buffer == 0)  # silence before the first write
    out.write(np.arange(100, dtype=np.float32))
    out._callback(buffer, 256, None, sd.CallbackFlags())
    np.testing.assert_array_equal(buffer[:100, 0], np.arange(100))
    np.testing.assert_array_equal(buffer[:, 1], buffer[:, 0])
    assert np.all(buffer[100:] == 0) and out.underruns == 1
    out._callback(buffer, 256, None, sd.CallbackFlags())
    assert out.underruns == 1  # one gap counts once
    out.write(np.ones(600, dtype=np.float32))
    out._callback(buffer, 256, None, sd.CallbackFlags())
    out._callback(buffer, 256, None, sd.CallbackFlags())
    assert out.underruns == 1 and out.pending == 88
    out._draining = True  # the end of the material, as drain() marks it
    out._callback(buffer, 256, None, sd.CallbackFlags())
    assert out.underruns == 1
    assert out.write(np.ones(10**6, dtype=np.float32)) == out.ring.capacity
    assert out.dropped == 10**6 - out.ring.capacity
    out.close()
