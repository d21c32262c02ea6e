"""A real window under Xvfb: the installed ``rtdstft-gui`` entry point
replays a file on the xcb platform, saves a screenshot of itself and exits 0; the PNG must show a
spectrogram, not a blank window. The script leaves without Python's teardown (``app.run``), so the
test also checks that the settings were written before it left."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
XVFB = shutil.which("Xvfb")


def entry_point() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).parent / "rtdstft-gui"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rtdstft_gui.app"]


@pytest.fixture
def xvfb():
    """Start ``Xvfb`` on a free display (it picks one and tells it through -displayfd)."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [XVFB, "-displayfd", str(write_fd), "-screen", "0", "1440x900x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        display = f.readline().strip()
    if not display:
        proc.kill()
        pytest.fail("Xvfb did not report a display")
    yield f":{display}"
    proc.terminate()
    proc.wait(10)


@pytest.mark.skipif(XVFB is None, reason="Xvfb is not installed (apt-get install xvfb)")
def test_real_window_takes_a_non_blank_screenshot(xvfb, tmp_path):
    t = np.arange(4 * 22050) / 22050
    x = 0.5 * np.sin(2 * np.pi * (300 * t + 900 * t**2))  # a chirp 300 Hz -> 7.5 kHz
    x[::5000] += 0.8  # and clicks
    wav = tmp_path / "chirp.wav"
    sf.write(wav, x.astype(np.float32), 22050)
    shot = tmp_path / "out.png"
    env = {
        **os.environ,
        "DISPLAY": xvfb,
        "QT_QPA_PLATFORM": "xcb",
        "RTDSTFT_GUI_SETTINGS": str(tmp_path / "settings.ini"),
    }
    done = subprocess.run(
        # A 2 s span: the second or two that a busy machine may take to start still fill the picture.
        [*entry_point(), str(wav), "--span", "2", "--screenshot", str(shot), "--exit-after", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert shot.is_file()
    saved = (tmp_path / "settings.ini").read_text()
    for key in ("[analysis]", "n_fft=", "[display]", "colormap=", "[window]", "geometry=", "last_file="):
        assert key in saved, f"{key!r} missing from the saved settings"

    from PyQt6 import QtGui

    image = QtGui.QImage(str(shot)).convertToFormat(QtGui.QImage.Format.Format_RGB32)
    assert image.width() >= 800 and image.height() >= 500
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    pix = np.frombuffer(ptr, np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    rgb = np.stack([(pix >> s) & 0xFF for s in (16, 8, 0)], axis=-1).astype(int)
    # The spectrogram's area (left two thirds, middle rows): many colours, bright ridge pixels.
    h, w = rgb.shape[:2]
    area = rgb[h // 6 : h // 2, w // 12 : 2 * w // 3]
    colours = len(np.unique(area.reshape(-1, 3), axis=0))
    bright = (area.max(axis=-1) > 160).mean()
    assert colours > 50, f"only {colours} colours: the picture looks blank"
    assert bright > 0.005, f"only {bright:.2%} bright pixels: no spectrogram ridge"
