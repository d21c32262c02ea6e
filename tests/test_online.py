"""The online adapter at the edges of its settings: the streams the GUI can ask for run, θ in bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rtdstft
from rtdstft.online import OnlineAdapter, _power
from rtdstft.scenes import click_train


def stream(engine: rtdstft.StreamingDSTFT, x: np.ndarray, seed: int):
    """x through the engine in random block sizes, then flush; the concatenated θ [F] or [F, B]."""
    rng = np.random.default_rng(seed)
    outs, i = [], 0
    while i < len(x):
        b = int(rng.integers(1, 3000))
        outs.append(engine.process(x[i : i + b]))
        i += b
    outs.append(engine.flush())
    return np.concatenate([o.win_length for o in outs])


def scene(sr: int, seconds: float, seed: int) -> np.ndarray:
    """Noise, then a low tone under clicks: a change of sound, so that the adapter wants to move."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    x = 0.05 * rng.standard_normal(n) * (t < seconds / 2)
    x = x + (t >= seconds / 2) * 0.3 * np.sin(2 * np.pi * 110.0 * t)
    return (x + click_train(seconds, sr, rate=6.0)[:n]).astype(np.float32)


@pytest.mark.parametrize("bands", [1, 4])
def test_equal_bounds_hold_theta(bands):
    """win_min == win_max (the config allows it) leaves one θ: the adapter holds it, every block."""
    sr = 16000
    engine = rtdstft.StreamingDSTFT(sr, 512, 64, win_min=300.0, win_max=300.0, bands=bands)
    theta = stream(engine, scene(sr, 3.0, 1), 1)
    assert len(theta) > 100
    assert np.all(theta == np.float32(300.0))


@pytest.mark.parametrize("bands", [2, 4])
def test_banded_radius_zero_adapts_in_bounds(bands):
    """radius 0 with B > 1 (the GUI's radius control reaches 0): no context to transform, θ still
    chosen per band within the bounds, and it moves (the scene changes)."""
    sr = 16000
    engine = rtdstft.StreamingDSTFT(sr, 512, 64, radius=0, bands=bands)
    theta = stream(engine, scene(sr, 3.0, 2), 2)
    cfg = engine.config
    assert theta.shape[1] == bands and len(theta) > 100
    assert np.all(np.isfinite(theta))
    assert theta.min() >= np.float32(cfg.win_min) and theta.max() <= np.float32(cfg.win_max)
    assert len(np.unique(theta)) > 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_context_keeps_the_last_2r_emitted_frames(dtype):
    """Blocks of 1 .. 11 frames (fewer and more than 2r = 8): the context is always the last 2r
    frames pushed, in order, with their θ, power and per-frame sums."""
    rng = np.random.default_rng(3)
    adapter = OnlineAdapter(64, radius=4, dtype=dtype)
    frames = [(torch.zeros(64, dtype=dtype), np.nan)] * 8  # the start: 2r frames of silence
    for k in [1, 3, 11, 8, 2, 5, 9, 1]:
        block = torch.from_numpy(rng.standard_normal((k, 64))).to(dtype)
        theta, _, _ = adapter.step(block, 40.0, 20.0, 64.0)
        frames += [(row, theta) for row in block]
        last = frames[-8:]
        assert torch.equal(adapter._ctx_frames, torch.stack([f for f, _ in last]))
        assert np.array_equal(adapter._ctx_theta, [t for _, t in last], equal_nan=True)
        if np.isnan(adapter._ctx_theta).any():
            continue
        power = _power(torch.fft.rfft(adapter._ctx_frames * adapter.windows(np.log(adapter._ctx_theta))[1]))
        assert torch.allclose(adapter._ctx_power, power, rtol=1e-4, atol=0)
        assert np.allclose(adapter._ctx_z, power.sum(-1).numpy(), rtol=1e-4)
