"""fit_window: the constant fit against a brute-force grid on the paper's signals, and the
time-varying fit on a signal whose character changes (θ follows it, short on clicks and long on
tones) and against the streaming engine, and the frequency-varying fits."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from rtdstft import DSTFT, band_entropy, entropy, fit_window
from rtdstft.adapt import search_time_window, smoothness_penalty
from rtdstft.scenes import adaptation_report, scene

PAPER = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper"
needs_paper = pytest.mark.skipif(
    not PAPER.is_dir(), reason="../shared/data not present (a user's clone has no shared data)"
)

# The paper's settings (../shared/data/README.md): excerpt, n_fft, hop; p = 1, global Shannon.
PAPER_SIGNALS = {
    "fan_flutter": (lambda: np.load(PAPER / "fan_flutter.npz")["x"], slice(4000, 10000), 1000, 50),
    "x_vitesse2": (lambda: np.load(PAPER / "x_vitesse2.npy"), slice(38000, 60000), 1500, 50),
}
WIN_MIN = 10


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These transforms are small: one thread is as fast, and far faster on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def global_entropy_grid(x: torch.Tensor, t: DSTFT, grid: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Global Shannon entropy (p = 1) of t(x, θ) for every constant θ in grid [G] -> [G].

    Evaluates a chunk of θ at once as a batch of copies of x with one θ per item."""
    n_frames = t.num_frames(x.shape[-1])
    out = []
    with torch.no_grad():
        for th in grid.split(chunk):
            spec = t(x.expand(len(th), -1), th[:, None].expand(-1, n_frames))
            out.append(entropy(spec, power=1.0))
    return torch.cat(out)


def is_unimodal(values: torch.Tensor) -> bool:
    """Strictly decreasing up to the minimum and strictly increasing after it."""
    i = int(values.argmin())
    return bool((values[: i + 1].diff() < 0).all() and (values[i:].diff() > 0).all())


def grid_search(x: torch.Tensor, t: DSTFT) -> int:
    """The integer θ in [win_min, win_max] of least global entropy.

    Exhaustive near the optimum, coarse elsewhere. First a geometric grid of 5 % spacing over the
    whole range (the entropy moves with the relative change of θ). Right of its highest point the
    coarse curve must be unimodal; left of it (very short windows; x_vitesse2 has a second, much
    higher minimum at win_min) it must stay more than 1 nat above the coarse minimum, ten times the
    largest change between two adjacent coarse points anywhere, so no dip between coarse points can
    reach the minimum. Then every integer between the coarse minimum's two neighbours is evaluated:
    a unimodal curve's integer minimiser lies between them. (On the full integer grids of both paper
    signals, checked once, the interior has a single local minimum: 243 and 780.)
    """
    lo, hi = int(t.win_min), int(t.win_max)
    coarse = torch.exp(torch.arange(math.log(lo), math.log(hi), 0.05, dtype=torch.float64)).round()
    coarse = torch.cat([coarse, torch.tensor([float(hi)], dtype=torch.float64)]).unique()
    h = global_entropy_grid(x, t, coarse)
    peak = int(h.argmax())
    assert is_unimodal(h[peak:]), "coarse entropy grid has several interior minima"
    assert float(h.diff().abs().max()) < 0.1
    assert bool((h[:peak] > h.min() + 1.0).all())
    i = int(h.argmin())
    fine = torch.arange(int(coarse[i - 1]), int(coarse[i + 1]) + 1, dtype=torch.float64)
    h_fine = global_entropy_grid(x, t, fine)
    assert is_unimodal(h_fine)
    return int(fine[h_fine.argmin()])


@pytest.fixture(scope="module", params=list(PAPER_SIGNALS))
def paper_case(request):
    """(name, x float64 [T], DSTFT, brute-force best integer θ)."""
    if not PAPER.is_dir():
        pytest.skip("../shared/data not present (a user's clone has no shared data)")
    load, excerpt, n_fft, hop = PAPER_SIGNALS[request.param]
    x = torch.from_numpy(np.ascontiguousarray(load()[excerpt])).double()
    t = DSTFT(n_fft, hop, win_min=WIN_MIN)
    return request.param, x, t, grid_search(x, t)


def test_grid_optimum_is_interior(paper_case):
    name, x, t, best = paper_case
    assert t.win_min < best < t.win_max, name


@needs_paper
def test_constant_fit_with_defaults_lands_on_grid_optimum(paper_case):
    name, x, t, best = paper_case
    fit = fit_window(x, t, mode="constant", power=1.0)
    assert abs(float(fit.win_length) - best) <= 1.0, (name, float(fit.win_length), best)
    # Far fewer transforms than the grid over every integer θ.
    assert fit.evaluations <= (t.win_max - t.win_min) / 10, fit.evaluations
    assert len(fit.loss_history) == fit.evaluations


@needs_paper
def test_constant_fit_reaches_an_entropy_no_higher_than_the_grid(paper_case):
    """The fit's θ is real-valued: its entropy is at most the best integer θ's (up to round-off)."""
    name, x, t, best = paper_case
    fit = fit_window(x, t, mode="constant", power=1.0)
    h_fit = global_entropy_grid(x, t, fit.win_length.reshape(1))
    h_best = global_entropy_grid(x, t, torch.tensor([float(best)], dtype=torch.float64))
    assert float(h_fit) <= float(h_best) + 1e-8, name
    assert fit.loss_history[-1] < fit.loss_history[0]


def clicks_then_tones(length: int = 8192, seed: int = 0) -> torch.Tensor:
    """First half: unit clicks every 200 samples; second half: two steady sinusoids (0.031 and
    0.117 cycles/sample). A faint noise floor (-60 dB) keeps every bin nonzero."""
    half = length // 2
    x = torch.zeros(length, dtype=torch.float64)
    x[100:half:200] = 1.0
    k = torch.arange(half, length, dtype=torch.float64)
    x[half:] = 0.5 * torch.sin(2 * math.pi * 0.031 * k) + 0.3 * torch.sin(2 * math.pi * 0.117 * k)
    gen = torch.Generator().manual_seed(seed)
    return x + 1e-3 * torch.randn(length, dtype=torch.float64, generator=gen)


def mean_local_entropy(x, t, theta, radius=4) -> float:
    with torch.no_grad():
        return float(entropy(t(x, theta), radius=radius).mean())


def test_time_varying_fit_short_on_clicks_long_on_tones():
    x = clicks_then_tones()
    length, half = x.shape[-1], x.shape[-1] // 2
    t = DSTFT(256, 16)  # θ in [32, 256]
    # λ = 1: weaker smoothing lets θ follow each click (short on it, long between clicks 200 samples
    # apart), which lowers the entropy further but makes "short on the clicks" a per-click statement.
    fit = fit_window(x, t, mode="time", radius=4, smoothness=1.0, steps=40)
    theta = fit.win_length
    centres = torch.arange(t.num_frames(length)) * t.hop_length
    # frames whose support (±N/2) lies inside one half
    on_clicks = theta[(centres >= 128) & (centres <= half - 128)]
    on_tones = theta[(centres >= half + 128) & (centres <= length - 128)]
    assert float(on_clicks.median()) < 100 and float(on_clicks.max()) < 130
    assert float(on_tones.median()) > 220 and float(on_tones.min()) > 180

    grid = torch.exp(torch.linspace(math.log(32), math.log(256), 25, dtype=torch.float64))
    best_constant = min(mean_local_entropy(x, t, float(g)) for g in grid)
    fitted = mean_local_entropy(x, t, theta)
    assert fitted < best_constant - 0.2, (fitted, best_constant)
    assert fit.loss_history[-1] < fit.loss_history[0]


def test_time_varying_fit_on_clicks_in_silence():
    x = torch.zeros(4096, dtype=torch.float64)
    x[100::200] = 1.0
    t = DSTFT(256, 16)
    theta = fit_window(x, t, mode="time", steps=5).win_length
    assert bool(torch.isfinite(theta).all())


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (
            dict(mode="free"),
            ValueError,
            r"mode must be one of \('constant', 'time', 'frequency', 'time-frequency'\)",
        ),
        (dict(steps=0), ValueError, r"steps must be an integer >= 1"),
        (dict(lr=0.0), ValueError, r"lr must be > 0"),
        (dict(final_lr_ratio=2.0), ValueError, r"final_lr_ratio must be in \(0, 1\]"),
        (dict(smoothness=-1.0), ValueError, r"smoothness must be >= 0"),
        (dict(radius=-2), ValueError, r"radius must be an integer >= 0"),
        (dict(init=10.0), ValueError, r"win_length must lie in \[win_min, win_max\] = \[32, 128\]"),
        (dict(kind="x"), ValueError, r"kind must be one of"),
    ],
)
def test_bad_fit_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fit_window(torch.randn(1000), DSTFT(128, 16, win_min=32), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="renyi", alpha=1.0), r"alpha must be > 0 and != 1 for the Rényi entropy"),
        (dict(power=0.0), r"power must be > 0, got 0.0"),
        (dict(lr=float("inf")), r"lr must be > 0 and finite, got inf"),
        (dict(smoothness=float("inf")), r"smoothness must be >= 0 and finite, got inf"),
        (dict(tol=-1.0), r"tol must be >= 0 and finite, got -1.0"),
        (dict(tol=float("nan")), r"tol must be >= 0 and finite, got nan"),
    ],
)
@pytest.mark.parametrize("mode", ["constant", "time", "frequency"])
def test_bad_fit_arguments_in_every_mode(mode, kwargs, match):
    """Checked before the search: α = 1 and λ = inf used to reach its numpy sums (divide by zero,
    NaN); lr = inf, tol < 0 or NaN were taken (a θ on a bound, no early stop)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=match):
            fit_window(torch.randn(1000), DSTFT(128, 16, win_min=32), mode=mode, **kwargs)


def test_fit_needs_a_dstft():
    with pytest.raises(TypeError, match=r"transform must be an rtdstft.DSTFT"):
        fit_window(torch.randn(1000), torch.nn.Identity())


def test_time_fit_returns_the_best_theta_it_evaluated():
    """A large learning rate makes Adam overshoot; the fit still hands back its best iterate."""
    x = clicks_then_tones()
    t = DSTFT(256, 16)
    fit = fit_window(x, t, mode="time", steps=12, lr=0.8, final_lr_ratio=1.0)
    spec = t(x, fit.win_length)
    objective = float(entropy(spec, radius=4).mean() + 0.1 * smoothness_penalty(fit.win_length))
    assert objective == pytest.approx(min(fit.loss_history), rel=1e-9)
    assert min(fit.loss_history) <= fit.loss_history[0]


@pytest.mark.parametrize(
    "parts",
    [[("clicks", 0.6), ("tones", 0.6)], [("vibrato", 0.5), ("clicks", 0.4), ("chirp", 0.4)]],
    ids=["clicks-tones", "vibrato-clicks-chirp"],
)
def test_time_fit_reaches_no_higher_entropy_than_the_streaming_engine(parts):
    """The quality bench's settings (48 kHz, N = 2048, H = 256, Shannon, p = 2, r = 4) on short
    scenes: the offline fit sees the whole signal and a θ per frame, the engine one θ per block with
    no look-ahead, so the fit must reach at least as low."""
    report = adaptation_report(scene(parts, 48000), 48000, 2048, 256, radius=4, offline_steps=5)
    assert report["offline"] <= report["online"], report
    assert report["offline"] < report["best_fixed"], report


def test_search_objective_is_the_exact_objective():
    """The search computes the objective from per-frame column sums of grid windows; on its own θ it
    must equal the transform's local entropy plus the penalty."""
    x = clicks_then_tones(4096)
    t = DSTFT(256, 16)
    for kind in ("shannon", "renyi"):
        theta, objective = search_time_window(x, t, kind=kind, alpha=2.0, radius=3, smoothness=0.3)
        exact = entropy(t(x, theta), kind=kind, alpha=2.0, radius=3).mean() + 0.3 * smoothness_penalty(theta)
        assert objective == pytest.approx(float(exact), rel=1e-9), kind
        assert float(theta.max() / theta.min()) > 2  # clicks and tones take different windows


def tone_and_transients(length: int = 12288, seed: int = 0) -> torch.Tensor:
    """A low steady tone (0.02 cycles/sample) and, at the same time, high transients: 12-sample
    bursts at 0.35 cycles/sample every 300 samples; a -60 dB noise floor."""
    k = torch.arange(length, dtype=torch.float64)
    x = 0.5 * torch.sin(2 * math.pi * 0.02 * k)
    burst = torch.hann_window(12, periodic=False, dtype=torch.float64) * torch.cos(
        2 * math.pi * 0.35 * torch.arange(12, dtype=torch.float64)
    )
    for start in range(150, length - 12, 300):
        x[start : start + 12] += burst
    gen = torch.Generator().manual_seed(seed)
    return x + 1e-3 * torch.randn(length, dtype=torch.float64, generator=gen)


def band_objective(x, t, theta, edges, radius=4) -> float:
    with torch.no_grad():
        return float(band_entropy(t(x, theta), edges, radius=radius).mean())


@pytest.mark.parametrize("mode", ["frequency", "time-frequency"])
def test_frequency_fits_long_windows_low_and_short_windows_high(mode):
    x = tone_and_transients(6144)
    t = DSTFT(256, 32, window_mode=mode)  # θ in [64, 256]
    fit = fit_window(x, t, mode=mode, steps=8, bands=4, smoothness=0.1)
    theta = fit.win_length
    assert theta.shape == t.theta_shape(t.num_frames(x.shape[-1]))
    low, high = theta[:20], theta[-50:]  # bins 0..19 hold the tone, 79..128 the bursts (0.31..0.5)
    assert float(low.median()) > 200 and float(high.median()) < 110, (low.median(), high.median())
    edges = [0, 32, 64, 97, 129]
    grid = torch.exp(torch.linspace(math.log(64), math.log(256), 17, dtype=torch.float64))
    best_constant = min(band_objective(x, t, float(g), edges) for g in grid)
    fitted = band_objective(x, t, theta, edges)
    assert fitted < best_constant - 0.1, (fitted, best_constant)
    assert min(fit.loss_history) <= fit.loss_history[0]


def test_frequency_fit_bad_bands_and_init():
    x, t = torch.randn(2000), DSTFT(128, 16, window_mode="frequency")
    with pytest.raises(ValueError, match=r"bands must be an integer in \[1, M = 65\]"):
        fit_window(x, t, mode="frequency", bands=0)
    with pytest.raises(ValueError, match=r"bands' edges must increase strictly from 0 to M = 65"):
        fit_window(x, t, mode="frequency", bands=[0, 30, 20, 65])
    with pytest.raises(ValueError, match=r"win_length must have shape \[\.\.\., 65\]"):
        fit_window(x, t, mode="frequency", init=torch.full((64,), 64.0))


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("mode", ["time", "frequency", "time-frequency"])
def test_renyi_search_does_not_depend_on_the_level(mode, seed):
    """The grid search's start is the same for a signal and for it at int16 scale (32767), and its
    sums stay positive (no NaN, no warning). The Rényi sums Σ P^α are taken in float64 (in float32
    they overflowed, and the start fell on win_min), and a block's new neighbourhood sums are built
    without the block, not as old - block + new, whose difference lost quiet neighbourhoods (P³
    spans many decades), even to 0 or below. One step: the fit returns the search's start.
    "time-frequency" in float64: in float32 its quiet bands' grid values tie to round-off."""
    dtype = torch.float64 if mode == "time-frequency" else torch.float32
    t = DSTFT(512, 64)
    n = torch.arange(16000, dtype=dtype)
    clicks = torch.rand(16000, generator=torch.Generator().manual_seed(seed), dtype=dtype) < 0.002
    x = torch.sin(2 * math.pi * 440 / 8000 * n) * (n < 8000) + clicks * (n >= 8000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # log of a sum <= 0
        quiet = fit_window(x, t, mode=mode, kind="renyi", steps=1, bands=4).win_length
        loud = fit_window(32767.0 * x, t, mode=mode, kind="renyi", steps=1, bands=4).win_length
    assert torch.allclose(loud, quiet, rtol=1e-6)
