"""Looking back through the history: the mouse and keys on the spectrogram, and the picture of any
stretch of the :class:`~.history.History` at screen resolution.

Gestures (the spectrogram's :class:`LookViewBox`):

- wheel: zoom in time around the pointer; Shift + wheel: zoom in frequency;
- drag: pan in time and frequency; Shift + drag: draw a time × frequency selection box;
- keys (the view focused): ←/→ pan in time, ↑/↓ pan in frequency, + / - zoom in time,
  PgUp / PgDn zoom in frequency, Home the oldest history, End back to the live view.

:class:`HistoryImage` draws the history over exactly the visible rectangle, one pixel per screen
pixel: a re-render costs the screen's pixels, whatever the zoom (the history's pyramid).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from rtdstft.pitch import from_axis

from .history import History, code_to_db, pool_max


class LookViewBox(pg.ViewBox):
    """A ViewBox whose wheel zooms time (Shift: frequency) and whose Shift+drag draws a box.

    Signals:
        user_range(): the user scrolled or zoomed.
        selecting(QRectF, bool): the box being drawn (view coordinates) and whether it is done.
    """

    user_range = QtCore.pyqtSignal()
    selecting = QtCore.pyqtSignal(QtCore.QRectF, bool)

    def wheelEvent(self, ev, axis=None):  # noqa: N802 (Qt's name)
        shift = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
        super().wheelEvent(ev, axis=1 if shift else 0)
        self.user_range.emit()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (Qt's name)
        shift = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
        if shift and ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            a = self.mapSceneToView(ev.buttonDownScenePos(ev.button()))
            b = self.mapSceneToView(ev.scenePos())
            self.selecting.emit(QtCore.QRectF(a, b).normalized(), bool(ev.isFinish()))
            return
        super().mouseDragEvent(ev, axis)
        self.user_range.emit()


class HistoryImage(QtWidgets.QGraphicsObject):
    """The history's picture over a rectangle of the view (x: s relative to the view's ``now``,
    y: the frequency axis' coordinate), ``width`` × ``height`` pixels."""

    def __init__(self) -> None:
        super().__init__()
        self._pixels = np.zeros((1, 1), np.uint32)
        self._image = pg.functions.ndarray_to_qimage(self._pixels, QtGui.QImage.Format.Format_RGB32)
        self.renders = 0
        self._drawn: tuple | None = None  # what the pixels show: (its arguments, the history's state)
        self.redrawn = 0  # pixel columns drawn by the last render

    def render(
        self,
        history: History,
        rect: QtCore.QRectF,
        now: float,
        width: int,
        height: int,
        scale: str,
        lut: np.ndarray,
        levels: tuple[float, float],
    ) -> None:
        """Draw stream times rect.left + now .. rect.right + now and axis coordinates rect.top ..
        rect.bottom (``scale``: "linear" | "log" | "mel") through colour table ``lut`` at dB
        ``levels`` (floor, ceiling). The same picture again after new frames (the live edge in
        view) redraws only the pixel columns they reach (:meth:`.history.History.picture_since`)."""
        width, height = max(8, int(width)), max(8, int(height))
        x0, x1, y0, y1 = rect.left(), rect.right(), rect.top(), rect.bottom()
        what = (history, x0 + now, x1 + now, y0, y1, width, height, scale, id(lut), tuple(levels))
        then = self._drawn[1] if self._drawn is not None and self._drawn[0] == what else None
        p, codes = history.picture_since(x0 + now, x1 + now, width, then)  # [width - p, rows]
        self._drawn = (what, history.state)
        f = from_axis(np.linspace(y0, y1, height + 1)[:-1], scale)
        row_hz = history.bin_pool * history.sample_rate / history.n_fft
        starts = np.clip(np.floor(np.nan_to_num(f / row_hz + 0.5)), 0, history.rows - 1).astype(np.int64)
        starts = np.maximum.accumulate(starts)
        # Pool along contiguous rows (reducing across the last axis is several times slower).
        rows = pool_max(np.ascontiguousarray(codes.T), starts)  # [height, width - p]
        floor, ceiling = levels
        idx = np.clip((code_to_db(np.arange(256)) - floor) * (255.0 / max(ceiling - floor, 1e-6)), 0, 255)
        table = lut[idx.astype(np.uint8)]
        self.renders += 1
        self.redrawn = width - p
        if p > 0:  # the same rectangle: the pixels before p stand
            self._pixels[:, p:] = np.take(table, rows)
            self.update()
            return
        self._pixels = np.take(table, rows)  # faster than table[rows] for a large picture
        self._image = pg.functions.ndarray_to_qimage(self._pixels, QtGui.QImage.Format.Format_RGB32)
        tr = QtGui.QTransform()
        tr.translate(x0, y0)
        tr.scale((x1 - x0) / width, (y1 - y0) / height)
        self.prepareGeometryChange()
        self.setTransform(tr)
        self.update()

    def pixels(self) -> np.ndarray:
        """The picture [rows, columns] uint32, row 0 = lowest frequency, column 0 = oldest."""
        return self._pixels

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 (Qt's name)
        h, w = self._pixels.shape
        return QtCore.QRectF(0, 0, w, h)

    def paint(self, painter: QtGui.QPainter, *args) -> None:
        h, w = self._pixels.shape
        painter.drawImage(QtCore.QRectF(0, 0, w, h), self._image)
