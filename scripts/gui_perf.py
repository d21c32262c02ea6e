"""Measure the GUI while it replays a 48 kHz file with N = 2048, H = 256 and adaptation on.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/gui_perf.py [--seconds 10]

Runs the real application (its event loop, its 60 Hz timer, its engine thread) on the demo scene
made at 48 kHz, looping, and prints:

- paint events of the spectrogram view actually delivered per second (what the user sees move),
  and the redraw ticks per second that moved the picture;
- the time per paint event (mean, p95) and per redraw tick (taking frames, colouring new columns,
  scrolling);
- the GUI thread's CPU time over wall time (share of one core) and the engine's real-time factor;
- the load average of the machine, since these numbers depend on what else runs.

A measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6 import QtCore, QtWidgets  # noqa: E402
from rtdstft_gui import demo  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="how long to measure")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    args = p.parse_args()
    app = QtWidgets.QApplication(sys.argv[:1])
    from rtdstft_gui.spectrogram import SpectrogramView
    from rtdstft_gui.window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="rtdstft-perf-"))
    demo.SAMPLE_RATE = 48_000
    demo.write_wav(tmp / "scene48k.wav", demo.make_scene(), 48_000)

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
    mark: dict = {}

    def start() -> None:
        ticks.clear()
        paints.clear()
        mark.update(
            redraws=window.redraws,
            wall=time.perf_counter(),
            cpu=time.thread_time(),
            load=os.getloadavg(),
        )

    def stop() -> None:
        mark["wall"] = time.perf_counter() - mark["wall"]
        mark["cpu"] = time.thread_time() - mark["cpu"]
        mark["redraws"] = window.redraws - mark["redraws"]
        mark["rtf"] = window.stats.rtf
        mark["settings"] = window.stats.settings
        window.close()
        app.quit()

    QtCore.QTimer.singleShot(int(args.warmup * 1000), start)  # torch import, first blocks
    QtCore.QTimer.singleShot(int((args.warmup + args.seconds) * 1000), stop)
    app.exec()
    wall = mark["wall"]

    def ms(xs):
        return (1000 * float(np.mean(xs)), 1000 * float(np.percentile(xs, 95))) if xs else (0.0, 0.0)

    load = ", ".join(f"{x:.2f}" for x in (*mark["load"], *os.getloadavg()))
    st = mark["settings"]
    print(
        f"replay 48 kHz, N={st.get('n_fft')}, H={st.get('hop_length')}, adapt={st.get('adapt')}, "
        f"{os.environ['QT_QPA_PLATFORM']}, {wall:.1f} s measured on {os.cpu_count()} cores"
    )
    print(f"load average (1, 5, 15 min) before / after: {load}")
    print(f"paint events delivered/s (view):   {len(paints) / wall:6.1f}")
    print(f"redraw ticks/s that moved it:      {mark['redraws'] / wall:6.1f}")
    print("time per paint event:              mean {:.2f} ms, p95 {:.2f} ms".format(*ms(paints)))
    print("time per redraw tick:              mean {:.2f} ms, p95 {:.2f} ms".format(*ms(ticks)))
    print(f"GUI thread CPU:                    {100 * mark['cpu'] / wall:5.1f} % of one core")
    print(f"engine real-time factor (worker):  {mark['rtf']:.3f}")


if __name__ == "__main__":
    main()
