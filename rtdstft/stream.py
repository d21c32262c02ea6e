r"""StreamingDSTFT: samples in, frames + θ out, overlap-add audio out.

Samples arrive in blocks of any size. Frame n (centre c_n = n·H, support c_n - N/2 .. c_n + N/2 - 1,
zeros before the first sample) is complete once sample c_n + N/2 - 1 has arrived. Frames are processed
in blocks of K (``block_frames``): for each block the :class:`~rtdstft.online.OnlineAdapter` picks θ
(or the fixed θ is used when ``adapt=False``), and the block is emitted with that θ. What is emitted is
exactly the offline :class:`~rtdstft.DSTFT` of the same samples with the emitted θ sequence (DESIGN §3).

Resynthesis is the weighted overlap-add of DESIGN §2 applied to the emitted spectra
(x̂ = Σ w·irfft(S) / Σ w²). Sample k is final once no later frame touches it. ``process`` returns as
many audio samples as it was given, delayed by a constant ``latency``

    latency = N + (K - 1)·H - 1   samples,

the worst case between a sample's arrival and its last frame's emission; so the concatenated
``.audio`` of all calls is ``latency`` zeros followed by the input, to float precision, whatever θ did.
``flush()`` completes the last frames with zeros and returns the tail (``latency`` more samples).

Analysis latency (a frame's centre to its emission): at most N/2 + (K - 1)·H samples.

NaN and ±inf input samples are replaced by 0 before anything sees them, and counted.

Threading: one thread calls process / flush / reset. ``configure`` may be called from any thread; the
change takes effect at the next block boundary.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

from .bands import BandSplit, _check_bands, band_bins, check_band_edges, default_band_edges
from .entropy import ENTROPY_KINDS
from .online import DEFAULT_STEADINESS, BandedAdapter, OnlineAdapter
from .transform import _check_int

__all__ = ["StreamingDSTFT", "StreamOutput", "LIVE_SETTINGS", "settings_for_rate"]


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


#: The window lengths (s) that :func:`settings_for_rate` spans at any rate: a click to a steady tone.
THETA_RANGE_S = (0.005, 0.085)


def settings_for_rate(sample_rate: float) -> dict:
    """N, H and θ (samples) that suit ``sample_rate`` (Hz), so that θ spans about 5 ms (a click) to
    85 ms (a steady tone) whatever the rate (the defaults of ``rtdstft analyze`` and the GUI):

    - θ max = 85 ms, and N the smallest power of two that holds it (256 .. 8192);
    - H the power of two nearest 2.5 ms (32 .. 1024, at most N/4), θ min = 2H (about 5 ms, which
      keeps the resynthesis well conditioned, DESIGN §2);
    - the fixed θ (adaptation off) = N/2.

    For example 8 kHz: N 1024, H 32, θ 64 .. 680 (8 .. 85 ms); 16 kHz: N 2048, H 32, θ 64 .. 1360
    (4 .. 85 ms); 24 kHz: N 2048, H 64, θ 128 .. 2040 (5.3 .. 85 ms); 48 kHz: N 4096, H 128,
    θ 256 .. 4080 (5.3 .. 85 ms).

    Returns {"n_fft", "hop_length", "win_length", "win_min", "win_max"}.
    """
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate!r}")
    sr = float(sample_rate)
    shortest, longest = THETA_RANGE_S
    n = 2 ** min(max(math.ceil(math.log2(longest * sr)), 8), 13)
    h = min(2 ** min(max(round(math.log2(shortest / 2 * sr)), 5), 10), n // 4)
    return {
        "n_fft": n,
        "hop_length": h,
        "win_length": float(n // 2),
        "win_min": float(2 * h),
        "win_max": float(min(n, round(longest * sr))),
    }


#: Settings that :meth:`StreamingDSTFT.configure` changes on a running stream.
LIVE_SETTINGS = (
    "adapt",
    "win_length",
    "win_min",
    "win_max",
    "lr",
    "smoothness",
    "entropy",
    "alpha",
    "radius",
    "steps",
    "steadiness",
)


class StreamingDSTFT:
    """Streaming, adaptive DSTFT with exact overlap-add resynthesis.

    Args:
        sample_rate: Hz (> 0), only used for times and latencies in seconds.
        n_fft: N, frame support and FFT size (even, >= 4).
        hop_length: H, samples between frames, 1 <= H <= N/2.
        adapt: True to adapt θ online; False to use ``win_length`` for every frame.
        win_length: the fixed θ (adapt=False) and the starting θ (adapt=True), samples;
            default sqrt(win_min · win_max).
        win_min: smallest θ, samples, in (H, win_max]; default min(2H, N). Above H, every sample
            lies inside some window, which keeps the resynthesis exact.
        win_max: largest θ, samples, in [win_min, N]; default N.
        block_frames: K, frames per adaptation block (>= 1). Latency grows with K·H.
        steps: 0 (default) refines each block's bracket search by a parabola; >= 1 by that many
            gradient steps instead (see :mod:`rtdstft.online`).
        lr: gradient step in log θ (> 0).
        smoothness: λ >= 0, weight of (log θ_b - log θ_{b-1})² between blocks.
        steadiness: nats per unit of |Δ log θ| (>= 0) by which a move of θ must lower J when the
            context, too, is taken at each θ (see :mod:`rtdstft.online`); what keeps θ still on
            stationary sound (mean |Δ log θ| per block <= 0.05 on white and pink noise).
        entropy: "shannon" | "renyi";  alpha: Rényi order (> 0, != 1);  radius: r >= 0 frames.
        normalization: window gain, "l1" (default) or "peak".
        device: torch device of the transform ("cpu", "cuda", ...). dtype: float32 | float64.
        bands: B in [1, 8], window lengths per block: one (the default) or one per frequency band
            (:mod:`rtdstft.bands`: a perfect-reconstruction split, each band its own DSTFT, the
            spectrum their sum; the split's look-ahead adds ``split_delay`` samples of latency).
        band_edges: the B - 1 band edges in Hz (increasing, below 0.4·rate, a bin apart); default
            :func:`rtdstft.bands.default_band_edges` (octave-like, 250 Hz .. 8 kHz). Gives B when
            ``bands`` is left at 1.
    """

    def __init__(
        self,
        sample_rate: float = 48000,
        n_fft: int = 2048,
        hop_length: int = 256,
        adapt: bool = True,
        win_length: float | None = None,
        win_min: float | None = None,
        win_max: float | None = None,
        block_frames: int = 8,
        steps: int = 0,
        lr: float = 0.1,
        smoothness: float = 0.02,
        entropy: str = "shannon",
        alpha: float = 3.0,
        radius: int = 4,
        normalization: str = "l1",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        steadiness: float = DEFAULT_STEADINESS,
        bands: int = 1,
        band_edges=None,
    ) -> None:
        if not (isinstance(sample_rate, (int, float)) and sample_rate > 0):
            raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate!r}")
        self.sample_rate = float(sample_rate)
        self.n_fft = _check_int("n_fft", n_fft, 4, even=True)
        self.hop_length = _check_int("hop_length", hop_length, 1)
        if self.hop_length > self.n_fft // 2:
            raise ValueError(f"hop_length must be in [1, n_fft/2 = {self.n_fft // 2}], got {self.hop_length}")
        self.block_frames = _check_int("block_frames", block_frames, 1)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if normalization not in ("l1", "peak"):
            raise ValueError(f"normalization must be 'l1' or 'peak', got {normalization!r}")
        self.normalization = normalization
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError) as e:
            raise ValueError(f"device {device!r} is not available: {e}") from None
        self.dtype = dtype
        self._np_dtype = np.float32 if dtype == torch.float32 else np.float64
        self._lock = threading.Lock()
        self._pending: dict = {}
        requested = dict(
            adapt=adapt,
            win_length=win_length,
            win_min=win_min,
            win_max=win_max,
            lr=lr,
            smoothness=smoothness,
            entropy=entropy,
            alpha=alpha,
            radius=radius,
            steps=steps,
            steadiness=steadiness,
        )
        self._settings = dict(requested)
        self._settings.update(self._validated(requested, initial=True))
        self._adapter = OnlineAdapter(
            self.n_fft,
            radius=self._settings["radius"],
            kind=self._settings["entropy"],
            alpha=self._settings["alpha"],
            smoothness=self._settings["smoothness"],
            lr=self._settings["lr"],
            steps=self._settings["steps"],
            steadiness=self._settings["steadiness"],
            normalization=normalization,
            device=self.device,
            dtype=dtype,
        )
        if band_edges is None:
            self.band_edges = default_band_edges(_check_bands(bands), self.sample_rate)
        else:
            self.band_edges = check_band_edges(band_edges, self.sample_rate, self.n_fft)
            if bands != 1 and bands != len(self.band_edges) + 1:
                raise ValueError(f"bands ({bands}) must be len(band_edges) + 1 = {len(self.band_edges) + 1}")
        self.bands = len(self.band_edges) + 1
        self.band_bins = band_bins(self.band_edges, self.sample_rate, self.n_fft)
        self._split = BandSplit(self.band_edges, self.sample_rate) if self.bands > 1 else None
        self._band_adapter = (
            BandedAdapter(
                self.n_fft,
                self.band_bins,
                radius=self._settings["radius"],
                kind=self._settings["entropy"],
                alpha=self._settings["alpha"],
                smoothness=self._settings["smoothness"],
                steadiness=self._settings["steadiness"],
                normalization=normalization,
                device=self.device,
                dtype=dtype,
            )
            if self.bands > 1
            else None
        )
        self.nonfinite_count = 0
        self.reset()

    # ---- settings -------------------------------------------------------------------------------

    def _validated(self, changes: dict, initial: bool = False) -> dict:
        unknown = set(changes) - set(LIVE_SETTINGS)
        if unknown:
            raise ValueError(
                f"cannot change {sorted(unknown)} on a running stream; live settings are {LIVE_SETTINGS} "
                "(n_fft, hop_length, sample_rate need a new StreamingDSTFT)"
            )
        s = {**self._settings, **changes}
        n, h = self.n_fft, self.hop_length
        win_max = float(n if s["win_max"] is None else s["win_max"])
        win_min = float(min(2 * h, win_max) if s["win_min"] is None else s["win_min"])
        if not (h < win_max <= n):
            raise ValueError(f"win_max must be in (hop_length = {h}, n_fft = {n}], got {win_max:g}")
        if not (h < win_min <= win_max):
            raise ValueError(f"win_min must be in (hop_length = {h}, win_max = {win_max:g}], got {win_min:g}")
        wl = s["win_length"]
        wl = math.sqrt(win_min * win_max) if wl is None else float(wl)
        if not (win_min <= wl <= win_max):
            raise ValueError(
                f"win_length must be in [win_min, win_max] = [{win_min:g}, {win_max:g}], got {wl:g}"
            )
        if s["entropy"] not in ENTROPY_KINDS:
            raise ValueError(f"entropy must be one of {ENTROPY_KINDS}, got {s['entropy']!r}")
        if not (s["alpha"] > 0 and s["alpha"] != 1):
            raise ValueError(f"alpha must be > 0 and != 1, got {s['alpha']!r}")
        if not s["lr"] > 0:
            raise ValueError(f"lr must be > 0, got {s['lr']!r}")
        if not s["smoothness"] >= 0:
            raise ValueError(f"smoothness must be >= 0, got {s['smoothness']!r}")
        if not s["steadiness"] >= 0:
            raise ValueError(f"steadiness must be >= 0 nats, got {s['steadiness']!r}")
        for name in ("radius", "steps"):
            v = s[name]
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        out = {k: s[k] for k in LIVE_SETTINGS}
        out.update(
            win_min=win_min,
            win_max=win_max,
            win_length=wl,
            adapt=bool(s["adapt"]),
            radius=int(s["radius"]),
            steps=int(s["steps"]),
            alpha=float(s["alpha"]),
            lr=float(s["lr"]),
            smoothness=float(s["smoothness"]),
            steadiness=float(s["steadiness"]),
        )
        if not initial:
            out = {k: out[k] for k in changes} | {"win_min": win_min, "win_max": win_max}
            if "win_length" in changes or not (win_min <= self._settings["win_length"] <= win_max):
                out["win_length"] = wl
        return out

    def configure(self, **changes) -> None:
        """Changes live settings (names as in the constructor); applied at the next block.

        Raises ValueError naming the parameter and its valid range; nothing changes then.
        """
        with self._lock:
            merged = {**self._pending, **changes}
            self._validated(merged)
            self._pending = merged

    @property
    def settings(self) -> dict:
        """The settings in force, including changes waiting for the next block."""
        with self._lock:
            return (
                {**self._settings, **self._validated(dict(self._pending))}
                if self._pending
                else dict(self._settings)
            )

    def __getattr__(self, name):
        if name in LIVE_SETTINGS:
            return self.settings[name]
        raise AttributeError(name)

    def _apply_pending(self) -> None:
        with self._lock:
            if not self._pending:
                return
            changes = self._validated(self._pending)
            self._pending = {}
        self._settings.update(changes)
        a = self._adapter
        if "radius" in changes and changes["radius"] != a.radius:
            a.radius = changes["radius"]
        if (a.kind, a.alpha) != (self._settings["entropy"], self._settings["alpha"]):
            a.kind, a.alpha = self._settings["entropy"], self._settings["alpha"]
            a.refresh_context()
        a.smoothness, a.lr, a.steps, a.steadiness = (
            self._settings["smoothness"],
            self._settings["lr"],
            self._settings["steps"],
            self._settings["steadiness"],
        )
        banded = self._band_adapter
        if banded is not None:
            for name, key in (("radius", "radius"), ("kind", "entropy"), ("alpha", "alpha")):
                if getattr(banded, name) != self._settings[key]:
                    setattr(banded, name, self._settings[key])
            banded.smoothness, banded.steadiness = self._settings["smoothness"], self._settings["steadiness"]
        if "win_length" in changes or not self._settings["adapt"]:
            self._theta = np.full(self.bands, self._settings["win_length"])
        self._theta = np.clip(self._theta, self._settings["win_min"], self._settings["win_max"])

    # ---- geometry -------------------------------------------------------------------------------

    @property
    def split_delay(self) -> int:
        """D, the band split's look-ahead in samples (0 for one band)."""
        return 0 if self._split is None else self._split.delay

    @property
    def latency(self) -> int:
        """Samples from an input sample to its resynthesis: N + (K - 1)·H - 1 + D."""
        return self.n_fft + (self.block_frames - 1) * self.hop_length - 1 + self.split_delay

    @property
    def analysis_latency(self) -> int:
        """Worst-case samples from a frame's centre to its emission: N/2 + (K - 1)·H + D."""
        return self.n_fft // 2 + (self.block_frames - 1) * self.hop_length + self.split_delay

    @property
    def frames_emitted(self) -> int:
        return self._next_frame

    @property
    def samples_in(self) -> int:
        return self._samples_in

    def reset(self) -> None:
        """Starts a new stream: clears buffers and context; θ returns to the configured start."""
        self._apply_pending()
        n, nb = self.n_fft, self.bands
        # One row per band (the signal itself for one band), in padded sample coordinates.
        self._buf = np.zeros((nb, 4 * n + 8 * self.block_frames * self.hop_length), self._np_dtype)
        self._buf_start = 0  # padded index of _buf[0]; padded index p = sample index + N/2
        self._buf_len = n // 2  # the N/2 leading zeros of center=True
        # Overlap-add accumulators, row 0: Σ w·irfft(S), row 1: Σ w², in padded sample coordinates.
        self._acc = np.zeros((nb, 2, 2 * n + 2 * self.block_frames * self.hop_length), self._np_dtype)
        self._acc_start = 0  # padded index of _acc[:, 0]
        self._final = 0  # padded index up to which the resynthesis is final
        self._ready = np.zeros(0, self._np_dtype)  # final samples not yet returned
        self._ready_start = 0  # sample index of _ready[0]
        self._samples_in = 0
        self._samples_out = 0
        self._next_frame = 0
        self._theta = np.full(nb, self._settings["win_length"])
        self._den_cache: dict[tuple[float, int], np.ndarray] = {}
        self._raw: list[np.ndarray] = []  # input not yet split into bands (split when frames need it)
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
        padded = self.n_fft // 2 + self._samples_in - self.split_delay
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
            frames = seg.unfold(-1, n, h)  # [B, count, N]
            if self.bands == 1:
                spec, w = self._one_band(frames[0])
                spec_b = spec.unsqueeze(0)
            else:
                spec_b, w = self._banded(frames)
                spec = spec_b.sum(0)
            self._overlap_add(spec_b, w, self._theta, n0, count)
            out.append((spec, self._theta.copy(), n0, count))
            self._next_frame += count
        # Samples before the next frame's support are final; drop input no frame needs any more.
        self._final = self._next_frame * h
        drop = self._next_frame * h - self._buf_start
        if drop > 0:
            keep = self._buf_len - drop
            self._buf[:, :keep] = self._buf[:, drop : self._buf_len]
            self._buf_start += drop
            self._buf_len = keep
        return out

    def _one_band(self, frames: torch.Tensor):
        """S [K, M] and w [1, N] of one block of frames [K, N], θ chosen (or fixed) for all bins."""
        s = self._settings
        if s["adapt"]:
            theta, spec, w = self._adapter.step(frames, float(self._theta[0]), s["win_min"], s["win_max"])
        else:
            theta_t, w = self._adapter.windows(np.log(self._theta))
            theta = float(theta_t[0])
            spec = torch.fft.rfft(frames * w)
            self._adapter.push_context(spec, frames, theta)
        self._theta[0] = theta
        return spec, w

    def _banded(self, frames: torch.Tensor):
        """S_b [B, K, M] and w [B, N] of one block of band frames [B, K, N], a θ per band."""
        s = self._settings
        whole = frames.sum(0)  # the signal's own frames (the bands telescope), what θ is scored on
        if s["adapt"]:
            theta, spec_b, w = self._band_adapter.step(whole, frames, self._theta, s["win_min"], s["win_max"])
        else:
            _, w = self._adapter.windows(np.log(self._theta))
            spec_b = torch.fft.rfft(frames * w.unsqueeze(1))
            theta = self._theta
            self._band_adapter.push_context(spec_b.sum(0), whole, theta)
        self._theta = np.asarray(theta, dtype=np.float64)
        return spec_b, w

    def _overlap_add(
        self, spec_b: torch.Tensor, w: torch.Tensor, theta: np.ndarray, n0: int, count: int
    ) -> None:
        """Adds Σ w·irfft(S) and Σ w² of ``count`` frames of each band (S_b [B, K, M], windows
        w = w(θ_b) [B, N]) starting at frame n0 to that band's accumulators."""
        h, n = self.hop_length, self.n_fft
        yw = (torch.fft.irfft(spec_b, n=n) * w.unsqueeze(1)).cpu().numpy()
        start = n0 * h - self._acc_start
        end = start + count * h + n  # one hop of slack for the chunked add below
        if end > self._acc.shape[-1]:
            grown = np.zeros((self.bands, 2, max(end, 2 * self._acc.shape[-1])), self._np_dtype)
            grown[..., : self._acc.shape[-1]] = self._acc
            self._acc = grown
        for b in range(self.bands):
            _add_frames(self._acc[b, 0, start:end], yw[b], h)
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
        m = self._final - self._acc_start
        if m <= 0:
            return
        x_hat = np.zeros(m, self._np_dtype)
        for b in range(self.bands):  # each band's weighted overlap-add inverse; the bands sum to x
            num, den = self._acc[b, 0, :m], self._acc[b, 1, :m]
            x_hat += np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        # Padded indices below N/2 are the zeros before the first sample: not part of the signal.
        skip = max(0, self.n_fft // 2 - self._acc_start)
        self._ready = np.concatenate([self._ready, x_hat[skip:]])
        rest = self._acc.shape[-1] - m
        self._acc[..., :rest] = self._acc[..., m:]
        self._acc[..., rest:] = 0
        self._acc_start = self._final

    def _take_audio(self, count: int) -> np.ndarray:
        """The next ``count`` output samples: input delayed by ``latency``."""
        out = np.zeros(count, self._np_dtype)
        first = self._samples_out - self.latency  # sample index of out[0]
        lead = min(count, max(0, -first))
        take = count - lead
        if take:
            avail = self._ready.shape[0]
            if take > avail:  # cannot happen by construction of latency
                raise RuntimeError("resynthesis ran ahead of the analysis")
            out[lead:] = self._ready[:take]
            self._ready = self._ready[take:]
            self._ready_start += take
        self._samples_out += count
        return out

    def _package(self, blocks, audio: np.ndarray, nonfinite: int) -> StreamOutput:
        m = self.n_fft // 2 + 1
        cdtype = np.complex64 if self.dtype == torch.float32 else np.complex128
        if blocks:
            spec = torch.cat([b[0] for b in blocks]).cpu().numpy()
            theta = np.concatenate([np.tile(b[1].astype(self._np_dtype), (b[3], 1)) for b in blocks])
            index = np.concatenate([np.arange(b[2], b[2] + b[3], dtype=np.int64) for b in blocks])
        else:
            spec = np.zeros((0, m), cdtype)
            theta = np.zeros((0, self.bands), self._np_dtype)
            index = np.zeros(0, np.int64)
        if self.bands == 1:
            theta = theta[:, 0]
        times = index * (self.hop_length / self.sample_rate)
        return StreamOutput(spec, theta, index, times, audio, nonfinite)

    def process(self, block) -> StreamOutput:
        """Feeds samples and returns what became ready.

        block: 1-D array-like of samples (any length, float; NaN/inf are replaced by 0 and counted).
        Returns a StreamOutput whose ``audio`` has len(block) samples.
        """
        x = np.asarray(block)
        if x.ndim != 1:
            raise ValueError(f"block must be 1-D (samples,), got shape {x.shape}")
        if np.iscomplexobj(x) or not (
            np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
        ):
            raise TypeError(f"block must hold real samples, got dtype {x.dtype}")
        x = x.astype(self._np_dtype, copy=False)
        bad = ~np.isfinite(x)
        nonfinite = int(bad.sum())
        if nonfinite:
            x = np.where(bad, 0, x).astype(self._np_dtype)
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


def _add_frames(out: np.ndarray, frames: np.ndarray, hop: int) -> None:
    """out[i·H + j] += frames[i, j] for frames [K, N], in place; out needs K·H + N samples (one hop
    of slack). Chunk j of every frame lands on consecutive, non-overlapping hops, so this loops over
    the N/H chunks of a frame, never over frames."""
    count, n = frames.shape
    for j in range(0, n, hop):
        width = min(hop, n - j)
        out[j : j + count * hop].reshape(count, hop)[:, :width] += frames[:, j : j + width]
