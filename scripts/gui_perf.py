"""Measure the GUI while it replays a 48 kHz file, the engine alone on the same audio, and the
history at 10 minutes.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/gui_perf.py [--seconds 10] [--busy]
        [--n-fft N --hop H]  (default: the settings suited to 48 kHz, as for the microphone)

Runs the real application (its event loop, its 60 Hz timer, its engine thread) on the demo scene
made at 48 kHz, looping, then the same engine alone in this process on the same audio, fed as the
application feeds it, and prints:

- paint events of the spectrogram view per second, redraw ticks per second that moved the picture,
  time per paint and per redraw tick, the GUI thread's CPU share;
- the engine's real-time factor in the application (time inside ``process`` in the engine thread /
  audio time, over the whole measurement) and alone, and their ratio; the dropped blocks;
- the history: its memory for 10 minutes at 48 kHz (at N = 2048, H = 256 and at N = 4096,
  H = 128), and the redraws per second while scrolling through a full 10-minute history;
- the load average, since these numbers depend on what else runs. ``--busy`` keeps one more
  core busy (a spinning process) during the application's run and the engine-alone run.

A measurement, not a test.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6 import QtCore, QtWidgets  # noqa: E402
from rtdstft_gui import demo  # noqa: E402

RATE = 48_000


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def _timed_process(totals: dict):
    """Wrap StreamingDSTFT.process to add (seconds, samples) per thread into ``totals``."""
    from rtdstft import StreamingDSTFT

    original = StreamingDSTFT.process

    def process(self, block):
        t = time.perf_counter()
        out = original(self, block)
        acc = totals[threading.get_ident()]
        acc[0] += time.perf_counter() - t
        acc[1] += len(block)
        acc[2] += 1
        return out

    StreamingDSTFT.process = process
    return original


def engine_alone(x: np.ndarray, params: dict) -> float:
    """RTF of the engine on ``x`` fed as the application feeds it (what its next block needs)."""
    import torch

    from rtdstft import StreamingDSTFT

    torch.set_num_threads(1)
    e = StreamingDSTFT(sample_rate=RATE, **params)
    work, i = 0.0, 0
    while i < len(x):
        k = e.samples_to_next_block
        t = time.perf_counter()
        e.process(x[i : i + k])
        work += time.perf_counter() - t
        i += k
    return work / (len(x) / RATE)


def history_numbers(window, app) -> tuple[dict, float]:
    """Memory of 10-minute histories at 48 kHz, and redraws/s scrolling a full one in ``window``."""
    from rtdstft_gui.history import History

    sizes = {}
    for n_fft, hop in ((2048, 256), (4096, 128)):
        h = History(600.0)
        h.reset(RATE, n_fft, hop)
        sizes[(n_fft, hop)] = h.nbytes / 1e6
    window.worker.set_playing(False)
    h = History(600.0)
    h.reset(RATE, 2048, 256)
    rng = np.random.default_rng(0)
    frames = int(600 * RATE / 256)
    chunk = 4096
    base = rng.uniform(-120, -20, size=(chunk, 1025)).astype(np.float32)
    for i in range(0, frames, chunk):
        k = min(chunk, frames - i)
        h.add_frames(base[:k], np.full(k, 1024.0, np.float32), (i + np.arange(k)) * 256 / RATE)
    h.add_audio(np.zeros(frames * 256, np.float32))
    view = window.view
    view.attach(h)
    view.now = 600.0
    view.plot.setXRange(-600.0, 0.0, padding=0)
    view._looked()
    app.processEvents()
    steps, t = 0, time.perf_counter()
    while time.perf_counter() - t < 3.0:
        view.pan(dx=0.05 if steps % 40 < 20 else -0.05)
        view.repaint()
        steps += 1
    return sizes, steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="how long to measure the application")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    p.add_argument("--n-fft", type=int, help="N (default: suited to 48 kHz)")
    p.add_argument("--hop", type=int, help="H (default: suited to 48 kHz)")
    p.add_argument("--busy", action="store_true", help="keep one more core busy meanwhile")
    args = p.parse_args()
    app = QtWidgets.QApplication(sys.argv[:1])
    from rtdstft_gui.spectrogram import SpectrogramView
    from rtdstft_gui.window import MainWindow

    from rtdstft.stream import settings_for_rate

    tmp = Path(tempfile.mkdtemp(prefix="rtdstft-perf-"))
    demo.SAMPLE_RATE = RATE
    scene = demo.make_scene()
    demo.write_wav(tmp / "scene48k.wav", scene, RATE)
    overrides = {**settings_for_rate(RATE), "adapt": True}
    if args.n_fft or args.hop:
        n, h = args.n_fft or 2048, args.hop or 256
        overrides = {"n_fft": n, "hop_length": h, "win_length": n // 2, "win_min": 2 * h, "win_max": n}
    stop = multiprocessing.Event()
    busy = multiprocessing.Process(target=_spin, args=(stop,), daemon=True) if args.busy else None
    if busy is not None:
        busy.start()

    totals: dict = collections.defaultdict(lambda: [0.0, 0, 0])
    _timed_process(totals)
    ticks: list[float] = []
    paints: list[float] = []
    original_paint = SpectrogramView.paintEvent

    def timed_paint(self, ev):
        t = time.perf_counter()
        original_paint(self, ev)
        paints.append(time.perf_counter() - t)

    SpectrogramView.paintEvent = timed_paint
    window = MainWindow(settings_path=str(tmp / "s.ini"), recordings_dir=str(tmp), overrides=overrides)
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

    def engine_totals() -> tuple[float, int, int]:
        wid = int(window.worker.call(lambda _: threading.get_ident()))
        return tuple(totals[wid])

    def start() -> None:
        ticks.clear()
        paints.clear()
        mark.update(
            redraws=window.redraws,
            wall=time.perf_counter(),
            cpu=time.thread_time(),
            load=os.getloadavg(),
            engine=engine_totals(),
            dropped=window.stats.dropped_blocks,
        )

    def stop_app() -> None:
        mark["wall"] = time.perf_counter() - mark["wall"]
        mark["cpu"] = time.thread_time() - mark["cpu"]
        mark["redraws"] = window.redraws - mark["redraws"]
        work, samples, calls = engine_totals()
        mark["rtf"] = (work - mark["engine"][0]) / max((samples - mark["engine"][1]) / RATE, 1e-9)
        mark["calls"] = (calls - mark["engine"][2]) / mark["wall"]
        mark["dropped"] = window.stats.dropped_blocks - mark["dropped"]
        mark["settings"] = window.worker.call(lambda wk: wk.engine_settings())
        mark["history"] = history_numbers(window, app)
        window.close()
        app.quit()

    QtCore.QTimer.singleShot(int(args.warmup * 1000), start)  # torch import, first blocks
    QtCore.QTimer.singleShot(int((args.warmup + args.seconds) * 1000), stop_app)
    app.exec()
    st = mark["settings"]
    params = {k: st[k] for k in ("n_fft", "hop_length", "adapt", "win_length", "win_min", "win_max")}
    audio = np.tile(scene, int(np.ceil(args.seconds * RATE / len(scene))))[: int(args.seconds * RATE)]
    alone = engine_alone(audio.astype(np.float32), params)
    stop.set()
    if busy is not None:
        busy.join()
    wall = mark["wall"]

    def ms(xs):
        return (1000 * float(np.mean(xs)), 1000 * float(np.percentile(xs, 95))) if xs else (0.0, 0.0)

    load = ", ".join(f"{x:.2f}" for x in (*mark["load"], *os.getloadavg()))
    print(
        f"replay 48 kHz, N={st.get('n_fft')}, H={st.get('hop_length')}, adapt={st.get('adapt')}, "
        f"{os.environ['QT_QPA_PLATFORM']}, {wall:.1f} s measured on {os.cpu_count()} cores"
        f"{', one more core kept busy' if args.busy else ''}"
    )
    print(f"load average (1, 5, 15 min) before / after: {load}")
    print(f"paint events delivered/s (view):   {len(paints) / wall:6.1f}")
    print(f"redraw ticks/s that moved it:      {mark['redraws'] / wall:6.1f}")
    print("time per paint event:              mean {:.2f} ms, p95 {:.2f} ms".format(*ms(paints)))
    print("time per redraw tick:              mean {:.2f} ms, p95 {:.2f} ms".format(*ms(ticks)))
    print(f"GUI thread CPU:                    {100 * mark['cpu'] / wall:5.1f} % of one core")
    print(f"engine calls/s in the application: {mark['calls']:6.1f}")
    print(f"engine RTF in the application:     {mark['rtf']:.4f}")
    print(f"engine RTF alone (same settings):  {alone:.4f}")
    print(f"ratio application / alone:         {mark['rtf'] / alone:.2f}")
    print(f"dropped blocks:                    {mark['dropped']}")
    sizes, redraws = mark["history"]
    for (n, h), mb in sizes.items():
        print(f"history, 10 min at 48 kHz, N={n}, H={h}: {mb:6.1f} MB")
    print(f"scrolling a full 10-min history:   {redraws:6.1f} redraws/s")


if __name__ == "__main__":
    main()
