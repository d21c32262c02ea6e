"""Shannon and Rényi entropies, global and local, against a direct per-frame loop on the same spectra."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from rtdstft import DSTFT, band_entropy, entropy


def loop_entropy(power: np.ndarray, kind: str, alpha: float, radius: int | None) -> np.ndarray:
    """Direct reference on one P = |S|^p [M, F]: the region of frame n is frames
    max(0, n - r) .. min(F - 1, n + r) (all of them when radius is None); 0 where it has no energy."""
    n_frames = power.shape[1]
    bounds = (
        [(0, n_frames)]
        if radius is None
        else [(max(0, n - radius), min(n_frames, n + radius + 1)) for n in range(n_frames)]
    )
    out = []
    for lo, hi in bounds:
        region = power[:, lo:hi]
        z = region.sum()
        if z == 0:
            out.append(0.0)
            continue
        p = region / z
        if kind == "shannon":
            nz = p[p > 0]
            out.append(float(-(nz * np.log(nz)).sum()))
        else:
            out.append(float(np.log((p**alpha).sum()) / (1 - alpha)))
    return np.array(out[0] if radius is None else out)


def random_spec(shape, seed=0, dtype=torch.complex128):
    gen = torch.Generator().manual_seed(seed)
    spec = torch.randn(shape, dtype=dtype, generator=gen)
    # Uneven energy over frames (within 20 dB), so that neighbourhoods differ from each other.
    scale = 0.1 + 0.9 * torch.rand(shape[-1], generator=gen, dtype=torch.float64)
    return spec * scale.to(spec.real.dtype)


@pytest.mark.parametrize("kind, alpha", [("shannon", None), ("renyi", 3.0), ("renyi", 0.5)])
@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("radius", [None, 0, 1, 3, 10])
def test_matches_direct_loop(kind, alpha, power, radius):
    spec = random_spec((2, 3, 17, 12), seed=radius or 0)
    got = entropy(spec, kind=kind, alpha=alpha or 3.0, power=power, radius=radius)
    expected_shape = (2, 3) if radius is None else (2, 3, 12)
    assert got.shape == expected_shape
    p = spec.abs().numpy() ** power
    for b in range(2):
        for c in range(3):
            ref = loop_entropy(p[b, c], kind, alpha or 3.0, radius)
            np.testing.assert_allclose(got[b, c].numpy(), ref, rtol=1e-10, atol=1e-12)


def test_float32_local_matches_loop():
    spec = random_spec((1, 65, 400), seed=5, dtype=torch.complex64)
    got = entropy(spec, radius=4)[0].double().numpy()
    ref = loop_entropy(spec[0].abs().double().numpy() ** 2, "shannon", 3.0, 4)
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_local_entropy_after_a_loud_passage():
    spec = random_spec((1, 65, 40), seed=6)
    spec[..., :20] *= 1e3  # loud, then 120 dB quieter
    spec[..., 20:] *= 1e-3
    got = entropy(spec, radius=2)[0].numpy()
    ref = loop_entropy(spec[0].abs().numpy() ** 2, "shannon", 3.0, 2)
    np.testing.assert_allclose(got, ref, rtol=1e-9)


@pytest.mark.parametrize("kind", ["shannon", "renyi"])
def test_global_is_local_with_radius_covering_all_frames(kind):
    spec = random_spec((4, 33, 9), seed=2)
    glob = entropy(spec, kind=kind)
    for radius in (9, 25):
        local = entropy(spec, kind=kind, radius=radius)
        torch.testing.assert_close(local, glob[:, None].expand(4, 9), rtol=1e-12, atol=0)
    # r = F - 1 reaches every frame only from the middle: the ends differ.
    assert not torch.allclose(entropy(spec, kind=kind, radius=4), glob[:, None].expand(4, 9))


@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("radius", [None, 2])
def test_renyi_tends_to_shannon(power, radius):
    spec = random_spec((2, 33, 20), seed=3)
    shannon = entropy(spec, "shannon", power=power, radius=radius)
    far = {s: entropy(spec, "renyi", alpha=1 + s * 1e-2, power=power, radius=radius) for s in (-1, 1)}
    near = {s: entropy(spec, "renyi", alpha=1 + s * 1e-4, power=power, radius=radius) for s in (-1, 1)}
    # H_α is non-increasing in α and passes through Shannon at α = 1 ...
    assert bool((far[-1] > near[-1]).all() and (near[-1] > shannon).all())
    assert bool((shannon > near[1]).all() and (near[1] > far[1]).all())
    # ... linearly in α - 1: a 100× closer α is about 100× closer to Shannon.
    for s in (-1, 1):
        err_near = (near[s] - shannon).abs()
        assert float(err_near.max()) < 1e-3
        assert bool((err_near < 0.03 * (far[s] - shannon).abs()).all())


@pytest.mark.parametrize("kind", ["shannon", "renyi"])
def test_zero_energy_region_has_zero_entropy(kind):
    spec = random_spec((2, 17, 12), seed=4)
    spec[:, :, :6] = 0  # frames 0..5 silent
    local = entropy(spec, kind=kind, radius=1)
    assert bool(torch.isfinite(local).all())
    assert bool((local[:, :5] == 0).all())  # frames 0..4 see only silence
    assert bool((local[:, 5:] > 0).all())  # frame 5 sees frame 6
    glob = entropy(torch.zeros(3, 17, 12, dtype=torch.complex128), kind=kind)
    assert bool((glob == 0).all())


@pytest.mark.parametrize("radius", [None, 4])
def test_gradient_is_finite_with_silent_frames(radius):
    t = DSTFT(64, 16)
    x = torch.zeros(800, dtype=torch.float64)
    x[400] = 1.0  # one click in silence
    theta = torch.full((t.num_frames(800),), 48.0, dtype=torch.float64, requires_grad=True)
    entropy(t(x, theta), radius=radius).sum().backward()
    assert bool(torch.isfinite(theta.grad).all())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="tsallis"), r"kind must be one of \('shannon', 'renyi'\)"),
        (dict(kind="renyi", alpha=1.0), r"alpha must be > 0 and != 1"),
        (dict(kind="renyi", alpha=-2.0), r"alpha must be > 0 and != 1"),
        (dict(power=0.0), r"power must be > 0"),
        (dict(radius=-1), r"radius must be None \(global\) or an integer >= 0"),
        (dict(radius=1.5), r"radius must be None \(global\) or an integer >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        entropy(random_spec((5, 4)), **kwargs)


@pytest.mark.parametrize("kind, alpha", [("shannon", 3.0), ("renyi", 2.0)])
@pytest.mark.parametrize("radius", [None, 2])
def test_band_entropy_matches_a_loop_over_each_band_alone(kind, alpha, radius):
    spec = random_spec((2, 17, 12), seed=7)
    spec[:, :5] *= 1e3  # a loud low band must not drown the others: each band is normalised alone
    edges = [0, 5, 11, 17]
    got = band_entropy(spec, edges, kind=kind, alpha=alpha, radius=radius)
    assert got.shape == ((2, 3) if radius is None else (2, 3, 12))
    p = spec.abs().numpy() ** 2
    for b in range(2):
        for k, (lo, hi) in enumerate(pairwise(edges)):
            ref = loop_entropy(p[b, lo:hi], kind, alpha, radius)
            np.testing.assert_allclose(got[b, k].numpy(), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "edges, match",
    [
        ([0], r"edges must be at least two"),
        ([0, 2.5], r"edges must be at least two"),
        ([0, 9, 9], r"edges must increase strictly within \[0, M\] = \[0, 17\]"),
        ([0, 18], r"edges must increase strictly within \[0, M\] = \[0, 17\]"),
    ],
)
def test_band_entropy_bad_edges(edges, match):
    with pytest.raises(ValueError, match=match):
        band_entropy(random_spec((17, 4)), edges)


@pytest.mark.parametrize("alpha", [3.0, 0.5])
@pytest.mark.parametrize("radius", [None, 2])
@pytest.mark.parametrize("gain", [1e-12, 1e-6, 1e6, 1e10])
def test_renyi_does_not_depend_on_the_level_in_float32(alpha, radius, gain):
    """H_α(c·P) = H_α(P): Σ P^α overflows float32 for loud spectra (|S| of int16-scaled audio) and
    underflows for quiet ones, which made H_α inf; the sums are taken relative to the loudest bin."""
    spec = random_spec((2, 17, 12), seed=5)
    ref = entropy(spec, "renyi", alpha=alpha, radius=radius)
    got = entropy((spec * gain).to(torch.complex64), "renyi", alpha=alpha, radius=radius)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.double().numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)


def test_renyi_of_int16_scaled_audio_is_finite_with_a_gradient():
    """A sine at int16 full scale (32767), float32, N = 2048, "l1": |S|² ≈ 2.8e14, (|S|²)³ > 3.4e38."""
    t = DSTFT(2048, 256)
    x = 32767.0 * torch.sin(2 * torch.pi * 440 / 16000 * torch.arange(8000.0))
    x = torch.cat([torch.zeros(4000), x])  # and silent frames, where the gradient must stay finite
    theta = torch.full((t.num_frames(x.shape[-1]),), 1000.0, requires_grad=True)
    spec = t(x, theta)
    h = entropy(spec, "renyi", radius=4)
    assert torch.isfinite(h).all()
    ref = entropy((spec / 32767.0).detach().to(torch.complex128), "renyi", radius=4)
    np.testing.assert_allclose(h.detach().double().numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    h.mean().backward()
    assert torch.isfinite(theta.grad).all() and theta.grad.abs().sum() > 0


@pytest.mark.parametrize("radius", [None, 1])
def test_renyi_gradcheck_with_silent_frames(radius):
    spec = random_spec((9, 6), seed=2)
    spec[:, 2] = 0  # a silent frame inside, the region around it not silent
    spec = spec.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda s: entropy(s, "renyi", alpha=3.0, radius=radius), (spec,))
