"""Test scenes whose character changes, and a report of how close the online adaptation comes to
the best window chosen in hindsight.

Scenes are deterministic (seeded) float32 signals: click trains, steady tones (with vibrato), fast
chirps and voiced speech-like passages, or real speech when a recording is given.

:func:`adaptation_report` measures the mean local entropy (Shannon, p = 2, radius r) of

- the best single window chosen in hindsight for the whole signal (a grid of constant θ),
- what the streaming engine emits when adapting online,
- optionally, the offline time fit (:func:`rtdstft.fit_window` with mode "time"), which sees the
  whole signal and a θ per frame, so it should reach below the online engine,
- the per-block oracle: the best sequence of one grid θ per block of K frames, chosen in hindsight
  and scored as the engine's output is, on the one spectrogram that the sequence makes
  (:func:`block_oracle`),

and the share of the best-fixed-to-oracle gap that the online engine closes.
"""

from __future__ import annotations

import numpy as np
import torch

from .adapt import fit_window
from .entropy import band_entropy, entropy
from .stream import StreamingDSTFT
from .transform import DSTFT

__all__ = [
    "click_train",
    "steady_tones",
    "chirp",
    "voiced",
    "speech",
    "scene",
    "adaptation_report",
    "block_oracle",
    "stream_all",
    "hihats",
    "bass_line",
    "overlap_scenes",
    "band_measure",
    "band_report",
]


def click_train(seconds: float, sr: float, rate: float = 12.0, seed: int = 0) -> np.ndarray:
    """Castanet-like clicks: decaying noise bursts of ~2 ms, ``rate`` per second, jittered."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n, np.float32)
    burst = int(0.002 * sr) + 1
    env = np.exp(-np.arange(burst) / (0.0005 * sr))
    t = 0.5 / rate
    while t < seconds:
        k = int(t * sr)
        seg = rng.standard_normal(burst) * env * 0.8
        x[k : k + burst] += seg[: max(0, min(burst, n - k))]
        t += (1.0 + 0.3 * rng.uniform(-1, 1)) / rate
    return x


def steady_tones(seconds: float, sr: float, freqs=(440.0, 660.0, 1210.0), vibrato: float = 0.0) -> np.ndarray:
    """A chord of steady sinusoids (optional vibrato depth in Hz at 5.5 Hz), amplitude 0.6 in all."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for f in freqs:
        phase = 2 * np.pi * f * t + (vibrato / 5.5) * np.sin(2 * np.pi * 5.5 * t) * (f / freqs[0])
        x += np.sin(phase)
    return (0.6 * x / len(freqs)).astype(np.float32)


def chirp(
    seconds: float, sr: float, f0: float = 200.0, f1: float = 6000.0, sweeps: float = 4.0
) -> np.ndarray:
    """Fast linear chirps, ``sweeps`` per second up from f0 to f1 Hz (sawtooth frequency)."""
    t = np.arange(int(seconds * sr)) / sr
    period = 1.0 / sweeps
    tau = np.mod(t, period)
    phase = 2 * np.pi * (f0 * tau + 0.5 * (f1 - f0) / period * tau**2)
    return (0.5 * np.sin(phase)).astype(np.float32)


def voiced(seconds: float, sr: float, f0: float = 120.0, seed: int = 1) -> np.ndarray:
    """A voiced, speech-like passage: a glottal pulse train with jittered pitch through three formant
    resonators whose centres glide (vowel changes every ~0.25 s)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    pitch = (
        f0
        * (1 + 0.1 * np.sin(2 * np.pi * 1.3 * t))
        * (1 + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(n))
    )
    phase = np.cumsum(pitch / sr)
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    vowels = np.array([[700, 1200, 2600], [300, 2200, 3000], [500, 900, 2400], [400, 1900, 2550]])
    idx = (t / 0.25).astype(int) % len(vowels)
    out = np.zeros(n)
    for k in range(3):
        fc = np.convolve(vowels[idx, k].astype(float), np.ones(400) / 400, mode="same")
        r = np.exp(-np.pi * 90 * (k + 1) / sr)
        y1 = y2 = 0.0
        a1 = 2 * r * np.cos(2 * np.pi * fc / sr)
        y = np.empty(n)
        for i in range(n):  # a two-pole resonator per formant; offline scene synthesis only
            y0 = pulses[i] + a1[i] * y1 - r * r * y2
            y[i] = y0
            y2, y1 = y1, y0
        out += y / (k + 1)
    env = 0.5 * (1 - np.cos(2 * np.pi * np.clip(t / seconds, 0, 1)))
    out = out * env
    return (0.5 * out / (np.abs(out).max() + 1e-12)).astype(np.float32)


def speech(paths, sr: float) -> np.ndarray:
    """Recordings (e.g. of the Free Spoken Digit Dataset) read with soundfile, mixed to mono,
    resampled to ``sr`` by zero-padding their spectrum (band-limited), concatenated and scaled to a
    peak of 0.5."""
    import soundfile

    parts = []
    for path in paths:
        y, rate = soundfile.read(path, dtype="float64", always_2d=True)
        y = y.mean(1)
        n = int(round(len(y) * sr / rate))
        parts.append(np.fft.irfft(np.fft.rfft(y), n) * (n / len(y)))
    y = np.concatenate(parts)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def scene(parts, sr: float, noise_db: float = -80.0, seed: int = 0) -> np.ndarray:
    """Concatenates named parts, e.g. [("clicks", 2.0), ("tones", 2.0), ("chirp", 1.5), ("voiced", 2)]
    or (array, None) for a given signal, with 50 ms of silence between them, over a white noise floor
    of ``noise_db`` dB re full scale (a real microphone's hiss: without it, frames between clicks
    would hold exact zeros, whose entropy is 0 by convention and would flatter short windows)."""
    makers = {
        "clicks": click_train,
        "tones": steady_tones,
        "chirp": chirp,
        "voiced": voiced,
        "vibrato": lambda s, r: steady_tones(s, r, (330.0, 495.0), vibrato=12.0),
    }
    gap = np.zeros(int(0.05 * sr), np.float32)
    out = []
    for name, seconds in parts:
        out.append(name if seconds is None else makers[name](seconds, sr))
        out.append(gap)
    x = np.concatenate(out)
    x = x + 10 ** (noise_db / 20) * np.random.default_rng(seed).standard_normal(x.shape[0])
    return x.astype(np.float32)


def stream_all(engine: StreamingDSTFT, x: np.ndarray, block: int = 1024):
    """Runs x through the engine in blocks of ``block`` samples and flushes; returns
    (spec [F, M] complex, θ [F], audio [T + latency])."""
    outs = [engine.process(x[i : i + block]) for i in range(0, len(x), block)]
    outs.append(engine.flush())
    return (
        np.concatenate([o.spec for o in outs]),
        np.concatenate([o.win_length for o in outs]),
        np.concatenate([o.audio for o in outs]),
    )


def adaptation_report(
    x: np.ndarray,
    sample_rate: float = 48000,
    n_fft: int = 2048,
    hop_length: int = 256,
    block_frames: int = 8,
    radius: int = 4,
    grid_size: int = 24,
    offline_steps: int | None = None,
    **engine_kw,
) -> dict:
    """best_fixed / online / oracle mean local entropies (nats) and the gap share closed.

    "oracle" is :func:`block_oracle` over a ``grid_size``-point geometric grid of θ; "block_bound" is
    the mean over blocks of each block's best grid θ scored on that θ's own spectrogram (its
    neighbours' frames too at that θ), a bound that no sequence of θ need reach, kept for
    comparison. With ``offline_steps`` (an integer >= 1) also "offline", that of the offline time
    fit run for at most that many gradient steps after its search (same θ bounds, radius,
    smoothness 0.1), and its θ as "offline_theta"."""
    engine = StreamingDSTFT(
        sample_rate, n_fft, hop_length, adapt=True, block_frames=block_frames, radius=radius, **engine_kw
    )
    spec, theta, _ = stream_all(engine, x)
    s = torch.from_numpy(spec).T
    online = float(entropy(s, radius=radius).mean())
    t = DSTFT(n_fft, hop_length, win_min=engine.config.win_min, win_max=engine.config.win_max)
    grid = np.geomspace(t.win_min, t.win_max, grid_size)
    xt = torch.from_numpy(x)
    columns = [_frame_sums(t(xt, float(g))) for g in grid]
    z, q = np.stack([c[0] for c in columns]), np.stack([c[1] for c in columns])  # [G, F]
    fixed = np.stack(
        [_entropy(_window_sum(z[g], radius), _window_sum(q[g], radius)) for g in range(len(grid))]
    )
    best_fixed = float(fixed.mean(-1).min())
    oracle, _ = block_oracle(z, q, block_frames, radius)
    n_frames = fixed.shape[-1]
    starts = np.arange(0, n_frames, block_frames)
    block_bound = float(np.add.reduceat(fixed, starts, axis=-1).min(0).sum() / n_frames)
    gap = best_fixed - oracle
    offline = {}
    if offline_steps is not None:
        fit = fit_window(xt, t, mode="time", radius=radius, steps=offline_steps)
        with torch.no_grad():
            offline["offline"] = float(entropy(t(xt, fit.win_length), radius=radius).mean())
        offline["offline_theta"] = fit.win_length.numpy()
    return {
        "best_fixed": best_fixed,
        "online": online,
        "oracle": oracle,
        "block_bound": block_bound,
        "gap_closed": (best_fixed - online) / gap if gap > 0 else float("nan"),
        "best_fixed_theta": float(grid[int(fixed.mean(-1).argmin())]),
        "theta": theta,
        **offline,
    }


def _frame_sums(spec: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame Z = Σ_m P and Q = Σ_m P log P of P = |S|² (as :func:`rtdstft.entropy` forms them),
    float64 [F], of S [M, F]."""
    p = spec.abs() ** 2
    q = (p * torch.log(p + torch.finfo(p.dtype).tiny)).sum(-2)
    return p.sum(-2).double().numpy(), q.double().numpy()


def _window_sum(v: np.ndarray, radius: int) -> np.ndarray:
    """Σ of v over n-r..n+r (clipped to the ends), summed directly over the neighbours."""
    padded = np.pad(v, radius)
    return sum(padded[i : i + len(v)] for i in range(2 * radius + 1))


def _entropy(z, q):
    """Shannon entropy log Z - Q / Z of neighbourhood sums; 0 where Z = 0."""
    silent = z <= 0
    z_safe = np.where(silent, 1.0, z)
    return np.where(silent, 0.0, np.log(z_safe) - q / z_safe)


def block_oracle(z: np.ndarray, q: np.ndarray, block_frames: int, radius: int) -> tuple[float, np.ndarray]:
    """The best sequence of one θ per block in hindsight, scored as an emitted spectrogram is.

    Each frame's spectrum depends on its own θ alone, so the spectrogram of a sequence of per-block
    θ is made of the frames of the constant-θ spectrograms, and its local entropy (Shannon, radius
    r) at frame n follows from the per-frame sums Z and Q of the blocks that n's neighbourhood
    n-r..n+r touches. With 2r <= K that is n's own block and at most one neighbour, so the total is
    a sum of per-block and per-pair terms, minimised exactly by dynamic programming over the
    blocks (G² work per block boundary). Unlike choosing each block's θ on its own constant-θ
    spectrogram, this scores the same frames as the engine is scored on, mixed neighbourhoods at a
    change of θ included.

    Args:
        z, q: per-frame Σ P and Σ P log P [G, F] of the G candidate θ's spectrograms.
        block_frames: K. radius: r, with 2r <= K.

    Returns:
        (mean local entropy over the F frames, the chosen candidate per block [ceil(F / K)]).
    """
    k, r = int(block_frames), int(radius)
    if not 0 <= 2 * r <= k:
        raise ValueError(f"radius must be in [0, block_frames / 2 = {k // 2}], got {radius}")
    g, f = z.shape
    n_blocks = -(-f // k)
    unary = np.zeros((n_blocks, g))
    pair = np.zeros((n_blocks, g, g))  # pair[b][i, j]: block b - 1 at candidate i, block b at j
    for n in range(f):
        b = n // k
        lo, hi = max(0, n - r), min(f, n + r + 1)
        own = slice(max(lo, b * k), min(hi, (b + 1) * k))
        zo, qo = z[:, own].sum(1), q[:, own].sum(1)
        other = slice(lo, b * k) if lo < b * k else slice((b + 1) * k, hi)
        if other.start >= other.stop:
            unary[b] += _entropy(zo, qo)
            continue
        zt, qt = z[:, other].sum(1), q[:, other].sum(1)
        h = _entropy(zo[:, None] + zt[None, :], qo[:, None] + qt[None, :])  # [own, other]
        if lo < b * k:
            pair[b] += h.T
        else:
            pair[b + 1] += h
    cost, back = unary[0], []
    for b in range(1, n_blocks):
        total = cost[:, None] + pair[b] + unary[b][None, :]
        back.append(total.argmin(0))
        cost = total.min(0)
    choice = [int(cost.argmin())]
    for step in reversed(back):
        choice.append(int(step[choice[-1]]))
    return float(cost.min()) / f, np.array(choice[::-1])


# ---- low steady sound under high transients: the scenes that a window per band is for ----------


def hihats(seconds: float, sr: float, rate: float = 8.0, seed: int = 2) -> np.ndarray:
    """Closed hi-hats: noise bursts high-passed above ~5 kHz (a third-order difference), decaying in
    ~8 ms, ``rate`` per second, jittered; peak about 0.4."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n)
    burst = int(0.04 * sr)
    env = np.exp(-np.arange(burst) / (0.008 * sr))
    t = 0.25 / rate
    while t < seconds:
        k = int(t * sr)
        seg = np.diff(rng.standard_normal(burst + 3), 3) * env
        x[k : k + burst] += seg[: max(0, min(burst, n - k))]
        t += (1.0 + 0.2 * rng.uniform(-1, 1)) / rate
    return (0.4 * x / (np.abs(x).max() + 1e-12)).astype(np.float32)


def bass_line(seconds: float, sr: float, notes=(55.0, 73.42, 82.41, 65.41), note_s: float = 0.5):
    """A bass line: notes of ``note_s`` s (A1, D2, E2, C2 by default) with four harmonics (1/k),
    10 ms fades between notes, peak about 0.5."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    idx = (t / note_s).astype(int)
    f = np.asarray(notes)[idx % len(notes)]
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 5))
    fade = np.clip(np.minimum(t % note_s, note_s - t % note_s) / 0.01, 0, 1)
    return (0.5 * x * fade / 2.1).astype(np.float32)


def overlap_scenes(sr: float, speech_paths=None) -> dict:
    """Scenes where a low steady sound and high transients overlap (4 s each, -80 dB noise floor):
    a bass line under hi-hats, a low tone (150 Hz) under clicks, and, given recordings (e.g. of the
    Free Spoken Digit Dataset), real speech under hi-hats."""
    seconds = 4.0
    floor = 10 ** (-80 / 20) * np.random.default_rng(0).standard_normal(int(seconds * sr))
    out = {
        "bass line under hi-hats": bass_line(seconds, sr) + hihats(seconds, sr),
        "low tone under clicks": steady_tones(seconds, sr, (150.0,)) + click_train(seconds, sr, rate=10.0),
    }
    if speech_paths:
        words = speech(speech_paths, sr)
        words = np.pad(words, (0, max(0, int(seconds * sr) - len(words))))[: int(seconds * sr)]
        out["speech (FSDD) under hi-hats"] = words + 0.5 * hihats(seconds, sr, rate=6.0)
    return {name: (x + floor).astype(np.float32) for name, x in out.items()}


def band_measure(spec: np.ndarray, bins, radius: int = 4) -> float:
    """The band-restricted measure: mean over bands of each band's mean local entropy (Shannon,
    p = 2, radius r, over the band's bins only, normalised within the band), nats; spec [F, M]."""
    s = torch.from_numpy(np.ascontiguousarray(spec)).T
    return float(band_entropy(s, [int(b) for b in bins], radius=radius).mean())


def band_report(
    x: np.ndarray, sample_rate: float = 48000, n_fft: int = 2048, hop_length: int = 256, bands: int = 4
) -> dict:
    """The band-restricted measure (:func:`band_measure`, over the banded engine's bands) of what
    the time-only engine and the banded engine (``bands``) emit online; also the banded engine's θ."""
    one = StreamingDSTFT(sample_rate, n_fft, hop_length)
    banded = StreamingDSTFT(sample_rate, n_fft, hop_length, bands=bands)
    spec_one, _, _ = stream_all(one, x)
    spec_b, theta_b, _ = stream_all(banded, x)
    return {
        "time_only": band_measure(spec_one, banded.band_bins),
        "banded": band_measure(spec_b, banded.band_bins),
        "theta": theta_b,
        "band_edges": banded.band_edges,
    }
