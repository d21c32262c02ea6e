"""A window length per frequency band: the split, the whole-signal banded transform, the stream's
equality with it, exact resynthesis, steadiness of θ, and the band-restricted quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import rtdstft
from rtdstft.bands import BandSplit, band_bins, banded_dstft, default_band_edges
from rtdstft.bench import FSDD_WORDS, QUALITY_SCENES
from rtdstft.entropy import entropy
from rtdstft.scenes import (
    adaptation_report,
    band_report,
    block_oracle,
    click_train,
    overlap_scenes,
    scene,
    speech,
    steady_tones,
    stream_all,
)
from rtdstft.stream import settings_for_rate

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
NO_DATA = "../shared/data not present (a user's clone has no shared data)"
WORDS = ("3_jackson_0.wav", "7_george_1.wav", "5_lucas_2.wav", "9_nicolas_3.wav")


def feed(engine, x, rng, max_block=3000):
    """x through the engine in random block sizes, then flush; the outputs concatenated."""
    outs, i = [], 0
    while i < len(x):
        b = int(rng.integers(1, max_block))
        outs.append(engine.process(x[i : i + b]))
        assert outs[-1].audio.shape == (min(b, len(x) - i),)
        i += b
    outs.append(engine.flush())
    return {k: np.concatenate([getattr(o, k) for o in outs]) for k in ("spec", "win_length", "audio")}


def snr_db(ref, est) -> float:
    ref, est = ref.astype(np.float64), est.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / np.sum((est - ref) ** 2)))


def mean_step(theta: np.ndarray, k: int, skip: int) -> float:
    """Mean |Δ log θ| between successive blocks of k frames, after the first ``skip`` blocks."""
    per_block = np.log(theta[::k])[skip:]
    return float(np.abs(np.diff(per_block, axis=0)).mean())


# ---- the split -----------------------------------------------------------------------------------


def test_default_edges_are_octave_like_and_bands_sum_to_the_signal():
    edges = default_band_edges(4, 48000)
    assert np.allclose(edges, [445.4, 1414.2, 4490.0], rtol=1e-3)
    assert np.allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0]))
    assert default_band_edges(1, 48000) == ()
    split = BandSplit(edges, 48000)
    x = np.random.default_rng(0).standard_normal(20_000)
    parts = split.split(x)
    assert parts.shape == (4, 20_000)
    assert np.abs(parts.sum(0) - x).max() < 1e-13
    t = np.arange(48000) / 48000
    for f, band in ((100.0, 0), (900.0, 1), (2500.0, 2), (12000.0, 3)):
        p = (split.split(np.sin(2 * np.pi * f * t))[:, 5000:-5000] ** 2).mean(1)
        assert p[band] > 1e6 * np.delete(p, band).max(), (f, p)  # >= 60 dB into its own band


def test_streaming_split_equals_the_whole_signal_split():
    split = BandSplit(default_band_edges(8, 16000), 16000)
    x = np.random.default_rng(1).standard_normal(9000)
    rng, outs, i = np.random.default_rng(2), [], 0
    while i < len(x):
        b = int(rng.integers(1, 700))
        outs.append(split.push(x[i : i + b]))
        i += b
    outs.append(split.finish())
    assert np.abs(np.concatenate(outs, 1) - split.split(x)).max() < 1e-12


def test_banded_transform_with_one_theta_is_the_dstft():
    x = torch.from_numpy(np.random.default_rng(3).standard_normal(5000))
    ref = rtdstft.DSTFT(512, 64)(x, 300.0)
    got = banded_dstft(x, 300.0, 512, 64, 16000, bands=4)
    assert torch.allclose(got, ref, atol=1e-9 * ref.abs().max())


# ---- the stream (must hold 1 and 2) --------------------------------------------------------------


@pytest.mark.parametrize("bands", [1, 2, 4, 8])
def test_stream_equals_the_banded_transform_with_the_emitted_theta(bands):
    rng = np.random.default_rng(bands)
    sr = 16000
    x = scene([("clicks", 0.5), ("tones", 0.5), ("voiced", 0.4)], sr).astype(np.float64)
    engine = rtdstft.StreamingDSTFT(sr, 512, 64, block_frames=4, bands=bands, dtype=torch.float64)
    got = feed(engine, x, rng)
    theta = got["win_length"]
    assert theta.shape == ((1 + len(x) // 64,) if bands == 1 else (1 + len(x) // 64, bands))
    theta = theta.reshape(len(theta), -1).T  # [B, F]
    assert all(len(np.unique(row)) > 2 for row in theta), "θ should move in every band"
    ref = banded_dstft(
        torch.from_numpy(x), torch.from_numpy(theta.copy()), 512, 64, sr, bands=bands, win_min=128
    ).T.numpy()
    assert np.abs(got["spec"] - ref).max() <= 1e-9 * np.abs(ref).max()


@pytest.mark.parametrize("bands", [2, 4, 8])
@pytest.mark.parametrize("dtype,min_snr", [(torch.float32, 100.0), (torch.float64, 250.0)])
def test_banded_resynthesis_is_the_input_delayed_by_latency(bands, dtype, min_snr):
    sr = 16000
    x = scene([("voiced", 0.4), ("clicks", 0.4), ("vibrato", 0.4)], sr)
    x = x.astype(np.float32 if dtype == torch.float32 else np.float64)
    engine = rtdstft.StreamingDSTFT(sr, 512, 64, block_frames=4, bands=bands, dtype=dtype)
    assert engine.latency == 512 + 3 * 64 - 1 + engine.split_delay and engine.split_delay > 0
    audio = feed(engine, x, np.random.default_rng(bands))["audio"]
    assert audio.shape == (len(x) + engine.latency,)
    assert np.all(audio[: engine.latency] == 0)
    assert snr_db(x, audio[engine.latency :]) >= min_snr


@pytest.mark.parametrize("bands", [2, 4, 8])
def test_banded_resynthesis_with_one_sample_blocks(bands):
    x = (np.random.default_rng(4).standard_normal(2500) * 0.1).astype(np.float32)
    engine = rtdstft.StreamingDSTFT(8000, 256, 32, block_frames=2, bands=bands)
    audio = np.concatenate(
        [engine.process(x[i : i + 1]).audio for i in range(len(x))] + [engine.flush().audio]
    )
    assert snr_db(x, audio[engine.latency :]) >= 100.0


def test_band_edges_are_exposed_and_bad_ones_refused():
    engine = rtdstft.StreamingDSTFT(48000, 2048, 256, band_edges=[300.0, 3000.0])
    assert engine.bands == 3 and engine.band_edges == (300.0, 3000.0)
    assert list(engine.band_bins) == list(band_bins((300.0, 3000.0), 48000, 2048))
    assert rtdstft.StreamingDSTFT(48000, bands=4).band_edges == default_band_edges(4, 48000)
    with pytest.raises(ValueError, match=r"bands must be an integer in \[1, 8\]"):
        rtdstft.StreamingDSTFT(48000, bands=9)
    with pytest.raises(ValueError, match="band_edges must increase strictly"):
        rtdstft.StreamingDSTFT(48000, band_edges=[3000.0, 300.0])
    with pytest.raises(ValueError, match="band_edges must lie at least one bin"):
        rtdstft.StreamingDSTFT(48000, 2048, 256, band_edges=[300.0, 301.0])
    with pytest.raises(ValueError, match=r"bands \(2\) must be len\(band_edges\) \+ 1 = 3"):
        rtdstft.StreamingDSTFT(48000, bands=2, band_edges=[300.0, 3000.0])


# ---- steadiness (must hold 4) --------------------------------------------------------------------


def _noises(sr: float, seconds: float):
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    white = 0.1 * rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum, n)
    pink *= 0.1 / pink.std()
    chord = steady_tones(seconds, sr) + 1e-4 * rng.standard_normal(n)
    return {"white": white, "pink": pink, "chord": chord}


@pytest.mark.parametrize("bands", [1, 4])
def test_theta_holds_still_on_stationary_sound(bands):
    sr = 48000
    settings = {k: v for k, v in settings_for_rate(sr).items() if k != "win_length"}
    k = 8
    skip = int(sr / (settings["hop_length"] * k))  # the first second
    for name, x in _noises(sr, 2.0).items():
        engine = rtdstft.StreamingDSTFT(sr, block_frames=k, bands=bands, **settings)
        _, theta, _ = stream_all(engine, x.astype(np.float32), block=2048)
        assert mean_step(theta, k, skip) <= 0.05, name


def test_theta_follows_a_tone_to_clicks_switch_within_two_blocks():
    sr, k = 48000, 8
    settings = {k: v for k, v in settings_for_rate(sr).items() if k != "win_length"}
    h = settings["hop_length"]
    half = 1.5
    x = np.concatenate([steady_tones(half, sr, (440.0, 660.0)), click_train(half, sr, rate=40.0)])
    x = (x + 1e-4 * np.random.default_rng(5).standard_normal(len(x))).astype(np.float32)
    engine = rtdstft.StreamingDSTFT(sr, block_frames=k, **settings)
    _, theta, _ = stream_all(engine, x, block=1024)
    blocks = np.log(theta[::k])
    switch = int(half * sr / h) // k  # the block whose frames straddle the switch
    settled = np.median(blocks[switch + 6 :])
    assert blocks[switch - 1] > settled + 1.0, "on the tone θ should be long"
    assert abs(blocks[switch + 2] - settled) <= np.log(1.2), np.exp(blocks[switch - 1 : switch + 4])


@pytest.mark.parametrize("name", [*QUALITY_SCENES, "clicks → tones → chirp → speech (FSDD)"])
def test_time_only_engine_closes_nine_tenths_of_the_gap_on_every_quality_scene(name):
    """The quality bench's scenes, whole, at its settings (48 kHz, N = 2048, H = 256, K = 8, r = 4):
    entropies are deterministic, so this holds on any machine."""
    sr = 48000
    if name in QUALITY_SCENES:
        parts = QUALITY_SCENES[name]
    else:
        if not FSDD.is_dir():
            pytest.skip(NO_DATA)
        parts = [
            ("clicks", 1.0),
            ("tones", 1.0),
            ("chirp", 1.0),
            (speech([FSDD / w for w in FSDD_WORDS], sr), None),
        ]
    r = adaptation_report(scene(parts, sr), sr, 2048, 256, block_frames=8, radius=4)
    assert r["oracle"] <= r["best_fixed"]
    assert r["gap_closed"] >= 0.9, {k: v for k, v in r.items() if k != "theta"}


def test_block_oracle_is_the_best_sequence_of_one_theta_per_block():
    """Against brute force over every sequence of 4 grid θ on 4 blocks, each scored by the local
    entropy of the transform with that θ per frame."""
    sr, k, r = 16000, 4, 2
    x = np.concatenate([click_train(0.015, sr, rate=200.0), steady_tones(0.015, sr)])  # 480 samples
    x = torch.from_numpy(x + 1e-4 * np.random.default_rng(3).standard_normal(len(x)))
    t = rtdstft.DSTFT(128, 32, win_min=40, win_max=128)
    grid = np.geomspace(40, 128, 4)
    n_frames = t.num_frames(len(x))
    n_blocks = -(-n_frames // k)
    assert n_blocks == 4
    spectra = [t(x, float(g)) for g in grid]
    power = [s.abs() ** 2 for s in spectra]
    z = np.stack([p.sum(0).double().numpy() for p in power])
    q = np.stack([(p * torch.log(p + torch.finfo(p.dtype).tiny)).sum(0).double().numpy() for p in power])
    value, choice = block_oracle(z, q, k, r)

    def scored(seq):
        theta = torch.from_numpy(grid[np.repeat(seq, k)[:n_frames]])
        return float(entropy(t(x, theta), radius=r).mean())

    brute = min(scored(np.array(seq)) for seq in np.ndindex(*(len(grid),) * n_blocks))
    assert value == pytest.approx(brute, abs=1e-5)
    assert scored(choice) == pytest.approx(value, abs=1e-5)
    with pytest.raises(ValueError, match="radius must be in"):
        block_oracle(z, q, 4, 3)


# ---- quality (must hold 3) -----------------------------------------------------------------------


def _overlap_scenes():
    return overlap_scenes(48000, [FSDD / w for w in WORDS] if FSDD.is_dir() else None)


@pytest.mark.parametrize(
    "name", ["bass line under hi-hats", "low tone under clicks", "speech (FSDD) under hi-hats"]
)
def test_banded_engine_beats_the_time_only_engine_per_band(name):
    scenes = _overlap_scenes()
    if name not in scenes:
        pytest.skip(NO_DATA)
    r = band_report(scenes[name], 48000, 2048, 256, bands=4)
    assert r["banded"] < r["time_only"], r
    if name == "low tone under clicks":
        top, bottom = np.median(r["theta"][:, -1]), np.median(r["theta"][:, 0])
        assert top < bottom, "clicks want short windows above, the tone long ones below"


# ---- the command -----------------------------------------------------------------------------------


def test_analyze_with_bands_draws_theta_per_band_and_writes_a_column_per_band(tmp_path, capsys):
    import matplotlib.image
    import soundfile as sf

    from rtdstft.cli import main

    sr = 16000
    x = steady_tones(2.0, sr, (150.0,)) + click_train(2.0, sr, rate=10.0)
    wav, picture, table = tmp_path / "low.wav", tmp_path / "low.png", tmp_path / "low.csv"
    sf.write(wav, x, sr)
    assert main(["analyze", str(wav), "-o", str(picture), "--csv", str(table), "--bands", "4"]) == 0
    assert "4 bands" in capsys.readouterr().out
    image = matplotlib.image.imread(picture)
    assert image.shape[0] > 500 and image[..., :3].std() > 0.05
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    assert header == ["frame", "time_s"] + [f"win_length_samples_b{b}" for b in range(4)] + [
        f"win_length_ms_b{b}" for b in range(4)
    ]
    rows = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    hop = settings_for_rate(sr)["hop_length"]
    assert rows.shape == (1 + len(x) // hop, 10)
    np.testing.assert_allclose(rows[:, 6:], 1000 * rows[:, 2:6] / sr, atol=1e-3)
    assert np.median(rows[:, 5]) < np.median(rows[:, 2]), "top band shorter than the bottom band"
    assert main(["analyze", str(wav), "-o", str(picture), "--bands", "9"]) == 2
    assert "--bands" in capsys.readouterr().err


def test_samples_to_next_block_counts_the_split_delay():
    """Feeding exactly ``samples_to_next_block`` samples emits one block each time, with bands too."""
    x = np.random.default_rng(6).standard_normal(20_000).astype(np.float32)
    for bands in (1, 4):
        engine = rtdstft.StreamingDSTFT(16000, 512, 64, block_frames=4, bands=bands)
        i = 0
        while i + engine.samples_to_next_block <= len(x):
            q = engine.samples_to_next_block
            if q > 1:  # one sample short: nothing yet
                assert engine.process(x[i : i + q - 1]).n_frames == 0
            out = engine.process(x[i + q - 1 : i + q])
            assert out.n_frames == 4, (bands, i, q)
            i += q
