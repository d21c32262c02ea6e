"""The demo recording the application opens on its first start: a deterministic scene whose
character changes every few seconds.

The scene (24 kHz, 16-bit mono, 20 s, about 0.96 MB) is built so that the adaptive window has
something to do in every part:

    0.0 -  3.5 s   castanet-like clicks (short, bright, decaying bursts in a rhythm)  -> short θ
    3.5 -  8.0 s   a steady tone with vibrato (220 Hz and harmonics, 5.5 Hz vibrato)  -> long θ
    8.0 - 11.0 s   fast chirps, exponential sweeps 150 Hz -> 9 kHz and back in 0.4 s  -> middle θ
   11.0 - 17.0 s   a voiced speech-like passage: a glottal source through moving formants,
                   syllables with fricative noise
   17.0 - 20.0 s   the tone again, with clicks on it                                    -> θ switches

Under it all lies a faint pink noise floor at about -75 dBFS (RMS), as any real recording has: exact
digital silence would make the adaptation flicker between the clicks (an all-zero neighbourhood has
entropy 0 by convention, whatever θ).

Everything comes from a seeded generator, so the file is the same byte for byte on every run. The
package ships this generator rather than the WAV (a few kB of code instead of a 1 MB file):
:func:`demo_file` writes the WAV into the user's data folder the first time it is asked for (about
a second of CPU) and returns it from there afterwards. Needs numpy only (the WAV is written with the
standard library); ``python -m rtdstft_gui.demo OUT.wav`` writes it anywhere.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 24_000
DURATION = 20.0
NOISE_FLOOR_DBFS = -75.0


def _clicks(t0: float, t1: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """Castanet-like clicks: 2-4 ms bright noise bursts with a resonant ring, in a rhythm with rolls."""
    out = np.zeros(n)
    beat = 0.24
    times = []
    t = t0 + 0.05
    while t < t1 - 0.05:
        times.append(t)
        if rng.random() < 0.3:  # a roll: three quick strokes
            times += [t + 0.06, t + 0.12]
        t += beat
    ring_len = int(0.03 * SAMPLE_RATE)
    k = np.arange(ring_len) / SAMPLE_RATE
    for tc in times:
        burst = rng.standard_normal(ring_len) * np.exp(-k / 0.0025)
        ring = np.sin(2 * np.pi * (2400 + 600 * rng.random()) * k) * np.exp(-k / 0.006)
        i = int(tc * SAMPLE_RATE)
        seg = out[i : i + ring_len]
        seg += (0.45 * burst + 0.35 * ring)[: len(seg)]
    return out


def _tone(t: np.ndarray, f0: float, vib_hz: float, vib_depth: float) -> np.ndarray:
    """A steady harmonic tone with vibrato (depth as a fraction of f0)."""
    f = f0 * (1 + vib_depth * np.sin(2 * np.pi * vib_hz * t))
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    return sum(a * np.sin(h * phase) for h, a in ((1, 0.5), (2, 0.2), (3, 0.12), (4, 0.05)))


def _chirps(t: np.ndarray, start: float) -> np.ndarray:
    """Exponential sweeps 150 Hz -> 9 kHz -> 150 Hz, 0.4 s each way, with short gaps."""
    f_lo, f_hi, sweep, period = 150.0, 9000.0, 0.4, 1.0
    u = np.mod(t - start, period)
    up = u < sweep
    down = (u >= sweep) & (u < 2 * sweep)
    logf = np.where(up, u / sweep, np.where(down, 1 - (u - sweep) / sweep, 0.0))
    f = f_lo * (f_hi / f_lo) ** logf
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    gate = (up | down).astype(float)
    edge = int(0.005 * SAMPLE_RATE)  # 5 ms fades keep the gate from clicking
    gate = np.convolve(gate, np.ones(edge) / edge, mode="same")
    return 0.5 * gate * np.sin(phase)


# Formant centre frequencies and bandwidths (Hz) of a few vowels, an adult voice.
_VOWELS = {
    "a": ((730, 1090, 2440), (90, 110, 170)),
    "e": ((530, 1840, 2480), (70, 100, 160)),
    "i": ((270, 2290, 3010), (60, 100, 170)),
    "o": ((570, 840, 2410), (70, 90, 160)),
    "u": ((300, 870, 2240), (60, 90, 150)),
}


def _speech(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Voiced speech-like passage by additive synthesis: harmonics of a gliding f0 weighted by three
    moving formant resonances; syllables of 180-320 ms, some opened by a fricative noise burst."""
    n = len(t)
    dur = t[-1] - t[0]
    syllables = []
    s = 0.0
    while s < dur - 0.3:
        length = 0.18 + 0.14 * rng.random()
        syllables.append((s, length, rng.choice(list(_VOWELS)), rng.random() < 0.35))
        s += length + 0.04 + 0.08 * rng.random()
    # Piecewise-linear formant tracks and a syllable envelope on the local time axis.
    tl = t - t[0]
    knots_t, knots_f, knots_b = [], [], []
    env = np.zeros(n)
    fric = np.zeros(n)
    for s0, length, v, has_fric in syllables:
        f, b = _VOWELS[v]
        knots_t += [s0 + 0.03, s0 + length - 0.03]
        knots_f += [f, f]
        knots_b += [b, b]
        a = np.clip(np.minimum((tl - s0) / 0.03, (s0 + length - tl) / 0.05), 0, 1)
        env = np.maximum(env, a)
        if has_fric:
            fa = np.clip(1 - np.abs(tl - s0 + 0.04) / 0.04, 0, 1)
            fric += fa
    kt = np.array(knots_t)
    F = np.stack([np.interp(tl, kt, np.array(knots_f)[:, j]) for j in range(3)])
    B = np.stack([np.interp(tl, kt, np.array(knots_b)[:, j]) for j in range(3)])
    # Intonation: a falling phrase contour with a little jitter per syllable.
    f0 = 125 + 25 * np.cos(2 * np.pi * tl / dur) * np.exp(-tl / dur) + 8 * np.sin(2 * np.pi * 3 * tl)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = np.zeros(n)
    for h in range(1, int(4500 / f0.min())):
        fh = h * f0
        gain = sum(1.0 / (1.0 + ((fh - F[j]) / (B[j] / 2)) ** 2) * (0.9, 0.6, 0.35)[j] for j in range(3))
        voiced += gain * np.sin(h * phase) / h**0.5
    voiced *= env
    noise = rng.standard_normal(n)
    noise = noise - np.convolve(noise, np.ones(3) / 3, mode="same")  # tilt toward high frequencies
    return 0.25 * voiced + 0.25 * fric * noise


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise (power ∝ 1/f above 20 Hz), unit RMS: white noise shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec /= np.sqrt(np.maximum(f, 20.0))
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x**2))


def make_scene(seed: int = 7) -> np.ndarray:
    """The demo scene as float64 samples in [-1, 1] at SAMPLE_RATE."""
    rng = np.random.default_rng(seed)
    n = int(DURATION * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    x = np.zeros(n)

    def span(a: float, b: float) -> slice:
        return slice(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE))

    def fade(a: float, b: float, edge: float = 0.05) -> np.ndarray:
        tt = t[span(a, b)] - a
        return np.clip(np.minimum(tt / edge, (b - a - tt) / edge), 0, 1)

    x += _clicks(0.0, 3.5, rng, n)
    x[span(3.5, 8.0)] += _tone(t[span(3.5, 8.0)], 220.0, 5.5, 0.012) * fade(3.5, 8.0)
    x[span(8.0, 11.0)] += _chirps(t[span(8.0, 11.0)], 8.0) * fade(8.0, 11.0)
    x[span(11.0, 17.0)] += _speech(t[span(11.0, 17.0)], rng) * fade(11.0, 17.0)
    x[span(17.0, 20.0)] += 0.7 * _tone(t[span(17.0, 20.0)], 330.0, 5.0, 0.008) * fade(17.0, 20.0)
    late_clicks = _clicks(17.0, 20.0, rng, n)
    late_clicks[: int(17.0 * SAMPLE_RATE)] = 0
    for gap in (17.8, 19.4):  # clicks in two bursts, the tone alone between
        late_clicks[span(gap, gap + 0.8)] = 0
    x += late_clicks
    x = 0.89 * x / np.max(np.abs(x))
    return x + 10 ** (NOISE_FLOOR_DBFS / 20) * _pink(n, rng)


def write_wav(path: Path, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM mono WAV."""
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


#: The name of the demo file in the user's data folder.
DEMO_NAME = "demo.wav"


def demo_file(folder: str | os.PathLike | None = None) -> Path:
    """The demo WAV in ``folder`` (default: the application's per-user data folder, e.g.
    ``~/.local/share/rtdstft/rtdstft-gui`` on Linux), written there first if it is missing or
    incomplete. Written whole or not at all (:func:`rtdstft.atomic.atomic_output`), so a second
    instance or a killed first start never sees half a file. A folder that cannot be written (a
    read-only home) falls back to the system's temporary folder.
    """
    from rtdstft.atomic import atomic_output

    if folder is None:
        from PyQt6 import QtCore

        folder = QtCore.QStandardPaths.writableLocation(
            QtCore.QStandardPaths.StandardLocation.AppDataLocation
        )
    expected = 44 + 2 * int(DURATION * SAMPLE_RATE)  # RIFF header + 16-bit samples
    for place in (Path(folder), Path(tempfile.gettempdir()) / "rtdstft"):
        path = place / DEMO_NAME
        if path.is_file() and path.stat().st_size == expected:
            return path
        try:
            with atomic_output(path) as part:
                write_wav(part, make_scene())
            return path
        except OSError:
            continue
    raise OSError(f"cannot write the demo recording to {folder} or to the temporary folder")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="WAV file to write, e.g. recordings/demo.wav")
    args = p.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_wav(args.out, make_scene())
    print(f"{args.out}: {DURATION:.0f} s at {SAMPLE_RATE} Hz, {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
