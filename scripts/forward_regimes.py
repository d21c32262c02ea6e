"""The offline forward with a θ per batch item against torch.stft, in the memory regimes a process
can be in: a fresh process, and one that has run backward passes (as a training loop has).

    .venv/bin/python scripts/forward_regimes.py              # default allocator
    THP_MEM_ALLOC_ENABLE=1 .venv/bin/python scripts/forward_regimes.py   # huge pages for every tensor

8 signals × 30 s at 16 kHz, N = 1024, H = 256, θ random per frame and item in [2H, N], 2 torch
threads; 15 rounds alternating which goes first, medians. Both outputs are 61 MB: how fast the
kernel hands over their pages decides much of either time, which is why `rtdstft bench`'s one verdict
on this row is not the whole story. A measurement, not a test.
"""

from __future__ import annotations

import statistics
import time

import torch

from rtdstft import DSTFT

torch.set_num_threads(2)
B, T, N, H = 8, 480000, 1024, 256
g = torch.Generator().manual_seed(0)
x = torch.randn(B, T, generator=g)
t = DSTFT(N, H, normalization="l1")
F = t.num_frames(T)
th = 2 * H + (N - 2 * H) * torch.rand(B, F, generator=g)
win = torch.hann_window(N)


def stft():
    return torch.stft(x, N, H, window=win, center=True, pad_mode="constant", return_complex=True)


def ours():
    with torch.no_grad():
        return t(x, th)


def rounds(n):
    """Median ms of torch.stft and of ours over n rounds, alternating which goes first."""
    a, b = [], []
    for i in range(n):
        for f, acc in ((stft, a), (ours, b)) if i % 2 else ((ours, b), (stft, a)):
            t0 = time.perf_counter()
            y = f()
            acc.append(time.perf_counter() - t0)
            del y
    return statistics.median(a) * 1e3, statistics.median(b) * 1e3


for _ in range(2):
    stft()
    ours()
s, o = rounds(15)
print(f"fresh process: torch.stft {s:.1f} ms, ours {o:.1f} ms, ratio {o / s:.2f}")
# warm the heap with backward passes, as the bench and a training loop do
thg = th.clone().requires_grad_(True)
for _ in range(3):
    S = t(x, thg)
    (S.abs() ** 2).sum().backward()
    del S
s, o = rounds(15)
print(f"after backward passes: torch.stft {s:.1f} ms, ours {o:.1f} ms, ratio {o / s:.2f}")
