"""The engine thread: owns the audio source, the StreamingDSTFT, the monitor and the recorder.

Data flow (Friture's): the PortAudio callback (inside :class:`rtdstft.audio.MicrophoneSource`) only
copies into a ring; this thread takes what is due from the ring or the file, runs the transform,
and appends finished frames (dB columns, θ, times) and input levels to a locked queue; the GUI
thread drains that queue at each redraw (:meth:`EngineWorker.take`). The GUI never touches the
engine: it posts commands (:meth:`EngineWorker.post` and the setters), which run here between
blocks. So a slow GUI only lets the queue grow (audio is never lost), and a slow engine shows up as
dropped blocks (the ring refuses samples, a file replay skips ahead), never as a frozen window.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PyQt6 import QtCore

from rtdstft import audio
from rtdstft.config import GEOMETRY_FIELDS, LIVE_FIELDS, RATE_FIELDS, StreamConfig

from .engine_process import EngineProcess, EngineProcessError

#: A file replay that falls this far behind (seconds of audio) skips ahead and counts a drop.
MAX_BACKLOG_S = 0.5


def engine_class():
    """rtdstft.StreamingDSTFT, imported when first needed (torch loads with it)."""
    from rtdstft import StreamingDSTFT

    return StreamingDSTFT


def suited_to_rate(config: StreamConfig, sample_rate: float) -> StreamConfig:
    """``config`` with N, H and the θ fields that suit ``sample_rate`` (θ about 5 .. 85 ms; the
    starting / fixed θ follows the bounds; default band edges follow the rate), the other settings
    kept."""
    skip = {*RATE_FIELDS, "win_length", "sample_rate", *({"band_edges"} & config.derived)}
    return StreamConfig.for_rate(sample_rate, **{k: v for k, v in config.as_dict().items() if k not in skip})


@dataclass
class Geometry:
    """A new stream starts: the GUI resets its picture. ``time0`` is the stream time (s) of the
    first frame to come; ``config`` the engine's settings; ``file_time`` where in the file (s)
    that frame is, for a file. ``continues``: not a new stream but the same one going on from
    another place in the file (a seek): the frames before it stay, ``time0`` follows on from
    them (the engine was flushed, its last frames padded with zeros) and only ``file_time``
    jumps."""

    config: StreamConfig
    time0: float = 0.0
    file_time: float | None = None
    continues: bool = False

    @property
    def sample_rate(self) -> float:
        return self.config.sample_rate

    @property
    def n_fft(self) -> int:
        return self.config.n_fft

    @property
    def hop(self) -> int:
        return self.config.hop_length


@dataclass
class Frames:
    """Finished frames: dB full scale [k, n_fft/2+1] float32, θ [k] or [k, bands] (samples),
    time [k] (s)."""

    db: np.ndarray
    theta: np.ndarray
    time: np.ndarray


@dataclass
class Samples:
    """The engine's next input samples (float32 [n]), for the history."""

    audio: np.ndarray


@dataclass
class Jump:
    """The replayed file goes on from ``file_time`` (s) at stream time ``time`` (s) with no break
    in the stream: it looped (``file_time`` 0), or samples were skipped because the engine fell
    behind. A seek is a :class:`Geometry` (``continues``) instead: there the engine is flushed."""

    time: float
    file_time: float


@dataclass
class Stats:
    """What the status bar and transport show; sent about 8 times a second."""

    rtf: float = 0.0
    dropped_blocks: int = 0
    latency_ms: float = 0.0
    analysis_latency_ms: float = 0.0
    device: str = ""
    sample_rate: float = 0.0
    kind: str = ""  # "file" | "mic" | ""
    position: float = 0.0
    duration: float = 0.0
    playing: bool = False
    nonfinite: int = 0
    recording: str = ""
    monitoring: str = ""
    settings: dict = field(default_factory=dict)


class EngineWorker(QtCore.QThread):
    """Runs the source and the engine in its own thread; see the module docstring.

    Signals (queued to the GUI thread):
        stats(Stats): the periodic status.
        message(str, str): (level, text), level "info" | "error"; errors of devices and settings.
        file_error(str, str): (path, reason) when a file cannot be opened: the GUI shows a dialog.
        opened(str, str): (kind, name) when a source was opened.
        played(object): the samples (float32) that :meth:`play` sent to the output device.
        answered(object, object, object): (done, result, error) of :meth:`submit`, delivered to
            ``done`` in the GUI thread.
    """

    stats = QtCore.pyqtSignal(object)
    message = QtCore.pyqtSignal(str, str)
    file_error = QtCore.pyqtSignal(str, str)
    opened = QtCore.pyqtSignal(str, str)
    played = QtCore.pyqtSignal(object)
    answered = QtCore.pyqtSignal(object, object, object)

    def __init__(
        self,
        config: StreamConfig | None = None,
        auto: bool = False,
        parent: QtCore.QObject | None = None,
        engine_process: bool = False,
    ) -> None:
        super().__init__(parent)
        # engine_process: the transform runs in a child process of its own (gui.engine_process),
        # which shares no interpreter lock with the GUI; the source, monitor and recorder stay here.
        self.engine_process = bool(engine_process)
        self._process = None
        self.config = StreamConfig() if config is None else config
        # auto: each new source gets the N, H and θ that suit its sample rate (suited_to_rate).
        self.auto = bool(auto)
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._out_lock = threading.Lock()
        self._out: collections.deque = collections.deque()
        self._level = (0.0, 0.0)  # (peak, rms) of the input since the last take
        self._quit = False
        self.engine = None
        self.source = None
        self.kind = ""
        self.playing = False
        self.speed = 1.0
        self.loop = False
        self.sink = None
        self.monitor_what = "resynthesis"
        self._monitor_to: tuple | None = None  # (device, what) asked for; reopened per source
        self.recorder = None
        self._record_folder: str | None = None  # where the recording goes on after a change of source
        self.player = None  # the output stream of :meth:`play`, closed once it has played
        self._player_until = 0.0
        self._held: list[np.ndarray] = []  # microphone input waiting for the engine's next block
        self._held_n = 0
        self.dropped_blocks = 0
        self.nonfinite = 0
        self._time0 = self._next_time = 0.0
        self._fed = 0  # samples fed to the engine since it started or was flushed
        self._file_next: int | None = None  # file sample the next block should start at
        self._busy = collections.deque(maxlen=64)  # (seconds of work, seconds of audio)
        self.work_total = np.zeros(3)  # seconds inside the engine's process(), samples, calls: all so far
        self._last_stats = 0.0
        self.answered.connect(self._answer)  # this object lives in the GUI thread: queued there

    # -- the GUI's side ---------------------------------------------------------------------------

    def post(self, command: Callable[[], None]) -> None:
        """Run ``command()`` in the worker thread before the next block."""
        self._commands.put(command)
        self._wake.set()

    def take(self) -> tuple[list, tuple[float, float]]:
        """Everything finished since the last call (Geometry, Samples and Frames items, in order) and the
        input level (peak, rms) over that time; called by the GUI at each redraw."""
        with self._out_lock:
            items = list(self._out)
            self._out.clear()
            level, self._level = self._level, (0.0, 0.0)
        return items, level

    def stop(self, timeout_ms: int = 5000) -> bool:
        """End the thread (closes the source, the monitor and the recorder) and wait for it, at
        most ``timeout_ms``. True if it has ended."""
        self._quit = True
        self._wake.set()
        return self.wait(timeout_ms)

    def open_file(self, path: str) -> None:
        self.post(lambda: self._open_file(path))

    def open_mic(self, device: int | str | None, sample_rate: float) -> None:
        self.post(lambda: self._open_mic(device, sample_rate))

    def configure(self, **settings) -> None:
        """Change engine settings (StreamConfig fields); live where possible, else a new engine.
        ``auto=True`` makes each new source start with the settings that suit its rate."""
        self.post(lambda: self._configure(settings))

    def set_playing(self, playing: bool) -> None:
        self.post(lambda: self._set_playing(playing))

    def seek(self, seconds: float) -> None:
        self.post(lambda: self._seek(seconds))

    def set_speed(self, speed: float) -> None:
        self.post(lambda: self._set_speed(speed))

    def set_loop(self, loop: bool) -> None:
        self.post(lambda: self._set_loop(loop))

    def set_monitor(self, device: int | str | None, what: str | None) -> None:
        """Play ``what`` ("resynthesis" | "raw") to output ``device``; ``what=None`` stops."""
        self.post(lambda: self._set_monitor(device, what))

    def set_recording(
        self, folder: str | None, done: Callable[[object, Exception | None], None] | None = None
    ) -> None:
        """Record the raw input to a timestamped WAV in ``folder``; None stops. ``done(path,
        error)``, if given, is then called in the GUI thread with the file now being written
        (None when not recording) or with why it could not start (no source, an unwritable
        folder); without ``done`` that reason comes as a :attr:`message`."""
        if done is None:
            self.post(lambda: self._set_recording(folder))
        else:
            self.submit(lambda wk: wk._set_recording(folder), done)

    def play(self, make: Callable[[], np.ndarray], sample_rate: float, device: int | str | None) -> None:
        """Compute ``make()`` (mono float32 samples, e.g. a selection's resynthesis) in the engine
        thread and play it once to output ``device`` at ``sample_rate``; :attr:`played` then
        carries the samples. A new call cuts the previous one short."""
        self.post(lambda: self._play(make(), sample_rate, device))

    def call(self, fn: Callable[[EngineWorker], object], timeout: float = 5.0) -> object:
        """Run ``fn(worker)`` in the worker thread and return its result; what ``fn`` raises is
        raised here (at once, not after ``timeout``)."""
        box: list = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append((fn(self), None))
            except Exception as exc:  # noqa: BLE001 - handed back to the caller, raised there
                box.append((None, exc))
            finally:
                done.set()

        self.post(run)
        if not done.wait(timeout):
            raise TimeoutError("the engine thread did not answer")
        result, error = box[0]
        if error is not None:
            raise error
        return result

    def submit(
        self, fn: Callable[[EngineWorker], object], done: Callable[[object, Exception | None], None]
    ) -> None:
        """Run ``fn(worker)`` in the worker thread without waiting for it; ``done(result, None)``,
        or ``done(None, error)`` with what ``fn`` raised, is then called in the GUI thread (from
        its event loop)."""

        def run() -> None:
            try:
                result, error = fn(self), None
            except Exception as exc:  # noqa: BLE001 - handed back to the caller's ``done``
                result, error = None, exc
            self.answered.emit(done, result, error)

        self.post(run)

    @QtCore.pyqtSlot(object, object, object)
    def _answer(self, done, result, error) -> None:
        done(result, error)

    # -- the thread -------------------------------------------------------------------------------

    def run(self) -> None:
        import torch

        # One intra-op thread: the engine's blocks are small, and on a 2-core machine a second
        # torch thread fights the GUI thread and makes the transform ~10× slower.
        torch.set_num_threads(1)
        if self.engine_process:
            self._process = EngineProcess()  # its interpreter and torch load while the GUI starts
        try:
            while not self._quit:
                self._run_commands()
                try:
                    worked = self._step() if self.source is not None else False
                except EngineProcessError as exc:
                    self._restart_engine(exc)
                    worked = False
                except Exception as exc:  # noqa: BLE001 - the window must outlive a failing stream
                    self.message.emit("error", f"stream stopped: {type(exc).__name__}: {exc}")
                    self._close_source()
                    worked = False
                self._send_stats()
                if self.player is not None and time.monotonic() > self._player_until:
                    self._stop_player()
                if not worked:
                    self._wake.wait(0.004)
                    self._wake.clear()
        finally:
            self._close_source()
            self._set_monitor(None, None)
            self._stop_player()
            if self._process is not None:
                self._process.close()

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            except (ValueError, audio.AudioDeviceError, audio.AudioFileError) as exc:
                self.message.emit("error", str(exc))
            except EngineProcessError as exc:
                self._restart_engine(exc)
            except Exception as exc:  # noqa: BLE001 - a failing command must not end this thread
                self.message.emit("error", f"{type(exc).__name__}: {exc}")

    def _step(self) -> bool:
        """Take what is due from the source, transform it, hand the frames over. True if any."""
        source = self.source
        # Nothing new can be emitted before the engine's next block of K frames can be completed:
        # waiting for exactly that much input makes one engine call per block with no added
        # latency. Fewer, larger calls matter here: this thread shares the interpreter lock with
        # the GUI, and every small call re-acquires it (a call per hop made the in-app real-time
        # factor several times the engine's own).
        quantum = self.engine.samples_to_next_block
        if self.kind == "mic":
            if source.error is not None:
                self._lost(source.error)
                return False
            # Take what the device has (a hop at least), and hand it on once a block is complete.
            if source.available >= min(quantum - self._held_n, self.config.hop_length):
                block = source.read_available()
                self._held.append(block)
                self._held_n += block.size
            if self._held_n < quantum:
                return False
            block = np.concatenate(self._held)
            self._held, self._held_n = [], 0
        else:
            if not self.playing:
                return False
            backlog = source.due
            remaining = quantum if source.loop else source.frames - source.tell()
            if 0 < backlog < min(quantum, remaining):
                return False
            limit = int(MAX_BACKLOG_S * source.sample_rate)
            if backlog > limit and not self._fed:
                # Not behind: starting (the engine built, a child process spawned). At 4x that
                # backlog skipped the first 0.5-0.9 s of every file; the clock starts here instead.
                source.start()
                return False
            if backlog > limit:  # the engine fell behind: skip ahead rather than lag for ever
                source.read(backlog - limit // 4)
                self.dropped_blocks += 1
            start, loops = source.tell(), source.loops
            block = source.pull()
            self._jumps(start, source.loops - loops, block.size)
        if block.size == 0:
            if self.kind == "file" and source.finished:
                self._finish_file()
            return False
        t0 = time.perf_counter()
        out = self.engine.process(block)
        if self.kind == "file" and not self._fed:
            source.start()  # the first call warms the engine up: that is not falling behind either
        # In a child process, the time the transform took there (the pipe's round trip is not the engine's).
        work = self.engine.seconds if self._process is not None else time.perf_counter() - t0
        self._busy.append((work, block.size / source.sample_rate))
        self.work_total += (work, block.size, 1)
        self._fed += block.size
        self.nonfinite += int(out.nonfinite)
        self._emit(out, block)
        self._monitor(block, out.audio)
        if self.recorder is not None:
            self.recorder.write(block)
        return True

    def _jumps(self, start: int, loops: int, size: int) -> None:
        """Mark where the file's clock leaves the stream's in a block of ``size`` samples read
        from file sample ``start`` with ``loops`` wraps to the file's start (:class:`Jump`), so that
        the history maps stream time to file time exactly (labels, readout, edits)."""
        sr = self.source.sample_rate
        at = self._time0 + self._fed / sr  # stream time of the block's first sample
        if self._file_next is not None and start != self._file_next:  # samples were skipped
            self._push(Jump(at, start / sr))
        first = self.source.frames - start  # samples before the first wrap
        for i in range(loops):
            self._push(Jump(at + (first + i * self.source.frames) / sr, 0.0))
        if size:
            self._file_next = self.source.tell()

    def _emit(self, out, block: np.ndarray | None) -> None:
        frames = None
        if len(out.frame_index):
            frames = Frames(
                self.engine.to_dbfs(out.spec, out.win_length),
                np.asarray(out.win_length, dtype=np.float32),
                self._time0 + np.asarray(out.time, dtype=np.float64),
            )
            self._next_time = float(frames.time[-1]) + self.config.hop_length / self.config.sample_rate
        level = finite = None
        if block is not None and block.size:
            finite = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)  # what the engine took
            level = (float(np.max(np.abs(finite))), float(np.sqrt(np.mean(finite**2))))
        with self._out_lock:
            if finite is not None:
                self._out.append(Samples(finite))
            if frames is not None:
                self._out.append(frames)
            if level is not None:
                self._level = (max(self._level[0], level[0]), max(self._level[1], level[1]))

    def _push(self, item: object) -> None:
        with self._out_lock:
            self._out.append(item)

    # -- engine -----------------------------------------------------------------------------------

    def _new_engine(self, sample_rate: float, time0: float = 0.0) -> None:
        self.config = self.config.replace(sample_rate=sample_rate)
        if self.engine_process:
            if self._process is None or not self._process.alive:
                self._process = EngineProcess()
            self.engine = self._process.new(self.config)
        else:
            self.engine = engine_class()(config=self.config)
        self._time0 = self._next_time = time0
        self._fed = 0
        self._file_next = self.source.tell() if self.kind == "file" else None
        self._busy.clear()
        self._push(Geometry(self.config, time0, self.source.position if self.kind == "file" else None))

    def _restart_engine(self, error: Exception) -> None:
        """The engine's process died: say so, and go on from here with a new one (or stop the
        stream if that fails too)."""
        self.message.emit("error", f"engine restarted: {error}")
        if self._process is not None:
            self._process.close()
        self._process = None
        if self.source is None:
            return
        try:
            self._new_engine(self.source.sample_rate, self._stream_time())
        except EngineProcessError as exc:
            self.message.emit("error", f"stream stopped: {exc}")
            self._close_source()

    def engine_pid(self) -> int:
        """The process id of the process that runs the transform (this one's without a child)."""
        return self._process.pid if self._process is not None else os.getpid()

    def _configure(self, settings: dict) -> None:
        settings = dict(settings)
        if "auto" in settings:
            self.auto = bool(settings.pop("auto"))
        new = self.config.replace(**settings)  # refused as a whole, with the reason, if invalid
        geometry = any(getattr(new, k) != getattr(self.config, k) for k in GEOMETRY_FIELDS)
        self.config = new
        if self.engine is None:
            return
        if geometry:
            self._new_engine(self.config.sample_rate, self._stream_time())
        else:
            self.engine.configure(**{k: v for k, v in settings.items() if k in LIVE_FIELDS})

    def _stream_time(self) -> float:
        """Stream time (s) where a new engine's first frame goes: the file position, or for a
        live input just after the last frame shown."""
        if self.kind == "file":
            return self.source.position
        return self._next_time

    def engine_settings(self) -> dict:
        """The running engine's settings as it reports them, {StreamConfig field: value}."""
        return {} if self.engine is None else self.engine.config.as_dict()

    # -- sources ----------------------------------------------------------------------------------

    def _close_source(self) -> None:
        """Close the source; a recording of it ends with it (a recording holds one source)."""
        self._set_recording(None)
        if self.source is not None:
            self.source.close()
        self.source, self.kind, self.playing = None, "", False
        self._held, self._held_n = [], 0

    def _open_file(self, path: str) -> None:
        try:
            source = audio.FileSource(path, realtime=True, speed=self.speed, loop=self.loop)
        except (audio.AudioFileError, ValueError, OSError) as exc:
            self.file_error.emit(str(path), str(exc))
            return
        self._use_source(source, "file", str(path))
        source.start()  # the replay clock starts once the engine and the monitor are ready

    def _open_mic(self, device: int | str | None, sample_rate: float) -> None:
        try:
            source = audio.MicrophoneSource(device, sample_rate=sample_rate, latency="low")
            source.start()
        except (audio.AudioDeviceError, ValueError) as exc:
            self.message.emit("error", f"no input: {exc}")
            return
        self._use_source(source, "mic", source.device_name)

    def _use_source(self, source, kind: str, name: str) -> None:
        """Make an opened ``source`` the input: the old one closed, a new engine at the source's
        rate (its settings suited to the rate if asked), the monitor reopened at that rate, and a
        recording going on in a new file at that rate."""
        recording = self._record_folder if self.recorder is not None else None
        self._close_source()
        self.source, self.kind = source, kind
        self._suit_rate(source.sample_rate)
        self._new_engine(source.sample_rate, 0.0)
        self._open_sink()
        if recording is not None:
            try:
                self._set_recording(recording)
            except (ValueError, audio.AudioFileError) as exc:  # the new source still plays
                self.message.emit("error", f"record: {exc}")
        self.playing = True
        self.opened.emit(kind, name)

    def _suit_rate(self, sample_rate: float) -> None:
        if self.auto:
            self.config = suited_to_rate(self.config, sample_rate)

    def _lost(self, error: Exception) -> None:
        self.message.emit("error", f"input stopped: {error}")
        self._close_source()

    def _finish_file(self) -> None:
        self._emit(self.engine.flush(), None)
        self._fed = 0
        self._file_next = None
        self.playing = False

    def _set_playing(self, playing: bool) -> None:
        if self.source is None:
            return
        if self.kind == "file":
            if playing and self.source.finished:
                self._seek(0.0)
            (self.source.start if playing else self.source.stop)()
        elif playing:
            self.source.ring.clear()  # what came while paused is not shown
            self._held, self._held_n = [], 0
            self.source.start()
        else:
            self.source.stop()
        self.playing = playing

    def _seek(self, seconds: float) -> None:
        """Go on from ``seconds`` into the file. The stream goes on too (its history stays): the
        engine ends what it had (its last frames, zeros after the last sample), starts afresh on
        the new place, and its frames follow on in stream time (:class:`Geometry` ``continues``)."""
        if self.kind != "file":
            return
        seconds = float(np.clip(seconds, 0.0, self.source.duration))
        if self._fed:
            self._emit(self.engine.flush(), None)  # also resets the engine for a new stream
            self._fed = 0
        self.source.seek(seconds)
        self._file_next = self.source.tell()
        self._time0 = self._next_time
        self._busy.clear()
        self._push(Geometry(self.config, self._time0, seconds, continues=True))
        if self.playing:
            self.source.start()

    def _set_speed(self, speed: float) -> None:
        if not 0.25 <= speed <= 4.0:
            raise ValueError(f"speed must be in 0.25..4 (× real time), got {speed!r}")
        self.speed = float(speed)
        if self.kind == "file":
            self.source.speed = self.speed
            if self.playing:
                self.source.start()  # restart the clock so the new pace counts from now

    def _set_loop(self, loop: bool) -> None:
        self.loop = bool(loop)
        if self.kind == "file":
            self.source.loop = self.loop

    # -- monitor and recorder ---------------------------------------------------------------------

    def _set_monitor(self, device: int | str | None, what: str | None) -> None:
        if what not in (None, "resynthesis", "raw"):
            raise ValueError(f"monitor must be 'resynthesis' or 'raw', got {what!r}")
        self._monitor_to = None if what is None else (device, what)
        self._open_sink()

    def _open_sink(self) -> None:
        """(Re)open the monitor's output at the source's sample rate, if monitoring is on."""
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        if self._monitor_to is None or self.source is None:
            return
        device, self.monitor_what = self._monitor_to
        try:
            self.sink = audio.OutputSink(device, sample_rate=self.source.sample_rate)
            self.sink.start()
        except (audio.AudioDeviceError, ValueError) as exc:
            self.sink = None
            self.message.emit("error", f"monitor: {exc}")

    def _monitor(self, block: np.ndarray, resynthesis: np.ndarray) -> None:
        if self.sink is None or (self.kind == "file" and self.speed != 1.0):
            return
        if self.sink.error is not None:
            self.message.emit("error", f"monitor stopped: {self.sink.error}")
            self._set_monitor(None, None)
            return
        self.sink.write(resynthesis if self.monitor_what == "resynthesis" else block)

    def _play(self, samples: np.ndarray, sample_rate: float, device) -> None:
        self._stop_player()
        samples = np.asarray(samples, np.float32)
        try:
            # A known buffer, not a live stream: a large device buffer costs nothing here and
            # keeps a busy machine from cutting gaps into it.
            self.player = audio.OutputSink(
                device, sample_rate=sample_rate, latency="high", ring_seconds=len(samples) / sample_rate + 1.0
            )
            self.player.write(samples)
            self.player.start()
        except (audio.AudioDeviceError, ValueError) as exc:
            self._stop_player()
            self.message.emit("error", f"play: {exc}")
            return
        self._player_until = time.monotonic() + len(samples) / sample_rate + self.player.latency + 0.5
        self.played.emit(samples)

    def _stop_player(self) -> None:
        if self.player is not None:
            self.player.close()
            self.player = None

    def _set_recording(self, folder: str | None) -> Path | None:
        """End the recording, if any; then, with a ``folder``, record the source to a new
        timestamped WAV there, at the source's rate. Returns the file being written (or None).

        Raises:
            ValueError: a ``folder`` but no source to record.
            AudioFileError: the file cannot be created.
        """
        if self.recorder is not None:
            self.recorder.close()
            self.message.emit("info", f"recorded {self.recorder.duration:.1f} s to {self.recorder.path}")
            self.recorder = None
        if folder is None:
            return None
        if self.source is None:
            raise ValueError("nothing to record: open a file or an input first")
        path = audio.timestamped_path(Path(folder))
        self.recorder = audio.Recorder(path, int(round(self.source.sample_rate)))
        self._record_folder = folder
        return path

    # -- status -----------------------------------------------------------------------------------

    def _send_stats(self) -> None:
        now = time.monotonic()
        if now - self._last_stats < 0.125:
            return
        self._last_stats = now
        s = Stats(
            dropped_blocks=self.dropped_blocks,
            nonfinite=self.nonfinite,
            kind=self.kind,
            playing=self.playing,
            settings=self.engine_settings(),
        )
        if self._busy:
            work, audio_s = np.sum(self._busy, axis=0)
            s.rtf = float(work / max(audio_s, 1e-9))
        src = self.source
        if src is not None:
            s.sample_rate = float(src.sample_rate)
            if self.engine is not None:
                s.latency_ms = 1000.0 * self.engine.latency / src.sample_rate
                s.analysis_latency_ms = 1000.0 * self.engine.analysis_latency / src.sample_rate
            if self.kind == "file":
                s.device, s.position, s.duration = src.path.name, src.position, src.duration
            else:
                s.device = src.device_name
                s.dropped_blocks += src.ring.overrun_events + src.overruns
        if self.recorder is not None:
            s.recording = str(self.recorder.path)
        if self.sink is not None:
            s.monitoring = f"{self.monitor_what} → {self.sink.device_name}"
        self.stats.emit(s)
