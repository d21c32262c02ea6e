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
        self._deltas = torch.tensor(
            [0.0] + [s * d for d in offsets for s in (1.0, -1.0)], device=self.device, dtype=dtype
        )
        self.radius = radius
        self.reset()

    @property
    def radius(self) -> int:
        return self._radius

    @radius.setter
    def radius(self, r: int) -> None:
        self._radius = int(r)
        self._context = torch.zeros(self._radius, self.n_fft // 2 + 1, device=self.device, dtype=self.dtype)
        self._masks: dict[int, torch.Tensor] = {}

    def reset(self) -> None:
        """Forgets the emitted context (the start of a new stream)."""
        self._context.zero_()

    def _mask(self, k: int) -> torch.Tensor:
        """A[i, j] = 1 where sequence column j lies in the neighbourhood of block frame i, [K, r + K]."""
        if k not in self._masks:
            r = self._radius
            i = torch.arange(k, device=self.device).unsqueeze(1) + r
            j = torch.arange(r + k, device=self.device).unsqueeze(0)
            self._masks[k] = ((j - i).abs() <= r).to(self.dtype)
        return self._masks[k]

    def _columns(self, power: torch.Tensor):
        """Per-frame sums over bins: Z = Σ P and Q = Σ P log P (Shannon) or Σ P^α (Rényi)."""
        z = power.sum(-1)
        q = torch.xlogy(power, power).sum(-1) if self.kind == "shannon" else power.pow(self.alpha).sum(-1)
        return z, q

    def _local_entropy(self, z_blk, q_blk):
        """H_r for the block's frames. z_blk, q_blk: [C, K] -> (H [C, K], Z, Q neighbourhood sums)."""
        k = z_blk.shape[-1]
        zc, qc = self._columns(self._context)
        mask = self._mask(k)
        z = torch.cat([zc.expand(z_blk.shape[0], -1), z_blk], -1) @ mask.T
        q = torch.cat([qc.expand(q_blk.shape[0], -1), q_blk], -1) @ mask.T
        tiny = torch.finfo(self.dtype).tiny
        zs = z.clamp_min(tiny)
        if self.kind == "shannon":
            h = torch.log(zs) - q / zs
        else:
            h = (torch.log(q.clamp_min(tiny)) - self.alpha * torch.log(zs)) / (1.0 - self.alpha)
        return h, zs, q

    def _objective(self, h, log_theta, log_prev):
        return h.mean(-1) + self.smoothness * (log_theta - log_prev).square()

    def _spectra(self, frames: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """S for every θ in theta [C] and frame in frames [K, N]: [C, K, M]."""
        w = hann_window(theta, self.n_fft, self.normalization, self._offsets_u)
        return torch.fft.rfft(frames.unsqueeze(0) * w.unsqueeze(1))

    def _power(self, spec):
        return spec.real.square() + spec.imag.square()

    def _gradient(self, frames, spec, theta, h, z, q, log_theta, log_prev) -> float:
        """dJ/d log θ at one θ; spec [K, M], h/z/q [1, K]."""
        _, dw = hann_window_derivative(theta.reshape(1), self.n_fft, self.normalization, self._offsets_u)
        dspec = torch.fft.rfft(frames * dw)
        power = self._power(spec)
        dpower = 2.0 * (spec.real * dspec.real + spec.imag * dspec.imag)
        mask = self._mask(frames.shape[0])[:, self._radius :]  # context does not move with θ
        dz = (dpower.sum(-1) @ mask.T).unsqueeze(0)
        if self.kind == "shannon":
            dq = ((torch.log(power.clamp_min(torch.finfo(self.dtype).tiny)) + 1.0) * dpower).sum(-1)
            dq = (dq @ mask.T).unsqueeze(0)
            dh = (dz - dq + q * dz / z) / z
        else:
            da = (self.alpha * power.pow(self.alpha - 1.0) * dpower).sum(-1)
            da = (da @ mask.T).unsqueeze(0)
            dh = (da / q.clamp_min(torch.finfo(self.dtype).tiny) - self.alpha * dz / z) / (1.0 - self.alpha)
        return float(theta * dh.mean()) + 2.0 * self.smoothness * (log_theta - log_prev)

    def step(self, frames: torch.Tensor, theta_prev: float, win_min: float, win_max: float):
        """Chooses θ for one block and returns (θ, S [K, M]); S becomes context for the next block.

        frames: [K, N] real, the block's frames (zero padded at the ends of the stream).
        theta_prev: θ of the previous block (samples). win_min, win_max: bounds (samples).
        """
        lo, hi = math.log(win_min), math.log(win_max)
        log_prev = min(max(math.log(theta_prev), lo), hi)
        log_cand = (log_prev + self._deltas).clamp(lo, hi)
        theta_cand = log_cand.exp()
        spec = self._spectra(frames, theta_cand)
        z_blk, q_blk = self._columns(self._power(spec))
        h, z, q = self._local_entropy(z_blk, q_blk)
        obj = self._objective(h, log_cand, log_prev)
        best = int(torch.argmin(obj))
        best_obj, best_log = float(obj[best]), float(log_cand[best])
        best_theta, best_spec = theta_cand[best : best + 1], spec[best]
        best_hzq = (h[best : best + 1], z[best : best + 1], q[best : best + 1])
        eta = self.lr
        for _ in range(self.steps):
            grad = self._gradient(frames, best_spec, best_theta, *best_hzq, best_log, log_prev)
            if grad == 0.0 or not math.isfinite(grad):
                break
            trial_log = min(max(best_log - math.copysign(eta, grad), lo), hi)
            trial_theta = torch.tensor([math.exp(trial_log)], device=self.device, dtype=self.dtype)
            trial_spec = self._spectra(frames, trial_theta)[0]
            tz, tq = self._columns(self._power(trial_spec))
            th, tzs, tqs = self._local_entropy(tz.unsqueeze(0), tq.unsqueeze(0))
            trial_obj = float(self._objective(th, torch.tensor(trial_log), log_prev))
            if trial_obj < best_obj:
                best_obj, best_log, best_theta, best_spec = trial_obj, trial_log, trial_theta, trial_spec
                best_hzq = (th, tzs, tqs)
            else:
                eta *= 0.5
        self.push_context(best_spec)
        return float(best_theta), best_spec

    def push_context(self, spec: torch.Tensor) -> None:
        """Appends emitted frames S [K, M] to the context (keeps the last r power spectra)."""
        r = self._radius
        if r == 0:
            return
        power = self._power(spec)
        if power.shape[0] >= r:
            self._context.copy_(power[-r:])
        else:
            k = power.shape[0]
            self._context[:-k] = self._context[k:].clone()
            self._context[-k:] = power
