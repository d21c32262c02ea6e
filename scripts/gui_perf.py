"""Measure the GUI while it replays a 48 kHz file, the engine alone on the same audio, and the
history at 10 minutes.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/gui_perf.py [--seconds 10] [--rounds 5]
        [--busy] [--engine-process] [--n-fft N --hop H] [--no-history]
        [--no-engine-first] [--gui-nice N]  (default: the settings suited to 48 kHz)

Runs the real application (its event loop, its 60 Hz timer, its engine thread) on the demo scene
made at 48 kHz, looping, and in alternation with it the engine alone (the replay paused
meanwhile) on the same audio, with every setting of the application's engine (bands included),
timed by the same wrapper around ``process``, in a thread of its own made before the window (so
at the priority the engine thread has, not the GUI thread's). The engine alone runs two ways:

- paced: fed block by block at the audio's real-time pace (each block handed over when its
  last sample would have arrived), as the application's engine thread is fed by a file replay
  at 1×: between blocks it sleeps, like the application's engine thread. This is "the engine
  alone at the same settings" that the application's real-time factor is judged against
  (target: at most 1.3 times it): the same feeding, only without the GUI.
- back to back: the blocks one after the other with no pause; printed too (a busy engine keeps
  its caches warm and its CPU's clock up, so it is the faster of the two).

``--rounds`` alternations of ``--seconds / --rounds`` seconds of audio each way, so that
whatever else runs on the machine weighs on all alike. Prints:

- paint events of the spectrogram view per second, redraw ticks per second that moved the picture,
  time per paint and per redraw tick, the GUI thread's CPU share (in the application's rounds);
- the engine's real-time factor (wall time inside ``process`` / audio time) in the application and
  alone, their ratio against the target of 1.3 (met / NOT met), and the dropped blocks; and where
  the time went, per second of audio: the engine thread's CPU time, its time runnable but waiting
  for a CPU (Linux schedstat), and the rest (blocked: the interpreter lock, mostly);
- the history (unless ``--no-history``): its memory for 10 minutes at 48 kHz (at N = 2048,
  H = 256 and at N = 4096, H = 128), and the redraws per second while scrolling through a full
  10-minute history;
- the load average, since these numbers depend on what else runs. ``--busy`` keeps one more
  core busy (a spinning process) during the whole measurement.

The application runs with its "engine first" setting on (the GUI thread at nice ``--gui-nice``,
default 10, once the engine thread exists; Linux), unless ``--no-engine-first``.

``--engine-process`` runs the application's transform in a child process of its own; its real-time
factor is then the wall time inside ``process`` there, as the engine thread reports it (the CPU
and waiting columns, which this process cannot see, are left empty).

A measurement, not a test.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt6 import QtCore, QtWidgets  # noqa: E402
from rtdstft_gui import demo, priority  # noqa: E402

RATE = 48_000
#: The in-application real-time factor may be at most this many times the engine's alone.
MAX_RATIO = 1.3


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def _sched() -> tuple[float, int, int]:
    """This thread's seconds runnable but waiting for a CPU, and its voluntary (blocked: a lock, the
    interpreter's included) and involuntary (preempted) context switches; Linux only, else 0."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            wait = int(f.read().split()[1]) / 1e9
        with open("/proc/thread-self/status") as f:
            status = dict(line.split(":", 1) for line in f if "ctxt_switches" in line)
        return wait, int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"])
    except (OSError, IndexError, KeyError, ValueError):
        return 0.0, 0, 0


def _timed_process(totals: dict) -> None:
    """Wrap StreamingDSTFT.process to add, per thread, into ``totals[thread id]``: wall seconds,
    samples, calls, CPU seconds of the thread, seconds it waited for a CPU while runnable, and its
    voluntary and involuntary context switches (see :func:`_sched`)."""
    from rtdstft import StreamingDSTFT

    original = StreamingDSTFT.process

    def process(self, block):
        t, c, s = time.perf_counter(), time.thread_time(), _sched()
        out = original(self, block)
        s = np.subtract(_sched(), s)
        totals[threading.get_ident()] += (time.perf_counter() - t, len(block), 1, time.thread_time() - c, *s)
        return out

    StreamingDSTFT.process = process


class AloneThread(threading.Thread):
    """Runs the engine alone on ``audio`` in a thread of its own, ``seconds`` of audio per
    :meth:`round`: paced (each block fed when its last sample is due at the real-time pace) or
    back to back. Timings go to the :func:`_timed_process` totals under this thread's id."""

    def __init__(self, audio: np.ndarray) -> None:
        super().__init__(daemon=True)
        self.engine = None  # set before the first round
        self.audio, self.fed = audio, 0
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.start()

    def round(self, seconds: float, paced: bool) -> None:
        """Run one round and wait for its end."""
        self.jobs.put((seconds, paced))
        self.done.get()

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            seconds, paced = job
            end, t0, first = self.fed + int(seconds * RATE), time.perf_counter(), self.fed
            while self.fed < end:
                k = self.engine.samples_to_next_block
                if paced:
                    due = t0 + (self.fed + k - first) / RATE
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                self.engine.process(self.audio[self.fed : self.fed + k])
                self.fed += k
            self.done.put(True)


def _wait(ms: int) -> None:
    """Run the application's event loop for ``ms`` milliseconds."""
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(ms, loop.quit)
    loop.exec()


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
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of audio measured each way")
    p.add_argument("--rounds", type=int, default=5, help="alternations of application and engine alone")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    p.add_argument("--n-fft", type=int, help="N (default: suited to 48 kHz)")
    p.add_argument("--hop", type=int, help="H (default: suited to 48 kHz)")
    p.add_argument("--busy", action="store_true", help="keep one more core busy meanwhile")
    p.add_argument(
        "--engine-process", action="store_true", help="the application runs its transform in a child process"
    )
    p.add_argument("--no-history", action="store_true", help="skip the history's memory and scrolling")
    p.add_argument("--no-engine-first", action="store_true", help="the GUI thread keeps its priority")
    p.add_argument("--gui-nice", type=int, default=priority.ENGINE_FIRST_NICE, help="the GUI thread's nice")
    args = p.parse_args()
    if args.seconds <= 0 or args.rounds < 1:
        p.error(f"--seconds must be > 0 and --rounds >= 1, got {args.seconds} and {args.rounds}")
    if not 0 <= args.gui_nice <= 19:
        p.error(f"--gui-nice must be in 0..19, got {args.gui_nice}")
    priority.ENGINE_FIRST_NICE = args.gui_nice
    app = QtWidgets.QApplication(sys.argv[:1])
    import torch
    from rtdstft_gui.spectrogram import SpectrogramView
    from rtdstft_gui.window import MainWindow

    from rtdstft import StreamConfig, StreamingDSTFT
    from rtdstft.stream import settings_for_rate

    torch.set_num_threads(1)  # as the application's engine thread
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

    totals: dict = collections.defaultdict(lambda: np.zeros(7))
    _timed_process(totals)
    ticks: list[float] = []
    paints: list[float] = []
    original_paint = SpectrogramView.paintEvent

    def timed_paint(self, ev):
        t = time.perf_counter()
        original_paint(self, ev)
        paints.append(time.perf_counter() - t)

    SpectrogramView.paintEvent = timed_paint
    # Made before the window: threads take the nice value of their creator, and "engine first"
    # lowers the GUI thread's.
    audio = np.tile(scene, int(np.ceil(args.seconds * RATE / len(scene)) + 2)).astype(np.float32)
    paced, back_to_back = AloneThread(audio), AloneThread(audio)
    window = MainWindow(
        settings_path=str(tmp / "s.ini"),
        recordings_dir=str(tmp),
        overrides=overrides,
        engine_process=args.engine_process,
    )
    original_redraw = window.redraw

    def timed_redraw():
        t = time.perf_counter()
        original_redraw()
        ticks.append(time.perf_counter() - t)

    window.timer.timeout.disconnect()
    window.timer.timeout.connect(timed_redraw)
    window.resize(1360, 820)
    if args.no_engine_first:
        window.display.engine_first.setChecked(False)
    window.show()
    window.loop.setChecked(True)
    window.open_file(tmp / "scene48k.wav")
    _wait(int(args.warmup * 1000))  # torch import, first blocks
    engine_thread = int(window.worker.call(lambda _: threading.get_ident(), timeout=120))
    settings = window.worker.call(lambda wk: wk.engine_settings())
    gui_nice = priority.nice(priority.this_thread())
    # The engine alone: every setting of the application's engine (bands included), fed as the
    # application feeds it, timed by the same wrapper, in rounds that alternate with the
    # application's so that what else runs on the machine weighs on all alike.
    for alone in (paced, back_to_back):
        alone.engine = StreamingDSTFT(config=StreamConfig(**settings))
    seg = args.seconds / args.rounds
    ticks.clear()
    paints.clear()
    wall = cpu = 0.0
    redraws = 0
    in_app = np.zeros(7)
    dropped = window.stats.dropped_blocks
    load = os.getloadavg()

    def engine_totals() -> np.ndarray:
        """The application engine's timed totals; in a child process, only the wall time inside
        ``process`` there (as the worker reports it), samples and calls."""
        if not args.engine_process:
            return totals[engine_thread].copy()
        work = window.worker.call(lambda wk: wk.work_total.copy(), timeout=120)
        return np.concatenate([work, np.full(4, np.nan)])

    for _ in range(args.rounds):
        window.worker.set_playing(True)
        t, c, r, before = time.perf_counter(), time.thread_time(), window.redraws, engine_totals()
        while (engine_totals()[1] - before[1]) / RATE < seg:
            _wait(50)
        wall += time.perf_counter() - t
        in_app += engine_totals() - before
        cpu += time.thread_time() - c
        redraws += window.redraws - r
        window.worker.set_playing(False)
        window.worker.call(lambda _: None)  # the replay has paused
        paced.round(seg, paced=True)
        back_to_back.round(seg, paced=False)
    dropped = window.stats.dropped_blocks - dropped
    history = None if args.no_history else history_numbers(window, app)
    window.close()
    stop.set()
    if busy is not None:
        busy.join()

    def ms(xs):
        return (1000 * float(np.mean(xs)), 1000 * float(np.percentile(xs, 95))) if xs else (0.0, 0.0)

    def per_audio_second(acc):
        seconds = acc[1] / RATE
        return acc[0] / seconds, acc[3] / seconds, acc[4] / seconds, acc[5] / acc[2], acc[6] / acc[2]

    app_rtf, *app_rest = per_audio_second(in_app)
    alone_rtf, *alone_rest = per_audio_second(totals[paced.ident])
    b2b_rtf, *b2b_rest = per_audio_second(totals[back_to_back.ident])
    ratio = app_rtf / alone_rtf
    load = ", ".join(f"{x:.2f}" for x in (*load, *os.getloadavg()))
    print(
        f"replay 48 kHz, N={settings['n_fft']}, H={settings['hop_length']}, adapt={settings['adapt']}, "
        f"bands={settings['bands']}, {os.environ['QT_QPA_PLATFORM']}, {args.seconds:g} s of audio each way "
        f"in {args.rounds} alternating rounds on {os.cpu_count()} cores"
        f"{', one more core kept busy' if args.busy else ''}"
        f"{', the transform in a child process' if args.engine_process else ''}"
    )
    print(f"GUI thread's nice value while measuring: {gui_nice}")
    print(f"load average (1, 5, 15 min) before / after: {load}")
    print(f"paint events delivered/s (view):   {len(paints) / wall:6.1f}")
    print(f"redraw ticks/s that moved it:      {redraws / wall:6.1f}")
    print("time per paint event:              mean {:.2f} ms, p95 {:.2f} ms".format(*ms(paints)))
    print("time per redraw tick:              mean {:.2f} ms, p95 {:.2f} ms".format(*ms(ticks)))
    print(f"GUI thread CPU:                    {100 * cpu / wall:5.1f} % of one core")
    print(f"engine calls/s in the application: {in_app[2] / wall:6.1f}")
    print("engine, per second of audio (s) and per call (switches):")
    print("                                 wall (RTF)   CPU   runnable, no CPU   rest   blocked  preempted")
    for name, rtf, (c, w, v, i) in (
        ("in the application", app_rtf, app_rest),
        ("alone, paced", alone_rtf, alone_rest),
        ("alone, back to back", b2b_rtf, b2b_rest),
    ):
        print(f"  {name:<26} {rtf:10.4f} {c:8.4f} {w:12.4f} {rtf - c - w:12.4f} {v:8.2f} {i:9.2f}")
    print(f"engine RTF in the application:     {app_rtf:.4f}")
    print(f"engine RTF alone, paced as in the application: {alone_rtf:.4f}")
    print(f"engine RTF alone, back to back:    {b2b_rtf:.4f}")
    verdict = "met" if ratio <= MAX_RATIO else "NOT met"
    print(f"ratio application / alone (paced): {ratio:.2f} ({verdict}: target <= {MAX_RATIO})")
    print(f"ratio application / back to back:  {app_rtf / b2b_rtf:.2f}")
    print(f"dropped blocks:                    {dropped}")
    if history is None:
        return
    sizes, redraws_s = history
    for (n, h), mb in sizes.items():
        print(f"history, 10 min at 48 kHz, N={n}, H={h}: {mb:6.1f} MB")
    print(f"scrolling a full 10-min history:   {redraws_s:6.1f} redraws/s")


if __name__ == "__main__":
    main()
