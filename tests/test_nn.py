"""AdaptiveSpectrogram: gradients to θ, bounds, equality with DSTFT, batching, devices, hand-over."""

import math

import pytest
import torch

import rtdstft
from rtdstft.nn import AdaptiveSpectrogram


def _signal(batch=(), length=4000, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    k = torch.arange(length, dtype=dtype)
    tone = torch.sin(2 * math.pi * 0.05 * k + 0.01 * k**1.5 / length**0.5)
    return tone + 0.1 * torch.randn(*batch, length, generator=g, dtype=dtype)


def test_theta_gets_gradient_from_classification_loss():
    torch.manual_seed(0)
    fe = AdaptiveSpectrogram(n_fft=256, hop_length=32, win_min=32, win_max=256).double()
    head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3)).double()
    x = _signal((6,), length=1024)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = torch.nn.functional.cross_entropy(head(fe(x)), y)
    loss.backward()
    assert fe.rho.grad is not None
    assert torch.isfinite(fe.rho.grad).all()
    assert float(fe.rho.grad.abs()) > 0


def test_theta_gradient_matches_finite_difference():
    fe = AdaptiveSpectrogram(n_fft=128, hop_length=16, win_min=32, win_max=128, output="log").double()
    x = _signal((2,), length=512)
    w = torch.randn(2, 65, 33, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def objective():
        return (fe(x) * w).sum()

    objective().backward()
    analytic = float(fe.rho.grad)
    h = 1e-6
    with torch.no_grad():
        fe.rho += h
        up = float(objective())
        fe.rho -= 2 * h
        down = float(objective())
        fe.rho += h
    assert analytic == pytest.approx((up - down) / (2 * h), rel=1e-4)


@pytest.mark.parametrize("n_frames", [None, 33])
def test_theta_stays_inside_bounds_under_aggressive_steps(n_frames):
    fe = AdaptiveSpectrogram(n_fft=128, hop_length=16, win_min=20, win_max=100, n_frames=n_frames)
    opt = torch.optim.SGD(fe.parameters(), lr=1e6)
    x = _signal((2,), length=520, dtype=torch.float32)
    for sign in (1.0, -1.0, 1.0):
        opt.zero_grad()
        (sign * fe(x).mean()).backward()
        opt.step()
        theta = fe.win_length
        assert torch.isfinite(theta).all()
        assert float(theta.min()) >= 20 and float(theta.max()) <= 100
    with torch.no_grad():
        fe.rho.fill_(1e30)
    assert float(fe.win_length.max()) <= 100
    fe.rho.data.fill_(-1e30)
    assert float(fe.win_length.min()) >= 20
    fe.zero_grad()
    fe(x).sum().backward()  # the transform accepts θ on a bound and the gradient stays finite
    assert torch.isfinite(fe.rho.grad).all()


def test_bounded_map_is_monotone_and_inverts():
    fe = AdaptiveSpectrogram(n_fft=512, hop_length=64, win_min=64, win_max=512)
    assert float(fe.win_length) == pytest.approx(math.sqrt(64 * 512), rel=1e-5)
    for value in (64.5, 100.0, 300.0, 511.0):
        fe.set_win_length(value)
        assert float(fe.win_length) == pytest.approx(value, rel=1e-5)
    with pytest.raises(ValueError, match="win_min, win_max"):
        fe.set_win_length(600.0)


@pytest.mark.parametrize(
    "kwargs, value, shape",
    [
        ({}, torch.full((13,), 40.0), r"\(\)"),  # one θ, given per frame
        ({"n_frames": 13}, torch.full((12,), 40.0), r"\(13,\)"),
        ({"window_mode": "frequency"}, torch.full((13,), 40.0), r"\(33,\)"),
        ({"window_mode": "time-frequency", "n_frames": 13}, torch.full((13, 33), 40.0), r"\(33, 13\)"),
    ],
)
def test_win_length_of_the_wrong_shape_is_a_value_error(kwargs, value, shape):
    """A θ that does not expand to ρ's shape names win_length and the shape (not an expand error
    from inside torch), in the constructor and in set_win_length; one that expands is taken."""
    fe = AdaptiveSpectrogram(64, 16, **kwargs)
    match = r"win_length must be a float or a tensor that expands to θ's shape " + shape
    with pytest.raises(ValueError, match=match):
        fe.set_win_length(value)
    with pytest.raises(ValueError, match=match):
        AdaptiveSpectrogram(64, 16, win_length=value, **kwargs)
    fe.set_win_length(torch.tensor(40.0))
    assert torch.allclose(fe.win_length, torch.full(fe.rho.shape, 40.0))
    if fe.rho.dim() == 2:  # one θ per bin, the same in every frame
        fe.set_win_length(torch.linspace(33.0, 63.0, 33)[:, None])
        assert torch.allclose(fe.win_length[:, 5], torch.linspace(33.0, 63.0, 33), rtol=1e-5)


@pytest.mark.parametrize("output", ["complex", "power", "magnitude", "log", "db"])
@pytest.mark.parametrize("n_frames", [None, 41])
def test_eval_mode_equals_dstft(output, n_frames):
    fe = AdaptiveSpectrogram(
        n_fft=256, hop_length=50, win_min=100, win_max=256, n_frames=n_frames, output=output
    ).double()
    if n_frames is not None:
        fe.set_win_length(torch.linspace(110, 250, n_frames))
    else:
        fe.set_win_length(173.3)
    fe.eval()
    x = _signal((3,), length=2000)
    ref = rtdstft.DSTFT(256, 50, win_min=100, win_max=256)(x, fe.win_length)
    power = ref.abs() ** 2
    expected = {
        "complex": ref,
        "power": power,
        "magnitude": ref.abs(),
        "log": torch.log(power + 1e-6),
        "db": torch.maximum(
            10 * torch.log10(power.clamp_min(1e-6)),
            10 * torch.log10(power.clamp_min(1e-6)).amax((-2, -1), keepdim=True) - 80,
        ),
    }[output]
    out = fe(x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    fe.train()
    torch.testing.assert_close(fe(x), out, rtol=0, atol=0)


def test_batched_equals_one_at_a_time():
    fe = AdaptiveSpectrogram(n_fft=256, hop_length=32, win_min=64, win_max=256, win_length=150.0)
    x = _signal((2, 3), length=1000, dtype=torch.float32)
    out = fe(x)
    assert out.shape == (2, 3, 129, 1 + 1000 // 32)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(out[i, j], fe(x[i, j]))


def test_per_frame_theta_rejects_wrong_length():
    fe = AdaptiveSpectrogram(n_fft=128, hop_length=16, n_frames=33)
    with pytest.raises(ValueError, match="n_frames=33"):
        fe(torch.zeros(600))


def test_parameters_follow_to():
    fe = AdaptiveSpectrogram(n_fft=128, hop_length=16, win_length=70.0)
    fixed = AdaptiveSpectrogram(n_fft=128, hop_length=16, win_length=70.0, learnable=False)
    assert [n for n, _ in fixed.named_buffers()] == ["rho"] and not list(fixed.parameters())
    for module in (fe, fixed):
        module.to(torch.float64)
        assert module.rho.dtype == torch.float64
        assert module.win_length.dtype == torch.float64
        assert module(_signal(length=300)).dtype == torch.float64
    fe.to("meta")
    assert fe.rho.device.type == "meta" and fe.win_length.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_runs_on_cuda():
    fe = AdaptiveSpectrogram(n_fft=128, hop_length=16).to("cuda")
    x = _signal((2,), length=500, dtype=torch.float32).cuda()
    out = fe(x)
    out.sum().backward()
    assert out.device.type == "cuda" and fe.rho.grad.device.type == "cuda"


def test_entropy_loss_pulls_theta_towards_concentration():
    # A steady tone: the global entropy falls as the window grows, so its gradient must raise θ.
    k = torch.arange(4000, dtype=torch.float64)
    x = torch.sin(2 * math.pi * 0.1 * k)
    fe = AdaptiveSpectrogram(n_fft=256, hop_length=32, win_min=64, win_max=256).double()
    _, spec = fe(x, return_spec=True)
    loss = fe.entropy_loss(spec)
    assert loss.dim() == 0
    torch.testing.assert_close(loss, rtdstft.entropy(spec, power=1.0))
    loss.backward()
    assert float(fe.rho.grad) < 0


def test_to_streaming_hands_theta_over():
    import numpy as np

    fe = AdaptiveSpectrogram(
        n_fft=256, hop_length=64, win_min=140, win_max=256, win_length=201.5, output="complex"
    ).double()
    s = fe.to_streaming(sample_rate=16000, dtype=torch.float64)
    assert isinstance(s, rtdstft.stream.StreamingDSTFT)
    assert (s.n_fft, s.hop_length, s.config.adapt) == (256, 64, False)
    assert s.config.win_length == pytest.approx(201.5, rel=1e-6)
    # What the engine emits with the handed-over θ is the front end's spectrogram.
    x = _signal(length=3000)
    outs = [s.process(x.numpy()), s.flush()]
    index = np.concatenate([o.frame_index for o in outs])
    spec = np.concatenate([o.spec for o in outs])
    np.testing.assert_allclose(np.concatenate([o.win_length for o in outs]), float(fe.win_length))
    ref = fe(x).detach().T.numpy()
    keep = index < ref.shape[0]
    assert keep.sum() >= ref.shape[0] - 1
    np.testing.assert_allclose(spec[keep], ref[index[keep]], rtol=1e-9, atol=1e-9)
    per_frame = AdaptiveSpectrogram(n_fft=512, hop_length=128, win_min=256, win_max=512, n_frames=5)
    per_frame.set_win_length(torch.tensor([260.0, 300.0, 400.0, 410.0, 500.0]))
    assert per_frame.to_streaming(16000).config.win_length == pytest.approx(400.0, rel=1e-5)


@pytest.mark.parametrize("window_mode, shape", [("frequency", (65,)), ("time-frequency", (65, 33))])
def test_window_modes_train_and_equal_dstft(window_mode, shape):
    fe = AdaptiveSpectrogram(128, 16, win_min=32, win_max=128, n_frames=33, window_mode=window_mode).double()
    assert fe.rho.shape == shape
    x = _signal((2,), length=512)
    w = torch.randn(2, 65, 33, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    before = fe.win_length.clone()
    opt = torch.optim.SGD(fe.parameters(), lr=1.0)
    (fe(x) * w).sum().backward()
    assert bool((fe.rho.grad != 0).any())
    opt.step()
    assert float((fe.win_length - before).abs().max()) > 1e-3  # a training step moves θ
    t = rtdstft.DSTFT(128, 16, win_min=32, win_max=128, window_mode=window_mode)
    expected = torch.log(t(x, fe.win_length).abs().square() + fe.log_eps)
    torch.testing.assert_close(fe(x).detach(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hop_mode", ["constant", "time"])
def test_learnable_hop_trains_stays_bounded_and_equals_dstft(hop_mode):
    fe = AdaptiveSpectrogram(128, 16, win_min=32, win_max=128, n_frames=33, hop_mode=hop_mode).double()
    assert fe.eta.shape == (() if hop_mode == "constant" else (32,))
    torch.testing.assert_close(fe.positions(), 16.0 * torch.arange(33, dtype=torch.float64))
    x = _signal((2,), length=512)
    w = torch.randn(2, 65, 33, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    (fe(x) * w).sum().backward()
    assert bool((fe.eta.grad != 0).all())  # every hop gets a gradient
    before = fe.hops().detach().clone()
    opt = torch.optim.SGD(fe.parameters(), lr=0.5)
    opt.step()
    assert float((fe.hops().detach() - before).abs().max()) > 1e-3  # a training step moves the hop
    with torch.no_grad():
        fe.eta.fill_(1e3)  # far beyond the upper bound: the hop stays at hop_max = 2H
        assert float(fe.hops().max()) <= 32.0 and float(fe.hops().min()) > 31.9
        pos = fe.positions()
        xp = torch.nn.functional.pad(x, (0, int(math.ceil(float(pos[-1]))) - 512))
        t = rtdstft.DSTFT(128, 16, win_min=32, win_max=128)
        expected = torch.log(t(xp, fe.win_length, pos).abs().square() + fe.log_eps)
        torch.testing.assert_close(fe(x), expected, rtol=1e-12, atol=1e-12)
        fe.eta.fill_(-1e3)  # hop_min = H/2: 33 frames stop short of the end, the tail is not analysed
        pos = fe.positions()
        assert float(pos[-1]) == pytest.approx(256.0)
        expected = torch.log(t(x[:, : 256 + 64], fe.win_length, pos).abs().square() + fe.log_eps)
        torch.testing.assert_close(fe(x), expected, rtol=1e-12, atol=1e-12)


def test_learnable_hop_and_time_frequency_need_n_frames():
    with pytest.raises(ValueError, match=r"hop_mode='constant' needs n_frames"):
        AdaptiveSpectrogram(128, 16, hop_mode="constant")
    with pytest.raises(ValueError, match=r"window_mode='time-frequency' needs n_frames"):
        AdaptiveSpectrogram(128, 16, window_mode="time-frequency")
    with pytest.raises(ValueError, match=r"hop_mode must be one of"):
        AdaptiveSpectrogram(128, 16, hop_mode="free")
    with pytest.raises(ValueError, match=r"0 < hop_min < hop_max <= n_fft = 128"):
        AdaptiveSpectrogram(128, 16, n_frames=10, hop_mode="time", hop_min=8, hop_max=200)
