r"""StreamingDSTFT: samples in, frames + θ out, overlap-add audio out.

Samples arrive in blocks of any size. Frame n (centre c_n = n·H, support c_n - N/2 .. c_n + N/2 - 1,
zeros before the first sample) is complete once sample c_n + N/2 - 1 has arrived. Frames are processed
in blocks of K (``block_frames``): for each block the :class:`~rtdstft.online.OnlineAdapter` picks θ
(or the fixed θ is used when ``adapt=False``), and the block is emitted with that θ. What is emitted is
exactly the offline :class:`~rtdstft.DSTFT` of the same samples with the emitted θ sequence.

Resynthesis is the weighted overlap-add of the emitted spectra, with the analysis window as the
synthesis window: x̂ = Σ w·irfft(S) / Σ w², exact wherever Σ w² > 0 (θ > H sees to that). Sample
k is final once no later frame touches it. ``process`` returns as many audio samples as it was
given, delayed by a constant ``latency``

    latency = N + (K - 1)·H - 1   samples,

the worst case between a sample's arrival and its last frame's emission; so the concatenated
``.audio`` of all calls is ``latency`` zeros followed by the input, to float precision, whatever θ did.
``flush()`` completes the last frames with zeros and returns the tail (``latency`` more samples).

Analysis latency (a frame's centre to its emission): at most N/2 + (K - 1)·H samples.

With ``bands`` = B > 1 (:mod:`rtdstft.bands`) the input first goes through a perfect-reconstruction
split into B bands, each band gets its own θ per block (chosen on its band-restricted local entropy
by :class:`~rtdstft.online.BandedAdapter`), its own frames and its own overlap-add inverse; the
emitted spectrum is the sum of the band spectra and equals :func:`rtdstft.bands.banded_dstft` with
the emitted θ [F, B]; the resynthesis is the sum of the bands' (exact again). The split needs D
samples of look-ahead (``split_delay``), which both latencies include.

Samples are floats in [-1, 1] (full scale); integer samples are scaled as soundfile reads them:
signed b-bit x / 2^(b-1), unsigned (x - 2^(b-1)) / 2^(b-1). NaN and ±inf input samples are replaced
by 0 before anything sees them, and counted.

Threading: one thread calls process / flush / reset. ``configure`` may be called from any thread; the
change takes effect at the next block boundary.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from .bands import BandSplit, band_bins
from .config import LIVE_FIELDS, StreamConfig
from .online import BandedAdapter, OnlineAdapter

__all__ = ["StreamingDSTFT", "StreamOutput", "StreamConfig", "LIVE_SETTINGS", "settings_for_rate"]

#: The settings :meth:`StreamingDSTFT.configure` changes on a running stream.
LIVE_SETTINGS = LIVE_FIELDS


@dataclass
class StreamOutput:
    """What one call of ``process`` / ``flush`` produced.

    spec: complex64 [F_out, N/2 + 1], one row per emitted frame (complex128 for dtype=float64).
    win_length: float [F_out], θ of each frame in samples; [F_out, B] with B > 1 bands.
    frame_index: int64 [F_out], n of each frame (its centre is sample n·H).
    time: float64 [F_out], frame centres in seconds (n·H / sample_rate).
    audio: float [len(block)] (flush: the tail), the resynthesis delayed by ``latency`` samples.
    nonfinite: NaN/inf input samples replaced by 0 in this call.
    """

    spec: np.ndarray
    win_length: np.ndarray
    frame_index: np.ndarray
    time: np.ndarray
    audio: np.ndarray
    nonfinite: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.frame_index.shape[0])


def settings_for_rate(sample_rate: float) -> dict:
    """{"n_fft", "hop_length", "win_length", "win_min", "win_max"} of
    :meth:`StreamConfig.for_rate(sample_rate) <rtdstft.config.StreamConfig.for_rate>`."""
    cfg = StreamConfig.for_rate(sample_rate)
    return {k: getattr(cfg, k) for k in ("n_fft", "hop_length", "win_length", "win_min", "win_max")}


class StreamingDSTFT:
    """Streaming, adaptive DSTFT with exact overlap-add resynthesis.

    Args:
        sample_rate, n_fft, hop_length, and any other field of
            :class:`~rtdstft.config.StreamConfig` by keyword (``adapt``, ``win_length``,
            ``win_min``, ``win_max``, ``block_frames``, ``steps``, ``lr``, ``smoothness``,
            ``entropy``, ``alpha``, ``radius``, ``normalization``): the settings, whose meanings,
            units, defaults and ranges :class:`~rtdstft.config.StreamConfig` gives.
        config: the settings as one StreamConfig; fields given as well change it.
        device: torch device of the transform ("cpu", "cuda", ...).
        dtype: torch.float32 or torch.float64.

    The settings in force are :attr:`config`; :meth:`configure` changes the live ones
    (:data:`~rtdstft.config.LIVE_FIELDS`) at the next block.
    """

    def __init__(
        self,
        sample_rate: float | None = None,
        n_fft: int | None = None,
        hop_length: int | None = None,
        *,
        config: StreamConfig | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        **settings,
    ) -> None:
        given = {"sample_rate": sample_rate, "n_fft": n_fft, "hop_length": hop_length}
        settings = {**{k: v for k, v in given.items() if v is not None}, **settings}
        config = StreamConfig(**settings) if config is None else config.replace(**settings)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError) as e:
            raise ValueError(f"device {device!r} is not available: {e}") from None
        self.dtype = dtype
        self._np_dtype = np.float32 if dtype == torch.float32 else np.float64
        # What the stream runs with (its own thread only), and the latest config asked for: every
        # ``configure`` validates against, and replaces, the latter under the lock in one step.
        self._lock = threading.Lock()
        self._config = self._requested = config
        # The geometry is fixed for the engine's life.
        self.sample_rate = config.sample_rate
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.block_frames = config.block_frames
        self.normalization = config.normalization
        self._adapter = OnlineAdapter(
            self.n_fft,
            lr=config.lr,
            steps=config.steps,
            device=self.device,
            dtype=dtype,
            **config.adapter_settings(),
        )
        self.bands, self.band_edges = config.bands, config.band_edges
        # D and the latency follow from the geometry alone; read once, not per call.
        self._split_delay, self._latency = config.split_delay, config.latency
        self.band_bins = band_bins(self.band_edges, self.sample_rate, self.n_fft)
        self._split = BandSplit(self.band_edges, self.sample_rate) if self.bands > 1 else None
        self._band_adapter = None
        if self.bands > 1:
            self._band_adapter = BandedAdapter(
                self.n_fft, self.band_bins, device=self.device, dtype=dtype, **config.adapter_settings()
            )
        self.nonfinite_count = 0
        self._empty = None
        self.reset()

    # ---- settings -------------------------------------------------------------------------------

    @property
    def config(self) -> StreamConfig:
        """The settings in force, including changes waiting for the next block."""
        return self._requested

    def configure(self, **changes) -> None:
        """Changes live settings (:data:`~rtdstft.config.LIVE_FIELDS`, names and ranges as in
        :class:`~rtdstft.config.StreamConfig`); they take effect at the next block. May be called
        from any thread. Raises ValueError naming the parameter and its valid range; nothing
        changes then."""
        unknown = set(changes) - set(LIVE_FIELDS)
        if unknown:
            raise ValueError(
                f"cannot change {sorted(unknown)} on a running stream; live settings are {LIVE_FIELDS} "
                "(the others need a new StreamingDSTFT)"
            )
        with self._lock:
            self._requested = self._requested.replace(**changes)

    def _apply_pending(self) -> None:
        """Brings the stream to the latest requested config (at a block boundary)."""
        with self._lock:
            new = self._requested
        old = self._config
        if new is old:
            return
        self._config = new
        self._push_deferred_context()  # at the settings it was emitted with, as an eager push would
        a = self._adapter
        if new.radius != a.radius:
            a.radius = new.radius
        if (a.kind, a.alpha) != (new.entropy, new.alpha):
            a.kind, a.alpha = new.entropy, new.alpha
            a.refresh_context()
        a.smoothness, a.lr, a.steps, a.steadiness = new.smoothness, new.lr, new.steps, new.steadiness
        banded = self._band_adapter
        if banded is not None:
            for name, value in (("radius", new.radius), ("kind", new.entropy), ("alpha", new.alpha)):
                if getattr(banded, name) != value:
                    setattr(banded, name, value)
            banded.smoothness, banded.steadiness = new.smoothness, new.steadiness
        # A fixed θ is the one set; while adapting, θ moves to a newly set start, else stays in bounds.
        if not new.adapt or (new.win_length != old.win_length and "win_length" not in new.derived):
            self._theta = np.full(self.bands, new.win_length)
        self._theta = np.clip(self._theta, new.win_min, new.win_max)

    # ---- geometry -------------------------------------------------------------------------------

    @property
    def split_delay(self) -> int:
        """D, the band split's look-ahead in samples (0 for one band)."""
        return self._config.split_delay

    @property
    def latency(self) -> int:
        """Samples from an input sample to its resynthesis: N + (K - 1)·H - 1 + D."""
        return self._config.latency

    @property
    def analysis_latency(self) -> int:
        """Worst-case samples from a frame's centre to its emission: N/2 + (K - 1)·H + D."""
        return self._config.analysis_latency

    def to_dbfs(self, spec, win_length) -> np.ndarray:
        """The spectrum ``spec`` [F, M] of frames with θ ``win_length`` [F] or [F, B] (as in a
        StreamOutput) in dB re a full-scale sine, float32 [F, M] (see :meth:`StreamConfig.db_scale`)."""
        theta = np.asarray(win_length)
        return self._config.to_dbfs(spec, theta if theta.ndim == 1 else theta.min(-1))

    @property
    def samples_to_next_block(self) -> int:
        """Input samples still missing before :meth:`process` can emit the next block of K frames
        (its last frame n needs samples up to n·H + N/2, and the band split D more); at least 1. A
        caller that feeds this many at a time makes one call per block, with no added latency."""
        last = self._next_frame + self.block_frames - 1
        return max(1, last * self.hop_length + self.n_fft // 2 + self.split_delay - self._samples_in)

    def reset(self) -> None:
        """Starts a new stream: clears buffers and context; θ returns to the configured start."""
        self._apply_pending()
        n, nb = self.n_fft, self.bands
        # One row per band (the signal itself for one band), in padded sample coordinates.
        self._buf = np.zeros((nb, 4 * n + 8 * self.block_frames * self.hop_length), self._np_dtype)
        self._buf_start = 0  # padded index of _buf[0]; padded index p = sample index + N/2
        self._buf_len = n // 2  # the N/2 leading zeros of center=True
        # Overlap-add accumulators, row 0: Σ w·irfft(S), row 1: Σ w², in padded sample coordinates.
        # Both buffers are compacted only once their consumed head passes half their size: one
        # move every few blocks instead of one per call.
        self._acc = np.zeros((nb, 2, 4 * n + 8 * self.block_frames * self.hop_length), self._np_dtype)
        self._acc_start = 0  # padded index of _acc[..., 0]
        self._collected = 0  # padded index up to which the accumulators were read out
        self._final = 0  # padded index up to which the resynthesis is final
        self._ready = np.zeros(0, self._np_dtype)  # final samples not yet returned
        self._samples_in = 0
        self._samples_out = 0
        self._next_frame = 0
        self._theta = np.full(nb, self._config.win_length)
        self._den_cache: dict[tuple[float, int], np.ndarray] = {}
        self._raw: list[np.ndarray] = []  # input not yet split into bands (split when frames need it)
        # Blocks emitted at a fixed θ whose context the adapter has not taken yet: (S [K, M], band
        # samples [B, (K - 1)·H + N], θ [B]). Nothing reads the context while adaptation is off;
        # the last 2r frames' worth is pushed when it turns on (or a setting changes).
        self._deferred: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []
        self._adapter.reset()
        if self._split is not None:
            self._split.reset()
            self._band_adapter.reset()

    # ---- processing -----------------------------------------------------------------------------

    def _append(self, block: np.ndarray) -> None:
        """Appends samples [B, n] (one row per band) to the frame buffer."""
        need = self._buf_len + block.shape[-1]
        if need > self._buf.shape[-1]:
            grown = np.zeros((self.bands, max(need, 2 * self._buf.shape[-1])), self._np_dtype)
            grown[:, : self._buf_len] = self._buf[:, : self._buf_len]
            self._buf = grown
        self._buf[:, self._buf_len : need] = block
        self._buf_len = need

    def _split_pending(self, finish: bool = False) -> None:
        """Moves the input waiting in ``_raw`` through the band split into the frame buffer (at the
        end of the stream, also the split's last D samples)."""
        if self._raw:
            self._append(self._split.push(np.concatenate(self._raw)))
            self._raw = []
        if finish:
            self._append(self._split.finish(self._np_dtype))

    def _frames_ready(self) -> int:
        """Frames whose samples have all arrived: n·H + N <= padded count (of band samples, which
        lag the input by the split's look-ahead D)."""
        padded = self.n_fft // 2 + self._samples_in - self._split_delay
        return max(0, (padded - self.n_fft) // self.hop_length + 1)

    @torch.inference_mode()
    def _run_blocks(self, last_frame: int, partial: bool):
        """Emits blocks of K frames up to frame ``last_frame`` (exclusive); the last one may be short
        when ``partial``. Returns (S [count, M], θ, first frame index, count) per block."""
        k, h, n = self.block_frames, self.hop_length, self.n_fft
        out = []
        while self._next_frame < last_frame:
            count = min(k, last_frame - self._next_frame)
            if count < k and not partial:
                break
            self._apply_pending()
            n0 = self._next_frame
            lo = n0 * h - self._buf_start
            seg = torch.from_numpy(self._buf[:, lo : lo + (count - 1) * h + n]).to(self.device)
            if self._config.adapt:
                self._push_deferred_context()
                spec, spec_b, w = self._adapt_block(seg.unfold(-1, n, h))
            else:
                spec, spec_b, w = self._fixed_block(seg)
            self._overlap_add(spec_b, w, self._theta, n0, count)
            out.append((spec, self._theta.copy(), n0, count))
            self._next_frame += count
        # Samples before the next frame's support are final; drop input no frame needs any more.
        self._final = self._next_frame * h
        drop = self._next_frame * h - self._buf_start
        if drop > self._buf.shape[-1] // 2:
            keep = self._buf_len - drop
            self._buf[:, :keep] = self._buf[:, drop : self._buf_len]
            self._buf_start += drop
            self._buf_len = keep
        return out

    def _adapt_block(self, frames: torch.Tensor):
        """S [K, M], S_b [B, K, M] and w [B, N] of one block of band frames [B, K, N], θ chosen per
        band (for one band: for all bins) by the adapter, which takes the block as context."""
        cfg = self._config
        if self.bands == 1:
            theta, spec, w = self._adapter.step(frames[0], float(self._theta[0]), cfg.win_min, cfg.win_max)
            self._theta[0] = theta
            return spec, spec.unsqueeze(0), w
        whole = frames.sum(0)  # the signal's own frames (the bands telescope), what θ is scored on
        theta, spec_b, w = self._band_adapter.step(whole, frames, self._theta, cfg.win_min, cfg.win_max)
        self._theta = np.asarray(theta, dtype=np.float64)
        return spec_b.sum(0), spec_b, w

    def _fixed_block(self, seg: torch.Tensor):
        """S [K, M], S_b [B, K, M] and w [B, N] of one block at the fixed θ, from the band samples
        ``seg`` [B, (K - 1)·H + N] (a view of the frame buffer); the block's context is deferred."""
        n, h = self.n_fft, self.hop_length
        theta_t, w = self._adapter.windows(np.log(self._theta))
        if self.bands == 1:
            self._theta[0] = float(theta_t[0])
            spec = torch.fft.rfft(seg[0].unfold(-1, n, h) * w)
            spec_b = spec.unsqueeze(0)
        else:
            spec_b = torch.fft.rfft(seg.unfold(-1, n, h) * w.unsqueeze(1))
            spec = spec_b.sum(0)
        self._defer_context(spec, seg.clone(), self._theta.copy())
        return spec, spec_b, w

    def _defer_context(self, spec: torch.Tensor, seg: torch.Tensor, theta: np.ndarray) -> None:
        """Queues a block for the adapter's context, keeping only the blocks its last 2r frames
        come from (the context holds 2r frames; older ones would be pushed out unread)."""
        self._deferred.append((spec, seg, theta))
        keep, later = 0, 0
        for i in range(len(self._deferred) - 1, -1, -1):
            keep = i
            later += self._deferred[i][0].shape[0]
            if later >= 2 * self._adapter.radius:
                break
        del self._deferred[:keep]

    def _push_deferred_context(self) -> None:
        """Gives the adapter the context of the blocks emitted at a fixed θ, as each block would
        have pushed it when emitted (in order, whole blocks: the same sums, bit for bit)."""
        n, h = self.n_fft, self.hop_length
        for spec, seg, theta in self._deferred:
            frames = seg.unfold(-1, n, h)
            if self.bands == 1:
                self._adapter.push_context(spec, frames[0], float(theta[0]))
            else:
                self._band_adapter.push_context(spec, frames.sum(0), theta)
        self._deferred = []

    def _overlap_add(
        self, spec_b: torch.Tensor, w: torch.Tensor, theta: np.ndarray, n0: int, count: int
    ) -> None:
        """Adds Σ w·irfft(S) and Σ w² of ``count`` frames of each band (S_b [B, K, M], windows
        w = w(θ_b) [B, N]) starting at frame n0 to that band's accumulators, all bands at once."""
        h, n = self.hop_length, self.n_fft
        yw = torch.fft.irfft(spec_b, n=n).mul_(w.unsqueeze(1)).cpu().numpy()  # in place: a fresh tensor
        start = n0 * h - self._acc_start
        end = start + count * h + n  # one hop of slack for the chunked add below
        if end > self._acc.shape[-1]:
            grown = np.zeros((self.bands, 2, max(end, 2 * self._acc.shape[-1])), self._np_dtype)
            grown[..., : self._acc.shape[-1]] = self._acc
            self._acc = grown
        _add_frames(self._acc[:, 0, start:end], yw, h)
        for b in range(self.bands):  # per band: each band's θ rests or moves on its own
            key = (float(theta[b]), count)
            den = self._den_cache.get(key)
            if den is None:  # Σ w² of a block depends on θ and K alone: θ often rests for many blocks
                w2 = np.square(w[b].cpu().numpy())
                den = np.zeros(end - start, self._np_dtype)
                _add_frames(den, np.broadcast_to(w2, (count, n)), h)
                if len(self._den_cache) >= 8 * self.bands:
                    self._den_cache.pop(next(iter(self._den_cache)))
                self._den_cache[key] = den
            self._acc[b, 1, start:end] += den

    def _collect_final(self) -> None:
        """Moves final resynthesised samples from the accumulators to the ready queue."""
        lo, hi = self._collected - self._acc_start, self._final - self._acc_start
        if hi <= lo:
            return
        num, den = self._acc[:, 0, lo:hi], self._acc[:, 1, lo:hi]
        inverse = np.divide(num, den, out=np.zeros_like(num), where=den > 0)  # each band's inverse
        x_hat = np.zeros(hi - lo, self._np_dtype)
        for band in inverse:  # the bands sum to x
            x_hat += band
        # Padded indices below N/2 are the zeros before the first sample: not part of the signal.
        skip = max(0, self.n_fft // 2 - self._collected)
        self._ready = np.concatenate([self._ready, x_hat[skip:]])
        self._collected = self._final
        if hi > self._acc.shape[-1] // 2:
            rest = self._acc.shape[-1] - hi
            self._acc[..., :rest] = self._acc[..., hi:]
            self._acc[..., rest:] = 0
            self._acc_start = self._final

    def _take_audio(self, count: int) -> np.ndarray:
        """The next ``count`` output samples: input delayed by ``latency``."""
        out = np.zeros(count, self._np_dtype)
        first = self._samples_out - self._latency  # sample index of out[0]
        lead = min(count, max(0, -first))
        take = count - lead
        if take:
            avail = self._ready.shape[0]
            if take > avail:  # cannot happen by construction of latency
                raise RuntimeError("resynthesis ran ahead of the analysis")
            out[lead:] = self._ready[:take]
            self._ready = self._ready[take:]
        self._samples_out += count
        return out

    def _package(self, blocks, audio: np.ndarray, nonfinite: int) -> StreamOutput:
        m = self.n_fft // 2 + 1
        cdtype = np.complex64 if self.dtype == torch.float32 else np.complex128
        if blocks:
            spec = torch.cat([b[0] for b in blocks]).cpu().numpy()
            theta = np.concatenate([np.tile(b[1].astype(self._np_dtype), (b[3], 1)) for b in blocks])
            index = np.concatenate([np.arange(b[2], b[2] + b[3], dtype=np.int64) for b in blocks])
        else:  # no frames: empty arrays, which nothing can change, so one set serves every call
            if self._empty is None:
                self._empty = (np.zeros((0, m), cdtype), np.zeros((0, self.bands), self._np_dtype))
            spec, theta = self._empty
            index = np.zeros(0, np.int64)
        if self.bands == 1:
            theta = theta[:, 0]
        times = index * (self.hop_length / self.sample_rate)
        return StreamOutput(spec, theta, index, times, audio, nonfinite)

    def process(self, block) -> StreamOutput:
        """Feeds samples and returns what became ready.

        block: 1-D array-like of samples, any length: floats (full scale ±1; NaN/inf are replaced
            by 0 and counted) or integer PCM (int16, int32, uint8, ..., scaled to [-1, 1) as
            soundfile reads it).
        Returns a StreamOutput whose ``audio`` has len(block) samples.
        """
        x = np.asarray(block)
        if x.ndim != 1:
            raise ValueError(f"block must be 1-D (samples,), got shape {x.shape}")
        if x.dtype.kind in "iu":  # the dtype kinds, not np.issubdtype: this runs per audio callback
            x = _int_to_float(x, self._np_dtype)
        elif x.dtype.kind != "f":
            raise TypeError(f"block must contain real samples (floats, or integer PCM), got dtype {x.dtype}")
        x, nonfinite = zero_nonfinite(x.astype(self._np_dtype, copy=False))
        self.nonfinite_count += nonfinite
        self._samples_in += x.shape[0]
        ready = self._frames_ready()
        if self._split is None:
            self._append(x[None])
        else:  # split in pieces of at least a block: FFT convolution pays off at that size
            self._raw.append(x)
            if ready >= self._next_frame + self.block_frames:
                self._split_pending()
        blocks = self._run_blocks(ready, partial=False)
        self._collect_final()
        return self._package(blocks, self._take_audio(x.shape[0]), nonfinite)

    def flush(self) -> StreamOutput:
        """Ends the stream: emits the remaining frames (zeros after the last sample), returns them
        and the last ``latency`` samples of audio, then resets for a new stream."""
        t = self._samples_in
        if self._split is not None:
            self._split_pending(finish=True)
        last = 1 + t // self.hop_length
        need = (last - 1) * self.hop_length + self.n_fft - (self._buf_start + self._buf_len)
        if need > 0:
            self._append(np.zeros((self.bands, need), self._np_dtype))
        blocks = self._run_blocks(last, partial=True)
        self._final = t + self.n_fft // 2  # every input sample is final now
        self._collect_final()
        remaining = t + self.latency - self._samples_out
        out = self._package(blocks, self._take_audio(remaining), 0)
        self.reset()
        return out


def zero_nonfinite(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(x with its NaN and ±inf samples replaced by 0, their count): what the engine analyses of
    float samples x. x itself (no copy) when every sample is finite; the dtype is x's."""
    finite = np.isfinite(x)
    if finite.all():
        return x, 0
    bad = ~finite
    return np.where(bad, 0, x).astype(x.dtype), int(bad.sum())


def _int_to_float(x: np.ndarray, dtype) -> np.ndarray:
    """Integer PCM to floats in [-1, 1) as soundfile reads it: x / 2^(b-1) for b-bit signed
    samples, (x - 2^(b-1)) / 2^(b-1) for unsigned ones (8-bit WAV is unsigned)."""
    half = 2.0 ** (8 * x.dtype.itemsize - 1)
    y = x.astype(np.float64)
    if np.issubdtype(x.dtype, np.unsignedinteger):
        y -= half
    return (y / half).astype(dtype)


def _add_frames(out: np.ndarray, frames: np.ndarray, hop: int) -> None:
    """out[..., i·H + j] += frames[..., i, j] for frames [..., K, N], in place; out [..., L] needs
    L >= K·H + N (one hop of slack) and a contiguous last axis. Chunk j of every frame lands on
    consecutive, non-overlapping hops, so this loops over the N/H chunks of a frame, never over
    frames."""
    *lead, count, n = frames.shape
    for j in range(0, n, hop):
        width = min(hop, n - j)
        # Splitting the contiguous last axis is always a view (reshape(copy=False) would say so,
        # but needs numpy >= 2.1; the package allows 1.24).
        hops = out[..., j : j + count * hop].reshape(*lead, count, hop)
        hops[..., :width] += frames[..., j : j + width]
