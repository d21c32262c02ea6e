"""Take the README's screenshot of the analysis workflow: the bundled demo replayed, the view
zoomed back onto the vibrato tone, a selection drawn around it with its measurements, the readout
on its peak.

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py [docs/analysis.png]

Runs the real application (any Qt platform; under Xvfb it is a real X11 window) and saves the
whole window with ``QWidget.grab``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

ROOT = Path(__file__).resolve().parent.parent


def wait(app: QtWidgets.QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "analysis.png"
    app = QtWidgets.QApplication(sys.argv[:1])
    from rtdstft_gui.app import dark_palette

    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    from rtdstft_gui.window import MainWindow

    from rtdstft.selection import Region

    tmp = Path(tempfile.mkdtemp(prefix="rtdstft-shot-"))
    w = MainWindow(settings_path=str(tmp / "s.ini"), recordings_dir=str(tmp))
    w.resize(1560, 960)
    w.show()
    w.speed.setCurrentIndex(w.speed.findData(1.0))  # real time: no block dropped on a busy machine
    w.open_file(ROOT / "recordings" / "demo.wav")
    end = time.monotonic() + 60
    while w.history.time_span()[1] < 19.9 and time.monotonic() < end:
        wait(app, 0.1)
    w.redraw()
    # Look back at 2-8 s (the vibrato tone and the chirps), 0-4 kHz, and select the tone's
    # 4th harmonic (880 Hz) over a few vibrato cycles.
    w.view.plot.setXRange(2.0 - w.view.now, 8.0 - w.view.now, padding=0)
    w.view.plot.setYRange(0.0, 4000.0, padding=0)
    w.view._looked()
    wait(app, 0.3)
    w.selection.set_region(Region(4.0, 5.5, 700.0, 1100.0))
    end = time.monotonic() + 30
    while not w.selection.measurement and time.monotonic() < end:  # measured in the engine thread
        wait(app, 0.05)
    w.selection.keep("vibrato, 4th harmonic")
    w.selection_dock.raise_()  # the measurements' tab
    w.display.harmonics.setChecked(True)
    vb = w.view.plot.vb
    pos = w.view.mapFromScene(vb.mapViewToScene(QtCore.QPointF(4.6 - w.view.now, 880.0)))
    w.view.hovered.emit(w.view.readout_at(w.view.mapToScene(pos)))
    wait(app, 0.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = w.grab().save(str(out), "PNG")
    print(f"{'wrote' if ok else 'could not write'} {out}")
    w.close()


if __name__ == "__main__":
    main()
