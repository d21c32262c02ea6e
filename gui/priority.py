"""Engine first: the GUI thread yields the CPU to the engine thread when both want it.

On a machine with few cores, the GUI thread's redraws (about a third of a core at 60 Hz) compete
with the engine thread for the CPU, and every time the engine waits for a core its real-time
factor grows. Linux schedules threads, not processes, and gives each its own nice value: raising
the GUI thread's nice value (to :data:`ENGINE_FIRST_NICE`) makes the scheduler prefer the engine
thread (nice 0) whenever they contend, while an idle machine still gives the GUI all it asks.

Threads inherit the nice value of the thread that creates them, so the GUI thread lowers itself
only once the engine thread exists. Going back (a lower nice value) needs CAP_SYS_NICE or a
high enough RLIMIT_NICE on Linux; without them :func:`set_nice` says so and changes nothing.
Elsewhere (no per-thread nice values) every function here does nothing and says so.
"""

from __future__ import annotations

import os
import sys
import threading

#: The GUI thread's nice value with "engine first" on (0 is the default, 19 the lowest priority).
ENGINE_FIRST_NICE = 10


def supported() -> bool:
    """Whether threads have nice values of their own here (Linux)."""
    return sys.platform.startswith("linux") and hasattr(os, "setpriority")


def this_thread() -> int:
    """The calling thread's native id (its TID on Linux)."""
    return threading.get_native_id()


def nice(tid: int) -> int | None:
    """The nice value (-20 .. 19) of thread ``tid``, or None where threads have none."""
    if not supported():
        return None
    return os.getpriority(os.PRIO_PROCESS, tid)


def set_nice(tid: int, value: int) -> str:
    """Give thread ``tid`` the nice value ``value`` (-20 .. 19). Returns "" when done, else why
    not (not Linux; a lower value refused without the privilege to raise a priority)."""
    if not -20 <= int(value) <= 19:
        raise ValueError(f"nice value must be in -20..19, got {value!r}")
    if not supported():
        return "thread priorities are set on Linux only"
    try:
        os.setpriority(os.PRIO_PROCESS, tid, int(value))
    except PermissionError:
        return f"raising the GUI thread's priority back to nice {value} needs CAP_SYS_NICE or RLIMIT_NICE"
    except ProcessLookupError:
        return f"no thread {tid}"
    return ""
