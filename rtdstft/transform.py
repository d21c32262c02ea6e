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
forward computes each window on offsets u = 0..N/2 only (the window is even in u) and mirrors it
as it multiplies the frames into one scratch block that every block reuses; its result is advised
onto huge pages (:func:`new_output`), which halves the cost of faulting it in. The overlap-add loops
over the N/H chunks of a frame.
"""

from __future__ import annotations

import ctypes
import math
import sys
from numbers import Real

import torch
import torch.nn.functional as F

from .windows import (
    NORMALIZATIONS,
    frame_offsets,
    hann_window,
    hann_window_derivative,
    hann_window_half,
    hann_window_slope,
)

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


#: Linux's madvise(MADV_HUGEPAGE), or None where there is none: see :func:`new_output`.
_MADVISE_HUGEPAGE = 14
_HUGE_PAGE = 2 << 20
_madvise = None
if sys.platform.startswith("linux"):
    try:
        _madvise = ctypes.CDLL(None, use_errno=True).madvise
        _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _madvise.restype = ctypes.c_int
    except (OSError, AttributeError):
        _madvise = None


def new_output(like: torch.Tensor, *shape: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor for a whole-signal result, on ``like``'s device.

    A CPU result of tens of MB is fresh mmap'd memory on every call, and faulting it in 4 KB pages
    costs about as much as the FFTs that fill it (21 ms against 10 ms to zero 61 MB, warm). Advising
    the kernel to back it with 2 MB pages (Linux transparent huge pages, when set to "madvise" or
    "always") cuts that cost to about half. The advice only changes how the pages are backed, never
    the values; where it is unavailable or refused, the memory is used as it is.
    """
    out = like.new_empty(*shape, dtype=dtype)
    if _madvise is None or out.device.type != "cpu":
        return out
    address, size = out.data_ptr(), out.numel() * out.element_size()
    start = -(-address // _HUGE_PAGE) * _HUGE_PAGE  # the whole huge pages inside the tensor
    stop = (address + size) // _HUGE_PAGE * _HUGE_PAGE
    if stop - start >= 4 * _HUGE_PAGE:
        _madvise(start, stop - start, _MADVISE_HUGEPAGE)  # advice: a refusal leaves 4 KB pages
    return out


def frame_blocks(frames: torch.Tensor) -> list[slice]:
    """Slices of the frame axis of ``frames`` [B, F, N] that the transform handles at a time."""
    b, n_frames, n_fft = frames.shape
    if frames.device.type != "cpu":
        return [slice(0, n_frames)]
    step = max(1, CPU_BLOCK_BYTES // (max(b, 1) * n_fft * frames.element_size()))
    return [slice(f0, min(f0 + step, n_frames)) for f0 in range(0, n_frames, step)]


def window_frames(frames: torch.Tensor, half: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = frames · w, for frames [B, Fb, N] and a window even about u = 0 given by its half
    [1 or B, Fb, N/2 + 1] (``hann_window_half``: offsets u = 0..N/2), mirrored on the fly into
    sample j's offset |j - N/2|. Returns out [B, Fb, N]."""
    n2 = frames.shape[-1] // 2
    torch.mul(frames[..., :n2], half.flip(-1)[..., :n2], out=out[..., :n2])  # u = -N/2..-1
    torch.mul(frames[..., n2:], half[..., :n2], out=out[..., n2:])  # u = 0..N/2-1
    return out


def frame_starts(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(floor(c), c - floor(c)) of frame centres c [..., F]: the first sample of each frame in the
    signal padded by N/2 on each side, and the window's fractional shift."""
    floor = positions.detach().floor()
    return floor.long(), positions.detach() - floor


def gather_frames(xp: torch.Tensor, starts: torch.Tensor, block: slice, n_fft: int) -> torch.Tensor:
    """Frames ``block`` of the padded signal xp [B, T + N] at integer starts [1 or B, F] -> [B, Fb, N]."""
    idx = starts[:, block, None] + torch.arange(n_fft, device=xp.device)
    if starts.shape[0] == 1:
        return xp[:, idx[0]]
    return torch.gather(xp, 1, idx.reshape(xp.shape[0], -1)).view(xp.shape[0], -1, n_fft)


def scatter_frames(out: torch.Tensor, parts: torch.Tensor, starts: torch.Tensor, block: slice) -> None:
    """Adjoint of :func:`gather_frames`: out [B, T + N] += parts [B, Fb, N] placed at the starts."""
    b, _, n_fft = parts.shape
    idx = starts[:, block, None] + torch.arange(n_fft, device=out.device)
    if starts.shape[0] == 1:
        out.index_add_(1, idx.reshape(-1), parts.reshape(b, -1))
    else:
        out.scatter_add_(1, idx.reshape(b, -1), parts.reshape(b, -1))


def _alternating(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    """(-1)^j, j = 0 .. N-1 [N], in ``like``'s dtype and device: for :func:`_twice_rfft_adjoint`."""
    signs = torch.ones(n_fft, dtype=like.dtype, device=like.device)
    signs[1::2] = -1
    return signs


def _twice_rfft_adjoint(g: torch.Tensor, n_fft: int, alternating: torch.Tensor) -> torch.Tensor:
    """Twice the adjoint of the one-sided rfft applied to G [..., N/2 + 1]: real [..., N].

    In PyTorch's conjugate-Wirtinger convention the adjoint is ∂L/∂y_j = Re Σ_{m=0}^{N/2} G_m
    e^{+2πimj/N}. irfft(·, norm="forward") counts the bins 1..N/2-1 twice and DC and Nyquist once,
    so adding Re G_0 + Re G_{N/2}·(-1)^j (``alternating``, :func:`_alternating`) in place gives twice
    the adjoint (cheaper than doubling DC and Nyquist in a copy of G)."""
    z = torch.fft.irfft(g, n=n_fft, norm="forward")
    return z.add_(g[..., :1].real).addcmul_(g[..., -1:].real, alternating)


def _if_wanted(ctx, tensor: torch.Tensor | None, index: int) -> torch.Tensor | None:
    """``tensor`` (input ``index``) to save for a backward that records a graph, if its gradient
    is wanted; else None, so that editing it in place after the forward stays allowed."""
    return tensor if ctx.needs_input_grad[index] else None


def _linked_source(x: torch.Tensor, n_fft: int, hop_length: int | None) -> torch.Tensor:
    """The frames of x [B, F, N] (``hop_length``) or x padded by N/2 each side [B, T + N] (None),
    rebuilt in a backward that records a graph (``create_graph=True``).

    A forward's own tensors carry no graph, so a backward that used the saved frames (and the
    saved fractional shifts) would give a gradient that does not depend on x (and positions):
    its derivative in them, the cross terms of a second derivative, would silently be 0.
    """
    if hop_length is None:
        return F.pad(x, (n_fft // 2, n_fft // 2))
    return frame_signal(x, n_fft, hop_length)


class _DSTFTFunction(torch.autograd.Function):
    """S = rfft(frames(x) · w(θ)) with a hand-written backward.

    x: [B, T]; theta: [1 or B, F]; positions: None (frame n at n·H) or real frame centres
    [1 or B, F]; returns S [B, F, N/2+1] (frames first). Both passes go through the frames in
    blocks (:func:`frame_blocks`): a loop over a few blocks, vectorised inside.
    """

    @staticmethod
    def forward(ctx, x, theta, positions, n_fft, hop_length, normalization):
        offsets = frame_offsets(n_fft, x.device, x.dtype)
        ctx.params = (n_fft, hop_length, normalization, x.shape[-1])
        if positions is None:
            frames = frame_signal(x, n_fft, hop_length)
            # The padded signal's view; windows are rebuilt. x only to rebuild it in a graph.
            ctx.save_for_backward(frames, theta, _if_wanted(ctx, x, 0))
            spec = new_output(frames, *frames.shape[:2], n_fft // 2 + 1, dtype=frames.dtype.to_complex())
            blocks = frame_blocks(frames)
            scratch = frames.new_empty(frames.shape[0], blocks[0].stop, n_fft)  # reused by every block
            for block in blocks:
                half = hann_window_half(theta[:, block], n_fft, normalization)
                windowed = window_frames(frames[:, block], half, scratch[:, : block.stop - block.start])
                torch.fft.rfft(windowed, out=spec[:, block])
            return spec
        xp = F.pad(x, (n_fft // 2, n_fft // 2))
        starts, frac = frame_starts(positions)
        ctx.save_for_backward(xp, theta, starts, frac, _if_wanted(ctx, x, 0), _if_wanted(ctx, positions, 2))
        shape = (x.shape[0], positions.shape[-1], n_fft)
        spec = new_output(xp, *shape[:2], n_fft // 2 + 1, dtype=xp.dtype.to_complex())
        for block in frame_blocks(xp.new_empty(()).expand(shape)):
            w = hann_window(theta[:, block], n_fft, normalization, offsets - frac[:, block, None])
            torch.fft.rfft(gather_frames(xp, starts, block, n_fft) * w, out=spec[:, block])
        return spec

    @staticmethod
    def backward(ctx, grad_spec):
        n_fft, hop_length, normalization, length = ctx.params
        positioned = len(ctx.saved_tensors) == 6
        graph = torch.is_grad_enabled()  # create_graph: the result must be differentiable in turn
        if positioned:
            xp, theta, starts, frac, x, positions = ctx.saved_tensors
            xp = _linked_source(x, n_fft, None) if graph and x is not None else xp
            frac = positions - starts if graph and positions is not None else frac
            batch, n_frames = xp.shape[0], starts.shape[-1]
            frames = xp.new_empty(()).expand(batch, n_frames, n_fft)  # shape only, for the blocks
        else:
            frames, theta, x = ctx.saved_tensors
            if graph and x is not None:
                frames = _linked_source(x, n_fft, hop_length)
            batch, n_frames = frames.shape[:2]
        want_x, want_theta, want_pos = ctx.needs_input_grad[:3]
        offsets = frame_offsets(n_fft, frames.device, frames.dtype)
        alternating = _alternating(n_fft, frames)
        grad_theta = theta.new_empty(theta.shape) if want_theta else None
        grad_pos = frac.new_empty(frac.shape) if want_pos else None
        # grad_x in padded coordinates (frame n starts at sample n·H), cropped at the end.
        padded = length + n_fft if positioned else (n_frames - 1) * hop_length + n_fft
        grad_xp = frames.new_zeros(batch, padded) if want_x else None
        for block in frame_blocks(frames):
            g = grad_spec[:, block]
            z = _twice_rfft_adjoint(g, n_fft, alternating)  # 2 ∂L/∂(frames·w)
            off = offsets - frac[:, block, None] if positioned else offsets
            if want_x:
                w = hann_window(theta[:, block], n_fft, normalization, off).mul_(0.5)
                if positioned:
                    scatter_frames(grad_xp, z * w, starts, block)
                else:
                    start = block.start * hop_length
                    part = overlap_add_frames(z * w, hop_length)
                    grad_xp[:, start : start + part.shape[-1]] += part
            if want_theta or want_pos:
                x_block = gather_frames(xp, starts, block, n_fft) if positioned else frames[:, block]
                zx = z * x_block if graph else z.mul_(x_block)  # z is ours: no new tensor
            if want_pos:
                slope = hann_window_slope(theta[:, block], n_fft, normalization, off)
                gp = (zx * slope).sum(-1)  # ∂w/∂c = -∂w/∂u
                grad_pos[:, block] = gp.sum(0, keepdim=True) if frac.shape[0] < gp.shape[0] else gp
            if want_theta:
                dw = hann_window_derivative(theta[:, block], n_fft, normalization, off)
                if dw.shape[0] == 1 and zx.shape[0] > 1:  # one window for all items: sum them first
                    zx = zx.sum(0, keepdim=True)
                gt = (zx * dw if graph else zx.mul_(dw)).sum(-1)
                grad_theta[:, block] = gt.sum(0, keepdim=True) if theta.shape[0] < gt.shape[0] else gt
        grad_x = grad_xp[:, n_fft // 2 : n_fft // 2 + length] if want_x else None
        if want_theta:
            grad_theta.mul_(0.5)
        if want_pos:
            grad_pos.mul_(-0.5)
        return grad_x, grad_theta, grad_pos, None, None, None


#: Bytes of per-bin kernels ([frames, M, 2, N] reals) that the frequency-dependent modes build at a
#: time, on every device: their memory is bounded by this, never by M·F·N.
BIN_BLOCK_BYTES = 16 << 20


def dft_table(n_fft: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(cos, -sin)(2π m j / N) for m = 0..N/2, j = 0..N-1: [M, 2, N], phases reduced exactly mod N."""
    mj = torch.outer(torch.arange(n_fft // 2 + 1), torch.arange(n_fft)).remainder_(n_fft)
    angle = mj.to(torch.float64) * (2 * math.pi / n_fft)
    return torch.stack([torch.cos(angle), -torch.sin(angle)], 1).to(device=device, dtype=dtype)


class _BinWindowFunction(torch.autograd.Function):
    """S[m, n] = Σ_j x_n[j] · w(j - N/2 - δ_n; θ_{m,n}) · e^{-2πimj/N}: one window per bin (and frame).

    x: [B, T]; theta: [1 or B, M, 1 or F]; positions: None (frame n at n·H, δ = 0) or real frame
    centres [1 or B, F]. The kernel K[m, :, j] = w · (cos, -sin) is a real [M, 2, N] matrix per
    frame, and S is a matrix product of the frames with it. When neither θ nor δ depends on the
    frame ("frequency" mode at integer positions), K is built once and the whole transform is one
    GEMM per block of frames; otherwise K is built for a few frames at a time
    (:data:`BIN_BLOCK_BYTES`), and the backward rebuilds it rather than storing it.

    Backward, with G the output's cotangent as (Re, Im) pairs: ∂L/∂frames = Gᵀ K, and with
    R[m, j] = Σ_c E[m, c, j] Σ_b G[b, m, c] x_b[j] (one product-sum over the batch),
    ∂L/∂θ_{m,n} = Σ_j R ∂w/∂θ and ∂L/∂c_n = -Σ_{m,j} R ∂w/∂u.
    """

    @staticmethod
    def forward(ctx, x, theta, positions, n_fft, hop_length, normalization):
        batch, length = x.shape
        n_frames = positions.shape[-1] if positions is not None else 1 + length // hop_length
        ctx.params = (n_fft, hop_length, normalization, length)
        if positions is None:
            source, starts, frac = frame_signal(x, n_fft, hop_length), None, None
            ctx.save_for_backward(source, theta, _if_wanted(ctx, x, 0))
        else:
            source = F.pad(x, (n_fft // 2, n_fft // 2))
            starts, frac = frame_starts(positions)
            ctx.save_for_backward(
                source, theta, starts, frac, _if_wanted(ctx, x, 0), _if_wanted(ctx, positions, 2)
            )
        spec = x.new_empty(batch, n_frames, n_fft // 2 + 1, dtype=x.dtype.to_complex())
        out = torch.view_as_real(spec)  # [B, F, M, 2]
        plan = _BinPlan(source, theta, starts, frac, n_fft, normalization, n_frames, ctx.needs_input_grad[2])
        for block in plan.blocks:
            kernel, gain = plan.kernel(block)
            part = plan.apply(kernel, plan.frames(block)).reshape(batch, -1, n_fft // 2 + 1, 2)
            out[:, block] = part if gain is None else part * gain
        return spec

    @staticmethod
    def backward(ctx, grad_spec):
        n_fft, hop_length, normalization, length = ctx.params
        graph = torch.is_grad_enabled()  # create_graph: the result must be differentiable in turn
        if len(ctx.saved_tensors) == 6:
            source, theta, starts, frac, x, positions = ctx.saved_tensors
            source = _linked_source(x, n_fft, None) if graph and x is not None else source
            frac = positions - starts if graph and positions is not None else frac
            n_frames = starts.shape[-1]
        else:
            (source, theta, x), starts, frac = ctx.saved_tensors, None, None
            if graph and x is not None:
                source = _linked_source(x, n_fft, hop_length)
            n_frames = source.shape[1]
        want_x, want_theta, want_pos = ctx.needs_input_grad[:3]
        batch = source.shape[0]
        plan = _BinPlan(source, theta, starts, frac, n_fft, normalization, n_frames, ctx.needs_input_grad[2])
        grad_theta = torch.zeros_like(theta) if want_theta else None
        grad_pos = frac.new_zeros(frac.shape) if want_pos else None
        padded = length + n_fft if starts is not None else (n_frames - 1) * hop_length + n_fft
        grad_xp = source.new_zeros(batch, padded) if want_x else None
        for block in plan.blocks:
            g = torch.view_as_real(grad_spec[:, block].resolve_conj().contiguous())
            g = g.reshape(batch, -1, 2 * plan.n_bins)  # [B, Fb, 2M]
            if want_x:
                kernel, gain = plan.kernel(block)
                scaled = (
                    g
                    if gain is None
                    else (g.view(batch, -1, plan.n_bins, 2) * gain).view(batch, -1, 2 * plan.n_bins)
                )
                part = plan.adjoint(kernel, scaled)
                if starts is not None:
                    scatter_frames(grad_xp, part, starts, block)
                else:
                    start = block.start * hop_length
                    part = overlap_add_frames(part, hop_length)
                    grad_xp[:, start : start + part.shape[-1]] += part
            if want_theta or want_pos:
                r = plan.correlation(g, plan.frames(block))  # [Bk, Fk, M, N]
                th, off = plan.window_args(block)
                if want_theta:
                    gt = (r * hann_window_derivative(th, n_fft, normalization, off)).sum(-1)
                    gt = gt.sum(0, keepdim=True) if theta.shape[0] < gt.shape[0] else gt
                    gt = gt.transpose(1, 2)  # [., M, Fk]
                    if theta.shape[-1] == 1:
                        grad_theta += gt.sum(-1, keepdim=True)
                    else:
                        grad_theta[..., block] = gt
                if want_pos:
                    gp = (r * hann_window_slope(th, n_fft, normalization, off)).sum((-1, -2))
                    grad_pos[:, block] = -(gp.sum(0, keepdim=True) if frac.shape[0] < gp.shape[0] else gp)
        grad_x = grad_xp[:, n_fft // 2 : n_fft // 2 + length] if want_x else None
        return grad_x, grad_theta, grad_pos, None, None, None


def band_limit(n_bins: int) -> int:
    """The most bands of bins that :class:`_BandedFunction` takes, M/4 (128 at N = 1024). One
    windowed FFT per band and frame against a per-bin kernel (M·N window values and a 2M × N
    product per frame): measured at N = 1024, 64 bands are 4× (forward) and 5× (forward+backward)
    faster than the per-bin path, whose cost does not depend on the bands."""
    return max(1, n_bins // 4)


def find_bands(theta: torch.Tensor, limit: int) -> tuple[int, ...] | None:
    """Edges 0 = e_0 < e_1 < ... < e_K = M of the runs of bins over which θ [Bθ, M, Fθ] is the same
    in every item and frame (bin m is in band k for e_k <= m < e_{k+1}); None if there are more
    than ``limit`` runs. One comparison pass over θ."""
    n_bins = theta.shape[1]
    changed = (theta[:, 1:] != theta[:, :-1]).any(-1).any(0)  # [M - 1]: does bin m + 1 start a band
    if int(changed.sum()) + 1 > limit:
        return None
    return (0, *(torch.nonzero(changed).flatten() + 1).tolist(), n_bins)


class _BandedFunction(torch.autograd.Function):
    """The frequency-dependent modes when θ [1 or B, M, 1 or F] is constant over K bands of bins
    (:func:`find_bands`), at the default positions: bin m of band k = [e_k, e_{k+1}) is bin m of
    the time-mode transform with θ_{e_k, n}, so each band costs one windowed FFT per frame
    (K FFTs per frame in all, against a per-bin kernel of M·N values). Equal to
    :class:`_BinWindowFunction` up to round-off.

    Backward, with G the cotangent and w_k, ∂w_k/∂θ band k's window and its derivative per frame:
    ∂L/∂frames = Σ_k rfft-adjoint(G on band k's bins) · w_k (one inverse FFT per band), and for m
    in band k ∂L/∂θ_{m,n} = Re(conj(G[m, n]) · rfft(frames_n · ∂w_k/∂θ)[m]) (one FFT per band), so
    each bin gets its own gradient, as on the general path.
    """

    @staticmethod
    def forward(ctx, x, theta, n_fft, hop_length, normalization, edges):
        xp = F.pad(x, (n_fft // 2, n_fft // 2))  # its frames, and x for the per-bin path in a graph
        frames = xp.unfold(-1, n_fft, hop_length)  # frame_signal(x)
        ctx.save_for_backward(xp, theta, _if_wanted(ctx, x, 0))
        ctx.params = (n_fft, hop_length, normalization, x.shape[-1], edges)
        batch, n_frames = frames.shape[:2]
        spec = frames.new_empty(batch, n_frames, n_fft // 2 + 1, dtype=frames.dtype.to_complex())
        bands = _band_thetas(theta, edges, n_frames)
        blocks = frame_blocks(frames)
        scratch = frames.new_empty(batch, blocks[0].stop, n_fft)
        for block in blocks:
            windowed = scratch[:, : block.stop - block.start]
            for (lo, hi), th in bands:
                half = hann_window_half(th[:, block], n_fft, normalization)
                window_frames(frames[:, block], half, windowed)
                spec[:, block, lo:hi] = torch.fft.rfft(windowed)[..., lo:hi]
        return spec

    @staticmethod
    def backward(ctx, grad_spec):
        xp, theta, x = ctx.saved_tensors
        n_fft, hop_length, normalization, length, edges = ctx.params
        frames = xp.unfold(-1, n_fft, hop_length)
        want_x, want_theta = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            # create_graph: the result must be differentiable in turn, and the bands' shared θ
            # would hand each band's second derivative to its first bin; the per-bin path, whose
            # backward is differentiable bin by bin, gives the same gradient.
            x = xp[:, n_fft // 2 : n_fft // 2 + length] if x is None else x
            wanted = [v for v, want in ((x, want_x), (theta, want_theta)) if want]
            spec = _BinWindowFunction.apply(x, theta, None, n_fft, hop_length, normalization)
            grads = iter(torch.autograd.grad(spec, wanted, grad_spec, create_graph=True))
            return (next(grads) if want_x else None), (next(grads) if want_theta else None), *(None,) * 4
        batch, n_frames = frames.shape[:2]
        offsets = frame_offsets(n_fft, frames.device, frames.dtype)
        alternating = _alternating(n_fft, frames)
        grad_theta = torch.zeros_like(theta) if want_theta else None
        grad_xp = frames.new_zeros(batch, (n_frames - 1) * hop_length + n_fft) if want_x else None
        bands = _band_thetas(theta, edges, n_frames)
        for block in frame_blocks(frames):
            g = grad_spec[:, block]
            grad_frames = None
            for (lo, hi), th in bands:
                if want_x:
                    gk = torch.zeros_like(g)  # G on this band's bins
                    gk[..., lo:hi] = g[..., lo:hi]
                    z = _twice_rfft_adjoint(gk, n_fft, alternating)
                    z.mul_(hann_window(th[:, block], n_fft, normalization, offsets))
                    grad_frames = z if grad_frames is None else grad_frames.add_(z)
                if want_theta:
                    dw = hann_window_derivative(th[:, block], n_fft, normalization, offsets)
                    d = torch.fft.rfft(frames[:, block] * dw)[..., lo:hi]
                    gt = (g[..., lo:hi].conj() * d).real  # [B, Fb, band bins]
                    gt = gt.sum(0, keepdim=True) if theta.shape[0] < gt.shape[0] else gt
                    if theta.shape[-1] == 1:
                        grad_theta[:, lo:hi] += gt.sum(1).unsqueeze(-1)
                    else:
                        grad_theta[:, lo:hi, block] = gt.transpose(1, 2)
            if want_x:
                start = block.start * hop_length
                part = overlap_add_frames(grad_frames.mul_(0.5), hop_length)
                grad_xp[:, start : start + part.shape[-1]] += part
        grad_x = grad_xp[:, n_fft // 2 : n_fft // 2 + length] if want_x else None
        return grad_x, grad_theta, None, None, None, None


def _band_thetas(theta: torch.Tensor, edges: tuple[int, ...], n_frames: int) -> list:
    """[((e_k, e_{k+1}), θ of band k as [Bθ, F])] for θ [Bθ, M, 1 or F]."""
    return [
        ((lo, hi), theta[:, lo].expand(theta.shape[0], n_frames))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]


class _BinPlan:
    """How :class:`_BinWindowFunction` walks the frames: blocks, kernels and the products with them.

    Kernels are [Bk, Fk, M, 2, N] with Bk = 1 (shared over the batch) or B, and Fk = 1 (one kernel
    for every frame) or the block's frame count.
    """

    def __init__(self, source, theta, starts, frac, n_fft, normalization, n_frames, want_positions):
        self.source, self.theta, self.starts, self.frac = source, theta, starts, frac
        self.n_fft, self.normalization, self.n_bins = n_fft, normalization, n_fft // 2 + 1
        self.batch = source.shape[0]
        self.table = dft_table(n_fft, source.device, source.dtype)
        self.offsets = frame_offsets(n_fft, source.device, source.dtype)
        # Integer positions give every frame the same windows, unless their gradient is wanted.
        shifted = frac is not None and (want_positions or bool((frac != 0).any()))
        self.per_frame = theta.shape[-1] > 1 or shifted
        self.shared = theta.shape[0] == 1 and (frac is None or frac.shape[0] == 1)
        if self.per_frame:
            per_frame = (1 if self.shared else self.batch) * 2 * self.n_bins * n_fft * source.element_size()
            step = max(1, BIN_BLOCK_BYTES // per_frame)
            self.blocks = [slice(f, min(f + step, n_frames)) for f in range(0, n_frames, step)]
        else:
            self.blocks = frame_blocks(source.new_empty(()).expand(self.batch, n_frames, n_fft))
            self._kernel = None

    def frames(self, block: slice) -> torch.Tensor:
        if self.starts is None:
            return self.source[:, block]
        return gather_frames(self.source, self.starts, block, self.n_fft)

    def window_args(self, block: slice):
        """θ as [Bθ, Fk, M] and the offsets u as [., Fk, 1, N] (or [N]) for the block's windows."""
        theta = self.theta[..., block] if self.theta.shape[-1] > 1 else self.theta
        theta = theta.transpose(1, 2)
        if self.frac is None or not self.per_frame:
            return theta, self.offsets
        return theta, (self.offsets - self.frac[:, block, None]).unsqueeze(-2)

    def kernel(self, block: slice) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(K, g): K = cos²(π u / θ) · (cos, -sin)(2π m j / N) on |u| < θ/2, [Bk, Fk, M, 2, N], and
        the window gain g = N/θ as [Bθ, Fk, M, 1] ("l1"; None for "peak"), which multiplies the
        product with K rather than K itself (a pass over M·N saved per frame)."""
        if not self.per_frame and self._kernel is not None:
            return self._kernel
        theta, off = self.window_args(block)
        theta = theta.unsqueeze(-1)
        # cos φ = sin(π/2 - |φ|), clamped at 0 outside the window: 4 passes over [Bk, Fk, M, N].
        w = torch.addcmul(torch.tensor(math.pi / 2, dtype=theta.dtype), off.abs(), -math.pi / theta)
        kernel = w.clamp_min_(0.0).sin_().square_().unsqueeze(-2) * self.table
        gain = self.n_fft / theta if self.normalization == "l1" else None
        if not self.per_frame:
            self._kernel = (kernel, gain)
        return kernel, gain

    def apply(self, kernel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """[B, Fb, N] frames -> [B, Fb, 2M] (Re, Im) pairs."""
        b, fb, n = frames.shape
        bk, fk = kernel.shape[:2]
        k = kernel.reshape(bk, fk, -1, n)
        if fk == 1 and bk == 1:
            return (frames.reshape(b * fb, n) @ k[0, 0].T).view(b, fb, -1)
        if fk == 1:
            return torch.bmm(frames, k[:, 0].transpose(1, 2))
        if bk == 1:
            return torch.bmm(k[0], frames.permute(1, 2, 0)).permute(2, 0, 1)
        return torch.matmul(k, frames.unsqueeze(-1)).squeeze(-1)

    def adjoint(self, kernel: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Transpose of :meth:`apply`: [B, Fb, 2M] -> [B, Fb, N]."""
        b, fb, _ = g.shape
        bk, fk = kernel.shape[:2]
        k = kernel.reshape(bk, fk, -1, self.n_fft)
        if fk == 1 and bk == 1:
            return (g.reshape(b * fb, -1) @ k[0, 0]).view(b, fb, -1)
        if fk == 1:
            return torch.bmm(g, k[:, 0])
        if bk == 1:
            return torch.bmm(g.transpose(0, 1), k[0]).transpose(0, 1)
        return torch.matmul(g.unsqueeze(-2), k).squeeze(-2)

    def correlation(self, g: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """R[m, j] = Σ_c E[m, c, j] Σ_b G[b, m, c] x_b[j], summed over whatever the kernel shares:
        [Bk, Fk, M, N]."""
        b, fb, n = frames.shape
        bk = 1 if self.shared else b
        if not self.per_frame:
            p = (g.reshape(b * fb, -1).T @ frames.reshape(b * fb, n))[None] if bk == 1 else None
            p = torch.bmm(g.transpose(1, 2), frames) if p is None else p  # [Bk, 2M, N]
            p = p.unsqueeze(1)
        elif bk == 1:
            p = torch.bmm(g.permute(1, 2, 0), frames.transpose(0, 1))[None]  # [1, Fb, 2M, N]
        else:
            p = g.unsqueeze(-1) * frames.unsqueeze(-2)  # [B, Fb, 2M, N]
        p = p.view(*p.shape[:2], self.n_bins, 2, n)
        return (p * self.table).sum(-2)


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


def check_leading_dims(name: str, lead: tuple, batch_shape: tuple) -> None:
    """Raises unless leading dims ``lead`` broadcast to exactly x's batch dims ``batch_shape``.

    A per-item θ or positions may repeat over x's batch dims (size 1, or fewer dims) but never add
    or widen one: the result has x's batch shape, as each item is one signal's transform. Leading
    dims that are all 1 are one value for every item, whatever their number.
    """
    try:
        joint = torch.broadcast_shapes(tuple(lead), tuple(batch_shape))
    except RuntimeError:
        joint = None
    if joint != tuple(batch_shape) and not all(d == 1 for d in lead):
        owner = "positions'" if name == "positions" else f"{name}'s"
        raise ValueError(
            f"{owner} leading dims {tuple(lead)} do not broadcast against x's batch dims "
            f"{tuple(batch_shape)} (each must be 1 or x's size, with at most x's number of batch dims)"
        )


def positions_from_hop(hop, n_frames: int) -> torch.Tensor:
    """Frame centres n·h, n = 0..F-1, for a real (learnable) constant hop h: a 0-d tensor or float.

    Gradients flow to h; pass the result as ``positions``."""
    hop = hop if isinstance(hop, torch.Tensor) else torch.tensor(float(hop), dtype=torch.float64)
    return hop * torch.arange(n_frames, device=hop.device, dtype=hop.dtype)


def positions_from_overlap(win_length: torch.Tensor, ratio: float, start: float = 0.0) -> torch.Tensor:
    """Frame centres that follow the window lengths at a fixed overlap: c_0 = start,
    c_{n+1} = c_n + ratio·θ_n (``ratio`` = 1 - overlap, e.g. 0.5 for windows half overlapping).

    win_length: θ [..., F] in samples; returns c [..., F], differentiable through θ (a cumulative
    sum), for time-mode transforms whose hop should grow with the window."""
    if not isinstance(win_length, torch.Tensor) or win_length.dim() < 1:
        raise ValueError("win_length must be a tensor [..., F] of window lengths in samples")
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio must be a finite number > 0 (hop / window length), got {ratio}")
    steps = torch.cumsum(win_length[..., :-1] * ratio, -1)
    return F.pad(steps, (1, 0)) + start


def describe_samples(uncovered: torch.Tensor) -> str:
    """'samples a..b, c..d (k of T)' for a boolean mask [T] of samples, its first three runs."""
    idx = torch.nonzero(uncovered).flatten().tolist()
    runs: list[list[int]] = []
    for k in idx:
        if runs and k == runs[-1][1] + 1:
            runs[-1][1] = k
        elif len(runs) < 3:
            runs.append([k, k])
        else:
            break
    text = ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in runs)
    more = ", ..." if len(idx) > sum(b - a + 1 for a, b in runs) else ""
    return f"samples {text}{more} ({len(idx)} of {uncovered.numel()})"


WINDOW_MODES = ("time", "frequency", "time-frequency")


class DSTFT(torch.nn.Module):
    r"""Differentiable STFT whose window length θ is real-valued and may vary over time, frequency
    or both, at fixed or real-valued (learnable) frame positions.

    Args:
        n_fft: N, the frame support and FFT size in samples; even, >= 2.
        hop_length: H, samples between frame centres when no positions are given; 1 <= H.
        normalization: "l1" (default; window gain N/θ, the seed paper's L/θ, so a steady sinusoid's
            peak |S| ≈ A·N/4 whatever θ) or "peak" (gain 1; θ = N is torch.hann_window(N)).
        win_min: smallest allowed θ in samples, default 2·H (keeps the inverse well conditioned);
            0 < win_min <= win_max.
        win_max: largest allowed θ in samples, default N; win_max <= N.
        window_mode: what θ depends on: "time" (default; one θ per frame, one FFT per frame),
            "frequency" (one θ per bin, shared by all frames: one matrix product of the frames with
            a window-modulated DFT matrix), "time-frequency" (one θ per bin and frame: the same
            product with a kernel per frame, built a few frames at a time so that memory stays
            bounded by :data:`BIN_BLOCK_BYTES`, never M·F·N). In both frequency-dependent modes,
            a θ that is constant over runs of bins ("bands", the same runs in every item and
            frame, at most :func:`band_limit`), at the default positions, is found by one
            comparison pass and computed as one windowed FFT per band and frame instead.

    Call ``t(x, win_length, positions=None)``:
        x: real tensor [..., T], float32 or float64, any device.
        win_length: θ in samples, within [win_min, win_max]: a float or 0-d tensor (constant θ,
            every mode), or a tensor whose leading dims broadcast against x's and whose last dims are
            [F] ("time"), [M] ("frequency", M = N/2 + 1) or [M, F] ("time-frequency").
        positions: frame centres c_n in samples, a real tensor [..., F] (leading dims broadcast
            against x's), strictly increasing, in [0, T], with frames that together cover every
            sample; default c_n = n·H, F = 1 + T // H. Gradients flow to them (a learnable constant
            hop is ``positions_from_hop(h, F)``; a hop that follows θ, ``positions_from_overlap``).
        returns S: complex [..., N/2 + 1, F] on x's device (the layout of torch.stft).

    Definition, for bin m and frame n with centre c_n, support start s_n = ⌊c_n⌋ - N/2 and
    fractional shift δ_n = c_n - ⌊c_n⌋ (samples outside [0, T) are zero):

        S[m, n] = Σ_{j=0}^{N-1} x[s_n + j] · w(j - N/2 - δ_n; θ_{m,n}) · exp(-2πi m j / N)

    so the window is centred on the real c_n and the phase is referenced to the frame's first
    sample (as torch.stft at integer centres). dstft 3.0.0 uses the same support and shift but
    references the phase to sample 0 (its S is ours times exp(-2πi m ⌊c_n⌋ / N)). The support is
    N samples from s_n, so for δ_n > 0 a window longer than N - 2δ_n loses the sliver of its
    right tail beyond the support (θ = N: at most one sample of weight < (π δ/N)²).

    Gradients flow to x, to win_length and to positions (hand-written backwards: one inverse FFT
    and product-sums for "time", matrix products for the other modes; ∂/∂c_n through the window's
    slope in u, the integer part ⌊c_n⌋ being piecewise constant). Checked by gradcheck. The
    backwards are differentiable in turn (``create_graph=True``, e.g. a gradient penalty): second
    derivatives in x, θ and positions, cross terms included, checked by gradgradcheck.
    """

    def __init__(
        self,
        n_fft: int = 2048,
        hop_length: int = 256,
        normalization: str = "l1",
        win_min: float | None = None,
        win_max: float | None = None,
        window_mode: str = "time",
    ) -> None:
        super().__init__()
        self.n_fft = _check_int("n_fft", n_fft, 2, even=True)
        self.hop_length = _check_int("hop_length", hop_length, 1)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if window_mode not in WINDOW_MODES:
            raise ValueError(f"window_mode must be one of {WINDOW_MODES}, got {window_mode!r}")
        self.normalization = normalization
        self.window_mode = window_mode
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
            f" win_min={self.win_min}, win_max={self.win_max}, window_mode={self.window_mode!r}"
        )

    @property
    def n_bins(self) -> int:
        """N/2 + 1 frequency bins."""
        return self.n_fft // 2 + 1

    def num_frames(self, length: int) -> int:
        """F = 1 + T // H frames for a signal of T samples (at the default positions)."""
        return 1 + int(length) // self.hop_length

    def frequencies(self, sample_rate: float = 1.0) -> torch.Tensor:
        """Bin centre frequencies m·sr/N, [N/2 + 1] (cycles per sample when sample_rate = 1)."""
        return torch.arange(self.n_bins, dtype=torch.float64) * (sample_rate / self.n_fft)

    def frame_times(self, length: int, sample_rate: float = 1.0) -> torch.Tensor:
        """Frame centres n·H / sample_rate, [F] (the default positions)."""
        return torch.arange(self.num_frames(length), dtype=torch.float64) * (self.hop_length / sample_rate)

    def theta_shape(self, n_frames: int) -> tuple[int, ...]:
        """The last dims of a non-constant θ in this window mode: (F,), (M,) or (M, F)."""
        return {"time": (n_frames,), "frequency": (self.n_bins,), "time-frequency": (self.n_bins, n_frames)}[
            self.window_mode
        ]

    def check_win_length(
        self, win_length, batch_shape: tuple, n_frames: int, like: torch.Tensor, frames_given: bool = False
    ):
        """θ as a tensor of x's dtype and device, bounds checked: shape [..., F], [..., M] or
        [..., M, F] by window mode (broadcastable against the batch), or [1] when constant."""
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
                "win_length must be a float, a 0-d tensor or a tensor [..., F], [..., M] or [..., M, F] "
                f"by window_mode, got {type(win_length).__name__}"
            )
        event = self.theta_shape(n_frames)
        if theta.dim() == 0:
            theta = theta.reshape((1,) * len(event))
        elif self.window_mode == "time" and theta.shape[-1] != n_frames:
            counted = "positions' last dim" if frames_given else "1 + T // hop_length"
            raise ValueError(
                f"win_length must have F = {counted} = {n_frames} values per signal "
                f"(last dim), got shape {tuple(theta.shape)}"
            )
        elif tuple(theta.shape[-len(event) :]) != event or theta.dim() < len(event):
            what = "one θ per bin" if self.window_mode == "frequency" else "one θ per bin and frame"
            raise ValueError(
                f"win_length must have shape [..., {', '.join(map(str, event))}] for window_mode "
                f"{self.window_mode!r} ({what}, M = n_fft/2 + 1 = {self.n_bins}"
                f"{f', F = {n_frames}' if len(event) > 1 else ''}) or be a scalar, got shape "
                f"{tuple(theta.shape)}"
            )
        check_leading_dims("win_length", theta.shape[: theta.dim() - len(event)], batch_shape)
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

    def check_positions(self, positions, batch_shape: tuple, length: int, like: torch.Tensor) -> torch.Tensor:
        """Frame centres as a tensor [..., F] of x's dtype and device: finite, strictly increasing,
        in [0, T], and with frame supports [⌊c⌋ - N/2, ⌊c⌋ + N/2) that leave no sample uncovered."""
        if not isinstance(positions, torch.Tensor) or positions.is_complex():
            raise TypeError(
                f"positions must be a real tensor [..., F] of frame centres in samples, got "
                f"{type(positions).__name__ if not isinstance(positions, torch.Tensor) else positions.dtype}"
            )
        pos = positions.to(device=like.device, dtype=like.dtype)
        if pos.dim() < 1 or pos.shape[-1] < 1:
            raise ValueError(f"positions must have shape [..., F] with F >= 1, got {tuple(pos.shape)}")
        check_leading_dims("positions", pos.shape[:-1], batch_shape)
        p = pos.detach().reshape(-1, pos.shape[-1])
        if p.numel() == 0:
            return pos
        if not bool(torch.isfinite(p).all()):
            raise ValueError(
                f"positions contains NaN or inf; frame centres must be finite, in [0, T = {length}]"
            )
        steps = p.diff(dim=-1)
        if steps.numel() and not bool((steps > 0).all()):
            row, n = (int(i) for i in torch.nonzero(steps <= 0)[0])
            raise ValueError(
                f"positions must be strictly increasing along the last dim, got c[{n + 1}] = "
                f"{float(p[row, n + 1]):g} after c[{n}] = {float(p[row, n]):g}"
            )
        lo, hi = float(p.min()), float(p.max())
        if lo < 0 or hi > length:
            raise ValueError(
                f"positions must lie in [0, T = {length}] samples, got values in [{lo:g}, {hi:g}]"
            )
        half = self.n_fft // 2
        first = p.floor().long() - half  # first sample of each frame's support
        covered = torch.zeros(p.shape[0], length + 1, dtype=torch.long, device=p.device)
        covered.scatter_add_(1, first.clamp(0, length), torch.ones_like(first))
        covered.scatter_add_(1, (first + self.n_fft).clamp(0, length), -torch.ones_like(first))
        uncovered = covered.cumsum(-1)[:, :length] <= 0
        if bool(uncovered.any()):
            row = int(torch.nonzero(uncovered.any(-1))[0])
            raise ValueError(
                f"positions leave {describe_samples(uncovered[row])} outside every frame (each frame "
                f"spans ⌊c⌋ - N/2 .. ⌊c⌋ + N/2 - 1 with N = {self.n_fft}); add frames or bring them closer"
            )
        return pos

    def _batched(self, tensor: torch.Tensor | None, batch_shape: tuple, event: int) -> torch.Tensor | None:
        """[..., *event dims] -> [1 or B, *event dims] (B = prod(batch_shape))."""
        if tensor is None:
            return None
        lead, tail = tensor.shape[: tensor.dim() - event], tensor.shape[tensor.dim() - event :]
        if all(d == 1 for d in lead):
            return tensor.reshape(1, *tail)
        return tensor.expand(*batch_shape, *tail).reshape(-1, *tail)

    def forward(self, x: torch.Tensor, win_length, positions: torch.Tensor | None = None) -> torch.Tensor:
        x = check_signal(x)
        batch_shape, length = tuple(x.shape[:-1]), x.shape[-1]
        if positions is not None:
            positions = self.check_positions(positions, batch_shape, length, x)
        n_frames = self.num_frames(length) if positions is None else positions.shape[-1]
        theta = self.check_win_length(win_length, batch_shape, n_frames, x, positions is not None)
        pos_b = self._batched(positions, batch_shape, 1)
        xb = x.reshape(-1, length)
        if xb.shape[0] == 0:  # no signals: an empty S that still joins the graph (zero gradients)
            zero = xb.sum(-1)[:, None, None] * 0 + theta.sum() * 0
            zero = zero + positions.sum() * 0 if positions is not None else zero
            spec = torch.complex(zero, zero).expand(0, n_frames, self.n_bins)
            return spec.reshape(*batch_shape, n_frames, self.n_bins).transpose(-1, -2)
        if self.window_mode == "time":
            theta = theta.expand(*theta.shape[:-1], n_frames)
            theta_b = self._batched(theta, batch_shape, 1)
            spec = _DSTFTFunction.apply(xb, theta_b, pos_b, self.n_fft, self.hop_length, self.normalization)
        else:
            theta_b = self._bin_theta(theta, batch_shape)
            edges = None if pos_b is not None else find_bands(theta_b.detach(), band_limit(self.n_bins))
            if edges is not None:  # θ constant over a few bands of bins: one FFT per band
                spec = _BandedFunction.apply(
                    xb, theta_b, self.n_fft, self.hop_length, self.normalization, edges
                )
            else:
                spec = _BinWindowFunction.apply(
                    xb, theta_b, pos_b, self.n_fft, self.hop_length, self.normalization
                )
        return spec.reshape(*batch_shape, n_frames, self.n_bins).transpose(-1, -2)

    def _bin_theta(self, theta: torch.Tensor, batch_shape: tuple) -> torch.Tensor:
        """θ of a frequency-dependent mode as [1 or B, M, 1 or F]."""
        if self.window_mode == "frequency":
            theta = theta.expand(*theta.shape[:-1], self.n_bins).unsqueeze(-1)
        else:
            theta = theta.expand(*theta.shape[:-2], self.n_bins, theta.shape[-1])
        return self._batched(theta, batch_shape, 2)

    def inverse(
        self,
        spec: torch.Tensor,
        win_length,
        length: int | None = None,
        positions: torch.Tensor | None = None,
        *,
        max_iter: int = 100,
        tol: float | None = None,
        return_residual: bool = False,
    ):
        """The signal whose transform is ``spec``, for every window mode and any covering positions.

        "time": weighted overlap-add, synthesis window = analysis window, y_n = irfft(S[:, n]),

            x̂[k] = Σ_n w_n(k - s_n) · y_n[k - s_n]  /  Σ_n w_n(k - s_n)²

        exact wherever the denominator is positive (a sample inside some window).
        "frequency", "time-frequency": no frame-wise inverse exists, so x̂ is the least-squares
        solution of S(x) = spec (bins weighted as in the two-sided spectrum: 1 for DC and Nyquist,
        2 otherwise, which makes the normal equations diagonal in "time" mode), found by conjugate
        gradients on the normal equations, preconditioned by their diagonal Σ_n Σ_m c_m w_{m,n}²
        and started at the diagonal solution (the overlap-add above, bin-weighted). Each iteration
        costs one forward and one backward pass.

        Args:
            spec: complex [..., N/2 + 1, F], as returned by ``forward``.
            win_length: the θ the spectrogram was taken with.
            length: T, samples to return; default (F - 1)·H, the longest T with F frames; required
                with positions.
            positions: the frame centres the spectrogram was taken at (default n·H).
            max_iter, tol: conjugate-gradient limits (frequency-dependent modes): stop when the
                normal equations' relative residual is below ``tol`` (a finite number >= 0;
                default 1e-10 in float64, 1e-5 in float32) or after ``max_iter`` iterations (an
                integer >= 0; 0 returns the diagonal start). Checked in every mode.
            return_residual: also return ‖S(x̂) - spec‖ / ‖spec‖ (bin-weighted, worst item), a float.
        Returns:
            x̂: real [..., T], dtype matching spec's real dtype; (x̂, residual) if return_residual.
        """
        if not isinstance(spec, torch.Tensor) or not spec.is_complex():
            raise TypeError("spec must be a complex tensor [..., n_fft/2 + 1, F]")
        if spec.dim() < 2 or spec.shape[-2] != self.n_bins:
            raise ValueError(
                f"spec must have shape [..., n_fft/2 + 1 = {self.n_bins}, F], got {tuple(spec.shape)}"
            )
        max_iter = _check_int("max_iter", max_iter, 0)
        if tol is not None and not (isinstance(tol, Real) and math.isfinite(tol) and tol >= 0):
            raise ValueError(f"tol must be None (the dtype's default) or a finite number >= 0, got {tol!r}")
        n_frames = spec.shape[-1]
        batch_shape = tuple(spec.shape[:-2])
        real = spec.real
        if positions is None:
            if length is None:
                length = (n_frames - 1) * self.hop_length
            length = _check_int("length", length, 1)
            if self.num_frames(length) != n_frames:
                lo, hi = (n_frames - 1) * self.hop_length, n_frames * self.hop_length - 1
                raise ValueError(f"length must be in [{lo}, {hi}] for F = {n_frames} frames, got {length}")
        else:
            if length is None:
                raise ValueError("length (T, samples) is required when positions are given")
            length = _check_int("length", length, 1)
            positions = self.check_positions(positions, batch_shape, length, real)
            if positions.shape[-1] != n_frames:
                raise ValueError(
                    f"positions must have F = {n_frames} values (spec's frames), got shape "
                    f"{tuple(positions.shape)}"
                )
        theta = self.check_win_length(win_length, batch_shape, n_frames, real, positions is not None)
        if spec.numel() == 0:
            x_hat = real.new_zeros(*batch_shape, length)
            return (x_hat, 0.0) if return_residual else x_hat
        with torch.no_grad():
            if self.window_mode == "time":
                x_hat = self._overlap_add_inverse(spec, theta, positions, length, batch_shape)
            else:
                x_hat = self._least_squares_inverse(
                    spec, theta, positions, length, batch_shape, max_iter, tol
                )
            if not return_residual:
                return x_hat
            weights = self._bin_weights(real)
            err = (self(x_hat, theta, positions) - spec).abs().square().mul(weights).flatten(-2).sum(-1)
            ref = spec.abs().square().mul(weights).flatten(-2).sum(-1).clamp_min(torch.finfo(real.dtype).tiny)
            return x_hat, float((err / ref).sqrt().max()) if err.numel() else 0.0

    def _bin_weights(self, like: torch.Tensor) -> torch.Tensor:
        """c_m [M, 1]: 1 for DC and Nyquist, 2 for the bins that stand for a conjugate pair."""
        c = torch.full((self.n_bins, 1), 2.0, dtype=like.dtype, device=like.device)
        c[0] = c[-1] = 1.0
        return c

    def _uncovered(self, den: torch.Tensor) -> None:
        """Raises naming the samples where the overlap-add denominator [., T] vanishes."""
        bad = den <= 0
        if bool(bad.any()):
            row = int(torch.nonzero(bad.any(-1))[0]) if bad.dim() > 1 else 0
            hint = f"; use win_length > 2·hop_length = {2 * self.hop_length} (win_min)"
            raise ValueError(
                f"inverse is undefined: {describe_samples(bad.reshape(-1, bad.shape[-1])[row])} lie "
                f"outside every window{hint}"
            )

    def _overlap_add_inverse(self, spec, theta, positions, length, batch_shape):
        n_frames = spec.shape[-1]
        theta = theta.expand(*batch_shape, n_frames).reshape(-1, n_frames)
        y = torch.fft.irfft(spec.reshape(-1, self.n_bins, n_frames).transpose(-1, -2), n=self.n_fft)
        if positions is None:
            w = hann_window(theta, self.n_fft, self.normalization)
            num = overlap_add(y * w, self.hop_length, length)
            den = overlap_add(w * w, self.hop_length, length)
        else:
            pos = self._batched(positions, batch_shape, 1)
            starts, frac = frame_starts(pos)
            offsets = frame_offsets(self.n_fft, y.device, y.dtype) - frac[..., None]
            w = hann_window(theta, self.n_fft, self.normalization, offsets)
            w = w.expand(y.shape[0], -1, -1)
            num = y.new_zeros(y.shape[0], length + self.n_fft)
            den = y.new_zeros(y.shape[0], length + self.n_fft)
            every = slice(0, n_frames)
            scatter_frames(num, y * w, starts, every)
            scatter_frames(den, w * w, starts, every)
            half = self.n_fft // 2
            num, den = num[:, half : half + length], den[:, half : half + length]
        self._uncovered(den)
        return (num / den).reshape(*batch_shape, length)

    def _least_squares_inverse(self, spec, theta, positions, length, batch_shape, max_iter, tol):
        real_dtype = spec.real.dtype
        if tol is None:
            tol = 1e-10 if real_dtype == torch.float64 else 1e-5
        weights = self._bin_weights(spec.real)
        target = spec.reshape(-1, self.n_bins, spec.shape[-1])
        rows = target.shape[0]
        pos = (
            None
            if positions is None
            else positions.expand(*batch_shape, positions.shape[-1]).reshape(rows, -1)
        )
        event = self.theta_shape(spec.shape[-1])
        th = theta.expand(*theta.shape[: theta.dim() - len(event)], *event)
        th = th.expand(*batch_shape, *event).reshape(rows, *event)

        def adjoint(v):  # Re(Aᴴ C v): the backward pass with cotangent C v
            with torch.enable_grad():
                probe = torch.zeros(
                    target.shape[0], length, dtype=real_dtype, device=spec.device, requires_grad=True
                )
                (g,) = torch.autograd.grad(self(probe, th, pos), probe, v * weights)
            return g

        def normal(v):
            return adjoint(self(v, th, pos))

        diag = self._gram_diagonal(th, pos, length, target.shape[0], spec.real)
        self._uncovered(diag)
        b = adjoint(target)
        x = b / diag
        r = b - normal(x)
        z = r / diag
        p = z.clone()
        rz = (r * z).sum(-1, keepdim=True)
        b_norm = b.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(real_dtype).tiny)
        for _ in range(max_iter):
            if bool((r.norm(dim=-1, keepdim=True) <= tol * b_norm).all()):
                break
            q = normal(p)
            alpha = rz / (p * q).sum(-1, keepdim=True).clamp_min(torch.finfo(real_dtype).tiny)
            x += alpha * p
            r -= alpha * q
            z = r / diag
            rz_new = (r * z).sum(-1, keepdim=True)
            p = z + (rz_new / rz.clamp_min(torch.finfo(real_dtype).tiny)) * p
            rz = rz_new
        return x.reshape(*batch_shape, length)

    def _gram_diagonal(self, theta, positions, length, batch, like):
        """Σ_n Σ_m c_m w_{m,n}(k - s_n)², [1 or B, T]: the diagonal of the bin-weighted normal equations."""
        n_fft, half = self.n_fft, self.n_fft // 2
        weights = self._bin_weights(like)[:, 0]
        n_frames = positions.shape[-1] if positions is not None else self.num_frames(length)
        theta_b = theta.unsqueeze(-1) if self.window_mode == "frequency" else theta
        theta_b = theta_b.expand(-1, -1, n_frames)  # [B, M, F]
        offsets = frame_offsets(n_fft, like.device, like.dtype)
        if positions is None:
            starts = (torch.arange(n_frames, device=like.device) * self.hop_length)[None]
            frac = torch.zeros(1, n_frames, dtype=like.dtype, device=like.device)
        else:
            starts, frac = frame_starts(positions)
        rows = max(theta_b.shape[0], starts.shape[0])
        den = like.new_zeros(rows, length + n_fft)
        step = max(1, BIN_BLOCK_BYTES // (rows * self.n_bins * n_fft * like.element_size()))
        for f0 in range(0, n_frames, step):
            block = slice(f0, min(f0 + step, n_frames))
            off = (offsets - frac[:, block, None]).unsqueeze(-2)  # [Bp, Fb, 1, N]
            w = hann_window(theta_b[..., block].transpose(1, 2), n_fft, self.normalization, off)
            energy = torch.einsum("bfmn,m->bfn", w.square(), weights).expand(rows, -1, -1)
            scatter_frames(den, energy.contiguous(), starts.expand(rows, -1), block)
        return den[:, half : half + length]
