"""StreamingDSTFT: equality with the offline transform, exact resynthesis, adaptation, bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import rtdstft
from rtdstft.entropy import entropy
from rtdstft.scenes import adaptation_report, click_train, scene, speech, steady_tones, stream_all

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
NO_DATA = "../shared/data not present (a user's clone has no shared data)"


def feed(engine: rtdstft.StreamingDSTFT, x: np.ndarray, rng: np.random.Generator, max_block=3000):
    """x through the engine in random block sizes (1 .. max_block samples), then flush."""
    outs, i = [], 0
    while i < len(x):
        b = int(rng.integers(1, max_block))
        outs.append(engine.process(x[i : i + b]))
        assert outs[-1].audio.shape == (min(b, len(x) - i),)
        i += b
    outs.append(engine.flush())
    cat = {
        k: np.concatenate([getattr(o, k) for o in outs])
        for k in ("spec", "win_length", "frame_index", "audio")
    }
    return cat, outs


def offline(x: np.ndarray, theta: np.ndarray, n_fft: int, hop: int, dtype=torch.float32) -> np.ndarray:
    t = rtdstft.DSTFT(n_fft, hop, win_min=float(theta.min()), win_max=n_fft)
    return t(torch.from_numpy(x).to(dtype), torch.from_numpy(theta).to(dtype)).T.numpy()


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(
        10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((est - ref).astype(np.float64) ** 2))
    )


@pytest.mark.parametrize("n_fft,hop,k", [(512, 64, 4), (500, 60, 3), (256, 32, 1)])
def test_fixed_window_frames_equal_offline_transform(n_fft, hop, k):
    rng = np.random.default_rng(n_fft)
    x = (rng.standard_normal(12_345) * 0.3).astype(np.float32)
    engine = rtdstft.StreamingDSTFT(16000, n_fft, hop, adapt=False, win_length=0.7 * n_fft, block_frames=k)
    got, _ = feed(engine, x, rng)
    n_frames = 1 + len(x) // hop
    assert np.array_equal(got["frame_index"], np.arange(n_frames))
    assert np.all(got["win_length"] == np.float32(0.7 * n_fft))
    ref = offline(x, got["win_length"], n_fft, hop)
    assert np.abs(got["spec"] - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("k", [1, 8])
def test_adaptive_frames_equal_offline_transform_with_emitted_theta(k):
    rng = np.random.default_rng(k)
    sr = 16000
    x = scene([("clicks", 0.6), ("tones", 0.6), ("chirp", 0.4)], sr)
    # steadiness 0: θ takes many values (the emitted spectrum must equal the transform whatever θ did)
    engine = rtdstft.StreamingDSTFT(sr, 512, 64, adapt=True, block_frames=k, steadiness=0.0)
    got, _ = feed(engine, x, rng)
    assert len(np.unique(got["win_length"])) > 3, "θ should move"
    assert got["win_length"].min() >= 128 and got["win_length"].max() <= 512
    ref = offline(x, got["win_length"], 512, 64)
    assert np.abs(got["spec"] - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("dtype,min_snr", [(torch.float32, 100.0), (torch.float64, 250.0)])
def test_resynthesis_is_the_input_delayed_by_latency(dtype, min_snr):
    rng = np.random.default_rng(7)
    sr = 16000
    x = scene([("voiced", 0.5), ("clicks", 0.5), ("vibrato", 0.5)], sr).astype(
        np.float32 if dtype == torch.float32 else np.float64
    )
    engine = rtdstft.StreamingDSTFT(sr, 512, 64, adapt=True, block_frames=4, dtype=dtype, steadiness=0.0)
    latency = engine.latency
    assert latency == 512 + 3 * 64 - 1
    got, outs = feed(engine, x, rng)
    audio = got["audio"]
    assert audio.shape == (len(x) + latency,)
    assert outs[-1].audio.shape[0] > 0, "flush delivers the tail"
    assert np.all(audio[:latency] == 0)
    assert snr_db(x, audio[latency:]) >= min_snr
    assert len(np.unique(got["win_length"])) > 2, "θ should move"


def test_resynthesis_with_one_sample_blocks():
    x = (np.random.default_rng(3).standard_normal(3000) * 0.1).astype(np.float32)
    engine = rtdstft.StreamingDSTFT(8000, 256, 32, block_frames=2)
    audio = np.concatenate(
        [engine.process(x[i : i + 1]).audio for i in range(len(x))] + [engine.flush().audio]
    )
    assert snr_db(x, audio[engine.latency :]) >= 100


def test_latencies_are_within_budget():
    engine = rtdstft.StreamingDSTFT(48000, 2048, 256, block_frames=8)
    assert engine.analysis_latency <= 2048 // 2 + 8 * 256
    # A frame is emitted no later than analysis_latency samples after its centre arrives.
    x = np.zeros(48000, np.float32)
    arrived = 0
    for i in range(0, len(x), 100):
        out = engine.process(x[i : i + 100])
        arrived += 100
        for n in out.frame_index:
            assert arrived - 1 - n * 256 <= engine.analysis_latency + 100


def fsdd_speech(sr: int) -> np.ndarray:
    pytest.importorskip("soundfile")
    return speech([FSDD / n for n in ("3_jackson_0.wav", "7_george_1.wav", "5_lucas_2.wav")], sr)


SCENES = {
    "clicks-tones": [("clicks", 1.5), ("tones", 1.5)],
    "vibrato-clicks-voiced": [("vibrato", 1.2), ("clicks", 1.0), ("voiced", 1.2)],
}


@pytest.mark.parametrize("name", [*SCENES, "clicks-tones-chirp-speech"])
def test_online_adaptation_beats_the_best_fixed_window(name):
    sr = 16000
    if name in SCENES:
        x = scene(SCENES[name], sr)
    else:
        if not FSDD.is_dir():
            pytest.skip(NO_DATA)
        x = scene([("clicks", 1.0), ("tones", 1.0), ("chirp", 1.0), (fsdd_speech(sr), None)], sr)
    report = adaptation_report(x, sr, n_fft=1024, hop_length=128, block_frames=8, radius=4)
    assert report["online"] < report["best_fixed"]
    # Closes at least half of the gap between the best fixed window and the per-block oracle.
    assert report["gap_closed"] >= 0.5, report


def test_theta_is_short_on_clicks_and_long_on_tones():
    sr = 16000
    clicks, tones = click_train(1.5, sr), steady_tones(1.5, sr)
    x = np.concatenate([clicks, tones]).astype(np.float32)
    x += 1e-4 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    engine = rtdstft.StreamingDSTFT(sr, 1024, 128, adapt=True)
    _, theta, _ = stream_all(engine, x)
    t = np.arange(len(theta)) * 128 / sr
    on_clicks = theta[(t > 0.3) & (t < 1.4)]
    on_tones = theta[(t > 1.8) & (t < 2.9)]
    assert np.median(on_clicks) < 400 and np.median(on_tones) > 800
    # It follows the change within a few blocks of 8 frames.
    after = theta[(t > 1.5 + 3 * 8 * 128 / sr) & (t < 2.9)]
    assert np.all(after > 600)


def test_nonfinite_samples_are_replaced_and_counted():
    sr = 16000
    x = scene([("tones", 0.5), ("clicks", 0.5)], sr)
    bad = x.copy()
    bad[1000:1010] = np.nan
    bad[5000] = np.inf
    bad[6000] = -np.inf
    clean = x.copy()
    clean[1000:1010] = 0
    clean[[5000, 6000]] = 0
    e1 = rtdstft.StreamingDSTFT(sr, 512, 64)
    e2 = rtdstft.StreamingDSTFT(sr, 512, 64)
    outs = [e1.process(bad[i : i + 700]) for i in range(0, len(bad), 700)]
    assert sum(o.nonfinite for o in outs) == 12 and e1.nonfinite_count == 12
    spec1 = np.concatenate([o.spec for o in outs])
    theta1 = np.concatenate([o.win_length for o in outs])
    spec2, theta2, _ = stream_all(e2, clean, block=700)
    n = len(spec1)
    assert np.all(np.isfinite(spec1)) and np.all(np.isfinite(theta1))
    assert np.array_equal(theta1, theta2[:n]) and np.allclose(spec1, spec2[:n], atol=0)


def test_live_configuration_takes_effect_at_the_next_block():
    sr = 16000
    x = (np.random.default_rng(1).standard_normal(sr) * 0.1).astype(np.float32)
    engine = rtdstft.StreamingDSTFT(sr, 512, 64, adapt=True, block_frames=4)
    first = engine.process(x[:4000])
    engine.configure(adapt=False, win_length=300.0)
    assert engine.config.adapt is False and engine.config.win_length == 300.0
    second = engine.process(x[4000:8000])
    assert second.n_frames > 0 and np.all(second.win_length == 300.0)
    assert first.n_frames > 0
    engine.configure(adapt=True, entropy="renyi", alpha=2.0, win_min=200.0, win_max=400.0, radius=2)
    third = engine.process(x[8000:])
    assert np.all((third.win_length >= 200) & (third.win_length <= 400))
    assert engine.config.entropy == "renyi" and engine.config.radius == 2


def _turn_adaptation_on_mid_stream(engine, x: np.ndarray, at: int, seed: int, other=None):
    """x through ``engine`` (and ``other``, if given, fed alike) in random block sizes, 1 .. 1500
    samples; adaptation is turned on before the call that holds sample ``at`` (``other``: its
    range widened to the engine's). Returns each engine's outputs and, for ``engine``, the
    adapter's context (Z, θ, samples) and the first frame of the block at its first adaptive step."""
    adapter = engine._adapter if engine.bands == 1 else engine._band_adapter
    seen = {}
    step = adapter.step

    def first_step(*args):
        if not seen:
            ctx = (adapter._ctx_z.copy(), adapter._ctx_theta.copy(), adapter._ctx_frames.numpy().copy())
            seen.update(context=ctx, frame=engine._next_frame)
        return step(*args)

    adapter.step = first_step
    sizes = np.random.default_rng(seed).choice([1, 3, 64, 700, 1500], size=len(x))
    outs = ([], [])
    i = calls = 0
    while i < len(x):
        if i <= at < i + sizes[calls]:
            engine.configure(adapt=True)
            if other is not None:
                other.configure(win_min=engine.config.win_min, win_max=engine.config.win_max)
        for out, e in zip(outs, (engine, other), strict=True):
            if e is not None:
                out.append(e.process(x[i : i + sizes[calls]]))
        i, calls = i + sizes[calls], calls + 1
    return outs, seen


@pytest.mark.parametrize("bands", [1, 4])
def test_adaptation_turned_on_mid_stream_resumes_on_the_context_emitted_at_the_fixed_theta(bands):
    """While adaptation is off the engine defers the adapter's context (nothing reads it). When it
    turns on, the adapter's first step must see the last 2r frames as emitted at the fixed θ: their
    power sums (per band with bands), their θ and their samples. K = 4 < 2r = 8: the context
    spans two blocks."""
    sr, n, h, r = 16000, 512, 64, 4
    x = scene([("tones", 0.5), ("clicks", 0.3), ("voiced", 0.3)], sr)
    engine = rtdstft.StreamingDSTFT(
        sr, n, h, adapt=False, win_length=400.0, block_frames=4, radius=r, bands=bands
    )
    (outs, _), seen = _turn_adaptation_on_mid_stream(engine, x, at=6400, seed=bands)
    ctx_z, ctx_theta, ctx_frames = seen["context"]
    emitted = np.arange(seen["frame"] - 2 * r, seen["frame"])
    assert emitted[0] > 2 * r  # well into the stream: the context is not the reset's silence
    index = np.concatenate([o.frame_index for o in outs])
    rows = np.searchsorted(index, emitted)
    assert np.array_equal(index[rows], emitted)
    power = np.abs(np.concatenate([o.spec for o in outs])[rows].astype(np.complex128)) ** 2
    theta = np.concatenate([o.win_length for o in outs])[rows]
    bins = engine.band_bins
    z = power.sum(-1) if bands == 1 else np.add.reduceat(power, bins[:-1], axis=-1)
    assert np.allclose(ctx_z, z, rtol=1e-4, atol=0)
    assert np.allclose(ctx_theta, theta, rtol=1e-6) and np.all(theta == np.float32(400.0))
    padded = np.concatenate([np.zeros(n // 2), x])
    frames = np.stack([padded[f * h : f * h + n] for f in emitted])
    assert np.allclose(ctx_frames, frames, rtol=0, atol=1e-5)
    assert np.any(np.concatenate([o.win_length for o in outs])[rows[-1] + 1 :] != np.float32(400.0))


def test_banded_adaptation_turned_on_mid_stream_decides_as_if_the_context_had_been_kept():
    """The same switch against an engine that adapts from the start in a range of one θ (so that
    its adapter takes each block's context as it is emitted) and widens the range at that block:
    the same θ after the switch, the same spectra."""
    sr, n, h = 16000, 512, 64
    x = scene([("tones", 0.5), ("clicks", 0.3), ("voiced", 0.3)], sr)
    common = dict(win_length=400.0, block_frames=4, bands=4)
    lazy = rtdstft.StreamingDSTFT(sr, n, h, adapt=False, **common)
    eager = rtdstft.StreamingDSTFT(sr, n, h, adapt=True, win_min=400.0, win_max=400.0, **common)
    (a, b), _ = _turn_adaptation_on_mid_stream(lazy, x, at=6400, seed=5, other=eager)
    theta_a, theta_b = (np.concatenate([o.win_length for o in v]) for v in (a, b))
    spec_a, spec_b = (np.concatenate([o.spec for o in v]) for v in (a, b))
    assert np.any(theta_a != np.float32(400.0)) and np.array_equal(theta_a, theta_b)
    assert np.allclose(spec_a, spec_b, rtol=0, atol=1e-6 * np.abs(spec_b).max())


@pytest.mark.parametrize("settings", [dict(steps=1), dict(steps=1, entropy="renyi"), dict(radius=0)])
def test_silence_and_no_context_raise_no_numpy_warnings(settings):
    """Silent neighbourhoods (z = 0) in the gradient steps and a radius of 0 (no context to compare
    the level with) are expected states, not numerical accidents: no RuntimeWarning."""
    x = np.zeros(16000, np.float32)
    x[8000:] = np.random.default_rng(0).standard_normal(8000) * 0.1
    engine = rtdstft.StreamingDSTFT(16000, 512, 64, adapt=True, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for i in range(0, len(x), 1000):
            engine.process(x[i : i + 1000])
        out = engine.flush()
    assert np.all(np.isfinite(out.win_length))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_fft=1001), r"n_fft must be an even integer >= 4"),
        (dict(n_fft=0), r"n_fft"),
        (dict(hop_length=0), r"hop_length must be an integer in \[1, n_fft/2 = 256\], got 0"),
        (dict(hop_length=600), r"hop_length must be an integer in \[1, n_fft/2 = 256\]"),
        (dict(win_min=32.0), r"win_min must be in \(hop_length = 64, win_max = 512\]"),
        (dict(win_max=1024.0), r"win_max must be in \(hop_length = 64, n_fft = 512\]"),
        (dict(win_length=600.0), r"win_length must be in \[win_min, win_max\] = \[128, 512\]"),
        (dict(entropy="tsallis"), r"entropy must be one of"),
        (dict(alpha=1.0), r"alpha must be > 0 and != 1"),
        (dict(lr=0.0), r"lr must be > 0"),
        (dict(radius=-1), r"radius must be an integer >= 0"),
        (dict(block_frames=0), r"block_frames must be an integer >= 1"),
        (dict(sample_rate=0), r"sample_rate must be > 0"),
    ],
)
def test_bad_parameters_name_themselves_and_their_range(kwargs, match):
    base = dict(sample_rate=16000, n_fft=512, hop_length=64)
    with pytest.raises(ValueError, match=match):
        rtdstft.StreamingDSTFT(**{**base, **kwargs})


def test_bad_live_changes_and_blocks_are_refused_without_effect():
    engine = rtdstft.StreamingDSTFT(16000, 512, 64)
    with pytest.raises(ValueError, match="win_min must be in"):
        engine.configure(win_min=10.0)
    with pytest.raises(ValueError, match="cannot change \\['n_fft'\\]"):
        engine.configure(n_fft=1024)
    assert engine.config.win_min == 128.0
    with pytest.raises(ValueError, match="block must be 1-D"):
        engine.process(np.zeros((2, 10), np.float32))
    with pytest.raises(TypeError, match="block must contain real samples"):
        engine.process(np.zeros(10, np.complex64))


@pytest.mark.parametrize("kind", ["shannon", "renyi"])
def test_adapter_gradient_matches_finite_differences(kind):
    """The hand-written dJ/d log θ of the online adapter against central differences of J."""
    from rtdstft.online import OnlineAdapter

    sr = 16000
    x = torch.from_numpy(scene([("clicks", 0.3), ("voiced", 0.3)], sr)).double()
    frames = x[2000 : 2000 + 7 * 64 + 512].unfold(0, 512, 64)  # K = 8 frames
    adapter = OnlineAdapter(512, radius=3, kind=kind, alpha=2.5, smoothness=0.05, dtype=torch.float64)
    context = x[1000 : 1000 + 5 * 64 + 512].unfold(0, 512, 64)
    adapter.push_context(torch.fft.rfft(context), context, 512.0)
    log_prev, s0, eps = np.log(300.0), np.log(260.0), 1e-5
    cand = adapter._evaluate(frames, np.array([s0, s0 + eps, s0 - eps]), log_prev)
    numeric = (cand.obj[1] - cand.obj[2]) / (2 * eps)
    analytic = adapter._gradient(frames, cand, 0, log_prev)
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_gradient_steps_never_raise_the_objective():
    sr = 16000
    x = scene([("clicks", 0.5), ("tones", 0.5)], sr)
    plain = rtdstft.StreamingDSTFT(sr, 512, 64, steps=0)
    stepped = rtdstft.StreamingDSTFT(sr, 512, 64, steps=2)
    s0, t0, _ = stream_all(plain, x)
    s1, t1, _ = stream_all(stepped, x)
    assert not np.array_equal(t0, t1), "the steps move θ"
    h0 = float(entropy(torch.from_numpy(s0).T, radius=4).mean())
    h1 = float(entropy(torch.from_numpy(s1).T, radius=4).mean())
    assert h1 <= h0 + 0.02
