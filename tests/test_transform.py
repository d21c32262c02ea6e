"""DSTFT forward, backward and inverse against slow, obviously-correct references.

References used here, each written independently of rtdstft/transform.py and rtdstft/windows.py:
- ``torch.stft`` with a periodic Hann window (θ = N, normalization "peak");
- ``numpy_dstft``: a per-frame numpy loop evaluating the defining sum of rtdstft.transform literally;
- ``reference_dstft``: plain autograd (half-angle Hann built from torch ops, frames by unfold, rfft),
  whose autograd gradients the hand-written backward must reproduce.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from rtdstft import DSTFT, transform
from rtdstft.windows import hann_window, hann_window_half

CPU_AND_CUDA = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max())


def numpy_dstft(x: np.ndarray, theta: np.ndarray, n_fft: int, hop: int, normalization: str):
    """The defining sum taken literally, one frame and one bin at a time:

        S[m, n] = Σ_j x[n·H - N/2 + j] · w(j - N/2; θ_n) · exp(-2πi m j / N),  x = 0 outside [0, T)

    x [T], theta [F] (samples) -> S [N/2 + 1, F] complex128."""
    length = x.shape[-1]
    n_frames = 1 + length // hop
    j = np.arange(n_fft)
    m = np.arange(n_fft // 2 + 1)
    kernel = np.exp(-2j * np.pi * np.outer(m, j) / n_fft)  # exp(-2πi m j / N), [M, N]
    spec = np.zeros((n_fft // 2 + 1, n_frames), dtype=np.complex128)
    for n in range(n_frames):
        c = n * hop
        seg = np.zeros(n_fft)
        for jj in range(n_fft):
            k = c - n_fft // 2 + jj
            u = jj - n_fft // 2
            th = theta[n]
            if 0 <= k < length and abs(u) < th / 2:
                gain = n_fft / th if normalization == "l1" else 1.0
                seg[jj] = x[k] * gain * math.cos(math.pi * u / th) ** 2
        spec[:, n] = kernel @ seg
    return spec


def reference_dstft(x: torch.Tensor, theta: torch.Tensor, n_fft: int, hop: int, normalization: str):
    """Plain-autograd DSTFT: x [B, T], theta [B or 1, F] -> S [B, N/2 + 1, F].

    The window is the half-angle form 0.5 + 0.5 cos(2π u / θ) on |u| < θ/2 (= cos²(π u / θ)); its
    value and first derivative vanish at the edge, so multiplying by the 0/1 mask is exact for grads.
    """
    frames = F.pad(x, (n_fft // 2, n_fft // 2)).unfold(-1, n_fft, hop)  # [B, F, N]
    u = torch.arange(n_fft, dtype=x.dtype) - n_fft // 2
    th = theta[..., None]
    w = (0.5 + 0.5 * torch.cos(2 * math.pi * u / th)) * (u.abs() < th / 2).to(x.dtype)
    if normalization == "l1":
        w = w * (n_fft / th)
    return torch.fft.rfft(frames * w).transpose(-1, -2)


# ---------------------------------------------------------------- 1. θ = N, "peak" is torch.stft


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize(
    "n_fft, hop, length",
    [
        (64, 16, 1000),  # T not a multiple of H
        (128, 32, 517),
        (256, 100, 1234),  # H not dividing N
        (512, 128, 300),  # T < N
        (1024, 256, 1000),  # T < N
        (32, 1, 77),
    ],
)
def test_theta_n_peak_equals_torch_stft(n_fft, hop, length, dtype, tol):
    x = torch.randn(3, 2, length, dtype=dtype, generator=torch.Generator().manual_seed(length))
    t = DSTFT(n_fft, hop, normalization="peak")
    spec = t(x, float(n_fft))
    ref = torch.stft(
        x.reshape(-1, length),
        n_fft,
        hop,
        window=torch.hann_window(n_fft, dtype=dtype),
        center=True,
        pad_mode="constant",
        return_complex=True,
    ).reshape(3, 2, n_fft // 2 + 1, -1)
    assert spec.shape == ref.shape == (3, 2, n_fft // 2 + 1, t.num_frames(length))
    assert rel_err(spec, ref) <= tol
    # Per-frame θ = N (a [F] tensor) takes the time-varying path: still torch.stft.
    spec_tv = t(x, torch.full((t.num_frames(length),), float(n_fft), dtype=dtype))
    assert rel_err(spec_tv, ref) <= tol


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_l1_is_n_over_theta_times_peak(dtype, tol):
    n_fft, hop, length = 128, 32, 999
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, length, dtype=dtype, generator=gen)
    n_frames = 1 + length // hop
    theta = 40 + 88 * torch.rand(4, n_frames, dtype=dtype, generator=gen)
    peak = DSTFT(n_fft, hop, normalization="peak", win_min=40)(x, theta)
    l1 = DSTFT(n_fft, hop, normalization="l1", win_min=40)(x, theta)
    expected = peak * (n_fft / theta)[:, None, :]
    assert rel_err(l1, expected) <= tol
    # and at θ = N the two agree
    full = torch.full((n_frames,), float(n_fft), dtype=dtype)
    assert rel_err(DSTFT(n_fft, hop)(x, full), DSTFT(n_fft, hop, normalization="peak")(x, full)) <= tol


# ---------------------------------------------------------------- 2. forward and gradients


@pytest.mark.parametrize("normalization", ["l1", "peak"])
@pytest.mark.parametrize("n_fft, hop, length", [(32, 8, 101), (64, 24, 50), (16, 5, 7)])
def test_forward_matches_literal_numpy_loop(n_fft, hop, length, normalization):
    rng = np.random.default_rng(length)
    x = rng.standard_normal(length)
    n_frames = 1 + length // hop
    theta = rng.uniform(2.0, n_fft, n_frames)
    t = DSTFT(n_fft, hop, normalization=normalization, win_min=2.0)
    spec = t(torch.from_numpy(x), torch.from_numpy(theta))
    ref = torch.from_numpy(numpy_dstft(x, theta, n_fft, hop, normalization))
    assert rel_err(spec, ref) <= 1e-12


def blocks_of(frames_per_block: int, batch: int, n_fft: int, itemsize: int, monkeypatch) -> None:
    """Make the CPU passes go through the frames ``frames_per_block`` at a time."""
    monkeypatch.setattr(transform, "CPU_BLOCK_BYTES", frames_per_block * batch * n_fft * itemsize)


@pytest.mark.parametrize("normalization", ["l1", "peak"])
@pytest.mark.parametrize("theta_shape", ["constant", "frame", "batch"])
@pytest.mark.parametrize("frames_per_block", [None, 5, 1])
def test_backward_matches_autograd_reference(normalization, theta_shape, frames_per_block, monkeypatch):
    n_fft, hop, length, batch = 64, 16, 333, 3
    gen = torch.Generator().manual_seed(7)
    n_frames = 1 + length // hop
    if frames_per_block:  # 21 frames: blocks of 5 leave a last block of 1
        blocks_of(frames_per_block, batch, n_fft, 8, monkeypatch)
        assert len(transform.frame_blocks(torch.empty(batch, n_frames, n_fft, dtype=torch.float64))) > 1
    x = torch.randn(batch, length, dtype=torch.float64, generator=gen)
    shape = {"constant": (), "frame": (n_frames,), "batch": (batch, n_frames)}[theta_shape]
    theta = 20 + 44 * torch.rand(shape, dtype=torch.float64, generator=gen)
    cot = torch.randn(batch, n_fft // 2 + 1, n_frames, dtype=torch.complex128, generator=gen)

    x1, th1 = x.clone().requires_grad_(True), theta.clone().requires_grad_(True)
    spec = DSTFT(n_fft, hop, normalization=normalization, win_min=16)(x1, th1)
    spec.backward(cot)

    x2, th2 = x.clone().requires_grad_(True), theta.clone().requires_grad_(True)
    th2_b = th2.expand(n_frames) if theta_shape == "constant" else th2
    ref = reference_dstft(x2, th2_b.reshape(-1, n_frames), n_fft, hop, normalization)
    ref.backward(cot)

    assert rel_err(spec.detach(), ref.detach()) <= 1e-12
    assert rel_err(x1.grad, x2.grad) <= 1e-10
    assert th1.grad.shape == th2.grad.shape == theta.shape
    assert rel_err(th1.grad, th2.grad) <= 1e-10


@pytest.mark.parametrize("normalization", ["l1", "peak"])
@pytest.mark.parametrize("theta_kind", ["float", "0d", "frame", "batch"])
@pytest.mark.parametrize("frames_per_block", [None, 4])
def test_gradcheck(normalization, theta_kind, frames_per_block, monkeypatch):
    n_fft, hop, length, batch = 16, 4, 37, 2
    gen = torch.Generator().manual_seed(3)
    if frames_per_block:
        blocks_of(frames_per_block, batch, n_fft, 8, monkeypatch)
    n_frames = 1 + length // hop
    x = torch.randn(batch, length, dtype=torch.float64, generator=gen, requires_grad=True)
    t = DSTFT(n_fft, hop, normalization=normalization, win_min=4.0)
    # θ strictly inside [win_min, win_max] so that gradcheck's perturbations stay legal.
    if theta_kind == "float":
        inputs, fn = (x,), lambda x: t(x, 11.3)
    else:
        shape = {"0d": (), "frame": (n_frames,), "batch": (batch, n_frames)}[theta_kind]
        theta = (5 + 10 * torch.rand(shape, dtype=torch.float64, generator=gen)).requires_grad_(True)
        inputs, fn = (x, theta), t
    # fast_mode checks uᵀ J v for random u, v against finite differences: a wrong gradient fails it
    # (the full Jacobian is checked once below, and element-wise against autograd above).
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize(
    "batch, n_frames, n_fft, itemsize", [(8, 1876, 1024, 4), (1, 10, 64, 8), (500, 3, 4096, 8)]
)
def test_frame_blocks_cover_every_frame_once(batch, n_frames, n_fft, itemsize):
    dtype = torch.float32 if itemsize == 4 else torch.float64
    frames = torch.empty(batch, n_frames, n_fft, dtype=dtype)
    blocks = transform.frame_blocks(frames)
    assert blocks[0].start == 0 and blocks[-1].stop == n_frames
    assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:], strict=False))
    assert all(b.stop > b.start for b in blocks)
    # Each block's temporaries fit the budget, unless one frame alone exceeds it.
    per_frame = batch * n_fft * itemsize
    assert all((b.stop - b.start) * per_frame <= max(transform.CPU_BLOCK_BYTES, per_frame) for b in blocks)


def test_gradcheck_full_jacobian_per_item_theta():
    n_fft, hop, length, batch = 8, 2, 7, 2
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(batch, length, dtype=torch.float64, generator=gen, requires_grad=True)
    theta = 3 + 4.5 * torch.rand(batch, 1 + length // hop, dtype=torch.float64, generator=gen)
    t = DSTFT(n_fft, hop, win_min=2.0)
    assert torch.autograd.gradcheck(t, (x, theta.requires_grad_(True)), eps=1e-6, atol=1e-7)


# ---------------------------------------------------------------- 3. inverse


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("normalization", ["l1", "peak"])
@pytest.mark.parametrize("n_fft, hop, length", [(256, 64, 3001), (128, 32, 128), (512, 100, 2000)])
def test_inverse_is_exact(n_fft, hop, length, normalization, dtype, tol):
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(2, 3, length, dtype=dtype, generator=gen)
    t = DSTFT(n_fft, hop, normalization=normalization)
    n_frames = t.num_frames(length)
    theta = 2 * hop + (n_fft - 2 * hop) * torch.rand(2, 3, n_frames, dtype=dtype, generator=gen)
    x_hat = t.inverse(t(x, theta), theta, length=length)
    assert x_hat.shape == x.shape and x_hat.dtype == dtype
    assert rel_err(x_hat, x) <= tol
    # shared θ [F] too
    x_hat = t.inverse(t(x, theta[0, 0]), theta[0, 0], length=length)
    assert rel_err(x_hat, x) <= tol


def test_inverse_raises_on_uncovered_samples():
    t = DSTFT(64, 32, win_min=8)
    x = torch.randn(500, dtype=torch.float64)
    spec = t(x, 8.0)  # windows 8 samples long, 32 apart: most samples in no window
    with pytest.raises(ValueError, match="outside every window.*win_length > 2·hop_length = 64"):
        t.inverse(spec, 8.0, length=500)


# ---------------------------------------------------------------- 7. bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_fft=63), r"n_fft must be an even integer >= 2, got 63"),
        (dict(n_fft=0), r"n_fft must be an even integer >= 2, got 0"),
        (dict(n_fft=-64), r"n_fft must be an even integer >= 2, got -64"),
        (dict(n_fft=64, hop_length=0), r"hop_length must be an integer >= 1, got 0"),
        (dict(n_fft=64, hop_length=-16), r"hop_length must be an integer >= 1, got -16"),
        (dict(n_fft=64, hop_length=16, win_max=100), r"win_max must be in \(0, n_fft=64\], got 100"),
        (dict(n_fft=64, hop_length=16, win_min=70), r"win_min must be in \(0, win_max=64.0\], got 70"),
        (dict(n_fft=64, hop_length=16, normalization="x"), r"normalization must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DSTFT(**kwargs)


def test_non_integer_sizes_are_type_errors():
    with pytest.raises(TypeError, match=r"n_fft must be an integer >= 2, got 64.5"):
        DSTFT(n_fft=64.5)
    with pytest.raises(TypeError, match=r"hop_length must be an integer >= 1, got '16'"):
        DSTFT(n_fft=64, hop_length="16")


RANGE = r"win_length must lie in \[win_min, win_max\] = \[32, 64\] samples"


@pytest.mark.parametrize(
    "theta, exc, match",
    [
        (31.0, ValueError, RANGE + r", got values in \[31, 31\]"),
        (65.0, ValueError, RANGE + r", got values in \[65, 65\]"),
        (torch.tensor(100.0), ValueError, RANGE),
        (torch.cat([torch.full((20,), 40.0), torch.tensor([10.0])]), ValueError, RANGE),
        (torch.full((22,), 40.0), ValueError, r"win_length must have F = 1 \+ T // hop_length = 21"),
        (torch.full((20,), 40.0), ValueError, r"win_length must have F = 1 \+ T // hop_length = 21"),
        (torch.full((5, 21), 40.0), ValueError, r"win_length's leading dims \(5,\) do not broadcast"),
        (torch.tensor(float("nan")), ValueError, r"win_length contains NaN.*\[win_min, win_max\]"),
        (torch.tensor(40.0 + 0j), TypeError, r"win_length must be real"),
        ("40", TypeError, r"win_length must be a float, a 0-d tensor or a tensor \[\.\.\., F\]"),
    ],
)
def test_bad_win_length(theta, exc, match):
    t = DSTFT(64, 16, win_min=32)
    with pytest.raises(exc, match=match):
        t(torch.randn(2, 330), theta)


@pytest.mark.parametrize(
    "x, exc, match",
    [
        (torch.randn(100, dtype=torch.complex64), TypeError, r"x must be real \(float32 or float64\)"),
        (torch.arange(100), TypeError, r"x must be float32 or float64, got torch.int64"),
        (torch.ones(100, dtype=torch.int16), TypeError, r"x must be float32 or float64"),
        (torch.tensor([0.0, float("nan"), 1.0]), ValueError, r"x contains NaN or inf"),
        (torch.tensor([0.0, float("inf")]), ValueError, r"x contains NaN or inf"),
        (torch.zeros(2, 0), ValueError, r"x must have shape \[\.\.\., T\] with T >= 1"),
        (np.zeros(100), TypeError, r"x must be a torch.Tensor of shape \[\.\.\., T\]"),
    ],
)
def test_bad_signal(x, exc, match):
    with pytest.raises(exc, match=match):
        DSTFT(64, 16)(x, 64.0)


def test_bad_inverse_arguments():
    t = DSTFT(64, 16)
    x = torch.randn(2, 300)
    spec = t(x, 50.0)  # [2, 33, 19]
    with pytest.raises(ValueError, match=r"spec must have shape \[\.\.\., n_fft/2 \+ 1 = 33, F\]"):
        t.inverse(spec[:, :32], 50.0, length=300)
    with pytest.raises(ValueError, match=r"spec must have shape \[\.\.\., n_fft/2 \+ 1 = 33, F\]"):
        t.inverse(spec[0, :, 0], 50.0)
    with pytest.raises(TypeError, match=r"spec must be a complex tensor"):
        t.inverse(spec.abs(), 50.0)
    with pytest.raises(ValueError, match=r"length must be in \[288, 303\] for F = 19 frames"):
        t.inverse(spec, 50.0, length=400)
    with pytest.raises(ValueError, match=r"win_length must have F = 1 \+ T // hop_length = 19"):
        t.inverse(spec, torch.full((20,), 50.0), length=300)
    with pytest.raises(ValueError, match=r"win_length must lie in \[win_min, win_max\] = \[32, 64\]"):
        t.inverse(spec, 20.0, length=300)


# ---------------------------------------------------------------- 8. no Python loop over F or B


class _OpCounter(TorchDispatchMode):
    """Counts ATen ops dispatched (forward and backward both pass through here)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _count_calls(batch: int, n_frames: int, per_item_theta: bool) -> tuple[int, int]:
    """(ATen ops, Python-level calls) of one forward + backward with F frames and B signals."""
    n_fft, hop = 64, 16
    length = (n_frames - 1) * hop
    x = torch.randn(batch, length, requires_grad=True)
    theta = torch.full((batch, n_frames) if per_item_theta else (n_frames,), 40.0, requires_grad=True)
    t = DSTFT(n_fft, hop)
    cot = torch.ones(batch, n_fft // 2 + 1, n_frames, dtype=torch.complex64)
    python_calls = 0

    def profiler(frame, event, arg):
        nonlocal python_calls
        if event in ("call", "c_call"):  # Python functions and builtins (torch's C functions)
            python_calls += 1

    counter = _OpCounter()
    sys.setprofile(profiler)
    try:
        with counter:
            t(x, theta).backward(cot)
    finally:
        sys.setprofile(None)
    assert x.grad is not None and theta.grad is not None
    return counter.count, python_calls


@pytest.mark.parametrize("per_item_theta", [False, True])
def test_hot_path_does_not_loop_over_frames_or_batch(per_item_theta):
    _count_calls(2, 10, per_item_theta)  # warm-up: lazy imports and caches run Python once
    counts = {(b, f): _count_calls(b, f, per_item_theta) for b in (1, 2, 16) for f in (10, 1000)}
    # A loop over frames or items would add >= 990 (frames) or >= 14 (items) ops and calls. The
    # ATen op count is exact; Python call counts move by a few with interpreter caches.
    for b in (1, 2, 16):
        assert counts[(b, 1000)][0] == counts[(b, 10)][0]
        assert abs(counts[(b, 1000)][1] - counts[(b, 10)][1]) <= 10
    assert counts[(16, 10)][0] == counts[(2, 10)][0]
    assert abs(counts[(16, 10)][1] - counts[(2, 10)][1]) <= 10
    # B = 1 may take a shortcut (no sum over the batch), hence a small constant.
    assert abs(counts[(16, 10)][0] - counts[(1, 10)][0]) <= 3


def test_windows_are_built_by_broadcasting():
    n_fft = 64
    theta = 10 + 54 * torch.rand(3, 50, dtype=torch.float64)

    def ops(th):
        counter = _OpCounter()
        with counter:
            w = hann_window(th, n_fft, "l1")
        return counter.count, w

    count_small, _ = ops(theta[:1, :2])
    count_big, w = ops(theta)
    assert count_big == count_small
    assert w.shape == (3, 50, n_fft)
    u = torch.arange(n_fft, dtype=torch.float64) - n_fft // 2
    for b, n in [(0, 0), (1, 17), (2, 49)]:
        th = float(theta[b, n])
        expected = (n_fft / th) * torch.cos(math.pi * u / th) ** 2 * (u.abs() < th / 2)
        assert torch.allclose(w[b, n], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("normalization", ["l1", "peak"])
def test_half_window_mirrored_is_the_whole_window_bit_for_bit(dtype, normalization):
    # The forward builds half of each (even) window and mirrors it: the windowed frames must be
    # exactly those of the full window, θ from win_min to N included.
    n_fft = 64
    theta = torch.cat([torch.tensor([[4.0, 17.3, 63.9, 64.0]]), 4 + 60 * torch.rand(2, 4)]).to(dtype)
    frames = torch.randn(3, 4, n_fft, dtype=dtype)
    half = hann_window_half(theta, n_fft, normalization)
    assert half.shape == (3, 4, n_fft // 2 + 1)
    full = hann_window(theta, n_fft, normalization)
    # half[k] is w(u = k): full[N/2 + k] for k < N/2, and w(N/2) = w(-N/2) = full[0].
    assert torch.equal(half, torch.cat([full[..., n_fft // 2 :], full[..., :1]], -1))
    out = transform.window_frames(frames, half, torch.empty_like(frames))
    assert torch.equal(out, frames * full)
    shared = transform.window_frames(frames, half[:1], torch.empty_like(frames))  # one window per frame
    assert torch.equal(shared, frames * full[:1])


def test_new_output_holds_what_is_written_to_it():
    # 16 MB: large enough for the forward's huge-page advice, which must change nothing visible.
    out = transform.new_output(torch.zeros(1), 4, 1000, 513, dtype=torch.complex64)
    assert out.shape == (4, 1000, 513) and out.dtype == torch.complex64 and out.is_contiguous()
    values = torch.randn(4, 1000, 513, dtype=torch.complex64)
    out.copy_(values)
    assert torch.equal(out, values)


# ---------------------------------------------------------------- device and dtype


@pytest.mark.parametrize("device", CPU_AND_CUDA)
@pytest.mark.parametrize(
    "dtype, cdtype", [(torch.float32, torch.complex64), (torch.float64, torch.complex128)]
)
def test_outputs_stay_on_device_with_matching_dtype(device, dtype, cdtype):
    t = DSTFT(128, 32)
    x = torch.randn(2, 1000, dtype=dtype, device=device, requires_grad=True)
    theta = torch.full((t.num_frames(1000),), 80.0, dtype=dtype, device=device, requires_grad=True)
    spec = t(x, theta)
    assert spec.device == x.device and spec.dtype == cdtype
    spec.abs().sum().backward()
    assert x.grad.device == x.device and x.grad.dtype == dtype
    assert theta.grad.device == x.device and theta.grad.dtype == dtype
    const = t(x.detach(), 100.0)  # a Python float θ follows x's device
    assert const.device == x.device and const.dtype == cdtype
    x_hat = t.inverse(spec.detach(), theta.detach(), length=1000)
    assert x_hat.device == x.device and x_hat.dtype == dtype
