r"""Online adaptation of the window length, one block of K frames at a time.

For each block the adapter chooses one θ for its K frames (a per-block constant; consecutive blocks are
tied by the smoothness term) by minimising, in s = log θ ∈ [log win_min, log win_max],

    J(s) = (1/K) Σ_{n in block} H_r[n](s) + λ (s - s_prev)²

where H_r[n] is the local entropy (Shannon or Rényi of P = |S|², DESIGN §2) of frames n-r..n+r, the
already emitted frames before the block being fixed context and frames after it not yet known.

The search is robust first, then precise:
1. Bracketing: J is evaluated at s_prev + {0, ±δ_1, ..., ±δ_D} in one batched FFT of [C, K, N]. A
   gradient alone lags behind abrupt changes and can point the wrong way when the block mixes
   characters; the symmetric bracket sees both sides at once.
2. Gradient steps from the best candidate: the exact dJ/ds is written out by hand,

       dP/dθ = 2 Re(conj(S) · rfft(frames · ∂w/∂θ)),
       Shannon: dH = (dZ - dQ + Q dZ / Z) / Z  with Z = Σ P, Q = Σ P log P over the neighbourhood
       Rényi:   dH = (dA / A - α dZ / Z) / (1 - α)   with A = Σ P^α,

   and a normalised step s ← s - η · sign(dJ/ds) is kept only if it lowers J (each step costs two
   FFTs of [K, N]; the step is halved when rejected).

Cost per block: (C + 2·steps) · K real FFTs of size N plus O(C·K·N) elementwise work.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .windows import frame_offsets, hann_window, hann_window_derivative

__all__ = ["OnlineAdapter"]

DEFAULT_OFFSETS = (0.12, 0.3, 0.7, 1.4)


class OnlineAdapter:
    """Chooses θ for successive blocks of frames; keeps the emitted frames' context.

    Args:
        n_fft: N. radius: r (frames). kind: "shannon" | "renyi". alpha: Rényi order.
        smoothness: λ. lr: η, the gradient step in log θ. steps: gradient steps per block (>= 0).
        offsets: the bracket δ_1..δ_D in log θ.
        normalization: the window gain ("l1" | "peak"). device, dtype: where the math runs.
    """

    def __init__(
        self,
        n_fft: int,
        radius: int = 4,
        kind: str = "shannon",
        alpha: float = 3.0,
        smoothness: float = 0.02,
        lr: float = 0.1,
        steps: int = 1,
        offsets: tuple = DEFAULT_OFFSETS,
        normalization: str = "l1",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.n_fft = n_fft
        self.normalization = normalization
        self.device = torch.device(device)
        self.dtype = dtype
        self.kind, self.alpha, self.smoothness, self.lr, self.steps = kind, alpha, smoothness, lr, steps
        self._offsets_u = frame_offsets(n_fft, self.device, dtype)
        self._deltas = np.array([0.0] + [s * d for d in offsets for s in (1.0, -1.0)])
        self.radius = radius

    @property
    def radius(self) -> int:
        return self._radius

    @radius.setter
    def radius(self, r: int) -> None:
        self._radius = int(r)
        self._masks: dict[int, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        """Forgets the emitted context (the start of a new stream): r frames of silence."""
        r = self._radius
        self._ctx_power = torch.zeros(r, self.n_fft // 2 + 1, device=self.device, dtype=self.dtype)
        self._ctx_z = np.zeros(r)
        self._ctx_q = np.zeros(r)

    def _mask(self, k: int) -> np.ndarray:
        """A[i, j] = 1 where sequence column j (r context frames, then the block) lies in the
        neighbourhood of block frame i, [K, r + K]."""
        if k not in self._masks:
            r = self._radius
            i = np.arange(k)[:, None] + r
            j = np.arange(r + k)[None, :]
            self._masks[k] = (np.abs(j - i) <= r).astype(np.float64)
        return self._masks[k]

    def _columns(self, power: torch.Tensor):
        """Per-frame sums over bins as float64 numpy, Z = Σ P and Q = Σ P log P (Shannon) or Σ P^α,
        and log P (Shannon, kept for the gradient; None for Rényi)."""
        z = power.sum(-1)
        log_power = None
        if self.kind == "shannon":
            log_power = _log(power)
            q = (power * log_power).sum(-1)
        else:
            q = power.pow(self.alpha).sum(-1)
        return z.cpu().double().numpy(), q.cpu().double().numpy(), log_power

    def _local_entropy(self, z_blk: np.ndarray, q_blk: np.ndarray):
        """H_r for the block's frames. z_blk, q_blk: [C, K] -> (H [C, K], Z, Q neighbourhood sums).

        The small per-frame math runs in numpy: a handful of [C, r + K] arrays, where torch's
        per-operation overhead would dominate.
        """
        mask = self._mask(z_blk.shape[-1])
        z = np.concatenate([np.broadcast_to(self._ctx_z, (z_blk.shape[0], self._radius)), z_blk], -1) @ mask.T
        q = np.concatenate([np.broadcast_to(self._ctx_q, (q_blk.shape[0], self._radius)), q_blk], -1) @ mask.T
        zs = np.maximum(z, _TINY)
        if self.kind == "shannon":
            h = np.log(zs) - q / zs
        else:
            h = (np.log(np.maximum(q, _TINY)) - self.alpha * np.log(zs)) / (1.0 - self.alpha)
        return h, zs, q

    def _spectra(self, frames: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """S for every θ in theta [C] and frame in frames [K, N]: [C, K, M]."""
        w = hann_window(theta, self.n_fft, self.normalization, self._offsets_u)
        return torch.fft.rfft(frames.unsqueeze(0) * w.unsqueeze(1))

    def _gradient(
        self, frames, spec, power, log_power, theta, z, q, log_theta: float, log_prev: float
    ) -> float:
        """dJ/d log θ at one θ (a [1] tensor); spec, power, log_power [K, M]; z, q [K] neighbourhood sums."""
        _, dw = hann_window_derivative(theta, self.n_fft, self.normalization, self._offsets_u)
        dspec = torch.fft.rfft(frames * dw)
        dpower = 2.0 * (spec * dspec.conj()).real
        mask = self._mask(frames.shape[0])[:, self._radius :]  # the context does not move with θ
        dz = dpower.sum(-1).cpu().double().numpy() @ mask.T
        if self.kind == "shannon":
            dq = ((log_power + 1.0) * dpower).sum(-1).cpu().double().numpy() @ mask.T
            dh = (dz - dq + q * dz / z) / z
        else:
            da = (self.alpha * power.pow(self.alpha - 1.0) * dpower).sum(-1).cpu().double().numpy()
            dh = ((da @ mask.T) / np.maximum(q, _TINY) - self.alpha * dz / z) / (1.0 - self.alpha)
        return float(theta) * float(dh.mean()) + 2.0 * self.smoothness * (log_theta - log_prev)

    def step(self, frames: torch.Tensor, theta_prev: float, win_min: float, win_max: float):
        """Chooses θ for one block and returns (θ, S [K, M]); S becomes context for the next block.

        frames: [K, N] real, the block's frames (zero padded at the ends of the stream).
        theta_prev: θ of the previous block (samples). win_min, win_max: bounds (samples).
        """
        lo, hi = math.log(win_min), math.log(win_max)
        log_prev = min(max(math.log(theta_prev), lo), hi)
        log_cand = np.clip(log_prev + self._deltas, lo, hi)
        theta_cand = torch.from_numpy(np.exp(log_cand)).to(self.device, self.dtype)
        spec = self._spectra(frames, theta_cand)
        power = _power(spec)
        z_blk, q_blk, log_power = self._columns(power)
        h, z, q = self._local_entropy(z_blk, q_blk)
        obj = h.mean(-1) + self.smoothness * (log_cand - log_prev) ** 2
        best = int(np.argmin(obj))
        best_obj, best_log = float(obj[best]), float(log_cand[best])
        best_theta, best_spec, best_power = theta_cand[best : best + 1], spec[best], power[best]
        best_log_power = None if log_power is None else log_power[best]
        best_z, best_q = z[best], q[best]
        eta = self.lr
        for _ in range(self.steps):
            grad = self._gradient(
                frames, best_spec, best_power, best_log_power, best_theta, best_z, best_q, best_log, log_prev
            )
            if grad == 0.0 or not math.isfinite(grad):
                break
            trial_log = min(max(best_log - math.copysign(eta, grad), lo), hi)
            trial_theta = torch.full((1,), math.exp(trial_log), device=self.device, dtype=self.dtype)
            trial_spec = self._spectra(frames, trial_theta)[0]
            trial_power = _power(trial_spec)
            tz_blk, tq_blk, trial_log_power = self._columns(trial_power.unsqueeze(0))
            th, tz, tq = self._local_entropy(tz_blk, tq_blk)
            trial_obj = float(th.mean()) + self.smoothness * (trial_log - log_prev) ** 2
            if trial_obj < best_obj:
                best_obj, best_log, best_theta = trial_obj, trial_log, trial_theta
                best_spec, best_power, best_z, best_q = trial_spec, trial_power, tz[0], tq[0]
                best_log_power = None if trial_log_power is None else trial_log_power[0]
            else:
                eta *= 0.5
        self._push(best_power)
        return float(best_theta), best_spec

    def push_context(self, spec: torch.Tensor) -> None:
        """Appends emitted frames S [K, M] (chosen elsewhere, e.g. a fixed θ) to the context."""
        self._push(_power(spec))

    def _push(self, power: torch.Tensor) -> None:
        """Keeps the per-frame sums of the last r emitted frames (recomputed if the kind changes)."""
        r = self._radius
        if r == 0:
            return
        z, q, _ = self._columns(power.unsqueeze(0))
        self._ctx_power = torch.cat([self._ctx_power, power])[-r:]
        self._ctx_z = np.concatenate([self._ctx_z, z[0]])[-r:]
        self._ctx_q = np.concatenate([self._ctx_q, q[0]])[-r:]

    def refresh_context(self) -> None:
        """Recomputes the context sums after the entropy kind or α changed."""
        if self._radius:
            z, q, _ = self._columns(self._ctx_power.unsqueeze(0))
            self._ctx_z, self._ctx_q = z[0], q[0]


_TINY = np.finfo(np.float64).tiny


def _power(spec: torch.Tensor) -> torch.Tensor:
    """|S|² as a real tensor (one complex multiply: faster than squaring strided real/imag views)."""
    return (spec * spec.conj()).real


def _log(power: torch.Tensor) -> torch.Tensor:
    """log P with log 0 := 0 (so that P log P = 0 there).

    On the CPU numpy's vectorised log is about three times faster than torch's for float32, and this
    is the adapter's most expensive elementwise operation; the result shares memory with a tensor.
    """
    if power.device.type == "cpu":
        p = power.numpy()
        out = np.zeros_like(p)
        np.log(p, out=out, where=p > 0)
        return torch.from_numpy(out)
    return torch.log(power.clamp_min(torch.finfo(power.dtype).tiny))
