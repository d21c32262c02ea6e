"""A preallocated single-producer single-consumer ring of float32 samples.

The ring carries one mono stream from the audio callback (the producer) to the worker that runs the
transform (the consumer). Both ends address samples by absolute 64-bit counters: ``write_count`` is
the number of samples ever stored, ``read_count`` the number ever consumed, and the ring holds the
``write_count - read_count`` samples between them. Sample number ``k`` of the stream lives at
``buffer[k % capacity]``, so a copy in or out is at most two slice assignments.

Overrun policy: **refuse the newest**. When a block does not fit, the ring stores what fits and
drops the rest of that block; the dropped samples are added to ``overruns`` (and the event to
``overrun_events``), never silently. Dropping the oldest instead would make the producer move
``read_count``, which belongs to the consumer, and would need a lock. The absolute counters stay
gap-free: ``write_count`` counts stored samples only, so ``write_count + overruns`` is the number of
samples ever offered.

Threading rules:

- One thread writes (``write``), one thread reads (``read``, ``read_available``, ``peek``,
  ``skip``, ``clear``). Either may read the properties at any time.
- The producer only ever assigns ``write_count`` and the consumer only ever assigns ``read_count``,
  each *after* its copy is complete, so neither end sees a half-copied block. No lock is taken:
  under CPython each counter update is one atomic attribute store.
- ``write`` allocates nothing beyond numpy view objects; it is safe to call from a PortAudio
  callback. ``read`` allocates its result unless given ``out``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SampleRing"]


class SampleRing:
    """Ring of ``capacity`` float32 samples (mono) with absolute sample counters.

    Args:
        capacity: number of samples the ring holds (samples, >= 1). For audio, choose a few
            seconds: ``int(seconds * sample_rate)``.

    Attributes:
        capacity: the size given (samples).
        write_count: samples stored since creation (absolute, only grows; the producer's counter).
        read_count: samples consumed since creation (absolute, only grows; the consumer's counter).
        overruns: samples refused because the ring was full (the consumer was too slow).
        overrun_events: number of ``write`` calls that refused at least one sample.
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity <= 0:
            raise ValueError(f"capacity must be an integer >= 1 (samples), got {capacity!r}")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self.write_count = 0
        self.read_count = 0
        self.overruns = 0
        self.overrun_events = 0

    # -- state, readable from either thread ------------------------------------------------------

    @property
    def available(self) -> int:
        """Samples stored and not yet consumed (0 .. capacity)."""
        return self.write_count - self.read_count

    @property
    def free(self) -> int:
        """Samples that ``write`` can store now without refusing any (0 .. capacity)."""
        return self.capacity - (self.write_count - self.read_count)

    def __len__(self) -> int:
        return self.available

    def __repr__(self) -> str:
        return (
            f"SampleRing(capacity={self.capacity}, available={self.available}, "
            f"write_count={self.write_count}, read_count={self.read_count}, "
            f"overruns={self.overruns})"
        )

    # -- producer ---------------------------------------------------------------------------------

    def write(self, block: np.ndarray) -> int:
        """Store a block of samples; producer side only.

        Args:
            block: samples, shape ``(n,)``; any real dtype (converted to float32 on copy) and any
                stride (a column of a multi-channel PortAudio buffer is fine). ``n`` may be 0 or
                larger than the capacity.

        Returns:
            The number of samples stored (``n`` unless the ring was too full). The rest of the
            block, ``n - stored`` samples, is refused and counted in ``overruns``.
        """
        block = np.asarray(block)
        if block.ndim != 1:
            raise ValueError(f"block must be one-dimensional (samples,), got shape {block.shape}")
        n = block.shape[0]
        stored = min(n, self.capacity - (self.write_count - self.read_count))
        if stored < n:
            self.overruns += n - stored
            self.overrun_events += 1
        if stored <= 0:
            return 0
        start = self.write_count % self.capacity
        first = min(stored, self.capacity - start)
        self._buf[start : start + first] = block[:first]
        if first < stored:
            self._buf[: stored - first] = block[first:stored]
        self.write_count += stored  # publish only after the copy is complete
        return stored

    # -- consumer ---------------------------------------------------------------------------------

    def peek(self, n: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Copy the oldest ``min(n, available)`` samples without consuming them; consumer side.

        Args:
            n: samples wanted (>= 0); ``None`` means all available.
            out: optional float32 array of shape ``(m,)`` with ``m >= n`` to copy into; the
                returned array is then a view of its first samples.

        Returns:
            float32 array, shape ``(k,)`` with ``k = min(n, available)`` (fewer than ``n`` when
            the ring holds fewer; possibly 0).
        """
        k = self.available if n is None else min(self._check_n(n), self.available)
        if out is None:
            out = np.empty(k, dtype=np.float32)
        elif out.shape[0] < k:
            raise ValueError(f"out holds {out.shape[0]} samples, fewer than the {k} to copy")
        start = self.read_count % self.capacity
        first = min(k, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if first < k:
            out[first:k] = self._buf[: k - first]
        return out[:k]

    def read(self, n: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Copy out and consume the oldest ``min(n, available)`` samples; consumer side.

        Never blocks: when fewer than ``n`` samples are stored, returns what there is. Arguments
        and result as :meth:`peek`; sample ``i`` of the result is stream sample
        ``read_count + i`` as it was before the call.
        """
        out = self.peek(n, out)
        self.read_count += out.shape[0]  # release the space only after the copy is complete
        return out

    def read_available(self) -> np.ndarray:
        """Consume and return every stored sample, float32 shape ``(available,)``."""
        return self.read(None)

    def skip(self, n: int) -> int:
        """Consume up to ``n`` samples without copying them; returns how many were skipped."""
        k = min(self._check_n(n), self.available)
        self.read_count += k
        return k

    def clear(self) -> int:
        """Consume (discard) every stored sample; consumer side. Returns how many were dropped.

        The counters keep counting: ``read_count`` jumps to ``write_count``. Overrun counts are
        not reset.
        """
        return self.skip(self.available)

    @staticmethod
    def _check_n(n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an integer >= 0 (samples) or None, got {n!r}")
        return int(n)
