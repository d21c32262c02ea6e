"""Shared by the audio tests: is PulseAudio reachable, test signals, and spectral peaks."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

F = TypeVar("F", bound=Callable[..., object])

_SCRIPT = Path(sys.executable).with_name("rtdstft")
#: The console script of pyproject's [project.scripts] when installed, else the module.
RTDSTFT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "rtdstft"]


@functools.lru_cache(maxsize=1)
def pulse_status() -> tuple[bool, str]:
    """(reachable, why not): PULSE_SERVER must be set and `pactl info` must answer."""
    server = os.environ.get("PULSE_SERVER")
    if not server:
        return False, (
            "PulseAudio not reachable: PULSE_SERVER is unset "
            '(run `eval "$(bash scripts/pulse.sh start)"` first, as `make test` does)'
        )
    if shutil.which("pactl") is None:
        return False, "PulseAudio not reachable: pactl is not installed"
    try:
        done = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False, f"PulseAudio not reachable: `pactl info` timed out (PULSE_SERVER={server})"
    if done.returncode != 0:
        return False, (
            f"PulseAudio not reachable: `pactl info` failed (PULSE_SERVER={server}): {done.stderr.strip()}"
        )
    return True, ""


def in_a_small_tmpfs(folder: Path, kib: int, code: str) -> subprocess.CompletedProcess:
    """Runs ``python -c code`` with a tmpfs of ``kib`` KiB mounted on ``folder`` (a private mount,
    in a user namespace: no root needed); skips where the system allows no such namespace."""
    unshare = ["unshare", "--user", "--map-root-user", "--mount"]
    folder.mkdir()
    mount = f'mount -t tmpfs -o size={kib}k tmpfs "$1"'
    try:
        probe = subprocess.run([*unshare, "sh", "-c", mount, "sh", folder], capture_output=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no unshare here to mount a small tmpfs")
    if probe.returncode != 0:
        pytest.skip(f"no tmpfs in a user and mount namespace here ({probe.stderr.decode().strip()})")
    script = f'{mount} && exec "$2" -c "$3"'
    command = [*unshare, "sh", "-c", script, "sh", str(folder), sys.executable, code]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def audio_test(test: F) -> F:
    """Mark a test `audio` and skip it, saying why, when PulseAudio is not reachable."""
    ok, reason = pulse_status()
    return pytest.mark.audio(pytest.mark.skipif(not ok, reason=reason)(test))


def linear_chirp(
    f0: float, f1: float, seconds: float, sample_rate: int, amplitude: float = 0.5
) -> np.ndarray:
    """float32 (round(seconds * sample_rate),): sin of phase 2π(f0 t + (f1 - f0) t² / 2T)."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return (amplitude * np.sin(phase)).astype(np.float32)


def tone(freq: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    """float32 sine of ``freq`` Hz, (round(seconds * sample_rate),)."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def block_peaks(
    x: np.ndarray, sample_rate: int, block: int = 2048, hop: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per block (Hann window): start time (s), peak frequency (Hz, parabolic interpolation) and
    peak absolute sample value."""
    starts = np.arange(0, max(len(x) - block, 0) + 1, hop)
    window = np.hanning(block)
    freqs, levels = [], []
    for s in starts:
        seg = x[s : s + block]
        spec = np.abs(np.fft.rfft(seg * window))
        k = int(np.clip(np.argmax(spec), 1, len(spec) - 2))
        a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else 0.0
        freqs.append((k + shift) * sample_rate / block)
        levels.append(np.max(np.abs(seg)))
    return starts / sample_rate, np.array(freqs), np.array(levels)


def tone_reading(x: np.ndarray, sample_rate: int, level: float = 0.2) -> tuple[float, float]:
    """(share of the :func:`block_peaks` blocks whose peak sample exceeds ``level``, median peak
    frequency of those blocks in Hz). The median, because a block across a gap that a busy machine
    cut (a starved player or recorder) peaks elsewhere, while a take at the wrong rate or of noise
    moves every block."""
    _, freqs, levels = block_peaks(x, sample_rate)
    loud = levels > level
    return float(loud.mean()), float(np.median(freqs[loud])) if loud.any() else float("nan")
