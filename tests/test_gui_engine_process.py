"""The transform in a child process of its own: it emits what the engine in this process emits, the
application's engine runs in another process, closing the window or killing the application leaves
no child behind, and a killed child is reported and replaced while the replay goes on."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from rtdstft_gui.engine_process import EngineProcess  # noqa: E402
from rtdstft_gui.window import MainWindow  # noqa: E402

from rtdstft import StreamConfig, StreamingDSTFT  # noqa: E402

SR = 16000
WAIT_MS = 60000


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` has ended (and been reaped, or is a zombie) within ``within`` s."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_the_child_emits_what_the_engine_here_emits():
    config = StreamConfig(sample_rate=SR, n_fft=512, hop_length=64, bands=2)
    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    here, child = StreamingDSTFT(config=config), EngineProcess()
    try:
        remote = child.new(config)
        i, sizes = 0, np.random.default_rng(1).integers(1, 3000, 40)
        for n in sizes:
            a, b = here.process(x[i : i + n]), remote.process(x[i : i + n])
            i += n
            np.testing.assert_array_equal(a.frame_index, b.frame_index)
            np.testing.assert_allclose(a.win_length, b.win_length, rtol=1e-6)
            # Float precision only: the two processes may run torch with different thread counts.
            np.testing.assert_allclose(a.spec, b.spec, atol=1e-5 * max(1.0, np.abs(a.spec).max(initial=0)))
            np.testing.assert_allclose(a.audio, b.audio, atol=1e-6)
            assert remote.samples_to_next_block == here.samples_to_next_block
        remote.configure(smoothness=0.5)
        assert remote.config.smoothness == 0.5
        np.testing.assert_allclose(here.flush().audio, remote.flush().audio, atol=1e-6)
    finally:
        child.close()
    assert gone(child.pid)


def test_a_killed_application_leaves_no_engine_process(tmp_path):
    code = (
        "from rtdstft_gui.engine_process import EngineProcess\n"
        "from rtdstft import StreamConfig\n"
        "import sys, time\n"
        "p = EngineProcess(); p.new(StreamConfig(sample_rate=16000))\n"
        "print(p.pid, flush=True); time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert not gone(child, within=0.5)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert gone(child), "the engine process outlived its killed application"


@pytest.fixture
def tone_wav(tmp_path) -> str:
    t = np.arange(8 * SR) / SR
    path = tmp_path / "tone.wav"
    sf.write(path, (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), SR, subtype="FLOAT")
    return str(path)


def test_the_application_runs_its_engine_in_a_child_that_dies_with_the_window(qtbot, tmp_path, tone_wav):
    w = MainWindow(
        settings_path=str(tmp_path / "s.ini"),
        recordings_dir=str(tmp_path / "rec"),
        overrides={"n_fft": 1024, "hop_length": 128},
        engine_process=True,
    )
    qtbot.addWidget(w)
    w.show()
    w.loop.setChecked(True)
    shown = [0]  # columns handed to the picture, over every engine
    append = w.view.append

    def counting(db, *rest):
        shown[0] += len(db)
        append(db, *rest)

    w.view.append = counting
    w.open_file(tone_wav)
    qtbot.waitUntil(lambda: shown[0] > 20, timeout=WAIT_MS)
    first = w.worker.call(lambda wk: wk.engine_pid())
    assert first != os.getpid() and not gone(first, within=0.1)

    os.kill(first, signal.SIGKILL)  # the child crashes: said in the status bar, and replaced
    qtbot.waitUntil(lambda: "engine restarted" in w.statusBar().currentMessage(), timeout=WAIT_MS)
    second = w.worker.call(lambda wk: wk.engine_pid())
    assert second not in (first, os.getpid())
    count = shown[0]
    qtbot.waitUntil(lambda: shown[0] > count + 20, timeout=WAIT_MS)  # the replay goes on

    w.close()
    assert gone(second), "the engine process outlived the window"
