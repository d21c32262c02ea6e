"""``rtdstft-gui``: start the application.

    rtdstft-gui [FILE | --mic [DEVICE]] [--n-fft N] [--hop H] [--no-adapt] [--span SECONDS]
                [--screenshot PATH --exit-after SECONDS]

Without ``--n-fft``/``--hop`` the analysis suits the source's sample rate (θ about 5 .. 85 ms)
unless the saved settings say otherwise. With no source it replays the last file opened, or on
first start the demo recording (written into the user's data folder then, see :mod:`.demo`).
``--screenshot PATH`` saves the whole window to PATH after ``--exit-after`` seconds (default 3)
and exits with status 0 (1 if the PNG could not be written); ``--exit-after`` alone just quits.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys

from PyQt6 import QtCore, QtGui, QtWidgets

from .controls import HOPS, N_FFTS
from .demo import demo_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rtdstft-gui", description="Live adaptive spectrogram.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("file", nargs="?", help="audio file to replay (WAV, FLAC, OGG)")
    src.add_argument(
        "--mic",
        nargs="?",
        const="",
        metavar="DEVICE",
        help="listen to an input device (index or name; default device if omitted)",
    )
    p.add_argument("--rate", type=int, default=48000, help="microphone sample rate, Hz")
    p.add_argument("--n-fft", type=int, choices=N_FFTS, help="FFT size N (samples)")
    p.add_argument("--hop", type=int, choices=HOPS, help="hop H (samples)")
    p.add_argument("--no-adapt", action="store_true", help="fixed window length (no adaptation)")
    p.add_argument(
        "--bands", type=int, choices=range(1, 9), metavar="B", help="a θ per band: 1 (one θ) to 8 bands"
    )
    p.add_argument("--span", type=float, metavar="SECONDS", help="time shown, 1 to 120 s")
    p.add_argument("--screenshot", metavar="PATH", help="save the window to PATH, then exit")
    p.add_argument(
        "--exit-after",
        type=float,
        metavar="SECONDS",
        help="quit after this many seconds (with --screenshot: default 3)",
    )
    p.add_argument("--settings", metavar="INI", help="settings file (default: the user's)")
    p.add_argument(
        "--engine-process",
        action="store_true",
        help="run the transform in a process of its own (it then shares no interpreter lock with the GUI)",
    )
    args = p.parse_args(argv)
    if args.screenshot and args.exit_after is None:
        args.exit_after = 3.0
    if args.span is not None and not 1 <= args.span <= 120:
        p.error("--span must be in 1..120 seconds")
    if args.exit_after is not None and not args.exit_after > 0:
        p.error("--exit-after must be > 0 seconds")
    return args


def dark_palette() -> QtGui.QPalette:
    """A dark theme: the picture is the brightest thing on the screen."""
    c = QtGui.QColor
    pal = QtGui.QPalette()
    role = QtGui.QPalette.ColorRole
    for r, col in (
        (role.Window, "#1b1b21"),
        (role.WindowText, "#dcdce4"),
        (role.Base, "#141419"),
        (role.AlternateBase, "#202028"),
        (role.Text, "#dcdce4"),
        (role.Button, "#26262e"),
        (role.ButtonText, "#dcdce4"),
        (role.Highlight, "#7e57c2"),
        (role.HighlightedText, "#ffffff"),
        (role.ToolTipBase, "#26262e"),
        (role.ToolTipText, "#dcdce4"),
        (role.PlaceholderText, "#808088"),
    ):
        pal.setColor(r, c(col))
    for r in (role.WindowText, role.Text, role.ButtonText):
        pal.setColor(QtGui.QPalette.ColorGroup.Disabled, r, c("#6a6a74"))
    return pal


def main(argv: list[str] | None = None) -> int:
    """Run the application until its window closes; return the exit status. The window, its
    engine thread and the streams are shut down, in that order, before this returns."""
    args = parse_args(argv)
    if sys.stderr is not None and not faulthandler.is_enabled():
        # A crash inside Qt, PortAudio or torch then prints where it happened (every thread's
        # Python stack) instead of dying silently.
        faulthandler.enable()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("rtdstft-gui")
    app.setOrganizationName("rtdstft")
    app.setStyle("Fusion")
    app.setPalette(dark_palette())

    from .window import MainWindow  # after QApplication: the window imports torch

    overrides = {}
    if args.n_fft:
        overrides["n_fft"] = args.n_fft
    if args.hop:
        overrides["hop_length"] = args.hop
    if args.no_adapt:
        overrides["adapt"] = False
    if args.bands is not None:
        overrides["bands"] = args.bands
    window = MainWindow(settings_path=args.settings, overrides=overrides, engine_process=args.engine_process)
    if args.span is not None:
        window.display.span.setValue(args.span)
    window.show()
    if args.mic is not None:
        device = args.mic if args.mic else None
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        window.open_mic(device, args.rate)
    else:
        window.open_file(args.file or window.last_file() or str(demo_file()))

    status = {"code": 0}
    if args.exit_after is not None:

        def finish() -> None:
            if args.screenshot:
                window.redraw()
                app.processEvents()
                if not window.grab().save(args.screenshot, "PNG"):
                    print(f"rtdstft-gui: cannot write {args.screenshot}", file=sys.stderr)
                    status["code"] = 1
            window.close()
            app.exit(status["code"])

        QtCore.QTimer.singleShot(int(args.exit_after * 1000), finish)
    code = app.exec()
    window.shut_down()
    # Delete the window and its views while the QApplication still exists, rather than leave
    # them to Python's garbage collector, which may run after the application is gone.
    window.deleteLater()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete.value)
    return status["code"] or code


def run() -> None:
    """The ``rtdstft-gui`` console script: :func:`main`, then exit without Python's teardown.

    By now the settings are written, the engine thread has ended and the streams, monitor and
    recorder are closed. What is left are Qt objects that Python would destroy at exit in no set
    order (sip's wrappers, pyqtgraph's exit-time scene), a known source of crashes after a clean
    run; so flush and leave, as pyqtgraph's own ``pg.exit()`` does.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
