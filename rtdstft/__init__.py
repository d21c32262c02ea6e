"""rtdstft: a streaming, differentiable STFT with learnable per-frame window lengths.

The engine imports numpy and torch only; audio I/O (sounddevice, soundfile) is imported lazily by
:mod:`rtdstft.audio`, and the desktop application lives in the separate package ``rtdstft_gui``.
"""

from . import nn
from .adapt import WindowFit, fit_window
from .config import StreamConfig
from .entropy import band_entropy, entropy
from .stream import StreamingDSTFT, StreamOutput
from .transform import DSTFT, positions_from_hop, positions_from_overlap

__all__ = [
    "DSTFT",
    "positions_from_hop",
    "positions_from_overlap",
    "entropy",
    "band_entropy",
    "fit_window",
    "WindowFit",
    "StreamingDSTFT",
    "StreamOutput",
    "StreamConfig",
    "nn",
]
__version__ = "0.1.0"
