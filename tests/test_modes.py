"""Window modes ("time", "frequency", "time-frequency") and real-valued frame positions of DSTFT,
against slow references written independently of rtdstft/transform.py and rtdstft/windows.py:

- ``literal_dstft``: a numpy loop evaluating the definition sample by sample,
      S[m, n] = Σ_j x[⌊c_n⌋ - N/2 + j] · w(j - N/2 - frac(c_n); θ_{m,n}) · e^{-2πimj/N};
- dstft 3.0.0 (the seed paper's reference implementation) where it has the mode;
- torch.autograd.gradcheck (finite differences) for the gradients.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rtdstft import DSTFT, positions_from_hop, positions_from_overlap, transform

MODES = ["time", "frequency", "time-frequency"]
FSDD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd" / "recordings"


def literal_dstft(x, theta_mn, positions, n_fft, normalization):
    """x [T], theta_mn [M, F] (one θ per bin and frame), positions [F] -> S [M, F] complex128."""
    length, half = len(x), n_fft // 2
    spec = np.zeros((n_fft // 2 + 1, len(positions)), dtype=np.complex128)
    for n, c in enumerate(positions):
        start, shift = math.floor(c) - half, c - math.floor(c)
        for m in range(n_fft // 2 + 1):
            th = theta_mn[m, n]
            total = 0j
            for j in range(n_fft):
                u = j - half - shift
                if 0 <= start + j < length and abs(u) < th / 2:
                    gain = n_fft / th if normalization == "l1" else 1.0
                    w = gain * math.cos(math.pi * u / th) ** 2
                    total += (
                        x[start + j]
                        * w
                        * complex(
                            math.cos(2 * math.pi * m * j / n_fft), -math.sin(2 * math.pi * m * j / n_fft)
                        )
                    )
            spec[m, n] = total
    return spec


def theta_for(mode, rng, n_bins, n_frames, lo, hi, lead=()):
    shape = {"time": (n_frames,), "frequency": (n_bins,), "time-frequency": (n_bins, n_frames)}[mode]
    return rng.uniform(lo, hi, lead + shape)


def per_bin_frame(mode, theta, n_bins, n_frames):
    """θ of any mode as [M, F]."""
    if mode == "time":
        return np.broadcast_to(theta, (n_bins, n_frames))
    if mode == "frequency":
        return np.broadcast_to(theta[:, None], (n_bins, n_frames))
    return theta


def real_positions(rng, n_frames, hop, length):
    """n·H plus a shift in [0, 0.9) samples (first frame inside [0, 1))."""
    pos = np.arange(n_frames) * hop + rng.uniform(0, 0.9, n_frames)
    return np.minimum(pos, length)


def snr_db(estimate, reference) -> float:
    return float(10 * torch.log10(reference.square().sum() / (estimate - reference).square().sum()))


# ---------------------------------------------------------------- 1. the definition, literally


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("normalization", ["l1", "peak"])
@pytest.mark.parametrize("positioned", [False, True])
def test_every_mode_matches_literal_loop(mode, normalization, positioned):
    n_fft, hop, length = 16, 4, 43
    rng = np.random.default_rng([MODES.index(mode), positioned])
    x = rng.standard_normal((2, length))
    n_frames, n_bins = 1 + length // hop, n_fft // 2 + 1
    theta = theta_for(mode, rng, n_bins, n_frames, 3.0, n_fft, lead=(2,))  # one θ per signal
    pos = real_positions(rng, n_frames, hop, length) if positioned else np.arange(n_frames) * hop * 1.0
    t = DSTFT(n_fft, hop, normalization=normalization, win_min=3.0, window_mode=mode)
    spec = t(torch.from_numpy(x), torch.from_numpy(theta), torch.from_numpy(pos) if positioned else None)
    assert spec.shape == (2, n_bins, n_frames) and spec.dtype == torch.complex128
    for b in range(2):
        ref = literal_dstft(x[b], per_bin_frame(mode, theta[b], n_bins, n_frames), pos, n_fft, normalization)
        assert np.abs(spec[b].numpy() - ref).max() <= 1e-10 * np.abs(ref).max()


def banded_theta(rng, mode, edges, n_frames, lo, hi, lead=()):
    """θ of a frequency-dependent mode that is constant over the bands of bins [e_k, e_{k+1})."""
    values = rng.uniform(lo, hi, lead + (len(edges) - 1,) + ((n_frames,) if mode == "time-frequency" else ()))
    return np.repeat(values, np.diff(edges), axis=len(lead))


def no_per_bin_path(*args):
    raise AssertionError("the per-bin path ran on a banded θ")


@pytest.mark.parametrize("mode", ["frequency", "time-frequency"])
@pytest.mark.parametrize("per_item", [False, True])
def test_banded_theta_takes_one_fft_per_band_and_matches_the_loop_and_the_per_bin_path(
    mode, per_item, monkeypatch
):
    n_fft, hop, length, batch = 64, 16, 300, 2
    rng = np.random.default_rng([per_item, mode == "frequency"])
    n_frames, n_bins = 1 + length // hop, n_fft // 2 + 1
    edges = [0, 1, 9, 10, 25, n_bins]  # a one-bin band at DC and one inside
    lead = (batch,) if per_item else ()
    theta = torch.from_numpy(banded_theta(rng, mode, edges, n_frames, 32.0, n_fft, lead))
    x = torch.from_numpy(rng.standard_normal((batch, length)))
    t = DSTFT(n_fft, hop, window_mode=mode)
    assert transform.find_bands(t._bin_theta(theta, (batch,)), transform.band_limit(n_bins)) == tuple(edges)
    general = t(x, theta + 0)
    monkeypatch.setattr(transform._BinWindowFunction, "apply", no_per_bin_path)
    banded = t(x, theta)
    assert torch.allclose(banded, general, rtol=0, atol=1e-10 * float(general.abs().max()))
    theta_b = theta.expand(batch, *theta.shape[len(lead) :]).numpy()
    for b in range(batch):
        ref = literal_dstft(
            x[b].numpy(),
            per_bin_frame(mode, theta_b[b], n_bins, n_frames),
            np.arange(n_frames) * hop * 1.0,
            n_fft,
            "l1",
        )
        assert np.abs(banded[b].numpy() - ref).max() <= 1e-10 * np.abs(ref).max()


@pytest.mark.parametrize("mode", ["frequency", "time-frequency"])
@pytest.mark.parametrize("per_item", [False, True])
def test_banded_theta_gradients(mode, per_item, monkeypatch):
    # gradcheck's finite differences move one bin's θ at a time, which splits its band: the
    # numerical Jacobian comes from the per-bin path, the analytical one from the banded backward.
    n_fft, hop, length, batch = 32, 8, 50, 2
    rng = np.random.default_rng([per_item, 7])
    n_frames, n_bins = 1 + length // hop, n_fft // 2 + 1
    edges = [0, 3, 4, 12, n_bins]
    lead = (batch,) if per_item else ()
    theta = torch.from_numpy(banded_theta(rng, mode, edges, n_frames, 10.0, 30.0, lead)).requires_grad_(True)
    x = torch.from_numpy(rng.standard_normal((batch, length))).requires_grad_(True)
    t = DSTFT(n_fft, hop, win_min=8.0, window_mode=mode)
    calls = []
    banded_apply = transform._BandedFunction.apply
    monkeypatch.setattr(transform._BandedFunction, "apply", lambda *a: calls.append(1) or banded_apply(*a))
    check = dict(eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)
    assert torch.autograd.gradcheck(lambda x, th: t(x, th), (x, theta), **check)
    assert calls  # the analytical gradient was the banded one
    # and every bin's own gradient, not its band's sum, equals the per-bin path's
    loss = t(x, theta).abs().square().sum()
    grads = torch.autograd.grad(loss, (x, theta))
    monkeypatch.setattr(transform, "band_limit", lambda n_bins: 0)
    reference = torch.autograd.grad(t(x, theta).abs().square().sum(), (x, theta))
    for got, want in zip(grads, reference, strict=True):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-10 * float(want.abs().max()))


@pytest.mark.parametrize("mode", MODES)
def test_per_item_positions_and_blocks(mode, monkeypatch):
    """Per-signal positions [B, F], a shared θ, and kernels built one or two frames at a time."""
    n_fft, hop, length, batch = 16, 5, 40, 3
    rng = np.random.default_rng(11)
    x = rng.standard_normal((batch, length))
    n_frames, n_bins = 1 + length // hop, n_fft // 2 + 1
    theta = theta_for(mode, rng, n_bins, n_frames, 6.0, n_fft)
    pos = np.stack([real_positions(rng, n_frames, hop, length) for _ in range(batch)])
    t = DSTFT(n_fft, hop, win_min=6.0, window_mode=mode)
    whole = t(torch.from_numpy(x), torch.from_numpy(theta), torch.from_numpy(pos))
    # 2 frames' kernels (time mode: 1 frame of frames) per block
    monkeypatch.setattr(transform, "BIN_BLOCK_BYTES", 2 * batch * 2 * n_bins * n_fft * 8)
    monkeypatch.setattr(transform, "CPU_BLOCK_BYTES", batch * n_fft * 8)
    blocked = t(torch.from_numpy(x), torch.from_numpy(theta), torch.from_numpy(pos))
    assert torch.allclose(whole, blocked, rtol=0, atol=1e-12)
    for b in range(batch):
        ref = literal_dstft(x[b], per_bin_frame(mode, theta, n_bins, n_frames), pos[b], n_fft, "l1")
        assert np.abs(whole[b].numpy() - ref).max() <= 1e-10 * np.abs(ref).max()


@pytest.mark.parametrize("mode", MODES)
def test_scalar_theta_is_the_same_transform_in_every_mode(mode):
    x = torch.randn(2, 300, dtype=torch.float64)
    ref = DSTFT(64, 16)(x, 40.0)
    assert torch.allclose(DSTFT(64, 16, window_mode=mode)(x, 40.0), ref, rtol=0, atol=1e-11)


def test_integer_positions_reproduce_the_default_bit_for_bit():
    x = torch.randn(3, 500)
    t = DSTFT(64, 16)
    theta = 32 + 32 * torch.rand(3, t.num_frames(500))
    grid = torch.arange(t.num_frames(500), dtype=torch.float32) * 16
    assert torch.equal(t(x, theta, grid), t(x, theta))


# ---------------------------------------------------------------- 2. dstft 3.0.0


def dstft_module(mode, n_fft, positions, theta_mn, x):
    """dstft 3.0.0 carrying exactly our θ (through its sigmoid) and our frame positions (through
    its per-frame hops, whose cumulative sum are its frame centres)."""
    dstft = pytest.importorskip("dstft", reason="dstft 3.0.0 (test-only reference) is not installed")
    win_min, win_max = 2.0, float(n_fft)
    hops = np.diff(positions, prepend=0.0)
    module = dstft.DSTFT(
        n_fft=n_fft,
        hop_length=x.shape[-1] / (len(positions) - 0.5),  # sets its frame count: 1 + T // hop = F
        window_mode=mode,
        hop_mode="time",
        normalization="paper",
        win_length=0.5 * (win_min + win_max),
        win_length_min=win_min,
        win_length_max=win_max,
        hop_length_min=0.0,
        hop_length_max=32.0,  # a hop of 16 is then sigmoid(0) · 32, exactly
    )
    module.initialize(x)
    assert module._num_frames == len(positions)
    with torch.no_grad():
        raw_theta = torch.logit(torch.from_numpy((theta_mn - win_min) / (win_max - win_min)))
        shape = module._raw_win_length.shape  # [1, F], [M, 1] or [M, F]
        module._raw_win_length.copy_(raw_theta[: shape[0], : shape[1]])
        raw_hop = torch.logit(torch.from_numpy(hops / 32.0))
        module._raw_hop_length.copy_(raw_hop)
    return module


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("positioned", [False, True])
def test_against_dstft(mode, positioned):
    """Complex values equal once dstft's phase reference (sample 0, not the frame start) is undone:
    S_dstft[m, n] = S[m, n] · exp(-2πi m ⌊c_n⌋ / N). dstft's frequency mode shifts every frame's
    windows by the first frame's fractional part only, so it is compared at integer positions."""
    n_fft, hop, length = 64, 16, 400
    if mode == "frequency" and positioned:
        pytest.skip("dstft 3.0.0's frequency mode ignores per-frame fractional positions")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, length))
    n_bins = n_fft // 2 + 1
    n_frames = 25
    pos = np.arange(1, n_frames + 1) * 16.0  # dstft's first centre is its first hop, > 0
    if positioned:
        pos = pos + rng.uniform(-0.9, -0.1, n_frames)
    theta = theta_for(mode, rng, n_bins, n_frames, 8.0, 60.0)
    theta_mn = np.ascontiguousarray(per_bin_frame(mode, theta, n_bins, n_frames))
    module = dstft_module(mode, n_fft, pos, theta_mn, torch.from_numpy(x))
    with torch.no_grad():
        theirs = module(torch.from_numpy(x))[1]
    centres = module.frame_centers().detach().numpy()
    assert np.allclose(centres, pos, rtol=0, atol=1e-9)
    pos = centres  # the cumulative sum of its hops rounds a little: take its floor(c), frac(c)
    t = DSTFT(n_fft, hop, win_min=2.0, window_mode=mode)
    ours = t(torch.from_numpy(x), torch.from_numpy(theta), torch.from_numpy(pos))
    phase = torch.exp(
        -2j * math.pi * torch.outer(torch.arange(n_bins), torch.from_numpy(np.floor(pos))) / n_fft
    )
    assert rel(ours * phase, theirs) <= 1e-9
    assert rel(ours.abs(), theirs.abs()) <= 1e-9


def rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


# ---------------------------------------------------------------- 3. gradients


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("per_item", [False, True])
def test_gradcheck_x_theta_positions(mode, per_item):
    n_fft, hop, length, batch = 16, 4, 29, 2
    gen = torch.Generator().manual_seed(MODES.index(mode))
    n_frames, n_bins = 1 + length // hop, n_fft // 2 + 1
    shape = {"time": (n_frames,), "frequency": (n_bins,), "time-frequency": (n_bins, n_frames)}[mode]
    lead = (batch,) if per_item else ()
    x = torch.randn(batch, length, dtype=torch.float64, generator=gen, requires_grad=True)
    # θ and fractional shifts strictly inside their ranges so that perturbations stay legal
    theta = (5 + 9 * torch.rand(lead + shape, dtype=torch.float64, generator=gen)).requires_grad_(True)
    pos = (
        torch.arange(n_frames, dtype=torch.float64) * hop
        + 0.1
        + 0.8 * torch.rand(lead + (n_frames,), dtype=torch.float64, generator=gen)
    )
    pos = pos.clamp(max=length - 0.5).requires_grad_(True)
    t = DSTFT(n_fft, hop, win_min=4.0, window_mode=mode)
    # fast_mode checks uᵀ J v for random u, v against finite differences: a wrong gradient fails it
    check = dict(eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)
    assert torch.autograd.gradcheck(t, (x, theta, pos), **check)
    assert torch.autograd.gradcheck(lambda x, th: t(x, th), (x, theta), **check)  # default positions


def test_learnable_hop_and_overlap_positions_gradcheck():
    n_fft, length = 32, 86
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(2, length, dtype=torch.float64, generator=gen)
    t = DSTFT(n_fft, 8, win_min=8.0)
    hop = torch.tensor(6.37, dtype=torch.float64, requires_grad=True)  # n·h never near an integer
    assert torch.autograd.gradcheck(
        lambda h: t(x, 20.0, positions_from_hop(h, 13)), (hop,), eps=1e-6, atol=1e-7, fast_mode=True
    )
    # c_{n+1} = c_n + θ_n / 2: 8 frames whose last centre lands in [70.25, 84.25], covering T = 86
    theta = (20 + 4 * torch.rand(8, dtype=torch.float64, generator=gen)).requires_grad_(True)
    pos = positions_from_overlap(theta, 0.5, start=0.25).detach()
    assert torch.allclose(pos[1:] - pos[:-1], 0.5 * theta[:-1].detach()) and pos[0].item() == 0.25
    assert torch.autograd.gradcheck(
        lambda th: t(x, th, positions_from_overlap(th, 0.5, start=0.25)),
        (theta,),
        eps=1e-6,
        atol=1e-7,
        fast_mode=True,
    )


# ---------------------------------------------------------------- 4. inverse


@pytest.mark.parametrize("dtype, min_db", [(torch.float32, 100.0), (torch.float64, 250.0)])
def test_time_mode_inverse_is_exact_at_real_positions(dtype, min_db):
    n_fft, hop, length = 256, 64, 3001
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, length, dtype=dtype, generator=gen)
    t = DSTFT(n_fft, hop)
    n_frames = t.num_frames(length)
    pos = (
        (
            torch.arange(n_frames, dtype=torch.float64) * hop
            + 0.95 * torch.rand(2, n_frames, dtype=torch.float64, generator=gen)
        )
        .clamp(max=length)
        .to(dtype)
    )
    theta = (2 * hop + (n_fft - 2 * hop) * torch.rand(2, n_frames, generator=gen)).to(dtype)
    x_hat = t.inverse(t(x, theta, pos), theta, length=length, positions=pos)
    assert x_hat.shape == x.shape and x_hat.dtype == dtype
    assert snr_db(x_hat, x) >= min_db


@pytest.mark.parametrize("mode", ["frequency", "time-frequency"])
@pytest.mark.parametrize("positioned", [False, True])
def test_least_squares_inverse_on_speech(mode, positioned):
    if not FSDD.is_dir():
        pytest.skip("../shared/data/fsdd (the spoken-digit recordings) is absent")
    sf = pytest.importorskip("soundfile", reason="soundfile is needed to read the recordings")
    audio, _ = sf.read(FSDD / "3_jackson_0.wav", dtype="float64")
    x = torch.from_numpy(audio[:2000])
    n_fft, hop = 256, 64
    t = DSTFT(n_fft, hop, window_mode=mode)
    n_frames = t.num_frames(len(x))
    rng = np.random.default_rng(3)
    theta = torch.from_numpy(theta_for(mode, rng, t.n_bins, n_frames, t.win_min, t.win_max))
    pos = torch.from_numpy(real_positions(rng, n_frames, hop, len(x))) if positioned else None
    spec = t(x, theta, pos)
    x_hat, residual = t.inverse(spec, theta, length=len(x), positions=pos, tol=1e-7, return_residual=True)
    assert snr_db(x_hat, x) >= 60.0
    assert residual <= 1e-3
    # one iteration is not enough: the diagonal start alone is an approximation
    x_0 = t.inverse(spec, theta, length=len(x), positions=pos, max_iter=0)
    assert snr_db(x_0, x) < 60.0


def test_inverse_names_uncovered_samples():
    t = DSTFT(64, 16, win_min=8)
    x = torch.randn(200, dtype=torch.float64)
    pos = torch.tensor([0.0, 40.0, 80.0, 120.0, 160.0, 199.0], dtype=torch.float64)
    spec = t(x, 10.0, pos)
    with pytest.raises(
        ValueError,
        match=r"inverse is undefined: samples 5\.\.35, 45\.\.75, 85\.\.115, \.\.\. \(\d+ of 200\) lie",
    ):
        t.inverse(spec, 10.0, length=200, positions=pos)
    tf = DSTFT(64, 16, win_min=8, window_mode="frequency")
    with pytest.raises(ValueError, match=r"inverse is undefined: samples 5\.\.35"):
        tf.inverse(tf(x, 10.0, pos), 10.0, length=200, positions=pos)


# ---------------------------------------------------------------- 5. edges and bad input


@pytest.mark.parametrize("mode", MODES)
def test_empty_batch(mode):
    t = DSTFT(32, 8, window_mode=mode)
    x = torch.zeros(0, 100, requires_grad=True)
    spec = t(x, 20.0)
    assert spec.shape == (0, 17, 13)
    spec.abs().sum().backward()
    assert x.grad.shape == (0, 100)
    assert t.inverse(spec.detach(), 20.0, length=100).shape == (0, 100)


@pytest.mark.parametrize(
    "mode, shape, match",
    [
        ("time", (33,), r"win_length must have F = 1 \+ T // hop_length = 21"),
        (
            "frequency",
            (21,),
            r"win_length must have shape \[\.\.\., 33\] for window_mode 'frequency' \(one θ per bin, M =",
        ),
        ("frequency", (5, 33), r"win_length's leading dims \(5,\) do not broadcast"),
        (
            "time-frequency",
            (33,),
            r"win_length must have shape \[\.\.\., 33, 21\] for window_mode 'time-frequency'",
        ),
        ("time-frequency", (21, 33), r"win_length must have shape \[\.\.\., 33, 21\]"),
    ],
)
def test_theta_of_the_wrong_shape_for_the_mode(mode, shape, match):
    t = DSTFT(64, 16, window_mode=mode)
    with pytest.raises(ValueError, match=match):
        t(torch.randn(2, 330), torch.full(shape, 40.0))


@pytest.mark.parametrize("mode", transform.WINDOW_MODES)
@pytest.mark.parametrize(
    "x_shape, lead",
    [((330,), (3,)), ((1, 330), (3,)), ((2, 330), (2, 1)), ((2, 330), (3, 1)), ((2, 3, 330), (2, 2, 3))],
)
def test_theta_that_would_widen_the_batch_is_a_value_error(mode, x_shape, lead):
    """θ's leading dims must broadcast to x's batch dims, not beyond them (a ValueError naming
    win_length, not an expand error from inside torch)."""
    t = DSTFT(64, 16, window_mode=mode)
    theta = torch.full((*lead, *t.theta_shape(21)), 40.0)
    with pytest.raises(ValueError, match=r"win_length's leading dims .* do not broadcast against x's batch"):
        t(torch.randn(x_shape), theta)


@pytest.mark.parametrize("mode", transform.WINDOW_MODES)
def test_theta_and_positions_broadcast_over_the_batch(mode):
    """θ and positions of leading dims 1 or x's, fewer or all-ones, still give x's batch shape."""
    t = DSTFT(64, 16, window_mode=mode)
    x = torch.randn(2, 3, 330, dtype=torch.float64)
    event = t.theta_shape(21)
    for lead in [(), (1,), (3,), (1, 3), (2, 1), (2, 3), (1, 1, 1)]:
        theta = torch.full((*lead, *event), 40.0, dtype=torch.float64)
        assert t(x, theta, GRID.expand(*lead, 21)).shape == (2, 3, 33, 21)


def test_bad_window_mode():
    with pytest.raises(
        ValueError, match=r"window_mode must be one of \('time', 'frequency', 'time-frequency'\), got 'bins'"
    ):
        DSTFT(64, 16, window_mode="bins")


GRID = torch.arange(21, dtype=torch.float64) * 16


@pytest.mark.parametrize(
    "positions, match",
    [
        (
            GRID.flip(0),
            r"positions must be strictly increasing along the last dim, got c\[1\] = 304 after c\[0\] = 320",
        ),
        (torch.cat([GRID[:5], GRID[4:20]]), r"strictly increasing.*c\[5\] = 64 after c\[4\] = 64"),
        (GRID - 1, r"positions must lie in \[0, T = 330\] samples, got values in \[-1, 319\]"),
        (GRID + 20, r"positions must lie in \[0, T = 330\] samples, got values in \[20, 340\]"),
        (torch.where(GRID == 64, float("nan"), GRID), r"positions contains NaN or inf"),
        (
            torch.tensor([0.0, 40.0, 80.0, 120.0, 200.0, 240.0, 280.0, 320.0]),
            r"positions leave samples 152\.\.167 \(16 of 330\) outside every frame \(each frame spans",
        ),
        (torch.arange(18.0) * 16 + 40, r"positions leave samples 0\.\.7 \(8 of 330\) outside every frame"),
        (GRID.reshape(3, 7), r"positions' leading dims \(3,\) do not broadcast"),
        (GRID.expand(2, 2, 21), r"positions' leading dims \(2, 2\) do not broadcast against x's batch"),
        (GRID.expand(3, 1, 21), r"positions' leading dims \(3, 1\) do not broadcast against x's batch"),
        ([0.0, 16.0], r"positions must be a real tensor \[\.\.\., F\]"),
    ],
)
def test_bad_positions(positions, match):
    t = DSTFT(64, 16)
    exc = TypeError if isinstance(positions, list) else ValueError
    with pytest.raises(exc, match=match):
        t(torch.randn(2, 330, dtype=torch.float64), 40.0, positions)


def test_positions_set_the_frame_count():
    t = DSTFT(64, 16)
    x = torch.randn(330, dtype=torch.float64)
    pos = torch.arange(12, dtype=torch.float64) * 29.5
    assert t(x, 40.0, pos).shape == (33, 12)
    with pytest.raises(ValueError, match=r"win_length must have F = positions' last dim = 12 values"):
        t(x, torch.full((21,), 40.0), pos)
    spec = t(x, 40.0, pos)
    with pytest.raises(ValueError, match=r"length \(T, samples\) is required when positions are given"):
        t.inverse(spec, 40.0, positions=pos)
    with pytest.raises(ValueError, match=r"positions must have F = 12 values \(spec's frames\)"):
        t.inverse(spec, 40.0, length=330, positions=torch.arange(11, dtype=torch.float64) * 32.5)


@pytest.mark.parametrize("mode", transform.WINDOW_MODES)
@pytest.mark.parametrize("kind", ["per-bin", "banded", "positions"])
def test_second_derivatives_in_x_theta_and_positions(mode, kind):
    """Double backward (a gradient penalty, create_graph=True) is exact in x, θ and positions
    together, cross terms included: the backward rebuilds the frames from x (and the shifts from
    the positions) when it records a graph, and the banded path hands over to the per-bin one.
    θ avoids the window's edges at integer offsets, where w is C¹ but not C²."""
    torch.manual_seed(3)
    t = DSTFT(16, 4, window_mode=mode)
    x = torch.randn(2, 30, dtype=torch.float64, requires_grad=True)
    event = t.theta_shape(t.num_frames(30))
    if kind == "banded" and mode != "time":
        theta = torch.cat([torch.full((3, *event[1:]), 11.3), torch.full((6, *event[1:]), 13.7)])
    else:
        theta = 10.3 + 5 * torch.rand(event)
    theta = theta.double().requires_grad_()
    if kind == "positions":  # off the integers, where ⌊c⌋ jumps
        pos = (torch.arange(8, dtype=torch.float64) * 3.7 + 0.45).requires_grad_()
        assert torch.autograd.gradgradcheck(
            lambda a, b, c: torch.view_as_real(t(a, b, c)), (x, theta, pos), fast_mode=True
        )
    else:
        assert torch.autograd.gradgradcheck(
            lambda a, b: torch.view_as_real(t(a, b)), (x, theta), fast_mode=True
        )


@pytest.mark.parametrize("mode", transform.WINDOW_MODES)
@pytest.mark.parametrize("kind", ["per-bin", "banded", "positions"])
def test_editing_x_in_place_after_the_forward_keeps_the_theta_gradient(mode, kind):
    """x without a gradient is not saved by the transform (its padded copy is): a buffer refilled
    after the forward leaves the θ and positions gradients those of the signal transformed."""
    t = DSTFT(16, 4, window_mode=mode)
    x = torch.randn(2, 30, dtype=torch.float64)
    event = t.theta_shape(8)
    if kind == "banded" and mode != "time":
        theta = torch.cat([torch.full((3, *event[1:]), 11.3), torch.full((6, *event[1:]), 13.7)])
    else:
        theta = 10.3 + 5 * torch.rand(event)
    pos = torch.arange(8, dtype=torch.float64) * 3.7 + 0.45 if kind == "positions" else None
    grads = []
    for edit in (False, True):
        th = theta.double().requires_grad_()
        p = None if pos is None else pos.clone().requires_grad_()
        buf = x.clone()
        spec = t(buf, th, p)
        if edit:
            buf.mul_(-3.0)
        spec.abs().square().sum().backward()
        grads.append((th.grad, None if p is None else p.grad))
    torch.testing.assert_close(grads[1], grads[0])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(max_iter=-1), ValueError, r"max_iter must be an integer >= 0, got -1"),
        (dict(max_iter=2.5), TypeError, r"max_iter must be an integer >= 0, got 2\.5"),
        (dict(max_iter="10"), TypeError, r"max_iter must be an integer >= 0, got '10'"),
        (dict(tol=-1.0), ValueError, r"tol must be None \(the dtype's default\) or a finite number >= 0"),
        (dict(tol=float("nan")), ValueError, r"tol must be None .* got nan"),
        (dict(tol="1e-6"), ValueError, r"tol must be None .* got '1e-6'"),
    ],
)
@pytest.mark.parametrize("mode", transform.WINDOW_MODES)
def test_bad_conjugate_gradient_limits(mode, kwargs, exc, match):
    """A negative max_iter used to return the diagonal start silently (residual 0.25), a NaN or
    negative tol never stopped early: each is an error naming the argument, in every mode."""
    t = DSTFT(64, 16, window_mode=mode)
    spec = t(torch.randn(300, dtype=torch.float64), 40.0)
    with pytest.raises(exc, match=match):
        t.inverse(spec, 40.0, length=300, **kwargs)
    assert t.inverse(spec, 40.0, length=300, max_iter=0, tol=0.0).shape == (300,)
