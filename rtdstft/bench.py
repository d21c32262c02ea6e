"""The speed benchmark behind ``rtdstft bench``: the offline transform, the streaming engine and
how well its online adaptation does.

Input: ``batch`` signals of ``seconds`` s at ``sample_rate`` Hz of white noise, float32, CPU
(default 8 × 30 s at 16 kHz, N = 1024, H = 256). Every row runs on that same input in the same run,
and its ``ratio`` is its time over torch.stft's forward:

- ``torch.stft forward``: ``torch.stft(x, N, H, window=hann_window(N), center=True,
  pad_mode="constant", return_complex=True)``, the reference.
- ``rtdstft forward`` / ``forward+backward``: :class:`rtdstft.DSTFT` (normalization "l1") with a
  time-varying θ, random in [2H, N], either shared over the batch ([F]) or one per signal ([B, F]).
  The backward is ``S.backward(G)`` with a fixed random complex cotangent G (so it times the
  transform alone); θ requires grad, x does not (learning the window), except in the row marked
  "x and θ".
- ``budget``: on the rows that have one, the row's time over its anchor's against the limit, and
  whether it is met: a θ per batch item forward ≤ 1.0× torch.stft's forward, and its Σ|S|²
  forward+backward (gradient to θ) ≤ 1.0× torch.stft's with the same loss (gradient to x).
- ``dstft 3.0.0`` (the seed paper's reference implementation, PyPI ``dstft``), when importable:
  ``dstft.DSTFT(n_fft=N, hop_length=H, window_mode="time", hop_mode="fixed",
  normalization="paper", win_length_min=2H)`` whose raw per-frame parameter is set so that its
  θ_n = 2H + (N - 2H)·sigmoid(raw_n) equals our θ exactly; its window is then ours ("paper" is the
  same L/θ contraction of the Hann window). Its ``forward`` also returns |S| + eps, which it
  computes whatever one needs; the backward is ``stft.backward(G)`` to its θ parameter.
  dstft 3.0.0 declares torchaudio but does not import it; it imports matplotlib at import time.

Times are the median over ``repeats`` rounds after ``warmup`` rounds, in milliseconds; a round
calls every row once, so that a passing load on a shared machine hits all rows alike. Rows are plain
dicts ``{"name", "ms", "ratio", "note"}`` so that other benchmarks (streaming) can append theirs and
:func:`format_table` prints them all.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .threads import torch_threads
from .transform import DSTFT

__all__ = [
    "machine_info",
    "run_offline_bench",
    "run_modes_vs_dstft",
    "run_inverse_bench",
    "STREAM_BUDGETS",
    "stream_bench_input",
    "stream_rtf",
    "run_stream_bench",
    "run_quality_bench",
    "run_band_quality_bench",
    "format_table",
    "main",
]

REFERENCE = "torch.stft forward"


def machine_info() -> dict:
    """CPU model (from /proc/cpuinfo where there is one), core count, torch version and threads."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def _median_ms(fns: list[Callable[[], object] | None], repeats: int, warmup: int) -> list:
    """Median wall time of each fn() in ms (None for None), over ``repeats`` rounds after ``warmup``.

    The rounds interleave the functions (one call of each per round), so that a load that comes and
    goes on a shared machine falls on every row alike and the ratios stay meaningful."""
    live = [fn for fn in fns if fn is not None]
    for _ in range(warmup):
        for fn in live:
            fn()
    times: dict[int, list[float]] = {id(fn): [] for fn in live}
    for _ in range(repeats):
        for fn in live:
            start = time.perf_counter()
            fn()
            times[id(fn)].append((time.perf_counter() - start) * 1e3)
    return [None if fn is None else statistics.median(times[id(fn)]) for fn in fns]


def _dstft_module(n_fft: int, hop_length: int, theta: torch.Tensor, x: torch.Tensor):
    """dstft 3.0.0's time-varying DSTFT carrying exactly the window lengths ``theta`` [F]."""
    import dstft

    win_min = 2.0 * hop_length
    module = dstft.DSTFT(
        n_fft=n_fft,
        hop_length=hop_length,
        window_mode="time",
        hop_mode="fixed",
        normalization="paper",
        win_length=0.5 * (win_min + n_fft),
        win_length_min=win_min,
        win_length_max=float(n_fft),
    )
    module.initialize(x)
    with torch.no_grad():
        # its θ = win_min + (N - win_min) · sigmoid(raw)
        p = ((theta.double() - win_min) / (n_fft - win_min)).clamp(1e-6, 1 - 1e-6)
        module._raw_win_length.copy_(torch.logit(p).reshape(1, -1).to(x.dtype))
    return module, dstft.__version__


def run_offline_bench(
    batch: int = 8,
    seconds: float = 30.0,
    sample_rate: int = 16000,
    n_fft: int = 1024,
    hop_length: int = 256,
    threads: int | None = None,
    repeats: int = 7,
    warmup: int = 2,
    with_dstft: bool = True,
    seed: int = 0,
) -> list[dict]:
    """Times torch.stft, rtdstft.DSTFT and (when importable) dstft on one input.

    Args:
        batch: B signals.
        seconds, sample_rate: each signal is round(seconds · sample_rate) samples.
        n_fft, hop_length: N and H in samples.
        threads: torch.set_num_threads for the run (restored afterwards); default all cores.
        repeats, warmup: timed and untimed calls per row.
        with_dstft: also time the dstft package (rows noted "not installed" when it is absent).
        seed: for the signal, θ and the cotangent.

    Returns:
        Rows ``{"name": str, "ms": float | None, "ratio": float | None, "note": str}``, the first
        one torch.stft's forward (ratio 1).
    """
    with torch_threads(threads or os.cpu_count() or 1):
        return _run(batch, seconds, sample_rate, n_fft, hop_length, repeats, warmup, with_dstft, seed)


def _run(batch, seconds, sample_rate, n_fft, hop_length, repeats, warmup, with_dstft, seed):
    gen = torch.Generator().manual_seed(seed)
    length = round(seconds * sample_rate)
    x = torch.randn(batch, length, generator=gen)
    t = DSTFT(n_fft, hop_length)
    n_frames = t.num_frames(length)
    lo, hi = t.win_min, t.win_max
    theta = lo + (hi - lo) * torch.rand(n_frames, generator=gen)
    theta_items = lo + (hi - lo) * torch.rand(batch, n_frames, generator=gen)
    cot = torch.randn(batch, t.n_bins, n_frames, dtype=torch.complex64, generator=gen)
    hann = torch.hann_window(n_fft)
    shape = f"{batch}×{length} samples, N={n_fft}, H={hop_length}, F={n_frames}"

    def stft():
        return torch.stft(
            x, n_fft, hop_length, window=hann, center=True, pad_mode="constant", return_complex=True
        )

    def forward(th):
        def run():
            with torch.no_grad():
                return t(x, th)

        return run

    # The cotangent takes the output's memory layout, as the gradient of any loss computed from
    # S would; a layout-mismatched one would time a transposing copy, not the transform.
    with torch.no_grad():
        cot_ours = torch.empty_like(t(x, theta)).copy_(cot)

    def forward_backward(th, signal=x):
        def run():
            th_ = th.detach().requires_grad_(True)
            t(signal, th_).backward(cot_ours)

        return run

    x_grad = x.detach().requires_grad_(True)
    cases = [
        (REFERENCE, stft, shape),
        ("rtdstft forward, θ [F] shared", forward(theta), "normalization l1"),
        ("rtdstft forward+backward, θ [F] shared", forward_backward(theta), "grad to θ"),
        ("rtdstft forward, θ [B, F] per item", forward(theta_items), ""),
        ("rtdstft forward+backward, θ [B, F] per item", forward_backward(theta_items), "grad to θ"),
        (
            "rtdstft forward+backward, θ [F], x and θ",
            forward_backward(theta, x_grad),
            "grad to x and θ",
        ),
    ]
    x_loss = x.detach().requires_grad_(True)

    def stft_loss():
        spec = torch.stft(
            x_loss, n_fft, hop_length, window=hann, center=True, pad_mode="constant", return_complex=True
        )
        spec.abs().square().sum().backward()

    def loss(th, positions=None):
        def run():
            th_ = th.detach().requires_grad_(True)
            pos = None if positions is None else positions.detach().requires_grad_(True)
            t(x, th_, pos).abs().square().sum().backward()

        return run

    # Real frame centres: n·H plus a fractional shift (the last kept inside the signal).
    positions = torch.arange(n_frames) * float(hop_length) + 0.5 * torch.rand(n_frames, generator=gen)
    positions = positions.clamp(max=length)
    cases += [
        ("torch.stft forward+backward, Σ|S|²", stft_loss, "grad to x"),
        ("rtdstft forward+backward, θ [B, F] per item, Σ|S|²", loss(theta_items), "grad to θ"),
        ("rtdstft forward, θ [B, F], real positions [F]", forward_at(t, x, theta_items, positions), ""),
        (
            "rtdstft forward+backward, θ [B, F], real positions [F], Σ|S|²",
            loss(theta_items, positions),
            "grad to θ and positions",
        ),
    ]
    cases += _dstft_cases(n_fft, hop_length, theta, x, cot, with_dstft)
    timings = _median_ms([fn for _, fn, _ in cases], repeats, warmup)
    rows = [
        {"name": name, "ms": ms, "ratio": None, "note": note}
        for (name, _, note), ms in zip(cases, timings, strict=True)
    ]
    # The frequency-dependent modes cost tens of torch.stft's: fewer rounds, and their peak memory.
    # The peak is taken on the first call, which also warms the row up.
    mode_cases = _mode_cases(n_fft, hop_length, x, gen)
    peaks = [_peak_mb(fn) for _, fn, _ in mode_cases]
    timings = _median_ms([fn for _, fn, _ in mode_cases], 1 if repeats <= 2 else 2, 0)
    for (name, _, note), ms, peak in zip(mode_cases, timings, peaks, strict=True):
        rows.append({"name": name, "ms": ms, "ratio": None, "note": note, "peak MB": peak})
    rows[0]["peak MB"] = _peak_mb(stft)
    ref = rows[0]["ms"]
    for row in rows:
        row["ratio"] = None if row["ms"] is None else row["ms"] / ref
    mark_budgets(rows)
    return rows


#: The offline rows with a speed budget: row -> (the row it is measured against, the largest ratio).
BUDGETS = {
    "rtdstft forward, θ [B, F] per item": (REFERENCE, 1.0),
    "rtdstft forward+backward, θ [B, F] per item, Σ|S|²": ("torch.stft forward+backward, Σ|S|²", 1.0),
}

#: Every mode at least this many times faster than dstft 3.0.0, forward and forward+backward.
DSTFT_SPEEDUP = 10.0

#: dstft's time-mode rows -> our row on the same input, θ and cotangent (the 10× budget).
DSTFT_BUDGETS = {
    "dstft forward, θ [F] time-varying": "rtdstft forward, θ [F] shared",
    "dstft forward+backward, θ [F] time-varying": "rtdstft forward+backward, θ [F] shared",
}


def speedup_verdict(speedup: float) -> str:
    """ "21.3× faster than dstft (≥ 10×): met" against :data:`DSTFT_SPEEDUP`."""
    verdict = "met" if speedup >= DSTFT_SPEEDUP else "NOT met"
    return f"{speedup:.1f}× faster than dstft (≥ {DSTFT_SPEEDUP:g}×): {verdict}"


def mark_budgets(rows: list[dict]) -> None:
    """Adds ``"budget"`` to each row of :data:`BUDGETS` (its time over its anchor's, the limit, and
    "met" or "NOT met") and to dstft's time-mode rows (:data:`DSTFT_BUDGETS`: how many times faster
    our row on the same input is, against :data:`DSTFT_SPEEDUP`)."""
    times = {row["name"]: row["ms"] for row in rows}
    for row in rows:
        if row["name"] in DSTFT_BUDGETS:
            ours = DSTFT_BUDGETS[row["name"]]
            if row["ms"] is not None and times.get(ours):
                row["budget"] = f"{ours}: {speedup_verdict(row['ms'] / times[ours])}"
            continue
        if row["name"] not in BUDGETS:
            continue
        anchor, limit = BUDGETS[row["name"]]
        if row["ms"] is None or not times.get(anchor):
            continue
        ratio = row["ms"] / times[anchor]
        verdict = "met" if ratio <= limit else "NOT met"
        row["budget"] = f"{ratio:.2f}× {anchor} (≤ {limit:g}×): {verdict}"


def forward_at(t: DSTFT, x: torch.Tensor, theta: torch.Tensor, positions: torch.Tensor | None = None):
    """A function that runs ``t(x, theta, positions)`` without autograd."""

    def run():
        with torch.no_grad():
            return t(x, theta, positions)

    return run


def _peak_mb(fn: Callable[[], object] | None) -> float | None:
    """Peak resident memory in MB that one call of fn adds to the process, from Linux's VmHWM
    (reset through /proc/self/clear_refs); None where that is unavailable.

    Memory that earlier calls freed but the C heap kept would be reused without raising the
    resident size, hiding what fn allocates; glibc's ``malloc_trim`` returns it to the system first.
    """
    if fn is None:
        return None
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the peak may then read low
        pass

    def status(key: str) -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return float(line.split()[1]) / 1024
        raise OSError(key)

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS:")
        fn()
        return round(status("VmHWM:") - before, 1)
    except OSError:
        return None


#: Bands of the banded time-frequency rows: θ constant over BANDS equal runs of bins, per frame.
BANDS = 8


def mode_thetas(t: DSTFT, n_frames: int, gen: torch.Generator) -> list[tuple[str, str, torch.Tensor]]:
    """(mode, label, θ) for the frequency-dependent rows: θ random in [win_min, win_max] per bin
    ("frequency" [M]), per bin and frame ("time-frequency" [M, F], the per-bin path), and per
    band of bins and frame (:data:`BANDS` equal bands, [M, F], one FFT per band and frame)."""
    span = t.win_max - t.win_min
    per_bin = t.win_min + span * torch.rand(t.n_bins, generator=gen)
    per_bin_frame = t.win_min + span * torch.rand(t.n_bins, n_frames, generator=gen)
    edges = torch.linspace(0, t.n_bins, BANDS + 1).round().long()
    per_band = t.win_min + span * torch.rand(BANDS, n_frames, generator=gen)
    return [
        ("frequency", "frequency θ [M]", per_bin),
        ("time-frequency", "time-frequency θ [M, F]", per_bin_frame),
        (
            "time-frequency",
            f"time-frequency θ [M, F], {BANDS} bands",
            per_band.repeat_interleave(edges.diff(), 0),
        ),
    ]


def _mode_cases(n_fft, hop_length, x, gen):
    """(name, fn, note) for the frequency-dependent window modes on the bench input."""
    cases = []
    n_frames = DSTFT(n_fft, hop_length).num_frames(x.shape[-1])
    notes = {
        "frequency": "one kernel, matrix products",
        "time-frequency": "a kernel per frame, matrix products",
    }
    for mode, label, theta in mode_thetas(DSTFT(n_fft, hop_length), n_frames, gen):
        t = DSTFT(n_fft, hop_length, window_mode=mode)
        note = (
            "one FFT per band and frame (the per-bin path's cost does not depend on θ)"
            if "bands" in label
            else notes[mode]
        )

        def fb(t=t, theta=theta):
            th = theta.detach().requires_grad_(True)
            t(x, th).abs().square().sum().backward()

        cases.append((f"rtdstft forward, {label}", forward_at(t, x, theta), note))
        cases.append((f"rtdstft forward+backward, {label}, Σ|S|²", fb, "grad to θ"))
    return cases


def _dstft_cases(n_fft, hop_length, theta, x, cot, with_dstft):
    """(name, fn or None, note) for dstft's forward and forward+backward."""
    names = ("dstft forward, θ [F] time-varying", "dstft forward+backward, θ [F] time-varying")
    if not with_dstft:
        return [(n, None, "skipped (--no-dstft)") for n in names]
    try:
        module, version = _dstft_module(n_fft, hop_length, theta, x)
    except ImportError as exc:
        return [(n, None, f"dstft not installed ({exc.name})") for n in names]

    def forward():
        with torch.no_grad():
            return module(x)

    with torch.no_grad():
        cot_theirs = torch.empty_like(module(x)[1]).copy_(cot)

    def forward_backward():
        module.zero_grad(set_to_none=True)
        _, stft = module(x)
        stft.backward(cot_theirs)

    # Same windows, so the same magnitudes (dstft references phase to absolute time).
    with torch.no_grad():
        ours = DSTFT(n_fft, hop_length)(x, theta).abs()
        err = float((module(x)[1].abs() - ours).abs().max() / ours.abs().max())
    note = f"dstft {version}, also returns the magnitude; magnitudes match ours to {err:.0e}"
    return [(names[0], forward, note), (names[1], forward_backward, "grad to θ")]


def _dstft_mode_module(mode: str, n_fft: int, hop_length: int, theta: torch.Tensor, x: torch.Tensor):
    """dstft 3.0.0 in window mode ``mode`` carrying the window lengths ``theta`` ([M] or [M, F])."""
    import dstft

    win_min = 2.0 * hop_length
    module = dstft.DSTFT(
        n_fft=n_fft,
        hop_length=hop_length,
        window_mode=mode,
        hop_mode="fixed",
        normalization="paper",
        win_length=0.5 * (win_min + n_fft),
        win_length_min=win_min,
        win_length_max=float(n_fft),
    )
    module.initialize(x)
    with torch.no_grad():
        p = ((theta.double() - win_min) / (n_fft - win_min)).clamp(1e-6, 1 - 1e-6)
        raw = torch.logit(p).reshape(theta.shape[0], -1)
        module._raw_win_length.copy_(raw[:, : module._raw_win_length.shape[1]].to(x.dtype))
    return module


def run_modes_vs_dstft(
    batch: int = 8,
    seconds: float = 1.0,
    sample_rate: int = 16000,
    n_fft: int = 1024,
    hop_length: int = 256,
    repeats: int = 2,
    seed: int = 0,
    threads: int | None = None,
) -> list[dict]:
    """The frequency-dependent modes against dstft 3.0.0 on a cut of the bench input.

    dstft forms every windowed frame of every bin, [B, M, F, N] complex: 63 GB on the full bench
    input (8 × 30 s), so the two are timed on ``batch`` × ``seconds`` (same B, N, H; the cost of
    both is linear in F). Rows carry "× dstft", dstft's time over ours, the peak memory and the
    verdict on the 10× budget (:data:`DSTFT_SPEEDUP`). ``threads`` as in :func:`run_offline_bench`."""
    with torch_threads(threads or os.cpu_count() or 1):
        return _modes_vs_dstft(batch, seconds, sample_rate, n_fft, hop_length, repeats, seed)


def _modes_vs_dstft(batch, seconds, sample_rate, n_fft, hop_length, repeats, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, round(seconds * sample_rate), generator=gen)
    try:
        import dstft  # noqa: F401
    except ImportError as exc:
        return [{"name": "dstft comparison", "ms": None, "note": f"dstft not installed ({exc.name})"}]
    rows = []
    n_frames = DSTFT(n_fft, hop_length).num_frames(x.shape[-1])
    for mode, label, theta in mode_thetas(DSTFT(n_fft, hop_length), n_frames, gen):
        t = DSTFT(n_fft, hop_length, window_mode=mode)
        module = _dstft_mode_module(mode, n_fft, hop_length, theta, x)
        label = mode if "bands" not in label else f"{mode}, {BANDS} bands"

        def ours_fb(t=t, theta=theta):
            th = theta.detach().requires_grad_(True)
            t(x, th).abs().square().sum().backward()

        def theirs_fwd(module=module):
            with torch.no_grad():
                return module(x)

        def theirs_fb(module=module):
            module.zero_grad(set_to_none=True)
            module(x)[1].abs().square().sum().backward()

        fns = [forward_at(t, x, theta), theirs_fwd, ours_fb, theirs_fb]
        peaks = [_peak_mb(fn) for fn in fns]  # also the warm-up
        times = _median_ms(fns, repeats, 0)
        cut = f"{batch} × {seconds:g} s"
        for what, pair in [("forward", (0, 1)), ("forward+backward, Σ|S|²", (2, 3))]:
            ours, theirs = times[pair[0]], times[pair[1]]
            rows.append(
                {
                    "name": f"rtdstft {what}, {label}",
                    "ms": ours,
                    "× dstft": round(theirs / ours, 1),
                    "peak MB": peaks[pair[0]],
                    "note": cut,
                    "budget": speedup_verdict(theirs / ours),
                }
            )
            rows.append(
                {
                    "name": f"dstft {what}, {label}",
                    "ms": theirs,
                    "× dstft": 1.0,
                    "peak MB": peaks[pair[1]],
                    "note": f"{cut}, dstft 3.0.0",
                }
            )
    return rows


def run_inverse_bench(
    seconds: float = 2.0, n_fft: int = 256, hop_length: int = 64, seed: int = 0
) -> list[dict]:
    """Inverse accuracy and cost, float64: time mode at real positions (weighted overlap-add) and the
    least-squares inverse of the frequency-dependent modes, against dstft 3.0.0's own inverse of
    the same modes (its default: 20 preconditioned CG iterations) on the same signal.

    The signal is spoken digits (the FSDD recordings beside a checkout, 8 kHz) when present, else
    the synthetic voiced scene; θ is random in [2H, N] per frame, per bin, or per bin and frame."""
    from .scenes import scene, speech

    fsdd = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
    if fsdd.is_dir():
        x, source = speech([fsdd / n for n in FSDD_WORDS], 8000), "FSDD speech, 8 kHz"
    else:
        x, source = scene([("voiced", seconds)], 8000), "synthetic voiced scene, 8 kHz"
    x = torch.as_tensor(x, dtype=torch.float64)[: round(seconds * 8000)]
    length = x.shape[-1]
    gen = torch.Generator().manual_seed(seed)

    def snr(estimate):
        return round(float(10 * torch.log10(x.square().sum() / (estimate - x).square().sum())), 1)

    rows = []
    t = DSTFT(n_fft, hop_length)
    n_frames = t.num_frames(length)
    pos = (
        torch.arange(n_frames, dtype=torch.float64) * hop_length
        + 0.9 * torch.rand(n_frames, generator=gen, dtype=torch.float64)
    ).clamp(max=length)
    theta = t.win_min + (t.win_max - t.win_min) * torch.rand(n_frames, generator=gen, dtype=torch.float64)
    spec = t(x, theta, pos)
    start = time.perf_counter()
    x_hat = t.inverse(spec, theta, length=length, positions=pos)
    ms = 1e3 * (time.perf_counter() - start)
    rows.append(
        {
            "name": "rtdstft inverse, time θ [F], real positions",
            "ms": ms,
            "SNR dB": snr(x_hat),
            "note": f"{source}; overlap-add",
        }
    )
    for mode in ("frequency", "time-frequency"):
        t = DSTFT(n_fft, hop_length, window_mode=mode)
        theta = t.win_min + (t.win_max - t.win_min) * torch.rand(
            t.theta_shape(n_frames), generator=gen, dtype=torch.float64
        )
        spec = t(x, theta)
        start = time.perf_counter()
        x_hat, residual = t.inverse(spec, theta, length=length, return_residual=True)
        ms = 1e3 * (time.perf_counter() - start)
        rows.append(
            {
                "name": f"rtdstft inverse, {mode}",
                "ms": ms,
                "SNR dB": snr(x_hat),
                "note": f"least squares, residual {residual:.1e}",
            }
        )
        try:
            module = _dstft_mode_module(mode, n_fft, hop_length, theta, x[None])
        except ImportError as exc:
            rows.append(
                {"name": f"dstft inverse, {mode}", "ms": None, "note": f"dstft not installed ({exc.name})"}
            )
            continue
        with torch.no_grad():
            theirs = module(x[None])[1]
            start = time.perf_counter()
            try:
                x_theirs = module.inverse(theirs)[0]
            except (ValueError, RuntimeError) as exc:  # its frequency-mode inverse fails on its shapes
                rows.append(
                    {"name": f"dstft inverse, {mode}", "ms": None, "note": f"dstft 3.0.0 fails: {exc}"}
                )
                continue
            ms = 1e3 * (time.perf_counter() - start)
        note = "dstft 3.0.0, CG 20 iterations"
        rows.append({"name": f"dstft inverse, {mode}", "ms": ms, "SNR dB": snr(x_theirs), "note": note})
    return rows


#: Real-time factor budgets of the stream at 48 kHz, N = 2048, H = 256, one thread: bands -> largest RTF.
STREAM_BUDGETS = {1: 0.01, 4: 0.03}


def stream_bench_input(seconds: float = 12.0, sample_rate: int = 48000) -> np.ndarray:
    """The stream bench's input: a scene whose character changes every quarter (clicks, tones, a
    fast chirp, a voiced passage, see :mod:`rtdstft.scenes`), float [seconds · sample_rate]. One
    owner, so that every comparison of stream speed (``scripts/stream_rtf_ab.py``) feeds the same."""
    from .scenes import scene

    part = seconds / 4
    return scene([("clicks", part), ("tones", part), ("chirp", part), ("voiced", part)], sample_rate)


def stream_rtf(
    engine,
    x: np.ndarray,
    sample_rate: float,
    block: int = 1024,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Real-time factor of one pass of ``x`` through ``engine`` (reset first), fed in blocks of
    ``block`` samples as an audio callback would deliver them: the ``clock``'s time (wall time by
    default; ``time.thread_time`` leaves out the waits for a CPU on a busy machine) in ``process``
    over the audio's duration."""
    engine.reset()
    start = clock()
    for i in range(0, len(x), block):
        engine.process(x[i : i + block])
    return (clock() - start) * sample_rate / len(x)


def run_stream_bench(
    seconds: float = 12.0,
    sample_rate: int = 48000,
    n_fft: int = 2048,
    hop_length: int = 256,
    block_frames: int = 8,
    block: int = 1024,
    repeats: int = 3,
) -> list[dict]:
    """Streaming rows: real-time factor with adaptation off and on, one torch thread, against
    :data:`STREAM_BUDGETS` (with adaptation on: the engine as the user runs it), and the engine's
    latencies per number of bands.

    The input is :func:`stream_bench_input`, fed in blocks of ``block`` samples. RTF = wall time of
    ``process`` over the audio's duration, median of ``repeats`` passes after one warm-up pass.
    """
    from .stream import StreamingDSTFT

    x = stream_bench_input(seconds, sample_rate)
    rows = []
    with torch_threads(1):
        for bands, adapt in ((1, False), (1, True), (4, False), (4, True)):
            engine = StreamingDSTFT(
                sample_rate, n_fft, hop_length, adapt=adapt, block_frames=block_frames, bands=bands
            )
            rtf = statistics.median(
                [stream_rtf(engine, x, sample_rate, block) for _ in range(repeats + 1)][1:]
            )
            n_blocks = len(x) / (hop_length * block_frames)
            row = {
                "name": f"streaming, bands={bands}, adaptation {'on' if adapt else 'off'}",
                "ms": 1e3 * rtf * (len(x) / sample_rate) / n_blocks,
                "note": f"ms per block of K={block_frames} frames; {sample_rate / 1000:g} kHz, "
                f"N={n_fft}, H={hop_length}, 1 thread",
                "real-time factor": round(rtf, 4),
            }
            if adapt and bands in STREAM_BUDGETS:  # judged on the figure the table shows
                limit = STREAM_BUDGETS[bands]
                row["budget"] = f"≤ {limit:g}: {'met' if row['real-time factor'] <= limit else 'NOT met'}"
            rows.append(row)
        for bands in (1, 2, 4, 8):
            engine = StreamingDSTFT(sample_rate, n_fft, hop_length, block_frames=block_frames, bands=bands)
            split = f" + D = {engine.split_delay} (band split)" if bands > 1 else ""
            rows.append(
                {
                    "name": f"analysis latency, bands={bands}",
                    "ms": 1e3 * engine.analysis_latency / sample_rate,
                    "note": f"{engine.analysis_latency} samples = N/2 + (K-1)·H{split}",
                }
            )
            rows.append(
                {
                    "name": f"resynthesis latency, bands={bands}",
                    "ms": 1e3 * engine.latency / sample_rate,
                    "note": f"{engine.latency} samples = N + (K-1)·H - 1{split}",
                }
            )
    return rows


QUALITY_SCENES = {
    "clicks → tones → chirp → voiced": [("clicks", 1.5), ("tones", 1.5), ("chirp", 1.5), ("voiced", 1.5)],
    "clicks → tones": [("clicks", 2.0), ("tones", 2.0)],
    "vibrato → clicks → voiced → clicks": [
        ("vibrato", 1.5),
        ("clicks", 1.0),
        ("voiced", 1.5),
        ("clicks", 1.0),
    ],
}


FSDD_WORDS = ("3_jackson_0.wav", "7_george_1.wav", "5_lucas_2.wav", "9_nicolas_3.wav")


def run_quality_bench(
    sample_rate: int = 48000,
    n_fft: int = 2048,
    hop_length: int = 256,
    scenes: dict | None = None,
    offline_steps: int = 30,
) -> list[dict]:
    """Adaptation quality: mean local entropy (Shannon, p = 2, r = 4, nats) of the best
    single window in hindsight, of what the engine emits online, of the per-block oracle (the best
    sequence of one θ per 8-frame block from a 24-point grid, scored on the spectrogram it makes:
    :func:`rtdstft.scenes.block_oracle`), the share of that gap the engine closes, the per-block
    bound (each block's best θ judged on its own constant-θ spectrogram), and
    of the offline time fit (``fit_window(mode="time")``: whole-signal search, then ``offline_steps``
    gradient steps), which sees the whole signal and must reach no higher than the engine."""
    from .scenes import adaptation_report, scene, speech

    if scenes is None:
        scenes = dict(QUALITY_SCENES)
        fsdd = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
        if fsdd.is_dir():  # the project's data folder beside a checkout; absent in a user's clone
            words = speech([fsdd / n for n in FSDD_WORDS], sample_rate)
            scenes["clicks → tones → chirp → speech (FSDD)"] = [
                ("clicks", 1.0),
                ("tones", 1.0),
                ("chirp", 1.0),
                (words, None),
            ]
    rows = []
    for name, parts in scenes.items():
        r = adaptation_report(
            scene(parts, sample_rate),
            sample_rate,
            n_fft,
            hop_length,
            block_frames=8,
            radius=4,
            offline_steps=offline_steps,
        )
        rows.append(
            {
                "scene": name,
                "best fixed": round(r["best_fixed"], 4),
                "online": round(r["online"], 4),
                "oracle": round(r["oracle"], 4),
                "gap closed": round(r["gap_closed"], 3),
                "block bound": round(r["block_bound"], 4),
                "offline fit": round(r["offline"], 4),
                "best fixed θ": round(r["best_fixed_theta"], 1),
            }
        )
    return rows


def run_band_quality_bench(
    sample_rate: int = 48000, n_fft: int = 2048, hop_length: int = 256, bands: int = 4, quick: bool = False
) -> list[dict]:
    """Band-restricted quality: the mean over the B = ``bands`` default bands of each band's mean
    local entropy (Shannon, p = 2, r = 4, over the band's bins only, normalised within the band) of
    what the time-only engine and the banded engine emit online, on the quality scenes and on the
    scenes where a low steady sound and high transients overlap (:func:`rtdstft.scenes.overlap_scenes`,
    with real speech when ../shared/data is there). Lower is sharper."""
    from .scenes import band_report, overlap_scenes, scene

    fsdd = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
    signals = overlap_scenes(sample_rate, [fsdd / n for n in FSDD_WORDS] if fsdd.is_dir() else None)
    if quick:
        signals = {k: v[: sample_rate // 2] for k, v in list(signals.items())[:1]}
    else:
        signals.update({name: scene(parts, sample_rate) for name, parts in QUALITY_SCENES.items()})
    rows = []
    for name, x in signals.items():
        r = band_report(x, sample_rate, n_fft, hop_length, bands)
        rows.append(
            {
                "scene": name,
                "time-only (B=1)": round(r["time_only"], 4),
                f"banded (B={bands})": round(r["banded"], 4),
                "gain": round(r["time_only"] - r["banded"], 4),
            }
        )
    return rows


#: The spoken-digit corpus beside a checkout (the project's data folder; absent in a user's clone).
FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"


def run_batch_bench(
    corpus: Path = FSDD,
    files: int | None = None,
    workers: tuple[int, ...] = (1, 2),
    ray: bool = True,
    batch_files: int = 32,
    rounds: int = 3,
) -> list[dict]:
    """Corpus throughput: ``rtdstft batch`` over ``corpus`` (the first ``files`` files, default all)
    with each file alone (``--batch-files 1``, one worker), then ``batch_files`` files side by side
    with 1 and 2 local workers and through Ray Data on a new local cluster of 2 CPUs, beside anchor
    rows for a fixed-window STFT of the same files (read with soundfile, mixed to mono,
    ``torch.stft`` and ``librosa.stft`` when installed, Hann window of N/2, the batch's N and H at
    each file's rate, one thread). Throughput in seconds of audio per wall-clock second (× real
    time); peak resident memory of a worker (MB). Every row reads the same files in the same run.

    A last row compares, in this process and one thread, the files side by side with each alone
    (:func:`~rtdstft.batch.analyze_rows` on at most 300 of the files, ``rounds`` alternating rounds,
    medians), so that outside load weighs on both alike."""
    import tempfile

    from .batch import analyze_rows, engine_config, expand_inputs, run_batch

    if not corpus.is_dir():
        return [{"name": "corpus", "note": f"{corpus} not found: no batch rows"}]
    paths = sorted(expand_inputs([corpus]))[:files]
    rows: list[dict] = []

    def row(name: str, seconds: float, audio: float, peak: int | None, note: str) -> dict:
        return {
            "name": name,
            "files": len(paths),
            "audio h": round(audio / 3600, 3),
            "wall s": round(seconds, 2),
            "× real time": round(audio / seconds, 1),
            "peak MB per worker": round(peak / 2**20) if peak else None,
            "note": note,
        }

    import soundfile

    with torch_threads(1):
        anchors = {"torch.stft": None}
        try:
            import librosa

            anchors["librosa.stft"] = librosa
        except ImportError:
            rows.append({"name": "librosa.stft", "note": "librosa not installed"})
        for name, librosa_module in anchors.items():
            audio = 0.0
            start = time.perf_counter()
            for p in paths:
                x, sr = soundfile.read(p, dtype="float32", always_2d=True)
                x = x.mean(axis=1)
                cfg = engine_config(None, sr)
                n, h = cfg.n_fft, cfg.hop_length
                if librosa_module is None:
                    w = torch.hann_window(n // 2)
                    torch.stft(torch.from_numpy(x), n, h, n // 2, w, center=True, return_complex=True)
                else:
                    librosa_module.stft(x, n_fft=n, hop_length=h, win_length=n // 2, pad_mode="constant")
                audio += x.shape[0] / sr
            rows.append(
                row(f"{name}, fixed window (anchor)", time.perf_counter() - start, audio, None, "1 thread")
            )
    with tempfile.TemporaryDirectory() as tmp:
        s = run_batch(paths, Path(tmp, "alone"), workers=1, batch_files=1)
        rows.append(
            row("rtdstft batch, 1 worker, files alone", s.seconds, s.audio_seconds, None, "--batch-files 1")
        )
        for n in workers:
            s = run_batch(paths, Path(tmp, f"w{n}"), workers=n, batch_files=batch_files)
            note = f"--batch-files {batch_files}, " + (
                "in this process" if n == 1 else "processes (forkserver)"
            )
            rows.append(
                row(f"rtdstft batch, {n} worker(s)", s.seconds, s.audio_seconds, s.worker_peak_bytes, note)
            )
        if ray:
            try:
                import ray as ray_module

                ray_module.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - the row says why Ray is missing
                rows.append({"name": "rtdstft batch --ray", "note": f"Ray unavailable: {exc}"})
            else:
                try:
                    s = run_batch(paths, Path(tmp, "ray"), use_ray=True, batch_files=batch_files)
                    rows.append(
                        row("rtdstft batch --ray", s.seconds, s.audio_seconds, None, "local cluster, 2 CPUs")
                    )
                finally:
                    ray_module.shutdown()
    rows.append(_lockstep_speedup(paths[:300], batch_files, rounds, analyze_rows))
    return rows


def _lockstep_speedup(paths: list[str], batch_files: int, rounds: int, analyze_rows) -> dict:
    """Files side by side against each alone, interleaved in one process (one thread): medians of
    ``rounds`` rounds of each, and their ratio."""
    import soundfile

    audio = sum(soundfile.info(p).duration for p in paths)
    times: dict[int, list[float]] = {1: [], batch_files: []}
    with torch_threads(1):
        analyze_rows(paths[:batch_files], None, batch_files=batch_files)  # warm-up
        for _ in range(rounds):
            for k in times:
                start = time.perf_counter()
                analyze_rows(paths, None, batch_files=k)
                times[k].append(time.perf_counter() - start)
    alone, together = (statistics.median(times[k]) for k in times)
    return {
        "name": f"side by side / alone, {len(paths)} files",
        "files": len(paths),
        "audio h": round(audio / 3600, 3),
        "wall s": round(together, 2),
        "× real time": round(audio / together, 1),
        "note": f"{alone / together:.2f}x faster than alone ({audio / alone:.1f}x real time); "
        f"{rounds} interleaved rounds, medians, 1 thread",
    }


def format_table(rows: list[dict]) -> str:
    """A Markdown table of rows: name, ms, ratio, note, then any other keys the rows carry."""
    columns = [c for c in ("name", "ms", "ratio", "note") if any(c in row for row in rows)]
    for row in rows:
        columns += [k for k in row if k not in columns]
    headers = {"ms": "ms", "ratio": "× torch.stft fwd"}

    def cell(key, value):
        if value is None:
            return "–"
        if key == "ms" and isinstance(value, float):
            return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
        if key == "ratio" and isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    lines = [
        "| " + " | ".join(headers.get(c, c) for c in columns) + " |",
        "| " + " | ".join("---:" if c in ("ms", "ratio") else "---" for c in columns) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell(c, row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``rtdstft bench [--quick] [--part all|offline|stream|quality|batch] [--json PATH] [--threads N]
    [--repeats R] [--no-dstft]``."""
    first_paragraph = " ".join(__doc__.split("\n\n")[0].split())
    parser = argparse.ArgumentParser(prog="rtdstft bench", description=first_paragraph)
    parser.add_argument("--quick", action="store_true", help="small inputs, 2 repeats (smoke test)")
    parser.add_argument(
        "--part",
        choices=("all", "offline", "stream", "quality", "batch"),
        default="all",
        help="which tables",
    )
    parser.add_argument("--json", metavar="PATH", help="also write machine, config and rows as JSON")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads, offline rows (default: all cores)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row (default 7)")
    parser.add_argument("--no-dstft", action="store_true", help="skip the dstft package's rows")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    config = {"batch": 8, "seconds": 30.0, "sample_rate": 16000, "n_fft": 1024, "hop_length": 256}
    config.update(repeats=7, warmup=2)
    if args.quick:
        config.update(batch=2, seconds=1.0, repeats=2, warmup=1)
    if args.repeats is not None:
        config["repeats"] = args.repeats
    machine = machine_info()
    machine["threads"] = args.threads or os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
        f"load average {load:.2f} at start"
    )
    report: dict = {"machine": machine, "config": config}
    if args.part in ("all", "offline"):
        rows = run_offline_bench(**config, threads=args.threads, with_dstft=not args.no_dstft)
        print(
            f"\noffline: {config['batch']} × {config['seconds']:g} s at {config['sample_rate']} Hz, float32, "
            f"CPU, {machine['threads']} threads, N={config['n_fft']}, H={config['hop_length']}; "
            f"median of {config['repeats']} runs"
        )
        print(format_table(rows))
        report["offline"] = rows
        cut = 0.25 if args.quick else 1.0
        rows = run_modes_vs_dstft(
            batch=config["batch"], seconds=cut, repeats=1 if args.quick else 2, threads=args.threads
        )
        print(
            f"\nfrequency-dependent modes against dstft 3.0.0 on {config['batch']} × {cut:g} s, "
            f"{machine['threads']} threads (dstft cannot hold the full input)"
        )
        print(format_table(rows))
        report["modes vs dstft"] = rows
        rows = run_inverse_bench(seconds=0.25 if args.quick else 2.0)
        print("\ninverse, float64, N=256, H=64 (SNR against the signal)")
        print(format_table(rows))
        report["inverse"] = rows
    if args.part in ("all", "stream"):
        rows = run_stream_bench(seconds=2.0 if args.quick else 12.0, repeats=1 if args.quick else 3)
        print(
            "\nstreaming: blocks of 1024 samples at 48 kHz, N=2048, H=256, K=8, one torch thread; "
            "budget: real-time factor with adaptation on"
        )
        print(format_table(rows))
        report["stream"] = rows
    if args.part in ("all", "quality"):
        rows = run_quality_bench(
            scenes={"clicks → tones": [("clicks", 0.5), ("tones", 0.5)]} if args.quick else None,
            offline_steps=3 if args.quick else 30,
        )
        print(
            "\nadaptation quality: mean local entropy (Shannon, p=2, r=4, nats) at 48 kHz, N=2048, H=256;"
            " oracle = best constant θ per 8-frame block in hindsight (24-point grid), scored on the"
            " spectrogram the sequence makes; block bound = each block's best θ on its own constant-θ"
            " spectrogram (no sequence need reach it);"
            " offline fit = fit_window(mode='time'), θ per frame, whole signal"
        )
        print(format_table(rows))
        report["quality"] = rows
        rows = run_band_quality_bench(quick=args.quick)
        print(
            "\nband-restricted quality: mean over the 4 default bands of each band's mean local entropy "
            "(Shannon, p=2, r=4, the band's bins only, nats; lower is sharper) of what the engines emit, "
            "48 kHz, N=2048, H=256"
        )
        print(format_table(rows))
        report["band_quality"] = rows
    if args.part in ("all", "batch"):
        rows = run_batch_bench(files=40 if args.quick else None, ray=not args.quick)
        print(
            "\ncorpus: `rtdstft batch` over the spoken-digit corpus (8 kHz), analyze's defaults; "
            "anchors: a fixed-window STFT of the same files; one torch thread per worker"
        )
        print(format_table(rows))
        report["batch"] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
