"""SampleRing: exact copies across the wrap, refuse-newest overruns, and two real threads."""

from __future__ import annotations

import itertools
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from rtdstft.ringbuffer import SampleRing


@pytest.fixture
def busy_switching():
    """Make the interpreter switch threads every 10 µs, so producer and consumer interleave at
    many more points than the default 5 ms allows."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def numbered(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)  # exact up to 2**24


def test_wraparound_copies_exactly():
    ring = SampleRing(10)
    assert ring.write(numbered(0, 7)) == 7
    np.testing.assert_array_equal(ring.read(5), numbered(0, 5))
    assert ring.write(numbered(7, 8)) == 8  # wraps: 3 at the end, 5 at the start
    assert (ring.available, ring.free) == (10, 0)
    out = np.full(12, -1, dtype=np.float32)
    got = ring.read(12, out=out)
    np.testing.assert_array_equal(got, numbered(5, 10))
    assert np.shares_memory(got, out) and out[10] == -1
    assert (ring.write_count, ring.read_count, ring.overruns) == (15, 15, 0)


def test_peek_skip_clear_and_counters():
    ring = SampleRing(8)
    ring.write(numbered(0, 6))
    np.testing.assert_array_equal(ring.peek(4), numbered(0, 4))
    assert ring.available == 6  # peek consumed nothing
    assert ring.skip(2) == 2
    np.testing.assert_array_equal(ring.read(1), [2.0])
    assert ring.clear() == 3
    assert (ring.available, ring.read_count, ring.write_count) == (0, 6, 6)
    assert ring.read(4).shape == (0,)
    assert ring.read_available().shape == (0,)


def test_write_accepts_strided_columns_and_converts_dtype():
    ring = SampleRing(16)
    stereo = np.stack([numbered(0, 5), -numbered(0, 5)], axis=1)  # (5, 2) as from PortAudio
    ring.write(stereo[:, 1])
    ring.write(np.array([0.5, 0.25], dtype=np.float64))
    got = ring.read_available()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [0, -1, -2, -3, -4, 0.5, 0.25])


def test_write_makes_no_block_sized_allocation():
    ring = SampleRing(1 << 16)
    stereo = np.zeros((4096, 2), dtype=np.float32)
    ring.write(stereo[:, 0])  # warm up
    ring.clear()
    tracemalloc.start()
    try:
        for _ in range(8):
            ring.write(stereo[:, 0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4096 * 4 // 4, f"write allocated {peak} bytes for a 16 KiB block"


def test_overrun_refuses_the_newest_and_counts_them():
    ring = SampleRing(10)
    assert ring.write(numbered(0, 6)) == 6
    assert ring.write(numbered(6, 7)) == 4  # 3 refused
    assert ring.write(numbered(13, 2)) == 0  # full: both refused
    assert (ring.overruns, ring.overrun_events) == (5, 2)
    np.testing.assert_array_equal(ring.read_available(), numbered(0, 10))
    assert ring.write(numbered(100, 25)) == 10  # bigger than the whole ring
    assert ring.overruns == 20
    np.testing.assert_array_equal(ring.read_available(), numbered(100, 10))
    assert ring.write_count + ring.overruns == 6 + 7 + 2 + 25


def test_bad_arguments_name_the_parameter():
    for bad in (0, -3, 2.5, True, None):
        with pytest.raises(ValueError, match="capacity"):
            SampleRing(bad)
    ring = SampleRing(4)
    with pytest.raises(ValueError, match="one-dimensional"):
        ring.write(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="n must be"):
        ring.read(-1)
    ring.write(numbered(0, 3))
    with pytest.raises(ValueError, match="out holds 2"):
        ring.read(3, out=np.zeros(2, dtype=np.float32))
    assert ring.available == 3  # a failed read consumes nothing


WRITE_SIZES = [1, 2, 3, 5, 8, 13, 64, 127, 128, 129, 255, 1000, 1023, 1024, 1025, 4095, 4096]
READ_SIZES = [1, 7, 100, 333, 1024, 4096, None]


@pytest.mark.parametrize("capacity", [257, 1024, 4099])
def test_two_threads_lose_and_duplicate_nothing(capacity, busy_switching):
    total = 4_000_000
    ring = SampleRing(capacity)
    received: list[np.ndarray] = []
    failure: list[BaseException] = []

    def produce():
        try:
            sent = 0
            for size in itertools.cycle(WRITE_SIZES):
                if sent >= total:
                    return
                block = numbered(sent, min(size, total - sent))
                done = 0
                while done < block.shape[0]:  # write only what fits: no overrun wanted here
                    room = ring.free
                    if room == 0:
                        time.sleep(0)
                        continue
                    done += ring.write(block[done : done + room])
                sent += block.shape[0]
        except BaseException as exc:  # noqa: BLE001 - surfaced by the main thread
            failure.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    got = 0
    deadline = time.monotonic() + 60
    for size in itertools.cycle(READ_SIZES):
        if got >= total or time.monotonic() > deadline:
            break
        chunk = ring.read(size)
        if chunk.shape[0] == 0:
            time.sleep(0)
        received.append(chunk)
        got += chunk.shape[0]
    producer.join(10)
    assert not failure, failure
    stream = np.concatenate(received)
    np.testing.assert_array_equal(stream, numbered(0, total))  # no loss, no duplicate, in order
    assert (ring.overruns, ring.write_count, ring.read_count) == (0, total, total)


def test_slow_consumer_overruns_are_counted_and_leave_no_duplicates(busy_switching):
    total = 200_000
    ring = SampleRing(2048)
    stop = threading.Event()

    def produce():
        sent = 0
        for size in itertools.cycle([256, 1000, 17, 4096]):
            if sent >= total:
                break
            n = min(size, total - sent)
            ring.write(numbered(sent, n))  # never waits: refused samples are overruns
            sent += n
            time.sleep(0)
        stop.set()

    producer = threading.Thread(target=produce)
    producer.start()
    chunks = []
    while not stop.is_set() or ring.available:
        chunks.append(ring.read(300))
        time.sleep(0.0005)  # slower than the producer
    producer.join(10)
    stream = np.concatenate(chunks).astype(np.int64)
    assert ring.overruns > 0 and ring.overrun_events > 0
    assert np.all(np.diff(stream) > 0)  # in order, no duplicates
    assert stream.shape[0] + ring.overruns == total  # every sample is either delivered or counted
    assert np.setdiff1d(np.arange(total), stream).shape[0] == ring.overruns
