"""The input level meter: a vertical bar of the RMS level with the peak above it and a held peak
line, in dBFS, -60 .. 0. Receives (peak, rms) pairs; draws nothing else."""

from __future__ import annotations

import math
import time

from PyQt6 import QtCore, QtGui, QtWidgets

FLOOR_DB = -60.0
HOLD_S = 1.5
FALL_DB_PER_S = 30.0


def to_db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


class LevelMeter(QtWidgets.QWidget):
    """Input level in dBFS: RMS bar, peak bar (lighter), held peak line, red when ≥ -0.5 dBFS."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(46)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Expanding)
        self.peak_db = self.rms_db = self.held_db = -math.inf
        self._held_at = 0.0
        self._last = time.monotonic()
        self.setToolTip("input level (dBFS): RMS bar, peak, held peak")

    def set_level(self, peak: float, rms: float) -> None:
        """The level since the last call (linear, full scale 1.0); bars fall back smoothly."""
        now = time.monotonic()
        fall = FALL_DB_PER_S * (now - self._last)
        self._last = now
        self.peak_db = max(to_db(peak), self.peak_db - fall)
        self.rms_db = max(to_db(rms), self.rms_db - fall)
        if self.peak_db >= self.held_db or now - self._held_at > HOLD_S:
            self.held_db, self._held_at = self.peak_db, now
        self.update()

    def _y(self, db: float, top: int, height: int) -> float:
        frac = min(max((db - FLOOR_DB) / -FLOOR_DB, 0.0), 1.0)
        return top + height * (1.0 - frac)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor("#101014"))
        top, bottom = 8, self.height() - 20
        h = bottom - top
        bar = QtCore.QRectF(6, top, 12, h)
        p.fillRect(bar, QtGui.QColor("#23232b"))
        grad = QtGui.QLinearGradient(0, bottom, 0, top)
        grad.setColorAt(0.0, QtGui.QColor("#2e7d32"))
        grad.setColorAt(0.75, QtGui.QColor("#c0ca33"))
        grad.setColorAt(0.92, QtGui.QColor("#ff9800"))
        grad.setColorAt(1.0, QtGui.QColor("#e53935"))
        for db, alpha in ((self.peak_db, 110), (self.rms_db, 255)):
            if db > FLOOR_DB:
                y = self._y(db, top, h)
                p.setOpacity(alpha / 255)
                p.fillRect(QtCore.QRectF(6, y, 12, bottom - y), grad)
        p.setOpacity(1.0)
        if self.held_db > FLOOR_DB:
            y = self._y(self.held_db, top, h)
            p.setPen(QtGui.QPen(QtGui.QColor("#e53935" if self.held_db >= -0.5 else "#eeeeee"), 2))
            p.drawLine(QtCore.QPointF(5, y), QtCore.QPointF(19, y))
        p.setPen(QtGui.QColor("#8a8a96"))
        font = p.font()
        font.setPointSizeF(7)
        p.setFont(font)
        for db in (0, -12, -24, -36, -48, -60):
            y = self._y(db, top, h)
            p.drawLine(QtCore.QPointF(19, y), QtCore.QPointF(22, y))
            p.drawText(QtCore.QPointF(23, y + 3), str(db))
        text = "—" if self.peak_db == -math.inf else f"{max(self.peak_db, -99):.0f}"
        p.drawText(QtCore.QRectF(0, bottom + 4, self.width(), 14), QtCore.Qt.AlignmentFlag.AlignHCenter, text)
        p.end()
