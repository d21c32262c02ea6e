"""Selections over analysed audio, readouts and exports, without the GUI: the exact frames against
what the streaming engine emitted, the masked resynthesis against the input, the refined peak and
note names against known tones, and the file formats through save and load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtdstft import StreamingDSTFT
from rtdstft.export import (
    RAVEN_HEADER,
    read_audacity_labels,
    read_raven_table,
    read_settings,
    write_audacity_labels,
    write_frames_csv,
    write_npz,
    write_raven_table,
)
from rtdstft.pitch import from_axis, hz_to_mel, mel_to_hz, note, peak_frequency, to_axis
from rtdstft.selection import Excerpt, Region, frame_peaks, frames, mask, measure, resynthesize

SR = 16000
N, H = 1024, 128


def two_tones(seconds: float = 2.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.4 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def streamed():
    """Two tones and a burst of noise through the adaptive engine, in random blocks: the excerpt
    (input and emitted θ) and the emitted frames."""
    rng = np.random.default_rng(1)
    x = two_tones()
    x[12000:12400] += 0.3 * rng.standard_normal(400).astype(np.float32)
    engine = StreamingDSTFT(sample_rate=SR, n_fft=N, hop_length=H, adapt=True)
    outs, i = [], 0
    while i < len(x):
        k = int(rng.integers(50, 900))
        outs.append(engine.process(x[i : i + k]))
        i += k
    outs.append(engine.flush())
    spec = np.concatenate([o.spec for o in outs])
    theta = np.concatenate([o.win_length for o in outs]).astype(np.float32)
    index = np.concatenate([o.frame_index for o in outs])
    assert np.array_equal(index, np.arange(len(index)))
    ex = Excerpt(x, 0, theta, 0, SR, N, H, 0.0, engine.config.as_dict())
    return ex, spec


def test_frames_equal_what_the_engine_emitted(streamed):
    ex, spec = streamed
    got = frames(ex, 40, 200)
    scale = np.abs(spec).max()
    assert np.max(np.abs(got - spec[40:200])) / scale <= 1e-6
    # A shifted excerpt (samples from 3000 on, frames from 40 on) gives the same frames.
    part = Excerpt(ex.audio[3000:], 3000, ex.theta[40:], 40, SR, N, H, 0.0, ex.settings)
    assert np.max(np.abs(frames(part, 60, 200) - spec[60:200])) / scale <= 1e-6


def test_whole_band_resynthesis_is_the_input_inside_its_fades(streamed):
    ex, _ = streamed
    r = Region(0.3, 1.2, 0.0, SR / 2)
    y = resynthesize(ex, r, edge_s=0.02)
    x = ex.audio[int(0.3 * SR) : int(1.2 * SR)]
    reach = int((0.02 + N / 2 / SR) * SR)  # the fade, and the half window of the frames on it
    inner = slice(reach, len(x) - reach)
    err = y[inner] - x[inner]
    snr = 10 * np.log10(np.sum(x[inner] ** 2) / np.sum(err**2))
    assert snr > 100, snr


def test_band_resynthesis_keeps_one_tone(streamed):
    ex, _ = streamed
    y = resynthesize(ex, Region(0.2, 0.7, 800, 1200))
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    f = np.fft.rfftfreq(len(y), 1 / SR)
    at = lambda hz: spec[np.abs(f - hz) < 20].max()  # noqa: E731
    assert 20 * np.log10(at(1000) / at(3000)) > 60
    assert 0.35 < np.abs(y[len(y) // 4 : 3 * len(y) // 4]).max() < 0.45  # the 1 kHz amplitude, 0.4


def test_mask_is_smooth_inside_the_box_and_open_at_the_band_ends():
    t = np.linspace(0, 1, 101)
    f = np.linspace(0, 8000, 81)
    m = mask(t, f, Region(0.2, 0.8, 1000, 8000), 8000, edge_s=0.1, edge_hz=500)
    assert m[t < 0.2].max() == 0 and m[(t > 0.3) & (t < 0.7)][:, (f > 1500)].min() == 1
    assert 0 < m[25, 60] < 1  # on the ramp at 0.25 s
    assert m[50, -1] == 1  # the band reaches Nyquist: no ramp there
    with pytest.raises(ValueError, match="edge_s"):
        mask(t, f, Region(0, 1, 0, 1), 8000, edge_s=-1)


def test_measure_reads_the_tone(streamed):
    ex, _ = streamed
    m = measure(ex, Region(0.2, 0.7, 800, 1200))
    assert abs(m["peak_hz"] - 1000) < 0.5
    assert abs(m["peak_db"] - 20 * np.log10(0.4)) < 0.05  # between bins, corrected
    assert abs(m["energy_db"] - 20 * np.log10(0.4)) < 0.5  # a sine's power over its band
    assert m["duration"] == pytest.approx(0.5) and m["low"] == 800 and m["high"] == 1200
    assert 1000 * ex.theta.min() / SR <= m["median_theta_ms"] <= 1000 * ex.theta.max() / SR


def test_measure_reads_the_tone_with_peak_normalized_windows():
    """The level is in dB re a full-scale sine whatever window gain the engine used."""
    x = two_tones(1.0)
    engine = StreamingDSTFT(sample_rate=SR, n_fft=N, hop_length=H, adapt=False, normalization="peak")
    outs = [engine.process(x), engine.flush()]
    theta = np.concatenate([o.win_length for o in outs]).astype(np.float32)
    ex = Excerpt(x, 0, theta, 0, SR, N, H, 0.0, engine.config.as_dict())
    assert ex.normalization == "peak"
    m = measure(ex, Region(0.2, 0.7, 2800, 3200))
    assert abs(m["peak_db"] - 20 * np.log10(0.3)) < 0.05
    assert abs(m["energy_db"] - 20 * np.log10(0.3)) < 0.5


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3137.7])
def test_peak_frequency_below_the_bin_spacing(freq):
    sr = 48000
    t = np.arange(sr // 2) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t + 0.3)
    got, level = peak_frequency(x, 8000, freq + 9.0, sr, 2048, 256, 1024.0)
    assert abs(got - freq) < 0.01  # the bin spacing is 23.4 Hz
    assert abs(level - 20 * np.log10(0.5)) < 0.05
    with pytest.raises(ValueError, match="theta"):
        peak_frequency(x, 8000, freq, sr, 2048, 256, 4096.0)


def test_note_names_and_cents():
    assert note(440.0) == ("A4", 0.0)
    name, cents = note(440.0 * 2 ** (3 / 1200))
    assert name == "A4" and cents == pytest.approx(3.0)
    assert note(261.6256)[0] == "C4" and note(277.18)[0] == "C#4"
    assert note(432.0, a4=432.0) == ("A4", 0.0)
    with pytest.raises(ValueError, match="a4"):
        note(440.0, a4=0)


def test_axis_scales_round_trip():
    f = np.array([20.0, 440.0, 1000.0, 16000.0])
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.5)  # HTK: 1 kHz ≈ 1000 mel
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f)
    for scale in ("linear", "log", "mel"):
        np.testing.assert_allclose(from_axis(to_axis(f, scale), scale), f)
    with pytest.raises(ValueError, match="scale"):
        to_axis(f, "bark")


def test_npz_layout_loads_with_numpy_alone(tmp_path, streamed):
    ex, spec = streamed
    n0, n1 = 10, 30
    path = write_npz(
        tmp_path / "a.npz",
        spec[n0:n1],
        ex.theta[n0:n1],
        ex.frame_time(np.arange(n0, n1)),
        np.arange(n0, n1),
        ex.frequencies(),
        ex.settings_json(),
    )
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"spec", "theta", "time", "frame_index", "freq", "settings"}
        assert np.array_equal(z["spec"], spec[n0:n1]) and z["spec"].dtype == np.complex64
        settings = read_settings(z)
        assert json.loads(str(z["settings"])) == settings
    assert settings["n_fft"] == N and settings["hop_length"] == H and "win_min" in settings
    with pytest.raises(ValueError, match="theta"):
        write_npz(
            tmp_path / "b.npz", spec[:3], ex.theta[:2], np.zeros(3), np.arange(3), ex.frequencies(), "{}"
        )


def test_frames_csv(tmp_path):
    cols = {
        "frame": np.arange(3),
        "time": np.array([0.0, 0.1, 0.2]),
        "theta": np.array([512.0, 256.0, 1024.0]),
        "peak_hz": np.array([440.0, 441.0, 442.0]),
        "peak_db": np.array([-6.0, -7.0, -8.0]),
    }
    text = write_frames_csv(tmp_path / "f.csv", cols, 16000).read_text().splitlines()
    assert text[0] == "frame,time_s,win_length_samples,win_length_ms,peak_hz,peak_db"
    assert text[2] == "1,0.100000,256.000,16.0000,441.0000,-7.00"


REGIONS = [Region(0.5, 1.25, 800.0, 1200.0, "tone"), Region(2.0, 2.5, 0.0, 8000.0, "click, wide")]


def test_audacity_labels_round_trip(tmp_path):
    path = write_audacity_labels(tmp_path / "labels.txt", REGIONS)
    lines = path.read_text().splitlines()
    assert lines[0] == "0.500000\t1.250000\ttone"
    assert lines[1] == "\\\t800.000000\t1200.000000"  # Audacity's spectral-selection line
    assert read_audacity_labels(path) == REGIONS
    plain = tmp_path / "plain.txt"
    plain.write_text("1.0\t2.0\tno band\n")
    assert read_audacity_labels(plain) == [Region(1.0, 2.0, 0.0, float("inf"), "no band")]
    plain.write_text("one\ttwo\n")
    with pytest.raises(ValueError, match="Audacity"):
        read_audacity_labels(plain)


def test_raven_table_round_trip(tmp_path):
    path = write_raven_table(tmp_path / "table.txt", REGIONS)
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert tuple(rows[0]) == RAVEN_HEADER
    assert rows[1][:3] == ["1", "Spectrogram 1", "1"]
    assert read_raven_table(path) == REGIONS


def test_raven_time_only_selection_reaches_nyquist_never_inf(tmp_path):
    """Raven's High Freq column is a number: a time-only selection (inf, from an Audacity label
    without a band) is written up to the Nyquist frequency given, and refused without one."""
    regions = [Region(1.0, 2.0, 0.0, float("inf"), "no band"), Region(3.0, 4.0, 100.0, 200.0, "band")]
    path = write_raven_table(tmp_path / "table.txt", regions, nyquist=8000.0)
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert [r[6] for r in rows[1:]] == ["8000.000", "200.000"]
    assert "inf" not in path.read_text()
    assert read_raven_table(path) == [Region(1.0, 2.0, 0.0, 8000.0, "no band"), regions[1]]
    with pytest.raises(ValueError, match="nyquist"):
        write_raven_table(tmp_path / "none.txt", regions)
    assert not (tmp_path / "none.txt").exists()
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="nyquist must be a finite frequency > 0"):
            write_raven_table(tmp_path / "bad.txt", regions, nyquist=bad)


def test_audacity_time_only_label_has_no_frequency_line(tmp_path):
    """A label without a band (what a plain label line reads as: 0 .. inf Hz) is written as Audacity
    writes one, with no '\\' line (Audacity cannot read 'inf' there), and reads back the same."""
    regions = [Region(1.0, 2.0, 0.0, float("inf"), "no band"), Region(3.0, 4.0, 100.0, 200.0, "band")]
    path = write_audacity_labels(tmp_path / "labels.txt", regions)
    assert path.read_text().splitlines() == [
        "1.000000\t2.000000\tno band",
        "3.000000\t4.000000\tband",
        "\\\t100.000000\t200.000000",
    ]
    assert read_audacity_labels(path) == regions


@pytest.mark.parametrize("fmt", ["audacity", "raven"])
def test_label_text_survives_the_label_files(tmp_path, fmt):
    """Labels with tabs and line breaks keep their rows (the breaks become spaces); quotes and
    non-ASCII text come back as written."""
    write, read = {
        "audacity": (write_audacity_labels, read_audacity_labels),
        "raven": (write_raven_table, read_raven_table),
    }[fmt]
    labels = ["a\tb", "line1\nline2\r\nline3", '"quoted"', 'say "hi"', "héllo ñ 鳥", "x\u2028y"]
    regions = [Region(i, i + 0.5, 100.0, 200.0 + i, text) for i, text in enumerate(labels)]
    back = read(write(tmp_path / "labels.txt", regions))
    expected = ["a b", "line1 line2 line3", '"quoted"', 'say "hi"', "héllo ñ 鳥", "x y"]
    assert back == [Region(r.t0, r.t1, r.f0, r.f1, text) for r, text in zip(regions, expected, strict=True)]


@pytest.mark.parametrize(
    "region, match",
    [
        (Region(0.2, 0.5, 9000, 12000), "band"),  # above Nyquist (8 kHz)
        (Region(0.2, 0.5, -500, -100), "band"),  # below 0 Hz
        (Region(0.2, 0.5, 100, float("nan")), "band"),
        (Region(0.2, float("nan"), 100, 200), "times"),
        (Region(0.2, float("inf"), 100, 200), "times"),
    ],
)
def test_measure_refuses_a_region_with_nothing_to_measure(streamed, region, match):
    """A band wholly outside 0 .. Nyquist or a time that is not a number is a ValueError, not a
    reading of the nearest bin (a 'peak' above Nyquist at -190 dB)."""
    ex, _ = streamed
    with pytest.raises(ValueError, match=match):
        measure(ex, region)
    with pytest.raises(ValueError, match=match):
        frame_peaks(ex, region)


def test_measure_at_the_band_limits(streamed):
    """A band reaching past Nyquist or below 0 Hz measures the part inside."""
    ex, _ = streamed
    assert abs(measure(ex, Region(0.2, 0.7, 2800, 20000))["peak_hz"] - 3000) < 0.5
    assert abs(measure(ex, Region(0.2, 0.7, -100, 1200))["peak_hz"] - 1000) < 0.5


def test_frame_peaks_follow_a_chirp_at_the_frame_centres():
    """The refined peak of each frame is the chirp's frequency at that frame's centre, not half a
    hop later (one phase advance n -> n+1 reads the frequency at (n + 1/2)·H: 8 Hz off here)."""
    rate = 2000.0  # Hz/s: 1 kHz -> 3 kHz over the second
    t = np.arange(SR) / SR
    x = (0.1 * np.sin(2 * np.pi * (1000 * t + rate / 2 * t**2))).astype(np.float32)
    ex = Excerpt(x, 0, np.full(1 + SR // H, 512, np.float32), 0, SR, N, H)
    cols = frame_peaks(ex, Region(0.1, 0.9, 0, SR / 2))
    err = cols["peak_hz"] - (1000 + rate * cols["time"])
    assert np.median(np.abs(err)) < 1.5, np.median(np.abs(err))  # was 7.0 (rate·H / 2sr = 8 Hz)
    assert np.max(np.abs(err)) < 3.0


def test_digital_silence_has_no_peak_frequency():
    """Zeros have no phase, so no refined frequency: NaN (at -240 dB), not a bin's frequency shifted
    by a meaningless phase advance (which the readout named as a note)."""
    x = np.zeros(SR, np.float32)
    hz, db = peak_frequency(x, 8000, 1000.0, SR, N, H, 512.0)
    assert np.isnan(hz) and db == pytest.approx(-240.0)
    # Half a second of silence, then a tone: the silent frames read NaN, the tone's its frequency.
    x[SR // 2 :] = 0.1 * np.sin(2 * np.pi * 1000 * np.arange(SR // 2) / SR)
    ex = Excerpt(x, 0, np.full(1 + SR // H, 512, np.float32), 0, SR, N, H)
    cols = frame_peaks(ex, Region(0.0, 1.0, 0, SR / 2))
    silent = cols["time"] < 0.5 - N / 2 / SR  # windows that reach no tone sample
    assert silent.sum() > 10 and np.all(np.isnan(cols["peak_hz"][silent]))
    assert np.all(cols["peak_db"][silent] == pytest.approx(-240.0))
    assert np.all(np.abs(cols["peak_hz"][cols["time"] > 0.55] - 1000) < 0.5)
    m = measure(ex, Region(0.0, 0.4, 0, SR / 2))
    assert np.isnan(m["peak_hz"]) and m["peak_db"] == pytest.approx(-240.0)
    assert abs(measure(ex, Region(0.2, 0.8, 500, 1500))["peak_hz"] - 1000) < 0.5


def test_a_failed_export_leaves_the_old_file(tmp_path):
    """Every writer is whole-or-absent: a write that fails half-way (columns of unequal length, a
    label UTF-8 cannot encode) leaves the file that was there, and no temporary file."""
    old = "the previous export\n"
    bad_columns = {
        "frame": [0, 1],
        "time": [0.0, 0.1],
        "theta": [512.0],
        "peak_hz": [1.0, 2.0],
        "peak_db": [0, 0],
    }
    writes = {
        "frames.csv": lambda p: write_frames_csv(p, bad_columns, SR),
        "labels.txt": lambda p: write_audacity_labels(p, [*REGIONS, Region(0, 1, 0, 100, "bad \ud800")]),
        "table.txt": lambda p: write_raven_table(p, [*REGIONS, Region(0, 1, 0, 100, "bad \ud800")]),
    }
    for name, write in writes.items():
        path = tmp_path / name
        path.write_text(old)
        with pytest.raises((ValueError, UnicodeError)):
            write(path)
        assert path.read_text() == old, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(writes)
