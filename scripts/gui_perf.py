"""Measure the GUI while it replays a 48 kHz file with N = 2048, H = 256 and adaptation on.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/gui_perf.py [--seconds 10]

Prints redraws per second (timer ticks that moved the picture, and paint events of the view), the
time per redraw (taking frames + drawing new columns + scrolling, and the paint event), the GUI
thread's share of one core (its CPU time over wall time), and the engine's real-time factor.
A measurement, not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import make_demo  # noqa: E402
from PyQt6 import QtWidgets  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="how long to measure")
    p.add_argument("--switch", type=float, default=None, help="sys.setswitchinterval (s)")
    args = p.parse_args()
    if args.switch:
        sys.setswitchinterval(args.switch)
    app = QtWidgets.QApplication(sys.argv[:1])
    from rtdstft_gui.spectrogram import SpectrogramView
    from rtdstft_gui.window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="rtdstft-perf-"))
    make_demo.SAMPLE_RATE = 48_000
    make_demo.write_wav(tmp / "scene48k.wav", make_demo.make_scene(), 48_000)

    ticks: list[float] = []
    paints: list[float] = []
    original_paint = SpectrogramView.paintEvent

    def timed_paint(self, ev):
        t = time.perf_counter()
        original_paint(self, ev)
        paints.append(time.perf_counter() - t)

    SpectrogramView.paintEvent = timed_paint
    window = MainWindow(
        settings_path=str(tmp / "s.ini"),
        recordings_dir=str(tmp),
        overrides={"n_fft": 2048, "hop_length": 256, "adapt": True},
    )
    original_redraw = window.redraw

    def timed_redraw():
        t = time.perf_counter()
        original_redraw()
        ticks.append(time.perf_counter() - t)

    window.timer.timeout.disconnect()
    window.timer.timeout.connect(timed_redraw)
    window.resize(1360, 820)
    window.show()
    window.loop.setChecked(True)
    window.open_file(tmp / "scene48k.wav")
    warm = time.monotonic() + 2.0
    while time.monotonic() < warm:  # torch import, first blocks
        app.processEvents()
        time.sleep(0.002)
    ticks.clear()
    paints.clear()
    redraws0, paints0 = window.redraws, window.view.image.paints
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.001)
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    redraws = window.redraws - redraws0
    image_paints = window.view.image.paints - paints0
    rtf = window.stats.rtf
    window.close()

    def ms(xs):
        return 1000 * float(np.mean(xs)), 1000 * float(np.percentile(xs, 95))

    print(f"replay 48 kHz, N=2048, H=256, adapt on, offscreen, {wall:.1f} s measured")
    print(f"redraws/s (picture moved):        {redraws / wall:6.1f}")
    print(
        f"paint events/s of the view:       {len(paints) / wall:6.1f} "
        f"(spectrogram item painted {image_paints / wall:.1f}/s)"
    )
    print("time per redraw tick (take+draw): mean {:.2f} ms, p95 {:.2f} ms".format(*ms(ticks)))
    print("time per paint event:             mean {:.2f} ms, p95 {:.2f} ms".format(*ms(paints)))
    print(f"GUI thread CPU: {100 * cpu / wall:5.1f} % of one core")
    print(f"engine real-time factor (worker): {rtf:.3f}")


if __name__ == "__main__":
    main()
