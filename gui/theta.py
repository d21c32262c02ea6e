"""The θ track: the window length of every shown column, in ms, on the spectrogram's time axis.

The curve's x data are stream times; :class:`~.spectrogram.SpectrogramView` scrolls it onto the
relative time axis by moving the item (``setPos``), so between new columns nothing is rebuilt.
Values live in a mirrored ring of 2 × width slots (each value written at ``s`` and ``s + width``),
so the shown history, oldest first, is always the contiguous view ``[pos, pos + width)``: no copy
and no roll per update.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg


class TimeAxis(pg.AxisItem):
    """The shared time axis: "seconds before now" while live; looking back, the stream time
    (``offset`` + x, s) of what is shown."""

    def __init__(self) -> None:
        super().__init__("bottom")
        self.offset: float | None = None

    def set_offset(self, offset: float | None) -> None:
        self.offset = offset
        self.setLabel("time before now" if offset is None else "time", units="s")
        self.picture = None  # the cached tick picture is stale
        self.update()

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 (pyqtgraph's names)
        if self.offset is None:
            return super().tickValues(minVal, maxVal, size)
        off = self.offset  # round numbers of the stream time, drawn at their x
        return [
            (sp, [v - off for v in vals]) for sp, vals in super().tickValues(minVal + off, maxVal + off, size)
        ]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph's name)
        if self.offset is not None:
            values = [v + self.offset for v in values]
        return super().tickStrings(values, scale, spacing)


class ThetaTrack(pg.PlotItem):
    """A plot of θ (ms) against time (s), fed the same columns as the spectrogram."""

    def __init__(self, width: int, sample_rate: float) -> None:
        self.time_axis = TimeAxis()
        super().__init__(axisItems={"bottom": self.time_axis})
        self.setLabel("left", "θ", units="ms")
        self.time_axis.set_offset(None)
        self.showGrid(x=True, y=True, alpha=0.25)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.curve = pg.PlotCurveItem(
            pen=pg.mkPen("#ffb347", width=1.6), connect="finite", segmentedLineMode="off"
        )
        self.curve.setZValue(10)  # above the dashed bounds: θ often sits on one
        self.addItem(self.curve)
        self._bounds = [
            pg.InfiniteLine(angle=0, pen=pg.mkPen("#888", style=pg.QtCore.Qt.PenStyle.DashLine))
            for _ in range(2)
        ]
        for line in self._bounds:
            self.addItem(line)
        self.reset(width, sample_rate)

    def reset(self, width: int, sample_rate: float) -> None:
        self.width = int(width)
        self.sample_rate = float(sample_rate)
        self._t = np.full(2 * self.width, np.nan)
        self._ms = np.full(2 * self.width, np.nan)
        self.pos = 0
        self.curve.setData([], [])

    def set_bounds(self, win_min: float, win_max: float) -> None:
        """Show θ's allowed range (samples) as dashed lines and fit the y axis to it."""
        lo, hi = 1000 * win_min / self.sample_rate, 1000 * win_max / self.sample_rate
        self._bounds[0].setValue(lo)
        self._bounds[1].setValue(hi)
        self.setYRange(lo, hi, padding=0.08)

    def append(self, theta: np.ndarray, time: np.ndarray) -> None:
        """New columns: θ [k] in samples, time [k] in seconds."""
        k = len(theta)
        if k == 0:
            return
        if k > self.width:
            theta, time = theta[-self.width :], time[-self.width :]
            k = self.width
        slots = (self.pos + np.arange(k)) % self.width
        ms = 1000.0 * theta / self.sample_rate
        for offset in (0, self.width):
            self._t[slots + offset] = time
            self._ms[slots + offset] = ms
        self.pos = (self.pos + k) % self.width
        view = slice(self.pos, self.pos + self.width)
        self.curve.setData(self._t[view], self._ms[view], skipFiniteCheck=True)

    def shown(self) -> tuple[np.ndarray, np.ndarray]:
        """(time s, θ ms) of the shown history, oldest first."""
        view = slice(self.pos, self.pos + self.width)
        return self._t[view].copy(), self._ms[view].copy()
