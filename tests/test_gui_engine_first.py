""" "Engine first" in the real application: once the engine thread exists, the GUI thread runs at
a higher nice value (a lower priority) than the engine thread, read back from the kernel; the
Display setting turns it off (the GUI thread's own value again) and on; closing the window gives
the thread its value back."""

from __future__ import annotations

import os
import sys
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from rtdstft_gui import priority  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values: Linux")


def _may_lower_nice(to: int) -> bool:
    """Whether this process may lower a thread's nice value back to ``to`` (root, or RLIMIT_NICE)."""
    import resource

    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20 - to


def gui_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_gui_thread_gives_way_to_the_engine_and_the_setting_undoes_it(qtbot, tmp_path):
    before = gui_nice()
    if not _may_lower_nice(before):
        pytest.skip("this process may not lower a nice value back (no CAP_SYS_NICE, RLIMIT_NICE)")
    w = MainWindow(settings_path=str(tmp_path / "s.ini"), recordings_dir=str(tmp_path / "rec"))
    qtbot.addWidget(w)
    try:
        assert w.display.engine_first.isChecked()  # on by default
        lowered = max(before, priority.ENGINE_FIRST_NICE)
        assert gui_nice() == lowered > before or before >= priority.ENGINE_FIRST_NICE
        engine = w.worker.call(lambda _: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert engine == before  # the engine thread was made first: it kept the GUI thread's old value
        w.display.engine_first.setChecked(False)
        assert gui_nice() == before
        w.display.engine_first.setChecked(True)
        assert gui_nice() == lowered
    finally:
        w.close()
    assert gui_nice() == before  # the thread lives on after its window
