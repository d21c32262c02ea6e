"""Take the README's before/after screenshot pair of a spectral edit: four spoken digits (the
free spoken digit recordings in ../shared/data) with a 3 kHz tone burst over 0.5 s, replayed; the
burst selected and removed (-inf dB) in the edit panel; the edited file exported and replayed.

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python scripts/edit_screenshots.py [OUT_DIR]

Writes OUT_DIR/edit_before.png and OUT_DIR/edit_after.png (default docs/), each the whole window
(``QWidget.grab``) looking back at the same 2.4 s × 0-4 kHz with the selection drawn.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from PyQt6 import QtWidgets

ROOT = Path(__file__).resolve().parent.parent
FSDD = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"
RATE = 8000
BURST = (0.6, 1.1)


def wait(app: QtWidgets.QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def speech_with_burst(path: Path) -> float:
    files = sorted(FSDD.glob("*_jackson_0.wav"))[:4]
    if len(files) < 4:
        sys.exit(f"the spoken-digit recordings are not at {FSDD}")
    x = np.concatenate([sf.read(str(f))[0] for f in files])
    t = np.arange(x.shape[0]) / RATE
    x = x + 0.2 * np.sin(2 * np.pi * 3000 * t) * ((t >= BURST[0]) & (t < BURST[1]))
    sf.write(str(path), x, RATE, subtype="PCM_16")
    return x.shape[0] / RATE


def replay(app, w, path: Path, seconds: float) -> None:
    w.open_file(path)
    end = time.monotonic() + 60
    while (
        w.source_path != str(path) or w.history.time_span()[1] < seconds - 0.05
    ) and time.monotonic() < end:
        wait(app, 0.1)
    w.redraw()
    w.view.plot.setXRange(0.0 - w.view.now, seconds - w.view.now, padding=0)
    w.view.plot.setYRange(0.0, 4000.0, padding=0)
    w.view._looked()
    wait(app, 0.3)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    app = QtWidgets.QApplication(sys.argv[:1])
    from rtdstft_gui.app import dark_palette

    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    from rtdstft_gui.window import MainWindow

    from rtdstft.selection import Region

    tmp = Path(tempfile.mkdtemp(prefix="rtdstft-edit-shot-"))
    src, edited = tmp / "digits+burst.wav", tmp / "digits+burst-edited.wav"
    seconds = speech_with_burst(src)
    # One band: the picture is then the frames the edit goes through (one θ per frame).
    w = MainWindow(settings_path=str(tmp / "s.ini"), recordings_dir=str(tmp), overrides={"bands": 1})
    w.resize(1560, 960)
    w.show()
    w.speed.setCurrentIndex(w.speed.findData(1.0))
    replay(app, w, src, seconds)
    region = Region(BURST[0] - 0.02, BURST[1] + 0.02, 2800.0, 3200.0)
    w.selection.set_region(region)
    w.edit.gain.setValue(w.edit.gain.minimum())  # -inf: remove
    w.edit.apply()
    w.edit_dock.raise_()  # the Edit tab, with the applied edit in its list
    wait(app, 0.5)
    out.mkdir(parents=True, exist_ok=True)
    w.grab().save(str(out / "edit_before.png"), "PNG")
    w.edit.export(edited)
    replay(app, w, edited, seconds)
    w.selection.set_region(region)
    wait(app, 0.5)
    w.grab().save(str(out / "edit_after.png"), "PNG")
    print(f"wrote {out / 'edit_before.png'} and {out / 'edit_after.png'}")
    w.close()


if __name__ == "__main__":
    main()
