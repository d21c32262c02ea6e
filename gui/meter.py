"""The input level meter: a vertical bar of the RMS level with the peak above it and a held peak
line, in dBFS, -60 .. 0. Receives (peak, rms) pairs; draws nothing else."""

from __future__ import annotations

import math
import time

from PyQt6 import QtCore, QtGui, QtWidgets

FLOOR_DB = -60.0
HOLD_S = 1.5
FALL_DB_PER_S = 30.0
SCALE_DB = (0, -12, -24, -36, -48, -60)
BAR_X, BAR_W = 6, 12


def to_db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


class LevelMeter(QtWidgets.QWidget):
    """Input level in dBFS: RMS bar, peak bar (lighter), held peak line, red when ≥ -0.5 dBFS."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        font = self.font()
        font.setPointSizeF(7)
        self.setFont(font)
        # Room for the widest scale label right of the bar, half a line above the 0 dB label, and
        # the peak readout below the -60 dB label: nothing is clipped whatever the font.
        fm = QtGui.QFontMetrics(font)
        self._label_x = BAR_X + BAR_W + 5
        self._top = fm.ascent() // 2 + 3
        self._line = fm.height()
        self.setMinimumWidth(self._label_x + max(fm.horizontalAdvance(str(db)) for db in SCALE_DB) + 4)
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
        top, bottom = self._top, self.height() - 2 * self._line - 4
        h = bottom - top
        bar = QtCore.QRectF(BAR_X, top, BAR_W, h)
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
                p.fillRect(QtCore.QRectF(BAR_X, y, BAR_W, bottom - y), grad)
        p.setOpacity(1.0)
        if self.held_db > FLOOR_DB:
            y = self._y(self.held_db, top, h)
            p.setPen(QtGui.QPen(QtGui.QColor("#e53935" if self.held_db >= -0.5 else "#eeeeee"), 2))
            p.drawLine(QtCore.QPointF(BAR_X - 1, y), QtCore.QPointF(BAR_X + BAR_W + 1, y))
        p.setPen(QtGui.QColor("#8a8a96"))
        align = QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter
        for db in SCALE_DB:
            y = self._y(db, top, h)
            p.drawLine(QtCore.QPointF(BAR_X + BAR_W + 1, y), QtCore.QPointF(self._label_x - 1, y))
            label = QtCore.QRectF(self._label_x, y - self._line / 2, self.width() - self._label_x, self._line)
            p.drawText(label, align, str(db))
        text = "—" if self.peak_db < FLOOR_DB else f"{self.peak_db:.0f}"
        below = QtCore.QRectF(0, bottom + self._line / 2 + 2, self.width(), self._line)
        p.drawText(below, QtCore.Qt.AlignmentFlag.AlignHCenter, text)
        p.end()
