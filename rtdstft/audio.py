"""Audio sources and sinks: microphone and loudspeaker (sounddevice over PortAudio), file replay and
recording (soundfile over libsndfile).

Every source delivers mono float32 samples, shape ``(n,)``, at its ``sample_rate`` (Hz), through the
same two calls: ``read(n)`` (up to ``n`` samples) and ``read_available()`` (what is ready now).

Real-time rules, kept by every class here:

- A PortAudio callback only copies between the device buffer and a :class:`SampleRing` (with a
  mono mix-down into a preallocated buffer where needed) and counts status flags. It never runs
  torch, never allocates an array, never takes a lock, never blocks.
- Everything else (reading the ring, files, recording) runs on the caller's thread.
- A device that stops mid-stream is reported, never raised from a callback: ``error`` is set and
  ``on_error(error)`` is called (from PortAudio's thread, or from the thread that noticed a stall).

This module imports numpy only; sounddevice and soundfile are imported when a function or class
that needs them is first used, so ``import rtdstft`` works without PortAudio or libsndfile.
"""

from __future__ import annotations

import math
import os
import stat
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .errors import ParameterError
from .ringbuffer import SampleRing

__all__ = [
    "STANDARD_SAMPLE_RATES",
    "AudioDeviceError",
    "AudioFileError",
    "FileSource",
    "MicrophoneSource",
    "OutputSink",
    "PARTIAL_SUFFIX",
    "PCM_BITS",
    "RECORDING_FORMATS",
    "Recorder",
    "format_devices",
    "check_writable",
    "list_devices",
    "recording_format",
    "supported_sample_rates",
    "timestamped_path",
    "to_pcm",
]

#: The rates probed when a device refuses the one asked for (Hz).
STANDARD_SAMPLE_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400,
                         192000)  # fmt: skip


#: A header that states more samples than this per byte of the file states a bogus length.
_MOST_SAMPLES_PER_BYTE = 4096
#: Frames per read where a file breaks off (what a failing read would lose).
_SALVAGE_STEP = 4096


class AudioDeviceError(ValueError):
    """A device that does not exist, refuses the settings asked for, or stopped mid-stream."""


class AudioFileError(ValueError):
    """An audio file that is missing, unreadable, or not audio; the message names the path."""


# -- lazy imports ------------------------------------------------


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as exc:
        raise AudioDeviceError("sounddevice is not installed (pip install 'rtdstft[audio]')") from exc
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        raise AudioDeviceError(f"PortAudio is not available ({exc}); install libportaudio2") from exc
    return sounddevice


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError as exc:
        raise AudioFileError("soundfile is not installed (pip install 'rtdstft[audio]')") from exc
    except OSError as exc:
        raise AudioFileError(f"libsndfile is not available ({exc}); install libsndfile1") from exc
    return soundfile


def _check_regular_file(path: Path) -> None:
    """Refuse, without opening it, what is not a regular file: a FIFO or a shell's ``<(...)``
    would block the open or be read twice, and a directory or device is no audio file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AudioFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot read ({exc.strerror})") from exc
    if stat.S_ISDIR(mode):
        raise AudioFileError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(mode):
        kind = "a pipe (FIFO)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise AudioFileError(
            f"{path}: is {kind}; audio is read from regular files only (save the stream to a file first)"
        )


# -- parameter checks ------------------------------------------------


def _check_rate_value(sample_rate: float) -> float:
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, (int, float, np.integer, np.floating))
        or not math.isfinite(sample_rate)
        or sample_rate <= 0
    ):
        raise ParameterError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    return int(sample_rate) if float(sample_rate).is_integer() else float(sample_rate)


def _check_blocksize(blocksize: int) -> int:
    if isinstance(blocksize, bool) or not isinstance(blocksize, (int, np.integer)) or blocksize < 0:
        raise ParameterError(
            f"blocksize must be an integer >= 0 (samples; 0 lets PortAudio choose), got {blocksize!r}"
        )
    return int(blocksize)


def _check_latency(latency: str | float) -> str | float:
    if latency in ("low", "high"):
        return latency
    if (
        isinstance(latency, bool)
        or not isinstance(latency, (int, float))
        or not math.isfinite(latency)
        or latency < 0
    ):
        raise ParameterError(f"latency must be 'low', 'high' or seconds >= 0, got {latency!r}")
    return float(latency)


def _ring_for(ring_seconds: float, sample_rate: float) -> SampleRing:
    if not isinstance(ring_seconds, (int, float)) or not ring_seconds > 0:
        raise ParameterError(f"ring_seconds must be > 0 (seconds), got {ring_seconds!r}")
    return SampleRing(max(1, int(round(ring_seconds * sample_rate))))


# -- devices ------------------------------------------------


def _default_index(sd: Any, kind: str) -> int:
    try:
        return int(sd.query_devices(kind=kind)["index"])
    except (sd.PortAudioError, ValueError):
        return -1


def list_devices() -> list[dict[str, Any]]:
    """The audio devices PortAudio sees, as plain dicts.

    Returns:
        One dict per device, in PortAudio's order, with keys ``index`` (int), ``name`` (str),
        ``hostapi`` (str, e.g. ``'ALSA'``), ``max_input_channels``, ``max_output_channels`` (int),
        ``default_samplerate`` (float, Hz), ``is_default_input``, ``is_default_output`` (bool).

    Raises:
        AudioDeviceError: PortAudio (or sounddevice) is not installed.
    """
    sd = _sounddevice()
    default_in, default_out = _default_index(sd, "input"), _default_index(sd, "output")
    hostapis = sd.query_hostapis()
    return [
        {
            "index": index,
            "name": str(info["name"]),
            "hostapi": str(hostapis[info["hostapi"]]["name"]),
            "max_input_channels": int(info["max_input_channels"]),
            "max_output_channels": int(info["max_output_channels"]),
            "default_samplerate": float(info["default_samplerate"]),
            "is_default_input": index == default_in,
            "is_default_output": index == default_out,
        }
        for index, info in enumerate(sd.query_devices())
    ]


def format_devices(devices: list[dict[str, Any]] | None = None) -> str:
    """A table of ``devices`` (default: :func:`list_devices`) for ``rtdstft devices``.

    The first column marks the default input ``>``, the default output ``<``, both ``*``.
    """
    devices = list_devices() if devices is None else devices
    if not devices:
        return "no audio devices found"
    lines = ["    index  in  out     rate  name (host API)"]
    for d in devices:
        mark = {(True, True): "*", (True, False): ">", (False, True): "<"}.get(
            (d["is_default_input"], d["is_default_output"]), " "
        )
        lines.append(
            f"{mark} {d['index']:>7} {d['max_input_channels']:>3} {d['max_output_channels']:>4}"
            f" {d['default_samplerate']:>8.0f}  {d['name']} ({d['hostapi']})"
        )
    lines.append("> default input, < default output, * both; in/out: channels, rate: default Hz")
    return "\n".join(lines)


def _device_list_text(sd: Any, kind: str) -> str:
    key = f"max_{kind}_channels"
    names = [f"{i}: {d['name']!r}" for i, d in enumerate(sd.query_devices()) if d[key] > 0]
    return ", ".join(names) if names else "none"


def _resolve_device(sd: Any, device: int | str | None, kind: str) -> int:
    """The PortAudio index of ``device`` (None: the default; int: an index; str: a name or a
    case-insensitive unique substring of one) among the devices with ``kind`` channels."""
    key = f"max_{kind}_channels"
    infos = list(sd.query_devices())
    if device is None:
        index = _default_index(sd, kind)
        if index < 0:
            raise AudioDeviceError(
                f"there is no default {kind} device; {kind} devices: {_device_list_text(sd, kind)}"
            )
        return index
    if isinstance(device, (int, np.integer)) and not isinstance(device, bool):
        if not 0 <= device < len(infos) or infos[device][key] < 1:
            raise AudioDeviceError(
                f"device={device!r} is not an {kind} device; {kind} devices: {_device_list_text(sd, kind)}"
            )
        return int(device)
    if isinstance(device, str):
        wanted = device.strip().lower()
        candidates = [(i, d["name"]) for i, d in enumerate(infos) if d[key] > 0]
        exact = [i for i, name in candidates if name.lower() == wanted]
        matches = exact or [i for i, name in candidates if wanted in name.lower()]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise AudioDeviceError(
                f"device={device!r}: no {kind} device has that name; {kind} devices: "
                f"{_device_list_text(sd, kind)}"
            )
        names = ", ".join(f"{i}: {infos[i]['name']!r}" for i in matches)
        raise AudioDeviceError(
            f"device={device!r} matches several {kind} devices ({names}); give an index or a longer name"
        )
    raise TypeError(f"device must be None, an index (int) or a name (str), got {device!r}")


def _check_settings(sd: Any, kind: str) -> Callable[..., None]:
    return sd.check_input_settings if kind == "input" else sd.check_output_settings


def _rates_accepted(sd: Any, index: int, kind: str, channels: int) -> list[int]:
    check = _check_settings(sd, kind)
    accepted = []
    for rate in STANDARD_SAMPLE_RATES:
        try:
            check(device=index, channels=channels, dtype="float32", samplerate=rate)
        except (sd.PortAudioError, ValueError):
            continue
        accepted.append(rate)
    return accepted


def supported_sample_rates(
    device: int | str | None = None, kind: str = "input", channels: int = 1
) -> list[int]:
    """The rates of :data:`STANDARD_SAMPLE_RATES` (Hz) that ``device`` accepts for ``channels``
    float32 channels of ``kind`` (``'input'`` or ``'output'``), found by asking PortAudio."""
    if kind not in ("input", "output"):
        raise ParameterError(f"kind must be 'input' or 'output', got {kind!r}")
    sd = _sounddevice()
    return _rates_accepted(sd, _resolve_device(sd, device, kind), kind, channels)


def _check_stream_settings(sd: Any, index: int, kind: str, channels: int, sample_rate: float) -> None:
    """Raise AudioDeviceError naming the rates the device accepts if it refuses ``sample_rate``."""
    try:
        _check_settings(sd, kind)(device=index, channels=channels, dtype="float32", samplerate=sample_rate)
    except (sd.PortAudioError, ValueError) as exc:
        name = sd.query_devices(index)["name"]
        accepted = _rates_accepted(sd, index, kind, channels)
        offer = ", ".join(str(r) for r in accepted) if accepted else "none of the standard rates"
        raise AudioDeviceError(
            f"sample_rate={sample_rate!r} Hz is refused by {kind} device {index} ({name!r}) "
            f"with {channels} channel(s): {exc}. Rates it accepts (Hz): {offer}"
        ) from exc


_S = TypeVar("_S", bound="_Stream")


class _Stream:
    """What MicrophoneSource and OutputSink share: a PortAudio stream around a SampleRing, its
    lifecycle, and the reporting of a device that stops on its own."""

    kind = ""

    def __init__(
        self,
        device: int | str | None,
        sample_rate: float,
        blocksize: int,
        latency: str | float,
        channels: int | None,
        ring_seconds: float,
        on_error: Callable[[AudioDeviceError], None] | None,
        stall_timeout: float,
    ) -> None:
        sd = _sounddevice()
        self.sample_rate = _check_rate_value(sample_rate)
        self.blocksize = _check_blocksize(blocksize)
        self.requested_latency = _check_latency(latency)
        if not stall_timeout > 0:
            raise ParameterError(f"stall_timeout must be > 0 (seconds), got {stall_timeout!r}")
        self.stall_timeout = float(stall_timeout)
        self.device = _resolve_device(sd, device, self.kind)
        info = sd.query_devices(self.device)
        self.device_name: str = info["name"]
        self.max_channels = int(info[f"max_{self.kind}_channels"])
        self.channels = self._choose_channels(channels)
        _check_stream_settings(sd, self.device, self.kind, self.channels, self.sample_rate)
        self.ring = _ring_for(ring_seconds, self.sample_rate)
        self.on_error = on_error
        self.error: AudioDeviceError | None = None
        self.callbacks = 0
        self._abort = sd.CallbackAbort
        self._callback_error: BaseException | None = None
        self._stopping = True
        self._closed = False
        self._last_callback = time.monotonic()
        stream_class = sd.InputStream if self.kind == "input" else sd.OutputStream
        try:
            self._stream = stream_class(
                samplerate=self.sample_rate,
                blocksize=self.blocksize,
                device=self.device,
                channels=self.channels,
                dtype="float32",
                latency=self.requested_latency,
                callback=self._callback,
                finished_callback=self._finished,
            )
        except sd.PortAudioError as exc:
            raise AudioDeviceError(
                f"cannot open {self.kind} device {self.device} ({self.device_name!r}) at "
                f"{self.sample_rate} Hz, {self.channels} channel(s): {exc}"
            ) from exc

    def _choose_channels(self, channels: int | None) -> int:
        if channels is None:
            return min(2, self.max_channels) if self.kind == "input" else 1
        if (
            isinstance(channels, bool)
            or not isinstance(channels, int)
            or not (1 <= channels <= self.max_channels)
        ):
            if getattr(self, "channel", None) is not None:
                raise ParameterError(
                    f"channel must be in 0..{self.max_channels - 1} for {self.kind} device "
                    f"{self.device} ({self.device_name!r}), got {self.channel!r}"
                )
            raise ParameterError(
                f"channels must be an integer in 1..{self.max_channels} for {self.kind} device "
                f"{self.device} ({self.device_name!r}), got {channels!r}"
            )
        return channels

    def _callback(self, data: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        try:
            self._last_callback = time.monotonic()
            self.callbacks += 1
            self._copy(data, frames, status)
        except Exception as exc:  # a bug here must stop the stream and be reported, not vanish
            self._callback_error = exc
            raise self._abort from exc

    def _copy(self, data: np.ndarray, frames: int, status: Any) -> None:
        raise NotImplementedError

    def _finished(self) -> None:
        """PortAudio's finished callback: after stop()/close() it is expected, otherwise the device
        went away (or the callback failed) and that is reported."""
        if self._stopping:
            return
        reason = f": {self._callback_error!r}" if self._callback_error is not None else ""
        self._report(f"{self.kind} device {self.device} ({self.device_name!r}) stopped unexpectedly{reason}")

    def _report(self, message: str) -> None:
        if self.error is not None:
            return
        self.error = AudioDeviceError(message)
        if self.on_error is not None:
            self.on_error(self.error)

    def check(self) -> AudioDeviceError | None:
        """Look for a stream that stopped delivering callbacks (a device that vanished without
        PortAudio noticing) and report it; returns ``error`` (None while all is well)."""
        if self.error is None and not self._stopping and not self._closed:
            idle = time.monotonic() - self._last_callback
            if idle > self.stall_timeout:
                self._report(
                    f"{self.kind} device {self.device} ({self.device_name!r}) delivered no audio "
                    f"for {idle:.1f} s (stall_timeout={self.stall_timeout} s)"
                )
        return self.error

    @property
    def active(self) -> bool:
        """True while the stream runs (started, not stopped, no error)."""
        return not self._closed and self.error is None and bool(self._stream.active)

    @property
    def dropped(self) -> int:
        """Samples the ring refused because it was full (its reader did not keep up); the newest
        are the ones refused."""
        return self.ring.overruns

    @property
    def latency(self) -> float:
        """The latency PortAudio reports for the open stream (seconds)."""
        return float(self._stream.latency)

    def start(self) -> None:
        """Start the stream (callbacks begin). Raises AudioDeviceError if PortAudio refuses."""
        if self._closed:
            raise AudioDeviceError(f"the {self.kind} stream is closed; create a new one")
        if self._stream.active:
            return
        sd = _sounddevice()
        self.error = None
        self._callback_error = None
        self._last_callback = time.monotonic()
        self._stopping = False
        try:
            self._stream.start()
        except sd.PortAudioError as exc:
            self._stopping = True
            raise AudioDeviceError(
                f"cannot start {self.kind} device {self.device} ({self.device_name!r}): {exc}"
            ) from exc

    def stop(self) -> None:
        """Stop the stream after the buffers queued in PortAudio are done. Never raises: a
        failure to stop (a device already gone) is stored in ``error``."""
        if self._closed or self._stopping:
            self._stopping = True
            return
        self._stopping = True
        try:
            self._stream.stop()
        except Exception as exc:  # noqa: BLE001 - a vanished device must not crash the caller
            self._report(f"stopping {self.kind} device {self.device}: {exc}")

    def close(self) -> None:
        """Stop and release the device; idempotent, never raises (see :meth:`stop`)."""
        if self._closed:
            return
        self.stop()
        self._closed = True
        try:
            self._stream.close()
        except Exception as exc:  # noqa: BLE001
            self._report(f"closing {self.kind} device {self.device}: {exc}")

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_stream", None) is not None:
            self.close()


class MicrophoneSource(_Stream):
    """Live input from a PortAudio device, delivered as mono float32 samples.

    The PortAudio callback copies each block (mixed down to mono, or one chosen channel) into a
    :class:`SampleRing` and counts input overflows; the caller's thread takes the samples out with
    :meth:`read` / :meth:`read_available`.

    Args:
        device: ``None`` for the default input device, an index from :func:`list_devices`, or a
            name (exact, else a case-insensitive substring matching exactly one input device).
        sample_rate: Hz (default 48000). A rate the device refuses raises
            :class:`AudioDeviceError` naming the standard rates it accepts.
        blocksize: samples per callback; 0 (default) lets PortAudio choose, possibly varying from
            callback to callback, which gives the lowest latency.
        latency: ``'low'`` (default), ``'high'``, or a suggested latency in seconds.
        channel: ``None`` (default) averages all opened channels to mono; an int picks that
            channel (0-based) alone.
        channels: how many channels to open for the mix-down (default ``min(2, device max)``);
            ignored when ``channel`` is given (then ``channel + 1`` are opened).
        ring_seconds: capacity of the ring between callback and reader (seconds, default 10).
        on_error: called once with the :class:`AudioDeviceError` when the device stops on its own
            or stalls (from PortAudio's thread, or from the thread that calls ``read``).
        stall_timeout: seconds without a callback while running that count as a lost device
            (checked on each ``read``; default 2).

    Attributes:
        overruns: callbacks whose status reported an input overflow (samples PortAudio lost
            before the callback saw them).
        dropped: samples the ring refused because the reader was too slow (newest refused).
        error: ``None``, or the :class:`AudioDeviceError` that stopped the stream.
    """

    kind = "input"

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: float = 48000,
        blocksize: int = 0,
        latency: str | float = "low",
        channel: int | None = None,
        channels: int | None = None,
        ring_seconds: float = 10.0,
        on_error: Callable[[AudioDeviceError], None] | None = None,
        stall_timeout: float = 2.0,
    ) -> None:
        if channel is not None:
            if isinstance(channel, bool) or not isinstance(channel, int) or channel < 0:
                raise ParameterError(f"channel must be None or an integer >= 0, got {channel!r}")
            channels = channel + 1
        self.channel = channel
        self.overruns = 0
        super().__init__(
            device, sample_rate, blocksize, latency, channels, ring_seconds, on_error, stall_timeout
        )
        self._gain = np.float32(1.0 / self.channels)
        # The mix-down target; one second covers any block PortAudio hands over in practice.
        self._mix = np.zeros(max(self.blocksize, int(self.sample_rate)), dtype=np.float32)

    def _copy(self, indata: np.ndarray, frames: int, status: Any) -> None:
        if status.input_overflow:
            self.overruns += 1
        if self.channel is not None:
            self.ring.write(indata[:, self.channel])
        elif self.channels == 1:
            self.ring.write(indata[:, 0])
        else:
            if frames > self._mix.shape[0]:  # never seen; costs one allocation if it happens
                self._mix = np.zeros(frames, dtype=np.float32)
            mix = self._mix[:frames]
            np.sum(indata, axis=1, out=mix)
            mix *= self._gain
            self.ring.write(mix)

    @property
    def available(self) -> int:
        """Samples captured and not yet read."""
        return self.ring.available

    def read(self, n: int | None = None) -> np.ndarray:
        """Up to ``n`` captured samples (all if None), float32 ``(k,)``, oldest first; never
        blocks. Also checks for a stalled device (see ``stall_timeout``)."""
        self.check()
        return self.ring.read(n)

    def read_available(self) -> np.ndarray:
        """Every captured sample not yet read, float32 ``(k,)``; never blocks."""
        return self.read(None)


class OutputSink(_Stream):
    """Playback of mono float32 samples through a PortAudio device.

    :meth:`write` puts samples into a :class:`SampleRing`; the PortAudio callback copies them out
    (to every output channel) and, when the ring runs dry, plays zeros.

    Args:
        device, sample_rate, blocksize, latency, ring_seconds, on_error, stall_timeout: as for
            :class:`MicrophoneSource` (``ring_seconds`` default 4 s: what ``write`` can queue).
        channels: output channels to open (default 1); the mono signal goes to all of them.

    Attributes:
        underruns: times the ring ran dry while playing (each gap counts once; the callback
            filled zeros). Silence before the first ``write`` and after :meth:`drain` is not
            counted.
        device_underflows: callbacks whose status reported an output underflow.
        dropped: samples :meth:`write` refused because the ring was full (``block=False``).
    """

    kind = "output"

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: float = 48000,
        blocksize: int = 0,
        latency: str | float = "low",
        channels: int | None = None,
        ring_seconds: float = 4.0,
        on_error: Callable[[AudioDeviceError], None] | None = None,
        stall_timeout: float = 2.0,
    ) -> None:
        self.underruns = 0
        self.device_underflows = 0
        self._starved = True
        self._draining = False
        super().__init__(
            device, sample_rate, blocksize, latency, channels, ring_seconds, on_error, stall_timeout
        )

    def _copy(self, outdata: np.ndarray, frames: int, status: Any) -> None:
        if status.output_underflow:
            self.device_underflows += 1
        column = outdata[:, 0]
        got = self.ring.read(frames, out=column).shape[0]
        if got < frames:
            column[got:] = 0.0
            # A gap starts when the ring runs dry after playing (this block or the last one).
            if (got or not self._starved) and not self._draining:
                self.underruns += 1
            self._starved = True
        else:
            self._starved = False
        if outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]

    @property
    def pending(self) -> int:
        """Samples written and not yet handed to PortAudio."""
        return self.ring.available

    def write(self, samples: np.ndarray, block: bool = False, timeout: float | None = None) -> int:
        """Queue mono samples for playback.

        Args:
            samples: shape ``(n,)``, converted to float32 (values beyond ±1 are the device's to
                clip).
            block: ``False`` (default) stores what fits now and drops the rest (counted in
                ``dropped``); ``True`` waits for room until all are stored, the stream stops, or
                ``timeout`` seconds pass.
            timeout: seconds to wait at most when ``block`` (None: no limit).

        Returns:
            Samples stored.
        """
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ParameterError(f"samples must have shape (n,), got {x.shape}")
        self._draining = False
        if not block:
            return self.ring.write(x)
        deadline = None if timeout is None else time.monotonic() + timeout
        stored = 0
        while stored < x.shape[0]:
            room = self.ring.free
            if room:
                stored += self.ring.write(x[stored : stored + room])
                continue
            self.check()
            if not self.active or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(min(0.01, self.ring.capacity / self.sample_rate / 4))
        return stored

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything written has been played (ring empty, then the stream latency).

        Returns False if ``timeout`` seconds passed or the stream stopped first. The silence that
        follows is not an underrun.
        """
        self._draining = True
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.ring.available:
            self.check()
            if not self.active or (deadline is not None and time.monotonic() > deadline):
                return False
            time.sleep(0.005)
        time.sleep(self.latency)
        return True


def sf_path(path: str | Path) -> str | bytes:
    """``path`` as libsndfile is to open it: the text, or its bytes where it holds a name that is
    not UTF-8 (a Latin-1 name from an old archive, held as lone surrogates), which soundfile
    cannot encode; text elsewhere, as Windows opens wide-character names only from text."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


class FileSource:
    """Mono float32 samples from an audio file (WAV, FLAC, OGG, ... whatever libsndfile reads),
    replayed either at the pace of the wall clock or as fast as asked.

    Args:
        path: the file.
        channel: ``None`` (default) averages all channels to mono; an int picks one (0-based).
        sample_rate: ``None`` (default) uses the file's rate. No resampling is done: a different
            rate raises ValueError naming the file's.
        realtime: ``True`` (default): :meth:`read_available` / :meth:`pull` return the samples that
            the wall clock says are due (``speed`` × elapsed time × ``sample_rate``) since
            :meth:`start` or the first pull. ``False``: :meth:`read_available` returns the next
            ``blocksize`` samples at once.
        speed: replay speed in real-time mode (> 0; 2.0 = twice as fast). Default 1.0.
        loop: at the end of the file, go on from its start (forever). Default False.
        blocksize: samples returned by :meth:`read_available` when not ``realtime`` (default 1024).
        clock: a function returning seconds (default ``time.monotonic``); tests may substitute one.

    :meth:`read` is never paced: it returns the next ``n`` samples (fewer only at the end of a
    file that does not loop). Positions are in samples (:meth:`tell`, ``frames``) or seconds
    (``position``, ``duration``, :meth:`seek`).

    A file cut short (a recording whose writer was killed, a broken download) is read up to where
    it stops decoding: ``frames`` becomes what it holds, ``declared_frames`` keeps what its header
    states and ``cut_short`` is True. A header length no file of its size could hold (a killed
    FLAC states 2^63 - 1 frames) is replaced at once by a count of what decodes, so nothing is ever
    sized by it.

    Raises:
        AudioFileError: the file is missing, unreadable, not audio, holds no samples, or is not a
            regular file (a FIFO or ``<(...)`` is refused without being opened: it could not be
            rewound, and opening one without a writer blocks).
    """

    def __init__(
        self,
        path: str | Path,
        channel: int | None = None,
        sample_rate: float | None = None,
        realtime: bool = True,
        speed: float = 1.0,
        loop: bool = False,
        blocksize: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _soundfile()  # a missing libsndfile is reported before the path is looked at
        self.path = Path(path)
        _check_regular_file(self.path)
        self._error_types = (RuntimeError, OSError)
        self._file = self._open()
        self.sample_rate: int = int(self._file.samplerate)
        self.file_channels: int = int(self._file.channels)
        self.frames: int = int(self._file.frames)
        self.format: str = str(self._file.format)
        self.subtype: str = str(self._file.subtype)
        #: The frames the header states, when the file holds fewer (it was cut short); else None.
        self.declared_frames: int | None = None
        if self.frames * self.file_channels > _MOST_SAMPLES_PER_BYTE * max(1, self.path.stat().st_size):
            # A length no file of this size can hold (a FLAC whose writer was killed states 2^63 - 1):
            # count what decodes instead, and reopen, as libsndfile cannot seek after the break.
            self.declared_frames, self.frames = self.frames, self._count_frames()
            self._file.close()
            self._file = self._open()
        if self.frames <= 0:
            self._file.close()
            raise AudioFileError(f"{self.path}: contains no samples")
        if channel is not None and (
            isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < self.file_channels
        ):
            self._file.close()
            raise ParameterError(
                f"channel must be None (mix-down) or in 0..{self.file_channels - 1} for "
                f"{self.path}, got {channel!r}"
            )
        if sample_rate is not None and _check_rate_value(sample_rate) != self.sample_rate:
            self._file.close()
            raise ParameterError(
                f"sample_rate={sample_rate!r} Hz differs from the {self.sample_rate} Hz of "
                f"{self.path}; FileSource does not resample (pass None)"
            )
        if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
            raise ParameterError(f"speed must be a finite number > 0, got {speed!r}")
        self.channel = channel
        self.realtime = bool(realtime)
        self.speed = float(speed)
        self.loop = bool(loop)
        self.blocksize = _check_blocksize(blocksize) or 1024
        self.loops = 0
        self._clock = clock
        self._t0: float | None = None
        self._paced = 0
        self._paused = False
        self._eof = False
        self._position = 0

    def _open(self) -> Any:
        try:
            return _soundfile().SoundFile(sf_path(self.path))
        except self._error_types as exc:
            raise AudioFileError(f"{self.path}: not a readable audio file ({exc})") from exc

    def _count_frames(self) -> int:
        count = 0
        try:  # in small steps: a read that reaches the break returns nothing of what came before it
            while (k := self._file.read(_SALVAGE_STEP, dtype="float32", always_2d=True).shape[0]) > 0:
                count += k
        except self._error_types:
            pass  # the end of what decodes
        return count

    def _read_before_break(self, n: int) -> np.ndarray:
        """After a read that failed: reopen the file, go back to where that read began, and take
        what still decodes (at most ``n`` frames) in small steps. Empty once at the break."""
        self._file.close()
        self._file = self._open()
        parts = []
        try:
            self._file.seek(self._position)
            while (
                n > 0 and (c := self._file.read(min(n, _SALVAGE_STEP), dtype="float32", always_2d=True)).size
            ):
                parts.append(c)
                n -= c.shape[0]
        except self._error_types:
            pass
        return np.concatenate(parts) if parts else np.zeros((0, self.file_channels), np.float32)

    @property
    def cut_short(self) -> bool:
        """True when the file holds fewer samples than its header states (a recording that was
        killed, a download that broke off): ``frames`` is then what it holds."""
        return self.declared_frames is not None

    def _end_early(self) -> None:
        """The file ended (or stopped decoding) before ``frames``: what was read is all there is."""
        if self._position < self.frames:
            if self.declared_frames is None:
                self.declared_frames = self.frames
            self.frames = self._position

    # -- positions ------------------------------------------------------------------------------

    @property
    def duration(self) -> float:
        """Length of the file (seconds)."""
        return self.frames / self.sample_rate

    def tell(self) -> int:
        """The index of the next sample to be returned (samples from the start of the file)."""
        return self._position

    @property
    def position(self) -> float:
        """The time of the next sample to be returned (seconds from the start of the file)."""
        return self.tell() / self.sample_rate

    @property
    def finished(self) -> bool:
        """True once a file that does not loop has been read to its end."""
        return self._eof

    def seek(self, seconds: float) -> None:
        """Go to ``seconds`` from the start (0 .. ``duration``); restarts the real-time clock."""
        if not (isinstance(seconds, (int, float)) and 0 <= seconds <= self.duration):
            raise ParameterError(
                f"seconds must be in 0..{self.duration:.6g} for {self.path}, got {seconds!r}"
            )
        target = min(int(round(seconds * self.sample_rate)), self.frames)
        try:
            if self.cut_short:
                self._rewind()
            self._file.seek(target)
        except self._error_types as exc:
            raise AudioFileError(f"{self.path}: cannot seek ({exc})") from exc
        self._position = target
        self._eof = False
        if self._t0 is not None and not self._paused:
            self.start()

    # -- reading --------------------------------------------------------------------------------

    def _read(self, n: int) -> np.ndarray:
        if not self.loop:  # never allocate beyond the end, whatever is asked
            n = min(n, self.frames - self._position)
        out = np.empty(max(n, 0), dtype=np.float32)
        got = 0
        wrapped_empty = False
        while got < n:
            want = min(n - got, self.frames - self._position, 1 << 20)  # a pass ends at ``frames``
            try:
                chunk = self._file.read(want, dtype="float32", always_2d=True) if want > 0 else out[:0, None]
            except self._error_types:  # a tail that does not decode ends the file there
                chunk = self._read_before_break(want)
            k = chunk.shape[0]
            if k == 0:
                self._end_early()
                if not self.loop or wrapped_empty:
                    self._eof = True
                    break
                self._rewind()
                self.loops += 1
                wrapped_empty = True
                continue
            wrapped_empty = False
            if self.channel is not None:
                out[got : got + k] = chunk[:, self.channel]
            elif self.file_channels == 1:
                out[got : got + k] = chunk[:, 0]
            else:
                np.mean(chunk, axis=1, out=out[got : got + k])
            got += k
            self._position += k
        if self._position >= self.frames and not self.loop:
            self._eof = True
        return out[:got]

    def _rewind(self) -> None:
        if self.cut_short:  # libsndfile cannot seek in a file after its broken tail
            self._file.close()
            self._file = self._open()
        else:
            self._file.seek(0)
        self._position = 0

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples, float32 ``(k,)``, not paced; ``k < n`` only at the end of a
        file that does not loop (then 0 once finished)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ParameterError(f"n must be an integer >= 0 (samples), got {n!r}")
        out = self._read(int(n))
        self._paced += out.shape[0]
        return out

    def start(self) -> None:
        """Start (or restart, or resume) the real-time clock from the current position."""
        self._t0 = self._clock()
        self._paced = 0
        self._paused = False

    def stop(self) -> None:
        """Pause real-time replay: :meth:`pull` returns nothing until :meth:`start`."""
        self._paused = True

    @property
    def due(self) -> int:
        """Samples the wall clock says are due now in real-time mode (0 if paused or finished)."""
        if self._paused or self._eof or self._t0 is None:
            return 0
        elapsed = self._clock() - self._t0
        # Rounded, not floored: 0.1 s at 8 kHz must be 800 samples, not 799.99... -> 799.
        return max(0, round(elapsed * self.speed * self.sample_rate) - self._paced)

    def pull(self, max_samples: int | None = None) -> np.ndarray:
        """Real-time replay: the samples due by the clock (at most ``max_samples``; the rest stay
        due), float32 ``(k,)``. The first pull starts the clock and returns nothing."""
        if self._t0 is None:
            self.start()
        n = self.due
        if max_samples is not None:
            n = min(n, max(0, int(max_samples)))
        out = self._read(n)
        self._paced += n
        return out

    def read_available(self) -> np.ndarray:
        """What is ready now: :meth:`pull` when ``realtime``, else the next ``blocksize``
        samples."""
        return self.pull() if self.realtime else self.read(self.blocksize)

    def close(self) -> None:
        """Close the file; idempotent."""
        self._file.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


#: The formats :class:`Recorder` writes, each with the subtypes it offers: those that libsndfile
#: writes and reads back at full length and rate (headerless RAW, the block codecs that pad the
#: end, and subtypes that do not read back are left out).
RECORDING_FORMATS = {
    "WAV": ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW"),
    "WAVEX": ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW"),
    "W64": ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW"),
    "RF64": ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW"),
    "AIFF": ("PCM_16", "PCM_24", "PCM_32", "PCM_S8", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW"),
    "AU": ("PCM_16", "PCM_24", "PCM_32", "PCM_S8", "FLOAT", "DOUBLE", "ULAW", "ALAW"),
    "CAF": ("PCM_16", "PCM_24", "PCM_32", "PCM_S8", "FLOAT", "DOUBLE", "ULAW", "ALAW", "ALAC_16",
            "ALAC_20", "ALAC_24"),
    "FLAC": ("PCM_16", "PCM_24", "PCM_S8"),
    "OGG": ("VORBIS", "OPUS"),
    "MP3": ("MPEG_LAYER_III",),
}  # fmt: skip

#: Integer subtypes and their bits: written as integers rounded to nearest (libsndfile's own
#: float-to-integer conversion scales by 2^(b-1) - 1, one step low for half of the range).
PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "ALAC_16": 16,
             "ALAC_20": 20, "ALAC_24": 24}  # fmt: skip

# Formats whose header libsndfile rewrites after every write (sample-wise subtypes only): a killed
# process leaves a file that states the samples that reached the disk. Every other format (FLAC,
# OGG, MP3, ALAC) is recorded to a WAV beside it and converted when the recording is closed.
_HEADER_UPDATED = ("WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "CAF")
_SFC_SET_UPDATE_HEADER_AUTO = 0x1061  # libsndfile's sf_command code; soundfile has no call for it
#: Suffix of the WAV that a recording in another format is written to until it is closed.
PARTIAL_SUFFIX = ".partial.wav"


def recording_format(path: str | Path, format: str | None = None, subtype: str | None = None) -> tuple:
    """The ``(format, subtype)`` that :class:`Recorder` writes to ``path``: the format from
    ``format`` or the extension, the subtype from ``subtype`` or the format's default (PCM_16; VORBIS
    for OGG, MPEG_LAYER_III for MP3). Raises AudioFileError / ValueError naming what is offered."""
    sf = _soundfile()
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).upper()
    if fmt not in RECORDING_FORMATS:
        raise AudioFileError(
            f"{path}: cannot write audio format {fmt or '(no extension)'!r}; formats: "
            f"{', '.join(sorted(RECORDING_FORMATS))} (the extension or format chooses)"
        )
    offered = [s for s in RECORDING_FORMATS[fmt] if s in sf.available_subtypes(fmt)]
    chosen = sf.default_subtype(fmt) if subtype is None else str(subtype).upper()
    if chosen not in offered:
        raise ParameterError(f"subtype={subtype!r} is not offered for {fmt}; subtypes: {', '.join(offered)}")
    return fmt, chosen


def output_subtype(requested: str | None, input_subtype: str, out_path: str | Path) -> tuple[str, str]:
    """The (format, subtype) to write a processed copy of an input to ``out_path``: ``requested``,
    else the input's subtype where the output's format offers it, else 32-bit float for an input
    that is not integer PCM (a lossy or float input keeps the processing's precision), else the
    format's default. Raises as :func:`recording_format` does for an unknown format or subtype."""
    fmt, default = recording_format(out_path, subtype=requested)
    if requested is not None:
        return fmt, default
    offered = RECORDING_FORMATS[fmt]
    if input_subtype in offered:
        return fmt, input_subtype
    if not input_subtype.startswith("PCM") and "FLOAT" in offered:
        return fmt, "FLOAT"
    return fmt, default


def to_pcm(x: np.ndarray, subtype: str) -> np.ndarray:
    """``x`` (float, ±1 full scale) as the integers an integer ``subtype`` stores, rounded to
    nearest and clipped, scaled so that libsndfile writes them unchanged (int16 for up to 16 bits,
    int32 above, left-aligned). Reading the file back as float gives exactly ``q / 2^(bits-1)``.
    NaN becomes 0. Float input for any other subtype is returned as it is."""
    bits = PCM_BITS.get(subtype)
    if bits is None or x.dtype.kind != "f":
        return x
    scale = 2.0 ** (bits - 1)
    q = np.clip(np.rint(np.nan_to_num(x.astype(np.float64) * scale, nan=0.0)), -scale, scale - 1)
    if bits <= 16:
        return (q * 2.0 ** (16 - bits)).astype(np.int16)
    return (q * 2.0 ** (32 - bits)).astype(np.int32)


def check_writable(path: str | Path, sample_rate: int, channels: int, format: str, subtype: str) -> None:
    """Raise AudioFileError naming ``path`` if libsndfile refuses to create it with these settings
    (a rate OPUS or MP3 does not take, a folder that cannot be written); nothing is left behind.
    Lets a long job fail before it starts rather than at its end."""
    from .atomic import atomic_output

    sf = _soundfile()
    try:
        with atomic_output(path) as probe:
            sf.SoundFile(str(probe), "w", sample_rate, channels, subtype, format=format).close()
            probe.unlink()
    except (RuntimeError, OSError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise AudioFileError(
            f"{path}: cannot write {format} {subtype} at {sample_rate} Hz, {channels} channel(s) ({reason})"
        ) from exc


class Recorder:
    """Writes audio to a file block by block, so that a killed process leaves a readable file.

    WAV, WAVEX, W64, RF64, AIFF, AU and CAF (except ALAC) are written in place: each :meth:`write`
    appends the block, has libsndfile rewrite the header's length fields, and flushes, so a
    process that dies loses at most the block being written. FLAC, OGG, MP3 and ALAC cannot be read
    after a kill (their length or index is written at the end): they are recorded to the 32-bit float
    WAV ``writing`` (``path`` + ``.partial.wav``) and converted to ``path`` by :meth:`close`; the
    converted file appears whole or not at all, and the WAV is kept if the recording does not end
    with :meth:`close` (a kill, an exception inside ``with``) or the conversion fails.

    Integer subtypes are written from float blocks rounded to nearest (see :func:`to_pcm`), so a
    16-bit file read as float and written back holds the same integers.

    Call it from the thread that reads the ring, never from an audio callback (it does file I/O).

    Args:
        path: the file to create (overwritten if it exists; missing folders are created). The
            format comes from the extension (``.wav``, ``.flac``, ``.ogg``, ...) unless ``format``
            is given; :data:`RECORDING_FORMATS` lists the formats and subtypes offered.
        sample_rate: Hz, a whole number the format can store (OPUS: 8000, 12000, 16000, 24000 or
            48000; MP3: at most 48000).
        channels: channels per sample frame (default 1).
        subtype: libsndfile subtype, e.g. ``'PCM_16'``, ``'PCM_24'``, ``'FLOAT'``; ``None``
            (default) takes the format's default (PCM_16; VORBIS for OGG, MPEG_LAYER_III for MP3).
        format: libsndfile major format (``'WAV'``, ``'FLAC'``, ...); default from the extension.
        name: the file as errors name it (default: the file being written); a caller that writes
            to a temporary name gives the name the file will have.

    Attributes:
        frames: sample frames written so far.
        writing: the file being written now (``path``, or the WAV that becomes ``path``).
        format, subtype: of ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        sample_rate: int,
        channels: int = 1,
        subtype: str | None = None,
        format: str | None = None,
        name: str | Path | None = None,
    ) -> None:
        sf = _soundfile()
        self.path = Path(path)
        self._name = name
        rate = _check_rate_value(sample_rate)
        if not isinstance(rate, int):
            raise ParameterError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
        self.sample_rate = rate
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ParameterError(f"channels must be an integer >= 1, got {channels!r}")
        self.channels = channels
        self.format, self.subtype = recording_format(self.path, format, subtype)
        in_place = self.format in _HEADER_UPDATED and not self.subtype.startswith("ALAC")
        self.writing = self.path if in_place else self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.frames = 0
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not in_place:
                check_writable(self.path, rate, channels, self.format, self.subtype)
            fmt, subtype = (self.format, self.subtype) if in_place else ("WAV", "FLOAT")
            self._file = sf.SoundFile(str(self.writing), "w", rate, channels, subtype, format=fmt)
        except (RuntimeError, OSError) as exc:
            raise AudioFileError(f"{self.path}: cannot create ({exc})") from exc
        sf._snd.sf_command(self._file._file, _SFC_SET_UPDATE_HEADER_AUTO, sf._ffi.NULL, 1)
        # What the in-place file stores is what the caller gets back: integers rounded here.
        self._store = self.subtype if in_place else "FLOAT"

    @property
    def duration(self) -> float:
        """Seconds written so far."""
        return self.frames / self.sample_rate

    def write(self, block: np.ndarray) -> None:
        """Append a block: shape ``(n,)`` (mono) or ``(n, channels)``, float (±1 full scale;
        integer subtypes round to nearest and clip) or int16/int32 (full scale of the type). Flushes
        before returning. Raises AudioFileError naming the file where it cannot be written (a full
        disk); what was written before stays."""
        x = np.asarray(block)
        if x.ndim == 1 and self.channels == 1:
            pass
        elif x.ndim != 2 or x.shape[1] != self.channels:
            raise ParameterError(
                f"block must have shape (n,) for mono or (n, {self.channels}), got {x.shape}"
            )
        if x.dtype.kind not in "fi":
            x = x.astype(np.float32)
        try:
            self._file.write(to_pcm(x, self._store))
            self._file.flush()
        except (RuntimeError, OSError) as exc:  # a full disk, a removed drive, a file size limit
            what = self.writing if self._name is None else self._name
            raise AudioFileError(f"{what}: cannot write ({self._reason(exc)})") from exc
        self.frames += x.shape[0]

    def _reason(self, exc: BaseException) -> str:
        """libsndfile's own account of the file's last error ("System error : No space left on
        device."), where its exception says only "System error."."""
        sf = _soundfile()
        try:
            return sf._ffi.string(sf._snd.sf_strerror(self._file._file)).decode(errors="replace")
        except Exception:  # noqa: BLE001 - soundfile's internals moved: its own message then
            return str(exc)

    def close(self) -> None:
        """Finish the file (converting the WAV to ``path`` where one was recorded); idempotent.

        Raises:
            AudioFileError: the conversion failed; the recording is kept in ``writing``.
        """
        if self._closed:
            return
        self._closed = True
        self._file.close()
        if self.writing != self.path:
            self._convert()

    def _convert(self) -> None:
        from .atomic import atomic_output

        sf = _soundfile()
        try:
            with atomic_output(self.path) as target, sf.SoundFile(str(self.writing)) as wav:
                with sf.SoundFile(
                    str(target), "w", self.sample_rate, self.channels, self.subtype, format=self.format
                ) as out:
                    for block in wav.blocks(blocksize=65536, dtype="float32", always_2d=True):
                        out.write(to_pcm(block, self.subtype))
        except (RuntimeError, OSError) as exc:
            raise AudioFileError(
                f"{self.path}: cannot convert the recording ({exc}); it is kept in {self.writing}"
            ) from exc
        self.writing.unlink()
        self.writing = self.path

    def discard(self) -> None:
        """Close and delete what was written (nothing is converted); idempotent."""
        if not self._closed:
            self._closed = True
            self._file.close()
        if self.writing.exists():
            self.writing.unlink()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
        elif not self._closed:  # keep what was recorded, unconverted: the caller is failing
            self._closed = True
            self._file.close()


def timestamped_path(folder: str | Path, prefix: str = "rec", suffix: str = ".wav") -> Path:
    """``folder/rec-YYYYmmdd-HHMMSS.wav`` for the local time now; ``-2``, ``-3``, ... is appended
    before the suffix if that name is taken. The folder is not created."""
    stem = f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}"
    path = Path(folder) / f"{stem}{suffix}"
    n = 2
    while path.exists():
        path = Path(folder) / f"{stem}-{n}{suffix}"
        n += 1
    return path
