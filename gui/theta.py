"""The θ panel: the window length of every shown column, in ms, on the spectrogram's time axis.

With one band it is a curve; with B > 1 bands (one θ per band) an image over time × band, colour =
θ in ms, with its colour bar, the rows labelled by the bands' frequency ranges.

The x data are stream times; :class:`~.spectrogram.SpectrogramView` scrolls the panel onto the
relative time axis by moving the items (:meth:`ThetaTrack.scroll`), so between new columns nothing
is rebuilt. Values live in a mirrored ring of 2 × width slots (each value written at ``s`` and
``s + width``), so the shown history, oldest first, is always the contiguous view
``[pos, pos + width)``: no copy and no roll per update.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore


def _khz(f: float) -> str:
    return f"{f / 1000:.2g}"


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
        self.band_image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.band_image)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1),
            width=12,
            label="θ (ms)",
            interactive=False,
            colorMap=pg.colormap.get("viridis"),
            colorMapMenu=False,
        )
        self.colorbar.setImageItem(self.band_image)  # the view places it beside the panel
        self.band_edges: tuple = ()
        self._range_ms = (0.0, 1.0)
        self._now = 0.0
        self.reset(width, sample_rate)

    @property
    def bands(self) -> int:
        return len(self.band_edges) + 1

    def reset(self, width: int, sample_rate: float, band_edges=()) -> None:
        """An empty panel of ``width`` columns at ``sample_rate`` Hz, for bands split at
        ``band_edges`` (Hz; empty for one θ per column)."""
        self.width = int(width)
        self.sample_rate = float(sample_rate)
        self.band_edges = tuple(band_edges)
        self._t = np.full(2 * self.width, np.nan)
        self._ms = np.full((2 * self.width, self.bands), np.nan)
        self.pos = 0
        self.curve.setData([], [])
        banded = self.bands > 1
        self.curve.setVisible(not banded)
        for line in self._bounds:
            line.setVisible(not banded)
        self.band_image.setVisible(banded)
        self.colorbar.setVisible(banded)
        # The bar's label axis was sized while hidden (no room: the label fell on the bar): resize it.
        self.colorbar.getAxis("left").showLabel(True)
        self.showGrid(x=True, y=not banded, alpha=0.25)
        left = self.getAxis("left")
        if banded:
            self.setLabel("left", "band (kHz)")
            edges = [0.0, *self.band_edges, self.sample_rate / 2]
            left.setTicks([[(b, f"{_khz(edges[b])}–{_khz(edges[b + 1])}") for b in range(self.bands)]])
            self.setYRange(-0.5, self.bands - 0.5, padding=0)
            self.band_image.clear()
        else:
            self.setLabel("left", "θ", units="ms")
            left.setTicks(None)
            self.set_bounds(*(x * self.sample_rate / 1000 for x in self._range_ms))

    def set_bounds(self, win_min: float, win_max: float) -> None:
        """Show θ's allowed range (samples): dashed lines and the y axis (one band), the colour
        bar's range (bands)."""
        lo, hi = 1000 * win_min / self.sample_rate, 1000 * win_max / self.sample_rate
        self._range_ms = (lo, hi)
        self._bounds[0].setValue(lo)
        self._bounds[1].setValue(hi)
        self.colorbar.setLevels((lo, hi))
        if self.bands == 1:
            self.setYRange(lo, hi, padding=0.08)

    def append(self, theta: np.ndarray, time: np.ndarray) -> None:
        """New columns: θ [k] or [k, B] in samples, time [k] in seconds."""
        k = len(theta)
        if k == 0:
            return
        if k > self.width:
            theta, time = theta[-self.width :], time[-self.width :]
            k = self.width
        slots = (self.pos + np.arange(k)) % self.width
        ms = 1000.0 * np.asarray(theta, dtype=np.float64).reshape(k, -1) / self.sample_rate
        for offset in (0, self.width):
            self._t[slots + offset] = time
            self._ms[slots + offset] = ms
        self.pos = (self.pos + k) % self.width
        view = slice(self.pos, self.pos + self.width)
        if self.bands == 1:
            self.curve.setData(self._t[view], self._ms[view, 0], skipFiniteCheck=True)
            return
        # One image column per frame, the newest at the right: frames are one hop apart.
        t = self._t[view]
        newest = float(time[-1])
        dt = float(np.nanmedian(np.diff(t))) if np.isfinite(t).sum() > 2 else 0.0
        dt = dt if dt > 0 else 1.0 / self.sample_rate
        self.band_image.setImage(self._ms[view].T, levels=self._range_ms, autoLevels=False)
        self.band_image.setRect(
            QtCore.QRectF(newest - (self.width - 0.5) * dt, -0.5, self.width * dt, self.bands)
        )

    def scroll(self, now: float) -> None:
        """Put stream time ``now`` (s) at x = 0."""
        self._now = float(now)
        self.curve.setPos(-self._now, 0.0)
        self.band_image.setPos(-self._now, 0.0)

    def shown(self) -> tuple[np.ndarray, np.ndarray]:
        """(time s [width], θ ms: [width] for one band, [width, B] for B bands) of the shown
        history, oldest first."""
        view = slice(self.pos, self.pos + self.width)
        ms = self._ms[view].copy()
        return self._t[view].copy(), ms[:, 0] if self.bands == 1 else ms

    @property
    def range_ms(self) -> tuple[float, float]:
        """θ's colour range (ms), the engine's θ bounds."""
        return self._range_ms

    def band_of(self, freq: float) -> int:
        """The band (0 .. B-1) holding frequency ``freq`` (Hz)."""
        return int(np.searchsorted(np.asarray(self.band_edges), freq, side="right"))

    def value_ms(self, time: float, freq: float | None = None, band: int | None = None) -> float | None:
        """θ (ms) of the column nearest stream time ``time`` (s), in the band holding ``freq`` (Hz)
        or in ``band``; without either, the column's shortest θ. None before any column."""
        t = self._t[: self.width]
        if not np.isfinite(t).any():
            return None
        slot = int(np.nanargmin(np.abs(t - time)))
        row = self._ms[slot]
        if band is None and freq is not None:
            band = self.band_of(freq)
        if band is None:
            return float(np.nanmin(row))
        return float(row[int(np.clip(band, 0, self.bands - 1))])
