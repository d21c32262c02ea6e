"""The package as a user gets it from ``pip install``: a wheel built from the repository's files,
installed (not editable) into a fresh virtual environment and run from a folder that is not the
checkout. The wheel holds the licence, the typing marker and the demo; the installed
``rtdstft-gui`` must start on the demo with no file given and no dialog, and the installed
``rtdstft reproduce`` must find its data where it is told and nowhere else.

The fresh environment is made without pip and gets only the wheel (``--no-deps``); the test
environment's site-packages is appended behind it by a ``.pth`` file for numpy, torch and PyQt6,
so the import of rtdstft itself comes from the wheel, which the test checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def _source_files() -> list[str]:
    """The files a clean clone holds: tracked plus new ones not ignored (the ignored .venv, build
    folders and recordings stay out)."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout (or no git): cannot tell the repository's files")
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the repository's files (the checkout is not written to)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for f in _source_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-q", "-w", str(base / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = (base / "dist").glob("rtdstft-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel; returns its bin folder."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
        + [str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The test environment's packages (numpy, torch, PyQt6, ...) behind the wheel's: a plain path
    # entry, so the editable install's hooks in that folder are not run.
    (Path(site) / "zz_test_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


def _user_env(home: Path) -> dict:
    """A user with an empty home: settings, data and music folders all under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTDSTFT_", "XDG_", "PYTHON"))}
    return {
        **env,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "QT_QPA_PLATFORM": "offscreen",
    }


def test_wheel_holds_licence_typing_marker_and_demo(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "rtdstft/py.typed" in names
    assert "rtdstft_gui/demo.py" in names
    assert "License-Expression: MIT" in meta and "Author: rtdstft developers" in meta
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "recordings/"))]


def test_installed_package_comes_from_the_wheel(installed, tmp_path):
    done = subprocess.run(
        [str(installed / "python"), "-c", "import rtdstft, rtdstft_gui; print(rtdstft.__file__)"],
        cwd=tmp_path,
        env=_user_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    where = Path(done.stdout.strip())
    assert installed.parent in where.parents and ROOT not in where.parents, where


def test_installed_gui_starts_on_the_demo_without_a_dialog(installed, tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    shot = elsewhere / "shot.png"
    done = subprocess.run(
        [str(installed / "rtdstft-gui"), "--screenshot", "shot.png", "--exit-after", "3"],
        cwd=elsewhere,
        env=_user_env(home),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    # The demo was written into the user's data folder, the same bytes as the checkout's copy.
    demo = home / ".local" / "share" / "rtdstft" / "rtdstft-gui" / "demo.wav"
    assert demo.is_file()
    if (ROOT / "recordings" / "demo.wav").is_file():
        assert demo.read_bytes() == (ROOT / "recordings" / "demo.wav").read_bytes()
    # The window opened it (a file that fails to open gets a dialog and is never remembered).
    settings = (home / ".config" / "rtdstft" / "rtdstft-gui.ini").read_text()
    assert f"last_file={demo}" in settings, settings

    from PyQt6 import QtGui

    image = QtGui.QImage(str(shot)).convertToFormat(QtGui.QImage.Format.Format_RGB32)
    assert image.width() >= 800 and image.height() >= 500
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    pix = np.frombuffer(ptr, np.uint32).reshape(image.height(), image.bytesPerLine() // 4)
    # The newest seconds of the spectrogram (right of the plot, left of the colour bar): the demo's
    # clicks in many colours, once its first second has been analysed.
    h, w = pix.shape
    area = pix[h // 6 : h // 2, int(0.55 * w) : int(0.69 * w)] & 0xFFFFFF
    assert len(np.unique(area)) > 30, "the spectrogram looks blank"


def test_installed_reproduce_uses_the_data_it_is_given_and_only_that(installed, tmp_path):
    env = _user_env(tmp_path / "home")
    # No --data and no RTDSTFT_DATA: one line, status 2, how to give the folder.
    done = subprocess.run(
        [str(installed / "rtdstft"), "reproduce", "grid", "--quick"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtdstft: error:") and "--data DIR" in lines[0], lines
    assert "RTDSTFT_DATA" in lines[0] and "site-packages" not in lines[0]

    if not (DATA / "paper").is_dir():
        pytest.skip("../shared/data/paper not present (a user's clone has no shared data)")
    done = subprocess.run(
        [str(installed / "rtdstft"), "reproduce", "grid", "--quick", "--data", str(DATA)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fan_flutter" in done.stdout and "| ---" in done.stdout, done.stdout


def test_demo_is_written_once_whole_and_where_it_can_be(tmp_path, monkeypatch):
    from rtdstft_gui import demo

    path = demo.demo_file(tmp_path / "data")
    assert path == tmp_path / "data" / "demo.wav"
    if (ROOT / "recordings" / "demo.wav").is_file():
        assert path.read_bytes() == (ROOT / "recordings" / "demo.wav").read_bytes()
    written = path.stat().st_mtime_ns
    assert demo.demo_file(tmp_path / "data") == path and path.stat().st_mtime_ns == written  # kept
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left behind
    # A first start killed while writing left a short file: it is written again.
    path.write_bytes(path.read_bytes()[:1000])
    assert demo.demo_file(tmp_path / "data") == path
    assert path.stat().st_size == 44 + 2 * int(demo.DURATION * demo.SAMPLE_RATE)
    # A data folder that cannot be made (here: below a file): the temporary folder.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    assert demo.demo_file(blocker / "data") == tmp_path / "tmp" / "rtdstft" / "demo.wav"


def test_recordings_go_to_the_users_music_folder(qtbot, tmp_path, monkeypatch):
    from rtdstft_gui.window import MainWindow

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))  # no user-dirs.dirs: ~/Music
    monkeypatch.chdir(cwd)
    w = MainWindow(settings_path=str(tmp_path / "settings.ini"))
    qtbot.addWidget(w)
    assert w.recordings_dir == home / "Music" / "rtdstft"
    assert str(w.recordings_dir) in w.record_action.toolTip()
    w.close()
