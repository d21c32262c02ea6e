"""torch's intra-op thread count for a stretch of work, put back afterwards.

The engine's per-block calls are small: a second thread gains nothing there and, on a busy machine,
costs far more than it gains. Commands, workers and benchmarks therefore set the count for what
they run, and give the caller's back, since the process may go on (a test, a notebook).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch.set_num_threads(``threads``) inside the block (None: left as it is), the previous
    count restored when it ends, however it ends."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
