r"""Offline differentiable STFT with a real-valued, per-frame window length (DSTFT).

Signal x[k], k = 0..T-1, real. N = n_fft (even), H = hop_length. Frame n = 0..F-1, F = 1 + T // H, is
centred at c_n = n·H; samples outside [0, T) are zero (torch.stft's ``center=True, pad_mode="constant"``).
Each frame has its own window length θ_n in [win_min, win_max] (samples, real), and the window is the
continuous Hann family of :mod:`rtdstft.windows`. Phase is referenced to the frame start:

    S[m, n] = Σ_{j=0}^{N-1} x[c_n - N/2 + j] · w(j - N/2; θ_n) · exp(-2πi m j / N),   m = 0..N/2

With θ_n = N and normalization "peak", S equals ``torch.stft(x, N, H, window=torch.hann_window(N),
center=True, pad_mode="constant", return_complex=True)``.

Inverse, weighted overlap-add with synthesis window = analysis window, y_n = irfft(S[:, n]):

    x̂[k] = Σ_n w(k - c_n; θ_n) · y_n[k - c_n + N/2]  /  Σ_n w(k - c_n; θ_n)²

exact wherever the denominator is positive, which win_min > H guarantees for every sample but the last
``H - win_min/2`` (the default win_min = 2H covers all).

Cost: O(B·F·N log N) for the FFTs plus O(F·N) for the windows when θ is shared over the batch. The
backward pass is written by hand (one inverse FFT, a product-sum for θ and an overlap-add for x) so that
forward + backward stays within twice torch.stft's forward; there is no Python loop over frames or batch
items. On the CPU both passes take the frames in blocks of about 4 MB of temporaries (128 frames of
an 8-signal batch at N = 1024, vectorised inside; :data:`CPU_BLOCK_BYTES`), which keeps the
temporaries in cache and off fresh pages: on 8 × 30 s this halves the time of both passes. The
overlap-add loops over the N/H chunks of a frame.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F

from .windows import NORMALIZATIONS, frame_offsets, hann_window, hann_window_derivative

__all__ = ["DSTFT", "frame_signal", "overlap_add", "overlap_add_frames"]


def frame_signal(x: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Zero-padded frames of x, a strided view: [B, T] -> [B, 1 + T // H, N]."""
    xp = F.pad(x, (n_fft // 2, n_fft // 2))
    return xp.unfold(-1, n_fft, hop_length)


def overlap_add_frames(frames: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Σ_n frames[..., n, j] placed at n·H + j: [B, F, N] -> [B, (F - 1)·H + N] (padded coordinates).

    Loops over the ceil(N/H) chunks of a frame, never over frames.
    """
    b, n_frames, n_fft = frames.shape
    chunks = -(-n_fft // hop_length)
    if chunks * hop_length != n_fft:
        frames = F.pad(frames, (0, chunks * hop_length - n_fft))
    parts = frames.reshape(b, n_frames, chunks, hop_length)
    out = frames.new_zeros(b, n_frames + chunks - 1, hop_length)
    for i in range(chunks):
        out[:, i : i + n_frames] += parts[:, :, i]
    return out.reshape(b, -1)[:, : (n_frames - 1) * hop_length + n_fft]


def overlap_add(frames: torch.Tensor, hop_length: int, length: int) -> torch.Tensor:
    """Overlap-add of centred frames [B, F, N] (frame n centred at sample n·H), cropped to [B, length]."""
    n_fft = frames.shape[-1]
    return overlap_add_frames(frames, hop_length)[:, n_fft // 2 : n_fft // 2 + length]


#: Bytes of [B, frames, N] real temporaries that the CPU forward and backward handle at a time.
#: Whole-signal temporaries (61 MB for 8 × 30 s at N = 1024) are fresh mmap'd memory on every call,
#: and their page faults cost more than the FFTs; blocks of a few MB stay in cache and are reused
#: from the heap. Other devices take the whole signal in one block (their allocators cache).
CPU_BLOCK_BYTES = 4 << 20


def frame_blocks(frames: torch.Tensor) -> list[slice]:
    """Slices of the frame axis of ``frames`` [B, F, N] that the transform handles at a time."""
    b, n_frames, n_fft = frames.shape
    if frames.device.type != "cpu":
        return [slice(0, n_frames)]
    step = max(1, CPU_BLOCK_BYTES // (b * n_fft * frames.element_size()))
    return [slice(f0, min(f0 + step, n_frames)) for f0 in range(0, n_frames, step)]


class _DSTFTFunction(torch.autograd.Function):
    """S = rfft(frames(x) · w(θ)) with a hand-written backward.

    x: [B, T]; theta: [1 or B, F]; returns S [B, F, N/2+1] (frames first). Both passes go through
    the frames in blocks (:func:`frame_blocks`): a loop over a few blocks, vectorised inside.
    """

    @staticmethod
    def forward(ctx, x, theta, n_fft, hop_length, normalization):
        frames = frame_signal(x, n_fft, hop_length)
        offsets = frame_offsets(n_fft, x.device, x.dtype)
        ctx.save_for_backward(frames, theta)  # the padded signal's view; windows are rebuilt
        ctx.params = (n_fft, hop_length, normalization, x.shape[-1])
        spec = frames.new_empty(*frames.shape[:2], n_fft // 2 + 1, dtype=frames.dtype.to_complex())
        for block in frame_blocks(frames):
            w = hann_window(theta[:, block], n_fft, normalization, offsets)
            torch.fft.rfft(frames[:, block] * w, out=spec[:, block])
        return spec

    @staticmethod
    def backward(ctx, grad_spec):
        frames, theta = ctx.saved_tensors
        n_fft, hop_length, normalization, length = ctx.params
        want_x, want_theta = ctx.needs_input_grad[:2]
        offsets = frame_offsets(n_fft, frames.device, frames.dtype)
        alternating = torch.ones(n_fft, dtype=frames.dtype, device=frames.device)
        alternating[1::2] = -1
        grad_theta = theta.new_empty(theta.shape) if want_theta else None
        # grad_x in padded coordinates (frame n starts at sample n·H), cropped at the end.
        batch, n_frames = frames.shape[:2]
        grad_xp = frames.new_zeros(batch, (n_frames - 1) * hop_length + n_fft) if want_x else None
        for block in frame_blocks(frames):
            g = grad_spec[:, block]
            # Adjoint of the one-sided rfft (PyTorch's conjugate-Wirtinger convention):
            # ∂L/∂y_j = Re Σ_{m=0}^{N/2} G_m e^{+2πimj/N}. irfft(·, norm="forward") counts the bins
            # 1..N/2-1 twice and DC and Nyquist once, so adding Re G_0 + Re G_{N/2}·(-1)^j in place
            # gives twice the adjoint (cheaper than doubling DC and Nyquist in a copy of G).
            z = torch.fft.irfft(g, n=n_fft, norm="forward")
            z.add_(g[..., :1].real).addcmul_(g[..., -1:].real, alternating)  # 2 ∂L/∂(frames·w)
            if want_x:
                start = block.start * hop_length
                w = hann_window(theta[:, block], n_fft, normalization, offsets).mul_(0.5)
                part = overlap_add_frames(z * w, hop_length)
                grad_xp[:, start : start + part.shape[-1]] += part
            if want_theta:
                zx = z.mul_(frames[:, block])  # z is ours: no new tensor
                if theta.shape[0] == 1 and frames.shape[0] > 1:
                    zx = zx.sum(0, keepdim=True)
                dw = hann_window_derivative(theta[:, block], n_fft, normalization, offsets)
                grad_theta[:, block] = zx.mul_(dw).sum(-1)
        grad_x = grad_xp[:, n_fft // 2 : n_fft // 2 + length] if want_x else None
        if want_theta:
            grad_theta.mul_(0.5)
        return grad_x, grad_theta, None, None, None


def _check_int(name: str, value, low: int, even: bool = False) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, torch.SymInt))
        and not (isinstance(value, Real) and float(value).is_integer())
    ):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    value = int(value)
    if value < low or (even and value % 2):
        kind = "an even integer" if even else "an integer"
        raise ValueError(f"{name} must be {kind} >= {low}, got {value}")
    return value


def check_signal(x, name: str = "x") -> torch.Tensor:
    """Validates a real signal tensor [..., T]: floating point (float32/float64), finite."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [..., T], got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{name} must be real (float32 or float64), got complex dtype {x.dtype}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if x.dim() < 1 or x.shape[-1] < 1:
        raise ValueError(f"{name} must have shape [..., T] with T >= 1, got {tuple(x.shape)}")
    # One pass: a sum is finite only if every sample is (NaN and ±inf propagate); overflow of a
    # finite sum is rare, and then the element-wise check decides.
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf samples; all samples must be finite")
    return x


class DSTFT(torch.nn.Module):
    r"""Differentiable STFT whose window length θ is real-valued, constant or one per frame.

    Args:
        n_fft: N, the frame support and FFT size in samples; even, >= 2.
        hop_length: H, samples between frame centres; 1 <= H.
        normalization: "l1" (default; window gain N/θ, the seed paper's L/θ, so a steady sinusoid's
            peak |S| ≈ A·N/4 whatever θ) or "peak" (gain 1; θ = N is torch.hann_window(N)).
        win_min: smallest allowed θ in samples, default 2·H (keeps the inverse well conditioned);
            0 < win_min <= win_max.
        win_max: largest allowed θ in samples, default N; win_max <= N.

    Call ``t(x, win_length)``:
        x: real tensor [..., T], float32 or float64, any device.
        win_length: θ in samples: a float, a 0-d tensor (constant θ), or a tensor [..., F] with
            F = t.num_frames(T) whose leading dims broadcast against x's. Must lie in
            [win_min, win_max].
        returns S: complex [..., N/2 + 1, F] on x's device (the layout of torch.stft).

    Gradients flow to x and to win_length (hand-written backward, checked by gradcheck).
    """

    def __init__(
        self,
        n_fft: int = 2048,
        hop_length: int = 256,
        normalization: str = "l1",
        win_min: float | None = None,
        win_max: float | None = None,
    ) -> None:
        super().__init__()
        self.n_fft = _check_int("n_fft", n_fft, 2, even=True)
        self.hop_length = _check_int("hop_length", hop_length, 1)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization
        win_max = float(self.n_fft if win_max is None else win_max)
        win_min = float(min(2 * self.hop_length, win_max) if win_min is None else win_min)
        if not (0 < win_max <= self.n_fft):
            raise ValueError(f"win_max must be in (0, n_fft={self.n_fft}], got {win_max}")
        if not (0 < win_min <= win_max):
            raise ValueError(f"win_min must be in (0, win_max={win_max}], got {win_min}")
        self.win_min, self.win_max = win_min, win_max

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop_length={self.hop_length}, normalization={self.normalization!r},"
            f" win_min={self.win_min}, win_max={self.win_max}"
        )

    @property
    def n_bins(self) -> int:
        """N/2 + 1 frequency bins."""
        return self.n_fft // 2 + 1

    def num_frames(self, length: int) -> int:
        """F = 1 + T // H frames for a signal of T samples."""
        return 1 + int(length) // self.hop_length

    def frequencies(self, sample_rate: float = 1.0) -> torch.Tensor:
        """Bin centre frequencies m·sr/N, [N/2 + 1] (cycles per sample when sample_rate = 1)."""
        return torch.arange(self.n_bins, dtype=torch.float64) * (sample_rate / self.n_fft)

    def frame_times(self, length: int, sample_rate: float = 1.0) -> torch.Tensor:
        """Frame centres n·H / sample_rate, [F]."""
        return torch.arange(self.num_frames(length), dtype=torch.float64) * (self.hop_length / sample_rate)

    def check_win_length(self, win_length, batch_shape: tuple, n_frames: int, like: torch.Tensor):
        """θ as a tensor of x's dtype and device, shape [..., F] (broadcastable), bounds checked."""
        if isinstance(win_length, torch.Tensor):
            if win_length.is_complex() or not win_length.is_floating_point():
                if win_length.is_complex():
                    raise TypeError("win_length must be real, got a complex tensor")
                win_length = win_length.to(like.dtype)
            theta = win_length.to(device=like.device, dtype=like.dtype)
        elif isinstance(win_length, Real) and not isinstance(win_length, bool):
            theta = torch.tensor(float(win_length), device=like.device, dtype=like.dtype)
        else:
            raise TypeError(
                "win_length must be a float, a 0-d tensor or a tensor [..., F], got "
                f"{type(win_length).__name__}"
            )
        if theta.dim() == 0:
            theta = theta.reshape(1)
        elif theta.shape[-1] != n_frames:
            raise ValueError(
                f"win_length must have F = 1 + T // hop_length = {n_frames} values per signal "
                f"(last dim), got shape {tuple(theta.shape)}"
            )
        try:
            torch.broadcast_shapes(theta.shape[:-1], batch_shape)
        except RuntimeError:
            raise ValueError(
                f"win_length's leading dims {tuple(theta.shape[:-1])} do not broadcast against "
                f"x's batch dims {tuple(batch_shape)}"
            ) from None
        with torch.no_grad():
            lo, hi = float(theta.min()), float(theta.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("win_length contains NaN or inf; it must lie in [win_min, win_max]")
        # A relative slack lets θ sit exactly on a bound after float round-off.
        eps = 1e-6 * self.win_max
        if lo < self.win_min - eps or hi > self.win_max + eps:
            raise ValueError(
                f"win_length must lie in [win_min, win_max] = [{self.win_min:g}, {self.win_max:g}] "
                f"samples, got values in [{lo:g}, {hi:g}]"
            )
        return theta

    def forward(self, x: torch.Tensor, win_length) -> torch.Tensor:
        x = check_signal(x)
        batch_shape, length = tuple(x.shape[:-1]), x.shape[-1]
        n_frames = self.num_frames(length)
        theta = self.check_win_length(win_length, batch_shape, n_frames, x)
        theta = theta.expand(*theta.shape[:-1], n_frames)
        xb = x.reshape(-1, length)
        if all(d == 1 for d in theta.shape[:-1]):
            theta_b = theta.reshape(1, n_frames)
        else:
            theta_b = theta.expand(*batch_shape, n_frames).reshape(-1, n_frames)
        spec = _DSTFTFunction.apply(xb, theta_b, self.n_fft, self.hop_length, self.normalization)
        return spec.reshape(*batch_shape, n_frames, self.n_bins).transpose(-1, -2)

    def inverse(self, spec: torch.Tensor, win_length, length: int | None = None) -> torch.Tensor:
        """Weighted overlap-add inverse (see the module docstring).

        Args:
            spec: complex [..., N/2 + 1, F], as returned by ``forward``.
            win_length: the θ the spectrogram was taken with (float, 0-d or [..., F]).
            length: T, samples to return; default (F - 1)·H, the longest T with F frames.
        Returns:
            x̂: real [..., T], dtype matching spec's real dtype.
        """
        if not isinstance(spec, torch.Tensor) or not spec.is_complex():
            raise TypeError("spec must be a complex tensor [..., n_fft/2 + 1, F]")
        if spec.dim() < 2 or spec.shape[-2] != self.n_bins:
            raise ValueError(
                f"spec must have shape [..., n_fft/2 + 1 = {self.n_bins}, F], got {tuple(spec.shape)}"
            )
        n_frames = spec.shape[-1]
        if length is None:
            length = (n_frames - 1) * self.hop_length
        length = _check_int("length", length, 1)
        if self.num_frames(length) != n_frames:
            lo, hi = (n_frames - 1) * self.hop_length, n_frames * self.hop_length - 1
            raise ValueError(f"length must be in [{lo}, {hi}] for F = {n_frames} frames, got {length}")
        batch_shape = tuple(spec.shape[:-2])
        real = spec.real
        theta = self.check_win_length(win_length, batch_shape, n_frames, real)
        theta = theta.expand(*batch_shape, n_frames).reshape(-1, n_frames)
        w = hann_window(theta, self.n_fft, self.normalization)
        y = torch.fft.irfft(spec.reshape(-1, self.n_bins, n_frames).transpose(-1, -2), n=self.n_fft)
        num = overlap_add(y * w, self.hop_length, length)
        den = overlap_add(w * w, self.hop_length, length)
        if bool((den <= 0).any()):
            raise ValueError(
                "inverse is undefined: some samples lie outside every window; use "
                f"win_length > 2·hop_length = {2 * self.hop_length} (win_min)"
            )
        return (num / den).reshape(*batch_shape, length)
