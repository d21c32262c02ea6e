"""The transform in a process of its own, so that it shares no interpreter lock with the GUI.

:class:`EngineProcess` starts one child process (the "spawn" start method: a fresh interpreter,
none of the GUI's threads or Qt state) that holds a :class:`rtdstft.StreamingDSTFT` and serves the
requests of :class:`RemoteEngine`, which the engine thread uses in place of the engine itself: the
same ``process`` / ``flush`` / ``configure`` calls and properties, answered in order over a pipe.
A block goes down as float32 samples, its :class:`~rtdstft.stream.StreamOutput` comes back (at
48 kHz, N = 4096, H = 128: about 6 MB/s of complex frames, which a pipe carries easily).

The child ends when the application does: it reads the pipe until end-of-file, which it sees once
the parent has closed its end or died (killed included), and it is a daemon process, which a clean
exit of the parent ends as well. If the child dies, the next request raises
:class:`EngineProcessError` at once (never a wait on a dead process); a new :class:`EngineProcess`
is then needed.
"""

from __future__ import annotations

import multiprocessing
import time

import numpy as np

from rtdstft import StreamingDSTFT
from rtdstft.config import StreamConfig

#: Seconds a request may take before the child is taken for hung, killed and reported.
REQUEST_TIMEOUT_S = 60.0


class EngineProcessError(RuntimeError):
    """The engine's process died or stopped answering."""


def _serve(conn) -> None:
    """The child's loop: one request (operation, argument) in, one reply (ok, result,
    samples_to_next_block) out, until the parent's end of the pipe closes."""
    import torch

    from rtdstft import StreamingDSTFT

    torch.set_num_threads(1)  # the engine's blocks are small; a second thread only contends
    engine = None
    while True:
        try:
            op, arg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if op == "new":
                engine, result = StreamingDSTFT(config=arg), None
            elif op == "process":
                t = time.perf_counter()
                out = engine.process(arg)
                result = (out, time.perf_counter() - t)
            elif op == "flush":
                result = (engine.flush(), 0.0)
            elif op == "configure":
                engine.configure(**arg)
                result = None
            else:
                raise ValueError(f"unknown request {op!r}")
            reply = (True, result, engine.samples_to_next_block if engine is not None else 1)
        except Exception as exc:  # noqa: BLE001 - sent back and raised in the parent
            reply = (False, exc, 1)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class EngineProcess:
    """A child process holding a StreamingDSTFT; see the module docstring. ``pid`` is the child's."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), name="rtdstft-engine", daemon=True)
        self._proc.start()
        child.close()  # the child's end lives in the child only, so its death reads as end-of-file

    @property
    def pid(self) -> int:
        return int(self._proc.pid)

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    def request(self, op: str, arg: object = None) -> tuple[object, int]:
        """Send one request and wait for its answer: (result, samples_to_next_block). Raises what
        the engine raised, or EngineProcessError if the child has died or hangs."""
        try:
            self._conn.send((op, arg))
            deadline = time.monotonic() + REQUEST_TIMEOUT_S
            while not self._conn.poll(0.25):
                if not self._proc.is_alive():
                    raise EOFError
                if time.monotonic() > deadline:
                    self._proc.kill()
                    raise EngineProcessError(f"the engine process did not answer in {REQUEST_TIMEOUT_S:g} s")
            ok, result, quantum = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
            self._proc.join(1.0)
            raise EngineProcessError(f"the engine process ended (exit code {self._proc.exitcode})") from exc
        if not ok:
            raise result
        return result, quantum

    def new(self, config: StreamConfig) -> RemoteEngine:
        """A new stream with ``config`` in the child (the previous one is dropped)."""
        _, quantum = self.request("new", config)
        return RemoteEngine(self, config, quantum)

    def close(self, timeout: float = 2.0) -> None:
        """End the child: close the pipe (it exits at end-of-file), kill it if it lingers."""
        self._conn.close()
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout)


class RemoteEngine:
    """The part of StreamingDSTFT's interface the engine thread uses, served by an
    :class:`EngineProcess`. ``seconds`` is the time the last ``process`` took in the child."""

    def __init__(self, process: EngineProcess, config: StreamConfig, quantum: int) -> None:
        self._process, self._config, self._quantum = process, config, quantum
        self.bands, self.band_edges = config.bands, config.band_edges
        self.seconds = 0.0

    @property
    def config(self) -> StreamConfig:
        return self._config

    @property
    def latency(self) -> int:
        return self._config.latency

    @property
    def analysis_latency(self) -> int:
        return self._config.analysis_latency

    @property
    def samples_to_next_block(self) -> int:
        return self._quantum

    to_dbfs = StreamingDSTFT.to_dbfs  # it asks only the settings

    def process(self, block: np.ndarray):
        (out, self.seconds), self._quantum = self._process.request("process", block)
        return out

    def flush(self):
        (out, self.seconds), self._quantum = self._process.request("flush")
        return out

    def configure(self, **changes) -> None:
        self._config = self._config.replace(**changes)
        self._process.request("configure", changes)
