r"""Online adaptation of the window length, one block of K frames at a time.

For each block the adapter chooses one θ for its K frames (a per-block constant; consecutive blocks
are tied by the smoothness term) by minimising, in s = log θ ∈ [log win_min, log win_max],

    J(s) = Σ_{n in scored} a_n H_r[n](s) + λ (s - s_prev)²

where H_r[n] is the local entropy (Shannon or Rényi of P = |S|², as :func:`rtdstft.entropy` with
``radius=r``; 0 where the neighbourhood holds no energy) of frames n-r..n+r, and
the scored frames are the block's K frames and the r emitted frames before it (their neighbourhoods
reach into the block, so the block's θ changes their entropy too). The 2r emitted frames before the
block are fixed context; frames after it are not known yet (no look-ahead beyond N/2). The weight
a_n ∝ the number of n's 2r + 1 neighbours known when the block is decided (Σ a_n = 1): the block's
last r frames see only part of their neighbourhood, and their entropy says less about the block's θ.

The search is robust first, then precise:
1. Bracket: J at s_prev + {0, ±δ_1, ..., ±δ_D} (default δ = 0.25, 0.7, 1.4; the widest pair
   replaced by the bounds log win_min and log win_max; candidates that the bounds make equal are
   replaced by midpoints of the widest gaps) in one batched FFT of [C, K, N]. It sees
   both sides at once, so it follows an abrupt change in one or two blocks, reaching either bound
   in one, and is not misled where the gradient's sign is (a block that mixes characters).
2. Refine, one of:
   - ``steps = 0`` (default): the vertex of the parabola through the best candidate and its two
     neighbours is evaluated and kept if it lowers J (one FFT of [K, N]);
   - ``steps >= 1``: that many gradient steps from the best candidate, with the exact dJ/ds written
     out by hand,

         dP/dθ = 2 Re(conj(S) · rfft(frames · ∂w/∂θ)),
         Shannon: dH = (dZ - dQ + Q dZ / Z) / Z  with Z = Σ P, Q = Σ P log P (neighbourhood sums)
         Rényi:   dH = (dA / A - α dZ / Z) / (1 - α)  with A = Σ P^α, dA = α Σ P^(α-1) dP,

     each a normalised step s ← s - η · sign(dJ/ds), kept only if it lowers J, else halved (two
     FFTs of [K, N] per step). Measured on the scenes of :mod:`rtdstft.scenes` at 48 kHz, the
     parabola closes as much of the fixed-to-oracle gap as one gradient step, for a third of its
     cost, hence the default; the steps are there for wide θ ranges, where the bracket is coarse.
3. Hold: where the block's mean frame power at θ_prev differs from its context's by more than
   6 dB (``LEVEL_CHANGE``: an onset, a click, the quiet after one) the sound has changed and the
   move stands. Elsewhere it stands only if it also wins when the 2r context frames are taken at
   each θ (one more FFT of [2r, N]) by ``steadiness`` nats per unit of |Δ log θ|. Scored against
   context frames emitted at θ_prev, a block whose θ differs makes neighbourhoods of unlike frames
   (with the l1 gain, a broadband frame's power goes as 1/θ) whose entropy is low for that reason
   alone; on noise the search then jumped between the bounds every block. On a click train the
   same effect is real (short windows on the clicks, long ones between them), which the level
   test lets through. Measured at 48 kHz with the rate-suited defaults, the mean |Δ log θ| per
   block is 0 on white noise, 0.03 on pink noise and 0 on a steady chord (1.40, 0.34 and 0 without
   the hold), while the engine closes 0.91–0.97 of the gap to the per-block oracle on the quality
   scenes (:func:`rtdstft.scenes.adaptation_report`).

Cost per block: (C + 1 + 2·steps) · K real FFTs of size N and O(C·K·N) elementwise work, plus 2r
FFTs when a move is proposed.

:class:`BandedAdapter` does the same per frequency band, on band-restricted local entropies.
:class:`LockstepAdapter` steps I streams side by side (the files of a corpus), each item's θ and
spectra bit for bit those of its own :class:`OnlineAdapter`, its candidates evaluated with the other
items' in one batched FFT.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from .windows import frame_offsets, hann_window, hann_window_derivative

__all__ = ["OnlineAdapter", "LockstepAdapter", "BandedAdapter"]

DEFAULT_OFFSETS = (0.25, 0.7, 1.4)
DEFAULT_STEADINESS = 0.15
#: |log| of the ratio of a block's mean frame power to its context's (both at θ_prev) above which
#: the sound is taken to have changed and a move needs no further evidence: log 4 (6 dB). On
#: stationary noise at 48 kHz the ratio stays within 0.4 (90 % of blocks); at a click or an onset it
#: is far above.
LEVEL_CHANGE = math.log(4.0)
#: θ sets of single items whose windows :meth:`OnlineAdapter.windows` remembers for an item axis
#: (the lockstep's items, each resting or moving on its own): 64 sets of C = 7 at N = 1024 hold
#: 1.8 MB.
ITEM_WINDOW_SLOTS = 64


class OnlineAdapter:
    """Chooses θ for successive blocks of frames; keeps the emitted frames' context.

    Args:
        n_fft: N. radius: r (frames). kind: "shannon" | "renyi". alpha: Rényi order.
        smoothness: λ. offsets: the bracket δ_1..δ_D in log θ. refine: parabolic refinement when steps = 0.
        steps: gradient steps per block (>= 0). lr: η, the gradient step in log θ.
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
        steps: int = 0,
        offsets: tuple = DEFAULT_OFFSETS,
        refine: bool = True,
        steadiness: float = DEFAULT_STEADINESS,
        normalization: str = "l1",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.n_fft = n_fft
        self.steadiness = steadiness
        self.normalization = normalization
        self.device = torch.device(device)
        self.dtype = dtype
        self.kind, self.alpha, self.smoothness, self.lr, self.steps = kind, alpha, smoothness, lr, steps
        self.refine = refine
        self._offsets_u = frame_offsets(n_fft, self.device, dtype)
        self._window_cache: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}
        self._item_window_cache: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}  # by row
        self._scratch: dict = {}  # reusable buffers of the bracket's evaluation (see _buffer)
        self._deltas = np.array([0.0] + [s * d for d in offsets for s in (1.0, -1.0)])
        self._brackets: dict[tuple[float, float, float], np.ndarray] = {}
        self.radius = radius

    @property
    def radius(self) -> int:
        return self._radius

    @radius.setter
    def radius(self, r: int) -> None:
        self._radius = int(r)
        self._masks: dict[int, np.ndarray] = {}
        self._weight_cache: dict[int, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        """Forgets the emitted context (the start of a new stream): r frames of silence."""
        c = 2 * self._radius
        self._ctx_power = torch.zeros(c, self.n_fft // 2 + 1, device=self.device, dtype=self.dtype)
        self._ctx_z = np.zeros(c)
        self._ctx_q = np.zeros(c)
        self._ctx_frames = torch.zeros(c, self.n_fft, device=self.device, dtype=self.dtype)
        self._ctx_theta = np.full(c, np.nan)
        self._ctx_sums: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _mask(self, k: int) -> np.ndarray:
        """A[i, j] = 1 where sequence column j lies in the neighbourhood of scored frame i, [r + K, 2r + K].

        The sequence is the last 2r emitted frames, then the block's K frames. The scored frames are
        the last r emitted ones (their neighbourhoods reach into the block, so the block's θ changes
        their entropy) and the block's own.
        """
        if k not in self._masks:
            r = self._radius
            i = np.arange(r + k)[:, None] + r
            j = np.arange(2 * r + k)[None, :]
            self._masks[k] = (np.abs(j - i) <= r).astype(np.float64)
        return self._masks[k]

    def _bracket(self, log_prev: float, lo: float, hi: float) -> np.ndarray:
        """:func:`_bracket` of this adapter's deltas, remembered (read-only): θ rests for many
        blocks, on a bound or elsewhere, and then asks for the same few brackets over and over."""
        key = (log_prev, lo, hi)
        c = self._brackets.get(key)
        if c is None:
            if len(self._brackets) >= 256:
                self._brackets.clear()
            c = self._brackets[key] = _bracket(log_prev, self._deltas, lo, hi)
            c.flags.writeable = False
        return c

    def _weights(self, k: int) -> np.ndarray:
        """Each scored frame's weight in J [r + K]: the share of its neighbourhood known when the
        block is decided. The block's last r frames see only part of theirs (the frames after the
        block are not known yet), and their entropy then says less about the block's θ."""
        w = self._weight_cache.get(k)
        if w is None:
            w = self._mask(k).sum(1)
            w = self._weight_cache[k] = w / w.sum()
        return w

    def _evaluate(self, frames: torch.Tensor, log_theta: np.ndarray, log_prev, ctx=None) -> _Candidates:
        """J for every θ = exp(log_theta) [C] over the block's frames [K, N], in one batched FFT.

        With a leading item axis (:class:`LockstepAdapter`): frames [I, K, N], log_theta [I, C],
        log_prev [I, 1] and ``ctx``, each item's context part of the neighbourhood sums (Z, Q) as
        [I, 1, r + K] (default: this adapter's context); every field of the result then has the
        item axis first. Each item's numbers are those of its own evaluation, bit for bit.
        """
        theta, w = self.windows(log_theta)
        if log_theta.ndim > 1 and frames.device.type == "cpu":
            # Side by side, every evaluation is used up within its step (θ decided, the chosen
            # spectra copied out), the bracket's and the parabola's each in buffers of its own,
            # reused at the next step: the windowed frames, P and log P, some MB, which fresh
            # would cost a page fault per 4 KiB at their first touch (more than the arithmetic).
            # Not S: torch's rfft with out= transforms into a new tensor and copies it there.
            scratch = self._scratch.setdefault("bracket" if log_theta.shape[-1] > 1 else "vertex", {})
            shape = (*log_theta.shape, *frames.shape[-2:])
            windowed = _buffer(scratch, "windowed", shape, frames.dtype)
            torch.mul(frames.unsqueeze(-3), w.unsqueeze(-2), out=windowed)
            spec = torch.fft.rfft(windowed)  # [I, C, K, M]
        else:
            spec = torch.fft.rfft(frames.unsqueeze(-3) * w.unsqueeze(-2))  # [C, K, M]
            # The bracket's P and log P go to buffers reused at the next block (C > 1 only: a single
            # candidate's may still be needed by a later gradient step within the block).
            scratch = self._scratch if log_theta.shape[-1] > 1 else None
        power = _power(spec, scratch)
        z_col, q_col, log_power = self._columns(power, scratch)
        # The small per-frame math runs in numpy ([C, r + K] arrays), where torch's per-operation
        # overhead would dominate. Neighbourhood sums = the fixed context's part + the block's part.
        r2 = 2 * self._radius
        k = frames.shape[-2]
        mask = self._mask(k)
        ctx_z, ctx_q = self._context_sums(k) if ctx is None else ctx
        z = z_col @ mask[:, r2:].T + ctx_z
        q = q_col @ mask[:, r2:].T + ctx_q
        h = self._entropy(z, q)
        obj = h @ self._weights(k) + self.smoothness * (log_theta - log_prev) ** 2
        return _Candidates(log_theta, theta, w, spec, power, log_power, z_col, q_col, z, q, h, obj)

    def _context_sums(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The emitted context's part of the scored frames' neighbourhood sums Z and Q [r + K],
        remembered until the context changes (a block evaluates several candidate sets on it)."""
        sums = self._ctx_sums.get(k)
        if sums is None:
            mask = self._mask(k)[:, : 2 * self._radius]
            sums = self._ctx_sums[k] = self._ctx_z @ mask.T, self._ctx_q @ mask.T
        return sums

    def _entropy(self, z: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Local entropy from neighbourhood sums Z and Q (any shape)."""
        silent = z <= 0  # no energy in the neighbourhood: entropy 0, as rtdstft.entropy says
        any_silent = silent.any()
        if any_silent:
            z, q = np.where(silent, 1.0, z), np.where(silent, 1.0, q)
        if self.kind == "shannon":
            h = np.log(z) - q / z
        else:
            # Σ P^α may underflow to 0 in a quiet (not silent) neighbourhood: keep its log finite.
            h = (np.log(np.maximum(q, _TINY)) - self.alpha * np.log(z)) / (1.0 - self.alpha)
        if any_silent:
            h[silent] = 0.0
        return h

    def windows(self, log_theta: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """θ [C] and w(θ) [C, N], remembered for the last few θ sets: while θ rests (a steady tone at
        θ_max, say) every block asks for the same bracket. With an item axis (θ sets [I, C], the
        lockstep's), item by item (:meth:`_item_windows`)."""
        if log_theta.ndim > 1:
            return self._item_windows(log_theta)
        key = log_theta.tobytes()
        hit = self._window_cache.pop(key, None)
        if hit is None:
            theta = torch.from_numpy(np.exp(log_theta)).to(self.device, self.dtype)
            hit = theta, hann_window(theta, self.n_fft, self.normalization, self._offsets_u)
            if len(self._window_cache) >= 8:
                self._window_cache.pop(next(iter(self._window_cache)))
        self._window_cache[key] = hit
        return hit

    def _item_windows(self, log_theta: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """θ [I, C] and w(θ) [I, C, N] of I items' θ sets, each item's set remembered alone (the
        last :data:`ITEM_WINDOW_SLOTS`): side by side, one item's θ rests while another's moves, so
        the whole [I, C] array seldom repeats, while most of its rows do (often several items' the
        same: resting on a bound). w is elementwise in θ: a row has the same bits computed alone or
        beside others; the rows not remembered are computed together, in one call."""
        cache = self._item_window_cache
        keys = [row.tobytes() for row in log_theta]
        new: dict[bytes, int] = {}  # sets not remembered -> their first row
        for j, key in enumerate(keys):
            if key not in cache and key not in new:
                new[key] = j
        if new:
            theta = torch.from_numpy(np.exp(log_theta[list(new.values())])).to(self.device, self.dtype)
            w = hann_window(theta, self.n_fft, self.normalization, self._offsets_u)
            if len(new) == len(keys):
                for q, key in enumerate(new):
                    cache[key] = theta[q].clone(), w[q].clone()  # alone: a view would hold the batch
                self._forget_item_windows()
                return theta, w
            for q, key in enumerate(new):
                cache[key] = theta[q].clone(), w[q].clone()
        rows = []
        for key in keys:
            row = cache[key] = cache.pop(key)  # to the end: the most recently used
            rows.append(row)
        self._forget_item_windows()
        return torch.stack([row[0] for row in rows]), torch.stack([row[1] for row in rows])

    def _forget_item_windows(self) -> None:
        cache = self._item_window_cache
        while len(cache) > ITEM_WINDOW_SLOTS:
            cache.pop(next(iter(cache)))

    def _gradient(self, frames: torch.Tensor, cand: _Candidates, i: int, log_prev: float) -> float:
        """dJ/d log θ at candidate i (see the module docstring for the formulas)."""
        theta = cand.theta[i : i + 1]
        dw = hann_window_derivative(theta, self.n_fft, self.normalization, self._offsets_u)
        dspec = torch.fft.rfft(frames * dw)
        dpower = 2.0 * (cand.spec[i] * dspec.conj()).real
        mask = self._mask(frames.shape[0])[:, 2 * self._radius :]  # the context does not move with θ
        z, q = cand.z[i], cand.q[i]  # 0 where the neighbourhood is silent
        dz = _np(dpower.sum(-1)) @ mask.T
        # z = 0 where a neighbourhood is silent: 0/0 there makes the gradient NaN, which ends the
        # steps (``step`` checks it), so the division's warning says nothing new.
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "shannon":
                dq = _np(((cand.log_power[i] + 1.0) * dpower).sum(-1)) @ mask.T
                dh = (dz - dq + q * dz / z) / z
            else:
                da = _np((cand.power[i].pow(self.alpha - 1.0) * dpower).sum(-1)) @ mask.T
                dh = (self.alpha * da / np.maximum(q, _TINY) - self.alpha * dz / z) / (1.0 - self.alpha)
        return math.exp(cand.log_theta[i]) * float(
            dh @ self._weights(frames.shape[0])
        ) + 2.0 * self.smoothness * (cand.log_theta[i] - log_prev)

    def step(self, frames: torch.Tensor, theta_prev: float, win_min: float, win_max: float):
        """Chooses θ for one block; returns (θ, S [K, M], w [1, N]); S becomes context.

        frames: [K, N] real, the block's frames (zero padded at the ends of the stream).
        theta_prev: θ of the previous block (samples). win_min, win_max: bounds (samples).
        """
        lo, hi = math.log(win_min), math.log(win_max)
        log_prev = min(max(math.log(theta_prev), lo), hi)
        log_c = self._bracket(log_prev, lo, hi)
        bracket = best = self._evaluate(frames, log_c, log_prev)
        i = int(np.argmin(best.obj))
        if self.steps == 0 and self.refine:
            best, i = self._refine(frames, best, i, log_prev)
        eta = self.lr
        for _ in range(self.steps):
            grad = self._gradient(frames, best, i, log_prev)
            if grad == 0.0 or not math.isfinite(grad):
                break
            trial_log = min(max(best.log_theta[i] - math.copysign(eta, grad), lo), hi)
            trial = self._evaluate(frames, np.array([trial_log]), log_prev)
            if trial.obj[0] < best.obj[i]:
                best, i = trial, 0
            else:
                eta *= 0.5
        moved = best.log_theta[i] != log_prev
        if moved and not self._confirmed(best, i, bracket, log_prev):
            best, i = bracket, 0  # θ_prev (candidate 0) holds
        self._push(best.power[i], best.z_col[i], best.q_col[i], frames, float(best.theta[i]))
        return float(best.theta[i]), best.spec[i], best.w[i : i + 1]

    def _context_at(self, cand: _Candidates, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The context's per-frame Z, Q [2r] at candidate i's θ (as emitted where it was emitted
        at that θ, or is unknown)."""
        theta = float(cand.theta[i])
        if np.all(self._ctx_theta == theta) or np.isnan(self._ctx_theta).any():
            return self._ctx_z, self._ctx_q
        power = _power(torch.fft.rfft(self._ctx_frames * cand.w[i : i + 1]))
        ctx_z, ctx_q, _ = self._columns(power)
        return ctx_z, ctx_q

    def _homogeneous(self, cand: _Candidates, i: int, ctx: tuple[np.ndarray, np.ndarray]) -> float:
        """J without its penalty (the scored frames' weighted mean local entropy) with the context
        ``ctx`` (its Z, Q at candidate i's θ)."""
        r2 = 2 * self._radius
        k = cand.z_col.shape[-1]
        mask = self._mask(k)
        z = cand.z_col[i] @ mask[:, r2:].T + ctx[0] @ mask[:, :r2].T
        q = cand.q_col[i] @ mask[:, r2:].T + ctx[1] @ mask[:, :r2].T
        return float(self._entropy(z, q) @ self._weights(k))

    def _confirmed(self, best: _Candidates, i: int, held: _Candidates, log_prev: float) -> bool:
        """Whether the move to best's θ stands.

        Where the block's level at θ_prev differs from its context's by more than
        :data:`LEVEL_CHANGE` (an onset, a click, the gap after one), the sound has changed and
        the plain score, which chose the move, decides. Elsewhere the sound may be holding still,
        and the plain score misleads: scored against context frames emitted at θ_prev, a block
        whose θ differs makes neighbourhoods of unlike frames (with the l1 gain, broadband power
        per frame goes as 1/θ), whose entropy drops for that reason alone, and on noise the search
        would jump to and fro every block. There a move must also win when both sides are judged
        on a spectrogram of one θ (the context, too, taken at each θ), by ``steadiness`` nats per
        unit of |Δ log θ|: on pink noise J still wanders by a few tenths of a nat from block to
        block, while a real change of character moves it by more.
        """
        held_ctx = self._context_at(held, 0)
        if _level_change(held.z_col[0], held_ctx[0]) > LEVEL_CHANGE:
            return True
        step = abs(best.log_theta[i] - log_prev)
        move = self._homogeneous(best, i, self._context_at(best, i)) + self.smoothness * step**2
        return move < self._homogeneous(held, 0, held_ctx) - self.steadiness * step

    def _refine(self, frames: torch.Tensor, cand: _Candidates, i: int, log_prev: float):
        """Parabolic interpolation through the best candidate and its neighbours in log θ; the vertex
        is evaluated and kept only if it lowers J. Returns (candidates, index of the best)."""
        vertex = _vertex(cand.log_theta, cand.obj, i)
        if not math.isfinite(vertex):
            return cand, i
        trial = self._evaluate(frames, np.array([vertex]), log_prev)
        return (trial, 0) if trial.obj[0] < cand.obj[i] else (cand, i)

    def push_context(self, spec: torch.Tensor, frames: torch.Tensor | None = None, theta: float = math.nan):
        """Appends emitted frames S [K, M] (chosen elsewhere, e.g. at a fixed θ) to the context, with
        their samples [K, N] and θ when known (a move is then confirmed on the context at one θ;
        otherwise on the context as emitted)."""
        if self._radius:
            power = _power(spec)
            z_col, q_col, _ = self._columns(power)
            if frames is None:
                frames = torch.zeros(spec.shape[0], self.n_fft, device=self.device, dtype=self.dtype)
            self._push(power, z_col, q_col, frames, theta)

    def _columns(self, power: torch.Tensor, scratch: dict | None = None):
        """Per-frame Z = Σ_m P and Q = Σ_m P log P (Shannon) or Σ_m P^α (Rényi), numpy [..., F], and
        log P (Shannon, for a gradient step; None for Rényi)."""
        z_col = _np(power.sum(-1))
        if self.kind == "shannon":
            log_power, q_col = _shannon_columns(power, scratch)
            return z_col, q_col, log_power
        return z_col, _np(power.pow(self.alpha).sum(-1)), None

    def _push(self, power, z_col: np.ndarray, q_col: np.ndarray, frames: torch.Tensor, theta: float) -> None:
        """Keeps the last 2r emitted frames: their samples, θ, power spectra and per-frame sums."""
        c = 2 * self._radius
        if c == 0:
            return
        self._ctx_sums = {}
        self._ctx_frames = _shift_in_tensor(self._ctx_frames, frames)
        self._ctx_power = _shift_in_tensor(self._ctx_power, power)
        _shift_in(self._ctx_theta, np.full(frames.shape[0], theta))
        _shift_in(self._ctx_z, z_col)
        _shift_in(self._ctx_q, q_col)

    def refresh_context(self) -> None:
        """Recomputes the context sums after the entropy kind or α changed."""
        if self._radius:
            self._ctx_z, self._ctx_q, _ = self._columns(self._ctx_power)
            self._ctx_sums = {}


class LockstepAdapter:
    """I independent streams adapted side by side: each item has its own θ, context and decisions,
    exactly those of an :class:`OnlineAdapter` fed that item's blocks alone (bit for bit), while the
    candidates of all the items go through one batched FFT and one pass of numpy.

    Item j is an :class:`OnlineAdapter` of its own (``self.items[j]``: its context, its decisions);
    the batched evaluation is :meth:`OnlineAdapter._evaluate` with an item axis. The bracket, the
    parabola's vertex, the move's confirmation and the context's update are the single stream's
    own functions, called item by item: one decision rule, whichever path runs it. The refinement
    is the parabola (``steps = 0``, ``refine``); gradient steps have no lockstep form.

    Args:
        n_fft: N. items: I (>= 1). The rest as for :class:`OnlineAdapter`.

    Cost per block of I items: (C + 1) · I · K real FFTs of size N in two calls, plus I · 2r for
    the items whose move is being confirmed.
    """

    def __init__(
        self,
        n_fft: int,
        items: int,
        radius: int = 4,
        kind: str = "shannon",
        alpha: float = 3.0,
        smoothness: float = 0.02,
        offsets: tuple = DEFAULT_OFFSETS,
        refine: bool = True,
        steadiness: float = DEFAULT_STEADINESS,
        normalization: str = "l1",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if isinstance(items, bool) or not isinstance(items, int) or items < 1:
            raise ValueError(f"items must be an integer >= 1 (streams in lockstep), got {items!r}")
        settings = dict(
            radius=radius,
            kind=kind,
            alpha=alpha,
            smoothness=smoothness,
            offsets=offsets,
            refine=refine,
            steadiness=steadiness,
            normalization=normalization,
            device=device,
            dtype=dtype,
        )
        self._one = OnlineAdapter(n_fft, **settings)  # evaluates the items together
        self.items = [OnlineAdapter(n_fft, **settings) for _ in range(items)]
        self.chunk_bytes = 1 << 22

    def reset(self) -> None:
        """Forgets every item's context (new streams)."""
        for item in self.items:
            item.reset()

    @torch.inference_mode()
    def step(self, frames: torch.Tensor, theta_prev, win_min: float, win_max: float, items=None):
        """Chooses θ for one block of each of the items ``items`` (indices into :attr:`items`,
        default all, in order): returns (θ [J] numpy float64, S [J, K, M]); S becomes each item's
        context. Every item of one call has a block of K frames (a stream's short last block is
        stepped in a call of its own length).

        frames: [J, K, N] real, each item's block of frames. theta_prev: [J], each item's θ of its
        previous block (samples). win_min < win_max: bounds (samples).
        """
        idx = list(range(len(self.items)) if items is None else items)
        n_items = frames.shape[0]
        if len(idx) != n_items:
            raise ValueError(f"frames has {n_items} items, items names {len(idx)}")
        theta_prev = np.asarray(theta_prev, np.float64)
        # A few items at a time: the candidates' spectra of many items outgrow the CPU's caches, and
        # the elementwise passes over them then cost more per item than the batching saves.
        per = max(1, self.chunk_bytes // (len(self._one._deltas) * frames.shape[-2] * frames.shape[-1] * 8))
        theta, spec = [], []
        for a in range(0, n_items, per):
            t, s = self._step(
                frames[a : a + per], theta_prev[a : a + per], win_min, win_max, idx[a : a + per]
            )
            theta.append(t)
            spec.append(s)
        return np.concatenate(theta), torch.cat(spec) if len(spec) > 1 else spec[0]

    def _step(self, frames: torch.Tensor, theta_prev: np.ndarray, win_min: float, win_max: float, idx: list):
        """:meth:`step` of the items ``idx``, evaluated together."""
        adapters = [self.items[j] for j in idx]
        n_items, k = frames.shape[0], frames.shape[-2]
        one = self._one
        lo, hi = math.log(win_min), math.log(win_max)
        log_prev = np.array([min(max(math.log(t), lo), hi) for t in theta_prev])
        log_c = np.stack([one._bracket(p, lo, hi) for p in log_prev.tolist()])
        ctx = [a._context_sums(k) for a in adapters]
        ctx_z = np.stack([c[0] for c in ctx])[:, None]
        ctx_q = np.stack([c[1] for c in ctx])[:, None]
        bracket = one._evaluate(frames, log_c, log_prev[:, None], (ctx_z, ctx_q))
        choice = np.argmin(bracket.obj, axis=-1)
        vertex = np.array([_vertex(log_c[j], bracket.obj[j], choice[j]) for j in range(n_items)])
        refined = np.flatnonzero(np.isfinite(vertex)) if one.refine else np.zeros(0, np.int64)
        trial = None
        if refined.size:
            trial = one._evaluate(
                frames[refined],
                vertex[refined, None],
                log_prev[refined, None],
                (ctx_z[refined], ctx_q[refined]),
            )
        theta = np.empty(n_items)
        where = dict(zip(refined.tolist(), range(refined.size), strict=True))
        theta_b, theta_t = bracket.theta.cpu().numpy(), None if trial is None else trial.theta.cpu().numpy()
        spec = []
        for j, adapter in enumerate(adapters):
            # The best: candidate i of row ``row`` of the evaluation ``cand`` (the bracket, the trial).
            cand, row, cand_theta, i = bracket, j, theta_b, int(choice[j])
            t = where.get(j)
            if t is not None and trial.obj[t, 0] < bracket.obj[j, i]:
                cand, row, cand_theta, i = trial, t, theta_t, 0
            if cand.log_theta[row, i] != log_prev[j] and not adapter._confirmed(
                _item(cand, row, cand_theta), i, _item(bracket, j, theta_b), log_prev[j]
            ):
                cand, row, cand_theta, i = bracket, j, theta_b, 0  # θ_prev (candidate 0) holds
            theta[j] = float(cand_theta[row, i])
            adapter._push(cand.power[row, i], cand.z_col[row, i], cand.q_col[row, i], frames[j], theta[j])
            spec.append(cand.spec[row, i])
        return theta, torch.stack(spec)


def _item(cand: _Candidates, j: int, theta: np.ndarray) -> _Candidates:
    """Item j's candidates of an evaluation with an item axis: what the decision (a move's
    confirmation) and the context's update read; θ as numpy (``theta``, the same float32 values)."""
    return cand._replace(
        log_theta=cand.log_theta[j],
        theta=theta[j],
        w=cand.w[j],
        spec=None,
        power=cand.power[j],
        log_power=None,
        z_col=cand.z_col[j],
        q_col=cand.q_col[j],
        z=None,
        q=None,
        h=None,
        obj=cand.obj[j],
    )


class _Candidates(NamedTuple):
    """One batched evaluation: C values of θ over a block of K frames."""

    log_theta: np.ndarray  # [C]
    theta: torch.Tensor  # [C]
    w: torch.Tensor  # [C, N]
    spec: torch.Tensor  # [C, K, M]
    power: torch.Tensor  # [C, K, M]
    log_power: torch.Tensor | None  # [C, K, M] (Shannon)
    z_col: np.ndarray  # [C, K] per-frame Σ P
    q_col: np.ndarray  # [C, K] per-frame Σ P log P or Σ P^α
    z: np.ndarray  # [C, K] neighbourhood sums
    q: np.ndarray  # [C, K]
    h: np.ndarray  # [C, r + K] local entropy of each scored frame
    obj: np.ndarray  # [C] J


def _np(t: torch.Tensor) -> np.ndarray:
    return t.cpu().numpy()


_TINY = np.finfo(np.float64).tiny


def _buffer(scratch: dict, name: str, shape: tuple, dtype) -> np.ndarray | torch.Tensor:
    """A contiguous array of ``shape`` and ``dtype`` (numpy's, or torch's for a tensor) for the
    values ``name``, on the first elements of a flat buffer kept in ``scratch`` and made anew only
    when a larger one is asked for: one buffer per name serves every shape (the item count of a
    lockstep step, a stream's short last block). Its contents are those of the last use."""
    size = math.prod(shape)
    tensor = isinstance(dtype, torch.dtype)
    key = (name, dtype)
    flat = scratch.get(key)
    if flat is None or flat.shape[0] < size:
        flat = scratch[key] = torch.empty(size, dtype=dtype) if tensor else np.empty(size, dtype)
    return flat[:size].view(shape) if tensor else flat[:size].reshape(shape)


def _power(spec: torch.Tensor, scratch: dict | None = None) -> torch.Tensor:
    """|S|² as a contiguous real tensor.

    On the CPU: squares of the interleaved (re, im) floats, then pairwise sums, in numpy into
    buffers kept in ``scratch`` (:func:`_buffer`) when given; contiguous output keeps the log and the
    sums that follow fast. Elsewhere: one complex multiply.
    """
    if spec.device.type != "cpu":
        return (spec * spec.conj()).real
    interleaved = spec.numpy().view(np.float32 if spec.dtype == torch.complex64 else np.float64)
    if scratch is None:
        squares, power = np.empty_like(interleaved), np.empty(spec.shape, interleaved.dtype)
    else:
        squares = _buffer(scratch, "squares", interleaved.shape, interleaved.dtype)
        power = _buffer(scratch, "power", spec.shape, interleaved.dtype)
    np.square(interleaved, out=squares)
    np.add(squares[..., 0::2], squares[..., 1::2], out=power)
    return torch.from_numpy(power)


def _shannon_columns(power: torch.Tensor, scratch: dict | None = None):
    """log(P + tiny) (a tensor like ``power``) and the per-frame Q = Σ_m P log(P + tiny) (numpy).
    The tiny offset keeps log finite, so that P log P = 0 at P = 0.

    On the CPU this runs in numpy, in place (in a buffer of ``scratch`` when given): its vectorised
    log is about twice as fast as torch's for float32, and a matrix product sums P·log P without a
    temporary; after the FFT this is the adapter's most expensive elementwise work.
    """
    tiny = torch.finfo(power.dtype).tiny
    if power.device.type != "cpu":
        log_power = torch.log(power + tiny)
        return log_power, _np((power * log_power).sum(-1))
    p = power.numpy()
    if scratch is None:
        log_np = np.empty_like(p)
    else:
        log_np = _buffer(scratch, "log", p.shape, p.dtype)
    np.add(p, tiny, out=log_np)
    np.log(log_np, out=log_np)
    q = np.matmul(p[..., None, :], log_np[..., :, None])[..., 0, 0]
    return torch.from_numpy(log_np), q


class BandedAdapter:
    """Chooses one θ per band for successive blocks of frames, each on its own band-restricted J.

    J_b(s) is J above with the local entropy taken over band b's bins only (normalised within the
    band). Every band is scored on the same candidate spectra of the whole signal's frames (a band's
    bins of its own band signal are those of the signal, up to the split's transition), so one
    batched FFT serves all bands: a fixed grid over [log win_min, log win_max] (steps of at most
    ``grid_step``) plus each band's θ_prev, then one parabola vertex per band, evaluated together.
    A band's move is confirmed as in :class:`OnlineAdapter` (context at one θ, by ``steadiness``
    nats per unit of |Δ log θ|). The chosen θ_b window band b's own frames for the emitted spectrum.

    Args:
        n_fft: N. bins: bin edges [B + 1] of the bands (band b holds bins bins[b] .. bins[b+1] - 1).
        radius, kind, alpha, smoothness, steadiness, normalization, device, dtype: as for
        :class:`OnlineAdapter`. grid_step: largest spacing of the candidate grid in log θ.

    Cost per block: (G + 2B) · K real FFTs of size N (G grid points), plus B · 2r for a confirmed
    move.
    """

    def __init__(
        self,
        n_fft: int,
        bins,
        radius: int = 4,
        kind: str = "shannon",
        alpha: float = 3.0,
        smoothness: float = 0.02,
        steadiness: float = DEFAULT_STEADINESS,
        grid_step: float = 0.35,
        normalization: str = "l1",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self._one = OnlineAdapter(
            n_fft, radius, kind, alpha, smoothness, normalization=normalization, device=device, dtype=dtype
        )
        self.bins = np.asarray(bins, dtype=np.int64)
        self.bands = len(self.bins) - 1
        self.steadiness, self.grid_step = steadiness, grid_step
        self._grid_key, self._grid_values = None, None
        self.reset()

    # the scalar settings live on the one-band adapter whose window and column helpers this shares
    def __getattr__(self, name):
        if name in ("kind", "alpha", "smoothness", "radius", "n_fft", "device", "dtype"):
            return getattr(self._one, name)
        raise AttributeError(name)

    def __setattr__(self, name, value):
        if name in ("kind", "alpha", "smoothness", "radius"):
            setattr(self._one, name, value)
            if name in ("kind", "alpha", "radius"):
                self.reset()  # the context's sums change meaning
        else:
            object.__setattr__(self, name, value)

    def reset(self) -> None:
        """Forgets the emitted context: 2r frames of silence."""
        c, n = 2 * self._one.radius, self._one.n_fft
        self._ctx_z = np.zeros((c, self.bands))
        self._ctx_q = np.zeros((c, self.bands))
        self._ctx_frames = torch.zeros(c, n, device=self._one.device, dtype=self._one.dtype)
        self._ctx_theta = np.full((c, self.bands), np.nan)
        # While the context is the last block's last 2r frames: that block's candidates, as
        # (log θ [C], Z and Q columns [C, K, B]) per scored set (see _homogeneous_context).
        self._ctx_columns: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _columns(self, spec: torch.Tensor, scratch: dict | None = None):
        """Per-frame, per-band Z = Σ P and Q = Σ P log P (Shannon) or Σ P^α (Rényi) over each band's
        bins, numpy [..., K, B]."""
        one = self._one
        p = _np(_power(spec, scratch))
        starts = self.bins[:-1]
        z = np.add.reduceat(p, starts, axis=-1)
        if one.kind == "shannon":
            if scratch is None:
                t = np.empty_like(p)
            else:
                t = scratch.setdefault(("plogp", p.shape, p.dtype), np.empty_like(p))
            np.add(p, np.finfo(p.dtype).tiny, out=t)
            np.log(t, out=t)
            np.multiply(t, p, out=t)
            return z, np.add.reduceat(t, starts, axis=-1)
        return z, np.add.reduceat(p**one.alpha, starts, axis=-1)

    def _local(self, z_col: np.ndarray, q_col: np.ndarray, ctx_z: np.ndarray, ctx_q: np.ndarray):
        """Local entropies of the scored frames [..., r + K, B] from block columns [..., K, B] and the
        context's [2r, B] (or [..., 2r, B])."""
        one = self._one
        r2 = 2 * one.radius
        mask = one._mask(z_col.shape[-2])
        z = mask[:, r2:] @ z_col + mask[:, :r2] @ ctx_z
        q = mask[:, r2:] @ q_col + mask[:, :r2] @ ctx_q
        return one._entropy(z, q)

    def step(
        self, frames: torch.Tensor, band_frames: torch.Tensor, theta_prev, win_min: float, win_max: float
    ):
        """Chooses θ_b for one block; returns (θ [B] numpy, S_b [B, K, M], w [B, N]).

        frames: [K, N], the block's frames of the whole signal (what is scored).
        band_frames: [B, K, N], the same frames of each band (what is emitted).
        theta_prev: θ of the previous block per band [B] (samples). win_min, win_max: bounds.
        """
        one, nb = self._one, self.bands
        bands = np.arange(nb)
        lo, hi = math.log(win_min), math.log(win_max)
        prev = np.clip(np.log(np.asarray(theta_prev, dtype=np.float64)), lo, hi)
        grid = self._grid(lo, hi)
        log_c = np.unique(np.concatenate([grid, prev]))  # sorted; θ often rests on a grid point
        held = np.searchsorted(log_c, prev)  # each band's θ_prev among the candidates
        obj, z_col, q_col = self._score(frames, log_c, prev)
        choice = np.argmin(obj, axis=0)
        log_theta, obj_best = log_c[choice], obj[choice, bands]
        z_best, q_best = z_col[choice, :, bands], q_col[choice, :, bands]  # [B, K]
        vertex = np.array([_vertex(log_c, obj[:, b], choice[b]) for b in bands])
        refine = np.flatnonzero(np.isfinite(vertex))
        if refine.size:
            t_obj, t_z, t_q = self._score(frames, vertex[refine], prev)
            for k, b in enumerate(refine):
                if t_obj[k, b] < obj_best[b]:
                    log_theta[b], obj_best[b] = vertex[b], t_obj[k, b]
                    z_best[b], q_best[b] = t_z[k, :, b], t_q[k, :, b]
        moving = np.flatnonzero(log_theta != prev)
        if moving.size:
            z_held, q_held = z_col[held, :, bands], q_col[held, :, bands]
            keep = moving[~self._confirmed(moving, log_theta, prev, (z_best, q_best), (z_held, q_held))]
            log_theta[keep], z_best[keep], q_best[keep] = prev[keep], z_held[keep], q_held[keep]
        theta, w = one.windows(log_theta)
        self._push(z_best.T, q_best.T, frames, np.exp(log_theta))
        if frames.shape[0] >= 2 * one.radius:  # the context is now this block's last 2r frames
            self._ctx_columns = [(log_c, z_col, q_col)]
            if refine.size:
                self._ctx_columns.append((vertex[refine], t_z, t_q))
        spec_b = torch.fft.rfft(band_frames * w.unsqueeze(1))
        return np.exp(log_theta), spec_b, w

    def _grid(self, lo: float, hi: float) -> np.ndarray:
        """The fixed candidate grid over [lo, hi] in log θ, steps of at most ``grid_step``,
        remembered for the last bounds (read-only)."""
        key = (lo, hi, self.grid_step)
        if self._grid_key != key:
            grid = np.linspace(lo, hi, max(2, math.ceil((hi - lo) / self.grid_step) + 1))
            grid.flags.writeable = False
            self._grid_key, self._grid_values = key, grid
        return self._grid_values

    def _score(self, frames: torch.Tensor, log_c: np.ndarray, prev: np.ndarray):
        """J [C, B], z_col and q_col [C, K, B] of C candidates θ = exp(log_c), in one batched FFT."""
        one = self._one
        _, w = one.windows(log_c)
        spec = torch.fft.rfft(frames.unsqueeze(0) * w.unsqueeze(1))
        z_col, q_col = self._columns(spec, one._scratch if len(log_c) > 1 else None)
        h = self._local(z_col, q_col, self._ctx_z, self._ctx_q)  # [C, r + K, B]
        weights = one._weights(frames.shape[0])
        obj = np.einsum("crb,r->cb", h, weights) + one.smoothness * (log_c[:, None] - prev[None, :]) ** 2
        return obj, z_col, q_col

    def _homogeneous_context(self, log_theta: np.ndarray):
        """The context's per-band Z, Q [n, 2r, B] recomputed at each θ = exp(log_theta) [n]."""
        c = self._ctx_frames.shape[0]
        if c == 0:  # radius 0: no context, and nothing to transform
            empty = np.zeros((len(log_theta), 0, self.bands))
            return empty, empty.copy()
        # The previous block scored the context's frames at its candidates (the grid, the vertices),
        # and a move is mostly to one of them: their columns are taken, the rest transformed.
        z, q, todo = [None] * len(log_theta), [None] * len(log_theta), []
        for k, s in enumerate(log_theta.tolist()):
            for log_c, z_col, q_col in self._ctx_columns:
                j = np.flatnonzero(log_c == s)
                if j.size:
                    z[k], q[k] = z_col[j[0], -c:], q_col[j[0], -c:]
                    break
            else:
                todo.append(k)
        if todo:
            _, w = self._one.windows(log_theta[todo])
            z_new, q_new = self._columns(torch.fft.rfft(self._ctx_frames.unsqueeze(0) * w.unsqueeze(1)))
            for k, zk, qk in zip(todo, z_new, q_new, strict=True):
                z[k], q[k] = zk, qk
        return np.stack(z), np.stack(q)

    def _confirmed(self, moving, log_theta, prev, best, held) -> np.ndarray:
        """For each moving band, whether its move stands (as OnlineAdapter._confirmed, on the band's
        own level and J); best, held: the block's (Z, Q) columns [B, K] at the new and at the held
        θ."""
        stale = [b for b in moving if not np.all(self._ctx_theta[:, b] == math.exp(prev[b]))]
        ctx_z, ctx_q = self._homogeneous_context(np.concatenate([log_theta[moving], prev[stale]]))
        m = len(moving)
        cz, cq = ctx_z[np.arange(m), :, moving], ctx_q[np.arange(m), :, moving]  # [m, 2r]
        hz, hq = self._ctx_z[:, moving].T.copy(), self._ctx_q[:, moving].T.copy()
        for k, b in enumerate(stale):
            j = int(np.flatnonzero(moving == b)[0])
            hz[j], hq[j] = ctx_z[m + k, :, b], ctx_q[m + k, :, b]
        z = np.concatenate([best[0][moving], held[0][moving]])[..., None]
        q = np.concatenate([best[1][moving], held[1][moving]])[..., None]
        h = self._local(z, q, np.concatenate([cz, hz])[..., None], np.concatenate([cq, hq])[..., None])
        j = h[..., 0] @ self._one._weights(z.shape[-2])
        move = j[:m] + self._one.smoothness * (log_theta[moving] - prev[moving]) ** 2
        changed = np.array([_level_change(held[0][b], hz[k]) > LEVEL_CHANGE for k, b in enumerate(moving)])
        return changed | (move < j[m:] - self.steadiness * np.abs(log_theta[moving] - prev[moving]))

    def push_context(self, spec: torch.Tensor, frames: torch.Tensor, theta) -> None:
        """Appends emitted frames (raw [K, N] of the whole signal, S [K, M] at θ [B]) to the context."""
        if self._one.radius:
            z_col, q_col = self._columns(spec)
            self._push(z_col, q_col, frames, np.asarray(theta, dtype=np.float64))

    def _push(self, z_col: np.ndarray, q_col: np.ndarray, frames: torch.Tensor, theta: np.ndarray) -> None:
        c = 2 * self._one.radius
        self._ctx_columns = []
        if c == 0:
            return
        _shift_in(self._ctx_z, z_col)
        _shift_in(self._ctx_q, q_col)
        self._ctx_frames = _shift_in_tensor(self._ctx_frames, frames)
        _shift_in(self._ctx_theta, np.broadcast_to(theta, (frames.shape[0], self.bands)))


def _bracket(log_prev: float, deltas: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The bracket's candidates in log θ [C]: θ_prev first, then log_prev + δ clipped to [lo, hi],
    the widest pair replaced by the bounds (reached in one block). Candidates that the bounds make
    equal (θ resting on a bound, as it often does) are replaced, one by one, by the midpoint of the
    widest gap between candidates, so that the C evaluations always cover the range."""
    c = np.clip(log_prev + deltas, lo, hi)
    c[-2:] = lo, hi
    out = list(dict.fromkeys(c.tolist()))
    while 1 < len(out) < len(c):  # lo == hi leaves a single θ, and no gap to split
        ranked = np.sort(out)
        j = int(np.argmax(np.diff(ranked)))
        if not ranked[j + 1] > ranked[j]:
            break
        out.append(0.5 * (ranked[j] + ranked[j + 1]))
    return np.array(out)


def _shift_in(buf: np.ndarray, new: np.ndarray) -> None:
    """buf [c, ...] ← the last c rows of (buf, new) [c + k, ...], in place."""
    c = buf.shape[0]
    k = new.shape[0]
    if k >= c:
        buf[:] = new[k - c :]
    else:
        buf[: c - k] = buf[k:]  # numpy copies overlapping rows as if through a temporary
        buf[c - k :] = new


def _shift_in_tensor(buf: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """:func:`_shift_in` for a tensor; returns the buffer to keep. On the CPU, of one dtype and
    outside autograd, in place through numpy (torch.cat's per-call overhead would cost more than
    the copies); else the last rows of torch.cat, a new tensor."""
    cpu = buf.device.type == new.device.type == "cpu"
    if cpu and buf.dtype == new.dtype and not (buf.requires_grad or new.requires_grad):
        _shift_in(buf.numpy(), new.numpy())
        return buf
    return torch.cat([buf, new])[-buf.shape[0] :]


def _level_change(z_block: np.ndarray, z_ctx: np.ndarray) -> float:
    """|log| of the ratio of the mean frame power Z of a block to that of its context (0 for
    silence on both sides, and with no context at all: radius 0, where no level is known)."""
    if z_ctx.size == 0:
        return 0.0
    return abs(math.log(max(float(np.mean(z_block)), _TINY)) - math.log(max(float(np.mean(z_ctx)), _TINY)))


def _vertex(log_c: np.ndarray, obj: np.ndarray, i: int) -> float:
    """The vertex of the parabola through candidate i and its neighbours in log θ (clipped to them),
    or NaN where there is none (i on an end, collapsed neighbours, no positive curvature)."""
    # In Python floats (the same IEEE arithmetic): numpy's per-call overhead dominates at C ≈ 7.
    xs, ys = log_c.tolist(), obj.tolist()
    order = sorted(range(len(xs)), key=xs.__getitem__)  # stable, as argsort(kind="stable")
    j = order.index(i)
    if not 0 < j < len(order) - 1:
        return math.nan
    (x0, x1, x2), (y0, y1, y2) = ([v[k] for k in order[j - 1 : j + 2]] for v in (xs, ys))
    if not x0 < x1 < x2:
        return math.nan
    d1, d2 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    curvature = (d2 - d1) / (x2 - x0)
    if not curvature > 0:
        return math.nan
    return min(max(0.5 * (x0 + x1) - d1 / (2.0 * curvature), x0), x2)
