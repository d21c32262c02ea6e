"""Spectral editing: a gain on a time-frequency region changes that region and leaves every other sample
of the recording as it was."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rtdstft.config import StreamConfig
from rtdstft.edit import Edit, edit_gain, spectral_edit
from rtdstft.errors import ParameterError
from rtdstft.selection import Region

FSDD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd" / "recordings"
RATE = 8000
BURST = (0.6, 1.1)  # s
TONE_HZ = 3000.0


CONFIG = StreamConfig.for_rate(RATE)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the engine's many small calls run many times slower with two threads on a
    busy two-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def edit(t0, t1, f0, f1, gain_db) -> Edit:
    return Edit(Region(t0, t1, f0, f1), gain_db)


@pytest.fixture(scope="module")
def speech_with_burst() -> np.ndarray:
    """Four spoken digits (about 2 s) with a 3 kHz tone burst over 0.5 s, on the 16-bit grid."""
    sf = pytest.importorskip("soundfile")
    files = sorted(FSDD.glob("*_jackson_0.wav"))[:4] if FSDD.is_dir() else []
    if len(files) < 4:
        pytest.skip(f"the spoken-digit recordings are not at {FSDD} (a clone without ../shared/data)")
    x = np.concatenate([sf.read(str(f))[0] for f in files])
    t = np.arange(x.shape[0]) / RATE
    x = x + 0.2 * np.sin(2 * np.pi * TONE_HZ * t) * ((t >= BURST[0]) & (t < BURST[1]))
    return np.round(x * 32767) / 32768


def tone_level_db(x: np.ndarray, start: float, end: float) -> float:
    """Amplitude of the 3 kHz component over [start, end) s (a lock-in average), dB."""
    t = np.arange(x.shape[0]) / RATE
    s = (t >= start) & (t < end)
    return 20 * math.log10(abs(np.mean(x[s] * np.exp(-2j * np.pi * TONE_HZ * t[s]))) + 1e-300)


def outside(x: np.ndarray, region: Region) -> np.ndarray:
    """Samples farther from the region than half the longest window (the mask's edge lies inside)."""
    reach = CONFIG.win_max / 2 / RATE
    t = np.arange(x.shape[0]) / RATE
    return (t < region.t0 - reach) | (t > region.t1 + reach)


def test_removing_a_tone_burst_lowers_it_by_40_db_and_keeps_the_rest_bit_exact(speech_with_burst):
    x = speech_with_burst
    e = edit(BURST[0] - 0.02, BURST[1] + 0.02, 2800.0, 3200.0, -math.inf)
    y = spectral_edit(x, RATE, [e], edge_ms=10, edge_hz=50, config=CONFIG).audio
    before = tone_level_db(x, BURST[0] + 0.05, BURST[1] - 0.05)
    after = tone_level_db(y, BURST[0] + 0.05, BURST[1] - 0.05)
    assert before - after >= 40, (before, after)
    keep = outside(x, e.region)
    assert keep.sum() > 0.5 * x.shape[0]
    np.testing.assert_array_equal(y[keep], x[keep])
    ints = lambda s: np.round(s * 32768).astype(np.int32)  # noqa: E731
    np.testing.assert_array_equal(ints(y)[keep], ints(x)[keep])
    # The speech under the burst, outside the edited band, survives.
    inside = ~keep
    assert np.sqrt(np.mean((y - x)[inside] ** 2)) < 0.2 / np.sqrt(2)


def test_zero_db_returns_the_input(speech_with_burst):
    x = speech_with_burst
    r = spectral_edit(x, RATE, [edit(0.2, 1.7, 100.0, 3900.0, 0.0)], config=CONFIG)
    assert np.abs(r.audio - x).max() <= 1e-6
    np.testing.assert_array_equal(np.round(r.audio * 32768), np.round(x * 32768))
    # A gain of 0 dB on one edit of a stack leaves the others' result as it was.
    cut = edit(0.3, 0.9, 500.0, 1500.0, -12.0)
    alone = spectral_edit(x, RATE, [cut], config=CONFIG).audio
    stacked = spectral_edit(x, RATE, [cut, edit(0.2, 1.7, 100.0, 3900.0, 0.0)], config=CONFIG).audio
    assert np.abs(alone - x).max() > 1e-3  # the -12 dB edit really changed something
    assert np.abs(stacked - alone).max() <= 1e-6


def test_stacked_edits_multiply_and_float32_input_keeps_its_dtype():
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(RATE)).astype(np.float32)
    a = edit(0.2, 0.6, 500.0, 1500.0, -6.0)
    b = edit(0.4, 0.8, 1000.0, 2000.0, -6.0)
    both = spectral_edit(x, RATE, [a, b], config=CONFIG)
    assert both.audio.dtype == np.float32 and both.audio.shape == x.shape
    g = edit_gain([a, b], np.array([0.5]), np.array([1250.0]), RATE / 2, 10, 50)
    assert g[0, 0] == pytest.approx(10 ** (-12 / 20))  # the overlap is inside both boxes: -12 dB there
    one = spectral_edit(x, RATE, [edit(0.2, 0.8, 500.0, 2000.0, -12.0)], config=CONFIG)
    assert not np.allclose(both.audio, one.audio)  # the stacked masks are not one box


def stereo_tone_and_clicks(seconds: float = 1.0) -> np.ndarray:
    """Left: a quiet 1 kHz tone (long windows); right: clicks every 50 ms (short windows); the mix
    gets windows of its own; 16-bit grid."""
    t = np.arange(int(seconds * RATE)) / RATE
    left = 0.05 * np.sin(2 * np.pi * 1000 * t)
    right = np.zeros_like(t)
    right[:: RATE // 20] = 0.9
    return np.round(np.stack([left, right], axis=1) * 32767) / 32768


def test_a_stereo_file_is_edited_with_the_theta_of_its_mono_mix(tmp_path):
    """Every channel goes through the frames of the θ the picture shows (the mono mix's), so the
    picture and the edit agree; outside the region each channel is bit-exact."""
    import soundfile as sf

    from rtdstft.edit import edit_file, engine_theta, mono_mix

    x = stereo_tone_and_clicks()
    src = tmp_path / "stereo.wav"
    sf.write(str(src), x, RATE, subtype="PCM_16")
    x = sf.read(str(src))[0]
    e = edit(0.3, 0.7, 500.0, 1500.0, -math.inf)
    mix_theta = engine_theta(mono_mix(x), CONFIG)
    assert not np.array_equal(engine_theta(x[:, 0], CONFIG), mix_theta)  # per channel would differ
    assert not np.array_equal(engine_theta(x[:, 1], CONFIG), mix_theta)
    np.testing.assert_array_equal(engine_theta(x, CONFIG), mix_theta)
    out = tmp_path / "out.wav"
    edit_file(src, out, [e], config=CONFIG, subtype="FLOAT")
    y = sf.read(str(out), dtype="float32")[0]
    for c in range(2):
        alone = spectral_edit(x[:, c], RATE, [e], config=CONFIG, theta=mix_theta).audio
        np.testing.assert_array_equal(y[:, c], alone.astype(np.float32))
    keep = outside(x, e.region)
    np.testing.assert_array_equal(y[keep], x[keep].astype(np.float32))
    assert tone_level(y[:, 0], 1000, 0.4, 0.6) < tone_level(x[:, 0], 1000, 0.4, 0.6) - 40


def test_a_file_is_edited_in_bounded_memory_and_equals_the_whole_signal_edit(tmp_path, monkeypatch):
    """``edit_file`` streams: its peak memory (numpy's, traced) does not grow with the file's length
    while a selection covers most of the file (cut into pieces); the file equals ``spectral_edit``
    of the whole signal, and the pieces equal one uncut inverse to float precision."""
    import tracemalloc

    import soundfile as sf

    from rtdstft import edit as edit_module
    from rtdstft.edit import edit_file

    cfg = StreamConfig(sample_rate=RATE, n_fft=512, hop_length=64)  # few frames: a quick test

    def run(seconds: float) -> tuple[int, np.ndarray, np.ndarray, list[Edit]]:
        rng = np.random.default_rng(5)
        t = np.arange(int(seconds * RATE)) / RATE
        x = np.stack([0.1 * rng.standard_normal(t.shape), 0.3 * np.sin(2 * np.pi * 1500 * t)], axis=1)
        src, out = tmp_path / f"in{seconds:g}.wav", tmp_path / f"out{seconds:g}.wav"
        sf.write(str(src), x, RATE, subtype="FLOAT")
        edits = [edit(1.0, seconds - 1.0, 1000.0, 2000.0, -20.0), edit(2.0, 2.5, 100.0, 600.0, 6.0)]
        tracemalloc.start()
        try:
            edit_file(src, out, edits, config=cfg)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return peak, sf.read(str(src))[0], sf.read(str(out), dtype="float32")[0], edits

    monkeypatch.setattr(edit_module, "PIECE_BINS", 1 << 15)  # 127 frames a piece: full pieces in both
    short, _, _, _ = run(4.0)
    peak, x, y, edits = run(24.0)
    assert peak < short + x.nbytes / 4, f"peak {peak / 1e6:.2f} MB against {short / 1e6:.2f} MB for 1/6 of it"
    whole = spectral_edit(x, RATE, edits, config=cfg).audio
    np.testing.assert_array_equal(y, whole.astype(np.float32))
    monkeypatch.setattr(edit_module, "PIECE_BINS", 1 << 40)  # one inverse for the whole selection
    uncut = spectral_edit(x, RATE, edits, config=cfg).audio
    assert np.abs(uncut - whole).max() <= 1e-6
    assert np.abs(whole - x).max() > 0.1


def test_given_theta_is_the_engines():
    rng = np.random.default_rng(1)
    x = 0.1 * rng.standard_normal(RATE)
    e = [edit(0.2, 0.6, 500.0, 1500.0, -20.0)]
    ran = spectral_edit(x, RATE, e, config=CONFIG)
    given = spectral_edit(x, RATE, e, config=CONFIG, theta=ran.win_length)
    np.testing.assert_array_equal(given.audio, ran.audio)
    with pytest.raises(ParameterError, match="theta must be"):
        spectral_edit(x, RATE, e, config=CONFIG, theta=ran.win_length[:-1])


def tone_level(x: np.ndarray, hz: float, start: float, end: float) -> float:
    t = np.arange(x.shape[0]) / RATE
    s = (t >= start) & (t < end)
    return 20 * math.log10(abs(np.mean(x[s] * np.exp(-2j * np.pi * hz * t[s]))) + 1e-300)


@pytest.mark.parametrize(
    ("e", "match"),
    [
        (edit(3.0, 4.0, 100, 200, -6), "t0 must be inside the signal"),
        (edit(0.5, 0.4, 100, 200, -6), "t0 < t1"),
        (edit(0.1, 0.4, 300, 200, -6), "f0 < f1"),
        (edit(0.1, 0.4, 100, 200, float("nan")), "gain_db must be in"),
        (edit(0.1, 0.4, 100, 200, 30.0), "gain_db must be in"),
        (edit(0.1, 0.4, 5000, 6000, -6), "below the Nyquist"),
    ],
)
def test_bad_edits_name_the_field(e, match):
    with pytest.raises(ParameterError, match=match):
        spectral_edit(np.zeros(RATE), RATE, [e], config=CONFIG)


# -- the command line ------------------------------------------------------------------------------


def write16(path: Path, x: np.ndarray) -> Path:
    import soundfile as sf

    sf.write(str(path), x, RATE, subtype="PCM_16")
    return path


def test_cli_edit_writes_16_bit_bit_exact_outside_the_region(speech_with_burst, tmp_path, capsys):
    import soundfile as sf

    from rtdstft.cli import main

    src = write16(tmp_path / "in.wav", speech_with_burst)
    out = tmp_path / "out.wav"
    e = edit(BURST[0] - 0.02, BURST[1] + 0.02, 2800.0, 3200.0, -math.inf)
    region = [str(v) for v in (e.region.t0, e.region.t1, e.region.f0, e.region.f1)]
    assert main(["edit", str(src), str(out), "--region", *region, "-inf", "--edge-ms", "10"]) == 0
    assert f"wrote {out} (WAV, PCM_16)" in capsys.readouterr().out
    x, _ = sf.read(str(src), dtype="int16")
    y, sr = sf.read(str(out), dtype="int16")
    assert sr == RATE and y.shape == x.shape and sf.info(str(out)).subtype == "PCM_16"
    keep = outside(x, e.region)
    np.testing.assert_array_equal(y[keep], x[keep])
    assert (
        tone_level_db(y / 32768, BURST[0] + 0.05, BURST[1] - 0.05)
        < tone_level_db(x / 32768, BURST[0] + 0.05, BURST[1] - 0.05) - 40
    )
    # The file is the library's output written to 16 bits; a 0 dB edit writes IN back unchanged.
    lib = spectral_edit(sf.read(str(src))[0], RATE, [e], config=CONFIG).audio
    np.testing.assert_array_equal(y, np.clip(np.rint(lib * 32768), -32768, 32767).astype(np.int16))
    assert main(["edit", str(src), str(out), "--region", "0.1", "1.8", "0", "4000", "0"]) == 0
    np.testing.assert_array_equal(sf.read(str(out), dtype="int16")[0], x)


@pytest.mark.parametrize(
    ("region", "message"),
    [
        (["9", "10", "100", "200", "-6"], "t0 must be inside the signal"),
        (["0.1", "0.5", "300", "200", "-6"], "0 <= f0 < f1"),
        (["0.1", "0.5", "300", "300", "-6"], "0 <= f0 < f1"),
        (["0.1", "0.5", "100", "200", "nan"], "gain_db must be in [-inf, 24] dB"),
    ],
)
def test_cli_bad_region_is_one_line_and_exit_2_and_writes_nothing(tmp_path, region, message, capsys):
    from rtdstft.cli import main

    src = write16(tmp_path / "in.wav", 0.1 * np.sin(np.arange(RATE) * 0.3))
    out = tmp_path / "out.wav"
    assert main(["edit", str(src), str(out), "--region", *region]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtdstft: error: ") and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_cli_entry_point_bad_region_is_one_line_and_exit_2(tmp_path):
    from audio_helpers import RTDSTFT

    src = write16(tmp_path / "in.wav", 0.1 * np.sin(np.arange(RATE) * 0.3))
    out = tmp_path / "out.wav"
    region = ["0.1", "0.5", "100", "200", "nan"]
    done = subprocess.run([*RTDSTFT, "edit", src, out, "--region", *region], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "rtdstft: error: gain_db must be in [-inf, 24] dB, got nan\n"
    assert not out.exists()


def test_cli_output_is_whole_or_absent(tmp_path, monkeypatch, capsys):
    import soundfile as sf

    from rtdstft import audio
    from rtdstft.cli import main

    x = 0.1 * np.sin(np.arange(2 * RATE) * 0.3)
    src = write16(tmp_path / "in.wav", x)
    before = src.read_bytes()
    out = tmp_path / "out.wav"
    out.write_bytes(b"the old OUT")
    real_write = audio.Recorder.write

    def write_half_then_fail(self, block):  # the disk fills up half way through
        real_write(self, block[: len(block) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audio.Recorder, "write", write_half_then_fail)
    assert main(["edit", str(src), str(out), "--region", "0.2", "0.8", "100", "900", "-12"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_bytes() == b"the old OUT"  # the old file, not a partial new one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]
    monkeypatch.undo()
    # OUT = IN is refused unless --overwrite; then IN is replaced by the whole edited file.
    assert main(["edit", str(src), str(src), "--region", "0.2", "0.8", "100", "900", "-12"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert src.read_bytes() == before
    args = ["edit", str(src), str(src), "--overwrite", "--region", "0.2", "0.8", "100", "900", "-12"]
    assert main(args) == 0
    y = sf.read(str(src))[0]
    assert y.shape == x.shape and np.abs(y - x).max() > 1e-3


def test_a_banded_config_edits_through_one_band_of_frames():
    """The GUI's default engine has several bands; the edit then takes θ from the one-band engine
    with the same N and H (one θ per frame), and still keeps every other sample."""
    from rtdstft.edit import engine_theta

    rng = np.random.default_rng(3)
    x = 0.1 * rng.standard_normal(16000)
    banded = StreamConfig.for_rate(16000, bands=4)
    one = banded.replace(bands=1, band_edges=None)
    np.testing.assert_array_equal(engine_theta(x, banded), engine_theta(x, one))


def test_nan_and_inf_samples_are_edited_around_as_zeros_and_written_back(tmp_path, capsys):
    """A float file may hold NaN or ±inf (the engine takes them as 0); an edit over them ended in a
    traceback ("x contains NaN or inf samples"). They are analysed as 0 and written back as they
    were; the file's edit is the library's."""
    import soundfile as sf

    from rtdstft.cli import main

    x = stereo_tone_and_clicks(1.0)
    bad = {(2000, 0): np.nan, (2400, 1): np.inf, (5000, 0): -np.inf, (7000, 1): np.nan}
    y = x.copy()
    for spot, value in bad.items():
        y[spot] = value
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(src), y, RATE, subtype="FLOAT")
    e = edit(0.2, 0.7, 500.0, 2500.0, -12.0)
    region = [str(v) for v in (e.region.t0, e.region.t1, e.region.f0, e.region.f1, e.gain_db)]
    assert main(["edit", str(src), str(out), "--region", *region]) == 0, capsys.readouterr().err
    got = sf.read(str(out), dtype="float32")[0]
    finite = np.isfinite(y)
    np.testing.assert_array_equal(got[~finite], y[~finite].astype(np.float32))
    lib = spectral_edit(y, RATE, [e], config=CONFIG).audio
    np.testing.assert_array_equal(lib[~finite], y[~finite])
    np.testing.assert_allclose(got[finite], lib[finite], atol=1e-6)
    assert np.abs(got[finite] - y[finite]).max() > 0.01  # the edit did something
