"""The scrolling spectrogram: finished columns drawn into a ring image, the screen scrolls by offset.

Storage is a ring of ``width`` columns (Friture's design): the dB values of each column (bins, for
the cursor readout and for recolouring) and the same column as 32-bit colour pixels in a QImage that
shares its memory with a numpy array. ``append`` writes only the new columns, through a 256-entry
lookup table with fixed levels, so its cost is proportional to the new columns times the rows,
never to the whole picture; no array is rolled. ``paint`` shows the ring from the write position
in two blits (older part, then newer part).

The time axis is fixed and relative (Friture's): x is seconds before now, from ``-span`` to 0,
so the axes never change while the picture scrolls. Scrolling only moves two items (the picture
and the θ curve) with ``setPos``; a paint is then one scaled blit of the ring in two pieces, a
cached axis picture per axis and the θ polyline, whatever the stream time.

Rows are display rows: with a linear axis one row per FFT bin; with a log or mel axis one row per
screen pixel, evenly spaced in log f (from ``LOG_F_MIN``) or in mel (from 0 Hz) to Nyquist, each
showing the loudest bin it covers.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from rtdstft.pitch import from_axis, to_axis

COLORMAPS = ("viridis", "magma", "inferno", "gray")
LOG_F_MIN = 20.0
#: The narrowest zoom: this many hops in time, this many bins (N / sr Hz each) in frequency.
MIN_HOPS, MIN_BINS = 8, 4


def note_label(freq: float) -> str:
    """The note name of ``freq`` Hz (A4 = 440 Hz), for axis ticks."""
    from rtdstft.pitch import note

    return note(freq)[0]


def lookup_table(name: str) -> np.ndarray:
    """256 colours of a colour map as opaque 0xAARRGGBB uint32 (QImage.Format_RGB32 pixels)."""
    if name == "gray":
        rgb = np.repeat(np.arange(256, dtype=np.uint32)[:, None], 3, axis=1)
    elif name in COLORMAPS:
        rgb = pg.colormap.get(name).getLookupTable(nPts=256, alpha=False).astype(np.uint32)
    else:
        raise ValueError(f"colour map must be one of {', '.join(COLORMAPS)}, got {name!r}")
    return (0xFF000000 | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).astype(np.uint32)


def log_f_min(n_bins: int, sample_rate: float) -> float:
    """Lowest frequency (Hz) of the log axis: 20 Hz, or half a bin when bins are wider."""
    return max(LOG_F_MIN, sample_rate / 2 / (n_bins - 1) / 2)


def axis_bottom(scale: str, n_bins: int, sample_rate: float) -> float:
    """Lowest frequency (Hz) of a log or mel axis: :func:`log_f_min` for log, 0 Hz for mel."""
    return log_f_min(n_bins, sample_rate) if scale == "log" else 0.0


def row_bins(n_bins: int, sample_rate: float, rows: int, scale: str) -> np.ndarray:
    """First FFT bin of each of ``rows`` display rows (non-decreasing), for ``np.maximum.reduceat``:
    a row shows the loudest bin it covers, so a one-bin ridge never falls between screen pixels.
    ``scale``: "linear" (rows of equal Hz), "log" or "mel" (rows of equal log f or mel)."""
    nyquist = sample_rate / 2
    df = nyquist / (n_bins - 1)
    if scale != "linear":
        a, b = to_axis([axis_bottom(scale, n_bins, sample_rate), nyquist], scale)
        edges = from_axis(np.linspace(a, b, rows + 1)[:-1], scale)
    else:
        edges = (np.arange(rows) - 0.5) * (n_bins / rows) * df
    return np.clip(np.ceil(edges / df - 1e-9).astype(np.int64), 0, n_bins - 1)


class RingImage(QtWidgets.QGraphicsObject):
    """A picture of ``width`` columns by ``rows`` display rows, item coordinates x = column,
    y = row. Each column is the loudest of ``group`` consecutive frames (so that a one-frame click
    survives when there are more frames than screen pixels); frames wait in a small pending
    buffer until their group is complete.

    Columns are appended at the right; the oldest leaves at the left. The item's transform (set by
    :class:`SpectrogramView`) maps columns to seconds with the newest column at x = 0 and rows to
    Hz (or log10 Hz); its position (``setPos``) shifts it along the relative time axis.
    """

    def __init__(
        self, width: int, n_bins: int, sample_rate: float, rows: int, scale: str, group: int = 1
    ) -> None:
        super().__init__()
        self.width = int(width)
        self.n_bins = int(n_bins)
        self.sample_rate = float(sample_rate)
        self.group = int(group)
        self.floor, self.ceiling = -100.0, 0.0
        self.lut = lookup_table("viridis")
        self.db = np.full((self.width, self.n_bins), -200.0, dtype=np.float32)
        self.theta = np.full(self.width, np.nan, dtype=np.float32)
        self.time = np.full(self.width, np.nan, dtype=np.float64)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._n_pending = 0
        self.pos = 0  # ring index of the next column to write = the oldest column shown
        self.count = 0  # columns ever written (since the last clear)
        self.paints = 0
        self.set_rows(rows, scale)

    # -- geometry ---------------------------------------------------------------------------------

    @property
    def rows(self) -> int:
        return len(self._starts)

    def set_rows(self, rows: int, scale: str) -> None:
        """Change the display rows (count; "linear", "log" or "mel") and redraw from the stored dB."""
        self.scale = scale
        rows = int(rows) if scale != "linear" else min(int(rows), self.n_bins)
        self._starts = row_bins(self.n_bins, self.sample_rate, max(rows, 8), scale)
        self._pixels = np.zeros((self.rows, self.width), dtype=np.uint32)
        self._image = pg.functions.ndarray_to_qimage(self._pixels, QtGui.QImage.Format.Format_RGB32)
        self.prepareGeometryChange()
        self.recolor()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 (Qt's name)
        return QtCore.QRectF(0, 0, self.width, self.rows)

    # -- data -------------------------------------------------------------------------------------

    def _colour(self, db: np.ndarray) -> np.ndarray:
        """dB columns [k, bins] -> pixels [rows, k] through the fixed levels and the 256-entry LUT."""
        rows = np.maximum.reduceat(db, self._starts, axis=1)
        scale = 255.0 / max(self.ceiling - self.floor, 1e-6)
        idx = np.clip((rows - self.floor) * scale, 0, 255)
        return self.lut[np.nan_to_num(idx, nan=0.0).astype(np.uint8)].T

    def append(self, db: np.ndarray, theta: np.ndarray, time: np.ndarray) -> None:
        """Add frames (dB [k, bins], θ [k] in samples, time [k] in s); cost O(k · rows)."""
        if len(time) == 0:
            return
        self._pending.append((db, theta, time))
        self._n_pending += len(time)
        if self._n_pending < self.group:
            return
        db, theta, time = (np.concatenate(a) for a in zip(*self._pending, strict=True))
        whole = (len(time) // self.group) * self.group
        rest = slice(whole, None)
        self._pending = [(db[rest], theta[rest], time[rest])] if whole < len(time) else []
        self._n_pending = len(time) - whole
        if self.group > 1:
            g = self.group
            db = db[:whole].reshape(-1, g, self.n_bins).max(axis=1)
            theta = theta[:whole].reshape(-1, g).min(axis=1)  # the shortest window of the group
            time = time[:whole].reshape(-1, g).mean(axis=1)
        self._write(db, theta, time)

    def _write(self, db: np.ndarray, theta: np.ndarray, time: np.ndarray) -> None:
        k = len(time)
        if k > self.width:
            db, theta, time = db[-self.width :], theta[-self.width :], time[-self.width :]
            k = self.width
        first = min(k, self.width - self.pos)
        for src, dst in (
            (slice(0, first), slice(self.pos, self.pos + first)),
            (slice(first, k), slice(0, k - first)),
        ):
            if src.start == src.stop:
                continue
            self.db[dst] = db[src]
            self.theta[dst] = theta[src]
            self.time[dst] = time[src]
            self._pixels[:, dst] = self._colour(db[src])
        self.pos = (self.pos + k) % self.width
        self.count += k
        self.update()

    def recolor(self) -> None:
        """Redraw every column from the stored dB (after a change of levels, map or rows)."""
        self._pixels[:] = self._colour(self.db)
        self.update()

    def set_levels(self, floor: float, ceiling: float) -> None:
        self.floor, self.ceiling = float(floor), float(ceiling)
        self.recolor()

    def set_colormap(self, name: str) -> None:
        self.lut = lookup_table(name)
        self.recolor()

    # -- queries ----------------------------------------------------------------------------------

    def image(self) -> np.ndarray:
        """The picture as shown: pixels [rows, width] uint32, row 0 = lowest frequency, column 0 =
        oldest."""
        return np.concatenate([self._pixels[:, self.pos :], self._pixels[:, : self.pos]], axis=1)

    def shown_times(self) -> np.ndarray:
        """Time (s) of each shown column, oldest first (NaN where nothing was written yet)."""
        return np.concatenate([self.time[self.pos :], self.time[: self.pos]])

    # -- drawing ----------------------------------------------------------------------------------

    def paint(self, painter: QtGui.QPainter, *args) -> None:
        self.paints += 1
        w, p, h = self.width, self.pos, self.rows
        if p < w:
            painter.drawImage(QtCore.QRectF(0, 0, w - p, h), self._image, QtCore.QRectF(p, 0, w - p, h))
        if p > 0:
            painter.drawImage(QtCore.QRectF(w - p, 0, p, h), self._image, QtCore.QRectF(0, 0, p, h))


class SpectrogramView(pg.GraphicsLayoutWidget):
    """Spectrogram (dB, Hz against s) with its colour bar, and the θ track under it on the same
    time axis. Receives finished frames through :meth:`append`; pulls nothing.

    Times: frames carry their stream time (s since the stream started, monotonic; a looping
    or seeking file counts on). The axis shows x = stream time - :attr:`now` (:meth:`scroll_to`
    sets ``now``), so it reads "seconds ago" and never changes. The cursor readout gives the time
    in the file (through the history's marks of seeks and loops,
    :meth:`.history.History.file_time`); :meth:`set_marks` draws them.

    The picture has about one column per screen pixel and one row per screen pixel (frames and
    bins beyond that are max-pooled); a resize that changes that rebuilds the picture.

    Zoom limits: time from ``MIN_HOPS`` hops to the history's length (or the span, if longer),
    frequency within the axis' range (0 or its log/mel bottom .. Nyquist) and at least
    ``MIN_BINS`` bins wide in Hz, wherever on the axis (:meth:`_keep_bins`), however it is asked
    (wheel, drag, keys, :meth:`zoom`, ``setRange``).

    Looking back (:mod:`.lookback`): once the user scrolls or zooms, the view leaves the live
    picture and shows the :class:`~.history.History` (given by :meth:`attach`) over whatever range
    is visible, while the analysis goes on; :meth:`go_live` (End) returns.

    Signals:
        hovered(dict): under the mouse: ``time`` s, ``freq`` Hz, ``db`` dBFS, ``theta_ms``; or {}.
        live_changed(bool): the view followed the present (True) or left it (False).
        selecting(QRectF, bool): a Shift+drag box (view coordinates), done or not.
    """

    hovered = QtCore.pyqtSignal(dict)
    live_changed = QtCore.pyqtSignal(bool)
    selecting = QtCore.pyqtSignal(QtCore.QRectF, bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        from .lookback import HistoryImage, LookViewBox  # one concept per module; the view
        from .theta import ThetaTrack  # composes them

        self.setBackground("#101014")
        self.ci.layout.setContentsMargins(4, 6, 4, 4)
        self.ci.layout.setHorizontalSpacing(6)
        self.plot = self.addPlot(row=0, col=0, viewBox=LookViewBox())
        self.plot.setLabel("left", "frequency", units="Hz")
        self.plot.vb.user_range.connect(self._looked)
        self.plot.vb.sigYRangeChanged.connect(self._keep_bins)
        self.plot.vb.selecting.connect(self.selecting)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.getAxis("bottom").setStyle(showValues=False)
        self.plot.getAxis("bottom").setHeight(6)
        self.plot.vb.disableAutoRange()
        self.colorbar = pg.ColorBarItem(
            values=(-100, 0),
            width=14,
            label="dBFS",
            interactive=False,
            colorMap=pg.colormap.get("viridis"),
            colorMapMenu=False,
        )
        self.addItem(self.colorbar, row=0, col=1)
        self.theta = ThetaTrack(1, 1.0)
        self.addItem(self.theta, row=1, col=0)
        self.addItem(self.theta.colorbar, row=1, col=1)  # θ's colours, shown with a θ per band
        self.theta.setXLink(self.plot)
        self.theta.vb.disableAutoRange()
        self.history = None
        self.live = True
        self.history_image = HistoryImage()
        self.history_image.setVisible(False)
        self.plot.addItem(self.history_image)
        self.theta_history = pg.PlotCurveItem(pen=pg.mkPen("#ffb347", width=1.6), connect="finite")
        self.theta_history.setVisible(False)
        self.theta.addItem(self.theta_history)
        self.theta_history_bands = pg.ImageItem(axisOrder="row-major")  # with a θ per band
        self.theta_history_bands.setColorMap(pg.colormap.get("viridis"))  # as the θ colour bar
        self.theta_history_bands.setVisible(False)
        self.theta.addItem(self.theta_history_bands)
        self._rendered = (None, -1)  # (view rectangle, history frames) of the last render
        self.a4 = 440.0  # Hz, for note names
        self.harmonics_on = False
        self.harmonic_lines = []
        for _ in range(7):
            line = pg.InfiniteLine(
                angle=0, pen=pg.mkPen("#80deea", width=1, style=QtCore.Qt.PenStyle.DotLine)
            )
            line.setVisible(False)
            self.plot.addItem(line)
            self.harmonic_lines.append(line)
        # Where a file replay seeked: dashed lines across the band, x data in stream time (s).
        self.marks = pg.PlotCurveItem(
            pen=pg.mkPen("#e0e0e6", width=1, style=QtCore.Qt.PenStyle.DashLine), connect="pairs"
        )
        self.marks.setZValue(15)
        self.plot.addItem(self.marks)
        self._mark_times: list[float] = []
        self.region = None  # the selection drawn: a Region in stream time (s) × Hz
        self.region_item = QtWidgets.QGraphicsRectItem()
        self.region_item.setPen(pg.mkPen("#4fc3f7", width=1.5, cosmetic=True))
        self.region_item.setBrush(pg.mkBrush(79, 195, 247, 40))
        self.region_item.setZValue(20)
        self.region_item.setVisible(False)
        self.plot.addItem(self.region_item)
        self.ci.layout.setRowStretchFactor(0, 3)
        self.ci.layout.setRowStretchFactor(1, 1)
        cache = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
        for p in (self.plot, self.theta):
            p.getAxis("left").setWidth(78)  # room for the bands' "0.42–1.2" ticks beside the label
            # The axes never change while the picture scrolls, but they are repainted under it
            # (the θ grid covers the plot): as pixmaps that costs a blit, not re-drawn text.
            for name in ("left", "bottom", "top", "right"):
                p.getAxis(name).setCacheMode(cache)
        self.image: RingImage | None = None
        self.span = 10.0
        self.cmap = "viridis"
        self.scale = "linear"
        self.notes = False  # note names on the log axis
        self.levels = (-100.0, 0.0)
        self.sample_rate, self.n_fft, self.hop = 48000.0, 2048, 256
        self.band_edges: tuple = ()
        self._latest = 0.0  # stream time of the newest column (s)
        self.now = 0.0  # stream time at the right edge, x = 0 (s)
        self.scene().sigMouseMoved.connect(self._mouse_moved)

    # -- configuration ----------------------------------------------------------------------------

    def _pixels(self) -> tuple[int, int]:
        """Width and height of the spectrogram's plotting area in device pixels (at least 64)."""
        r = self.plot.vb.sceneBoundingRect()
        ratio = self.devicePixelRatioF()
        return max(64, int(r.width() * ratio)), max(64, int(r.height() * ratio))

    def reset(
        self, sample_rate: float, n_fft: int, hop: int, time0: float | None = None, band_edges=None
    ) -> None:
        """Start an empty picture for a stream geometry (sample rate Hz, FFT size, hop samples, the
        engine's band edges in Hz when it has a θ per band) whose first frame will be at ``time0``
        (s). Without ``time0`` the same stream is drawn again (a new span or size): the picture
        is refilled from the attached history up to the newest column it showed, so that a
        paused or finished replay does not go blank."""
        keep = self._latest if time0 is None and self.image is not None and self.image.count else None
        if band_edges is not None:
            self.band_edges = tuple(band_edges)
        if time0 is not None:
            self._latest = self.now = float(time0)
        self.sample_rate, self.n_fft, self.hop = float(sample_rate), int(n_fft), int(hop)
        frames = max(2, int(round(self.span * sample_rate / hop)))
        px_w, px_h = self._pixels()
        group = max(1, -(-frames // px_w))
        if self.image is not None:
            self.plot.removeItem(self.image)
        self.image = RingImage(-(-frames // group), n_fft // 2 + 1, sample_rate, px_h, self.scale, group)
        self.image.set_levels(*self.levels)
        self.image.set_colormap(self.cmap)
        self.plot.addItem(self.image)
        self.theta.reset(frames, sample_rate, self.band_edges)
        self._set_time_limits()
        self._set_yaxis()
        self.plot.setXRange(-self.span, 0, padding=0)
        self._place()
        h = self.history
        same = h is not None and (h.sample_rate, h.n_fft, h.hop) == (self.sample_rate, self.n_fft, self.hop)
        if keep is not None and same:
            for part in h.last_frames(keep, frames):
                self.append(*part)
        self.scroll_to(self.now)
        self.go_live()

    def resizeEvent(self, ev: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(ev)
        if getattr(self, "image", None) is None:  # pyqtgraph resizes during its own __init__
            return
        px_w, px_h = self._pixels()
        frames = self.theta.width
        if max(1, -(-frames // px_w)) != self.image.group:
            self.reset(self.sample_rate, self.n_fft, self.hop)
        elif abs(px_h - self.image.rows) > 0.1 * self.image.rows:
            self.image.set_rows(px_h, self.scale)
            self._set_yaxis()
            self._place()

    def set_span(self, seconds: float) -> None:
        self.span = float(seconds)
        self._set_time_limits()
        if self.image is not None:
            self.reset(self.sample_rate, self.n_fft, self.hop)

    def set_levels(self, floor: float, ceiling: float) -> None:
        self.levels = (float(floor), float(ceiling))
        self.colorbar.setLevels(self.levels)
        if self.image is not None:
            self.image.set_levels(*self.levels)
            self.refresh_history(force=True)  # looking back: that picture is drawn at these levels too

    def set_colormap(self, name: str) -> None:
        lookup_table(name)  # validates the name
        self.cmap = name
        if name == "gray":
            self.colorbar.setColorMap(pg.ColorMap([0.0, 1.0], [(0, 0, 0), (255, 255, 255)]))
        else:
            self.colorbar.setColorMap(pg.colormap.get(name))
        if self.image is not None:
            self.image.set_colormap(name)
            self.refresh_history(force=True)  # looking back: that picture takes the image's colours

    @property
    def log(self) -> bool:
        return self.scale == "log"

    def set_log(self, log: bool) -> None:
        self.set_scale("log" if log else "linear")

    def set_scale(self, scale: str, notes: bool | None = None) -> None:
        """Frequency axis: "linear", "log" or "mel"; ``notes``: label the log axis with note names."""
        to_axis(1.0, scale)  # validates the name
        self.scale = scale
        if notes is not None:
            self.notes = bool(notes)
        if self.image is not None:
            self.image.set_rows(self._pixels()[1], self.scale)
            self._set_yaxis()
            self._place()
            self._place_region()
            self.set_marks(self._mark_times)
            self.refresh_history(force=True)

    def axis_range(self) -> tuple[float, float]:
        """The frequency axis' full range in its own coordinate (Hz, log10 Hz or mel)."""
        nyquist = self.sample_rate / 2
        if self.scale == "linear":
            return 0.0, nyquist
        lo, hi = to_axis(
            [axis_bottom(self.scale, self.n_fft // 2 + 1, self.sample_rate), nyquist], self.scale
        )
        return float(lo), float(hi)

    def _set_yaxis(self) -> None:
        nyquist = self.sample_rate / 2
        axis = self.plot.getAxis("left")
        lo, hi = self.axis_range()
        if self.scale == "linear":
            axis.setTicks(None)
            axis.enableAutoSIPrefix(True)
        else:
            bottom = axis_bottom(self.scale, self.n_fft // 2 + 1, self.sample_rate)
            if self.scale == "log" and self.notes:
                ticks = [
                    (f, note_label(f)) for f in 440.0 * 2.0 ** np.arange(-5, 6) if bottom <= f <= nyquist
                ]
                minor = [
                    (f, note_label(f)) for f in 261.6256 * 2.0 ** np.arange(-4, 6) if bottom <= f <= nyquist
                ]
            else:
                nice = (0, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4)
                ticks = [
                    (f, f"{f / 1000:g}k" if f >= 1000 else f"{f:g}") for f in nice if bottom <= f <= nyquist
                ]
                minor = []
            axis.setTicks(
                [
                    [(float(to_axis(f, self.scale)), t) for f, t in ticks],
                    [(float(to_axis(f, self.scale)), t) for f, t in minor],
                ]
            )
            axis.enableAutoSIPrefix(False)
            axis.setLabel("frequency", units="Hz")
        self.plot.vb.setLimits(yMin=lo, yMax=hi)
        self.plot.setYRange(lo, hi, padding=0)

    def _place(self) -> None:
        """The picture's transform: columns to seconds with the ring's newest column at x = 0,
        rows to Hz (or log10 Hz). Changes with the geometry only, never while scrolling."""
        img = self.image
        dt = img.group * self.hop / self.sample_rate
        tr = QtGui.QTransform()
        nyquist = self.sample_rate / 2
        if self.scale != "linear":
            lo, hi = self.axis_range()
            tr.translate(-(img.width - 0.5) * dt, lo)
            tr.scale(dt, (hi - lo) / img.rows)
        else:
            row_hz = nyquist * img.n_bins / (img.n_bins - 1) / img.rows
            tr.translate(-(img.width - 0.5) * dt, -row_hz / 2)
            tr.scale(dt, row_hz)
        img.setTransform(tr)

    # -- looking back -----------------------------------------------------------------------------

    def attach(self, history) -> None:
        """Draw ``history`` (a :class:`~.history.History`) when looking back."""
        self.history = history
        self._set_time_limits()

    def _set_time_limits(self) -> None:
        """The visible time span: from ``MIN_HOPS`` hops (finer shows nothing new: a column per
        hop) to the history's length, or the live span if that is longer."""
        longest = max(self.span, self.history.seconds if self.history is not None else 0.0)
        self.plot.vb.setLimits(minXRange=MIN_HOPS * self.hop / self.sample_rate, maxXRange=longest)

    def _keep_bins(self, _vb=None, yrange=None) -> None:
        """Widen the visible band, about its centre, to ``MIN_BINS`` bins (Hz) when it is narrower
        (called on every change of the y range). A ViewBox limit cannot say this on a log or mel
        axis, where a bin's height in axis units depends on where it is."""
        y0, y1 = sorted(yrange if yrange is not None else self.plot.vb.viewRange()[1])
        f0, f1 = (float(f) for f in from_axis(np.array([y0, y1]), self.scale))
        need = MIN_BINS * self.sample_rate / self.n_fft
        if f1 - f0 >= need * (1 - 1e-6):
            return
        # Within the axis: not below its bottom (no log of a negative frequency), and not past
        # Nyquist (the ViewBox would shift the band down in axis units, narrowing it in Hz on a
        # log or mel axis).
        bottom = float(from_axis(self.axis_range()[0], self.scale))
        a = max(min(0.5 * (f0 + f1 - need), self.sample_rate / 2 - need), bottom)
        # A hair wider than needed: the round trip through the axis must not fall short again.
        ya, yb = (float(y) for y in to_axis(np.array([a, a + need * (1 + 1e-5)]), self.scale))
        self.plot.vb.setYRange(ya, min(yb, self.axis_range()[1]), padding=0)

    def go_live(self) -> None:
        """Back to the live picture: the last ``span`` seconds, the whole band."""
        was = self.live
        self.live = True
        self.history_image.setVisible(False)
        self.theta_history.setVisible(False)
        self.theta_history_bands.setVisible(False)
        if self.image is not None:
            self.image.setVisible(True)
            self._set_yaxis()
        self.theta.curve.setVisible(self.theta.bands == 1)
        self.theta.band_image.setVisible(self.theta.bands > 1)
        self.theta.time_axis.set_offset(None)
        self.plot.setXRange(-self.span, 0, padding=0)
        if not was:
            self.live_changed.emit(True)

    def _looked(self) -> None:
        """The user scrolled or zoomed: show the history over the new range."""
        if self.history is None or self.image is None:
            return
        if self.live:
            self.live = False
            self.image.setVisible(False)
            self.theta.curve.setVisible(False)
            self.theta.band_image.setVisible(False)
            self.history_image.setVisible(True)
            self.theta_history.setVisible(self.theta.bands == 1)
            self.theta_history_bands.setVisible(self.theta.bands > 1)
            self.theta.time_axis.set_offset(self.now)
            self.live_changed.emit(False)
        self.refresh_history(force=True)

    def visible(self) -> QtCore.QRectF:
        """The spectrogram's visible range: x in s relative to :attr:`now`, y in axis units."""
        (x0, x1), (y0, y1) = self.plot.vb.viewRange()
        return QtCore.QRectF(QtCore.QPointF(x0, y0), QtCore.QPointF(x1, y1))

    def refresh_history(self, force: bool = False) -> None:
        """Re-render the looked-back picture if the range changed or new frames fall in it."""
        if self.live or self.history is None:
            return
        rect = self.visible()
        h = self.history
        newest = h.time_span()[1] - self.now
        if (
            not force
            and rect == self._rendered[0]
            and (h.frames == self._rendered[1] or newest > rect.right() + 1)
        ):
            return
        w, px_h = self._pixels()
        self.history_image.render(h, rect, self.now, w, px_h, self.scale, self.image.lut, self.levels)
        t, theta = h.theta_curve(rect.left() + self.now, rect.right() + self.now, 2 * w)
        ms = 1000.0 * theta / h.sample_rate
        if ms.ndim == 1:
            self.theta_history.setData(t - self.now, ms)
        elif len(t) > 1:  # a row per band, a column per point (each as wide as its step)
            dt = t[1] - t[0]
            self.theta_history_bands.setImage(ms.T, levels=self.theta.range_ms, autoLevels=False)
            self.theta_history_bands.setRect(
                QtCore.QRectF(t[0] - self.now - dt / 2, -0.5, len(t) * dt, ms.shape[1])
            )
        self._rendered = (rect, h.frames)

    def pan(self, dx: float = 0.0, dy: float = 0.0) -> None:
        """Scroll by fractions of the visible width (time) and height (frequency)."""
        r = self.visible()
        self.plot.vb.translateBy(x=dx * r.width(), y=dy * r.height())
        self._looked()

    def zoom(self, fx: float = 1.0, fy: float = 1.0) -> None:
        """Zoom by factors (> 1: in) about the centre of the visible range."""
        self.plot.vb.scaleBy(x=1.0 / fx, y=1.0 / fy)
        self._looked()

    def show_oldest(self) -> None:
        """Put the oldest history at the left edge, keeping the visible width."""
        if self.history is None:
            return
        r = self.visible()
        left = self.history.time_span()[0] - self.now
        self.plot.setXRange(left, left + r.width(), padding=0)
        self._looked()

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802 (Qt's name)
        k = QtCore.Qt.Key
        actions = {
            k.Key_Left: lambda: self.pan(dx=-0.25),
            k.Key_Right: lambda: self.pan(dx=0.25),
            k.Key_Up: lambda: self.pan(dy=0.25),
            k.Key_Down: lambda: self.pan(dy=-0.25),
            k.Key_Plus: lambda: self.zoom(fx=2.0),
            k.Key_Equal: lambda: self.zoom(fx=2.0),
            k.Key_Minus: lambda: self.zoom(fx=0.5),
            k.Key_PageUp: lambda: self.zoom(fy=2.0),
            k.Key_PageDown: lambda: self.zoom(fy=0.5),
            k.Key_Home: self.show_oldest,
            k.Key_End: self.go_live,
        }
        action = actions.get(ev.key())
        if action is None:
            super().keyPressEvent(ev)
            return
        action()
        ev.accept()

    def show_region(self, region) -> None:
        """Draw ``region`` (a :class:`rtdstft.selection.Region`, stream time s × Hz), or nothing."""
        self.region = region
        self._place_region()

    def region_of(self, rect: QtCore.QRectF):
        """The Region (stream time s × Hz) of a rectangle in view coordinates."""
        from rtdstft.selection import Region

        y0, y1 = sorted((rect.top(), rect.bottom()))
        lo, hi = self.axis_range()
        f0, f1 = from_axis(np.clip([y0, y1], lo, hi), self.scale)
        return Region(rect.left() + self.now, rect.right() + self.now, float(f0), float(f1))

    def _place_region(self) -> None:
        r = self.region
        self.region_item.setVisible(r is not None)
        if r is None:
            return
        lo, hi = self.axis_range()
        y0, y1 = (float(np.clip(to_axis(max(f, 1e-3), self.scale), lo, hi)) for f in (r.f0, min(r.f1, 1e9)))
        self.region_item.setRect(
            QtCore.QRectF(QtCore.QPointF(r.t0 - self.now, y0), QtCore.QPointF(r.t1 - self.now, y1))
        )

    def set_marks(self, times) -> None:
        """Draw a line at each of the stream times ``times`` (s): where a file replay seeked or
        looped."""
        self._mark_times = [float(t) for t in times]
        lo, hi = self.axis_range()
        self.marks.setData(np.repeat(self._mark_times, 2), np.tile([lo, hi], len(self._mark_times)))
        self.marks.setPos(-self.now, 0.0)

    def scroll_to(self, now: float) -> None:
        """Put stream time ``now`` (s) at the right edge: moves the picture and the θ curve, not
        the axes."""
        self.now = float(now)
        self.marks.setPos(-self.now, 0.0)
        if self.region is not None:
            self._place_region()
        if self.image is not None:
            self.image.setPos(self._latest - self.now, 0.0)
        self.theta.scroll(self.now)

    # -- data -------------------------------------------------------------------------------------

    def append(self, db: np.ndarray, theta: np.ndarray, time: np.ndarray) -> None:
        """New finished frames: dB [k, bins] (dBFS), θ [k] or [k, B] (samples), time [k] (s)."""
        if len(time) == 0:
            return
        before = self.image.count
        self.image.append(db, theta if theta.ndim == 1 else theta.min(1), time)
        self.theta.append(theta, time)
        if self.image.count != before:
            self._latest = float(self.image.time[(self.image.pos - 1) % self.image.width])
            self.image.setPos(self._latest - self.now, 0.0)

    def picture(self) -> np.ndarray:
        """The shown picture as pixels [rows, columns] uint32, row 0 = lowest frequency (looking
        back: the history's picture of the visible range)."""
        return self.image.image() if self.live else self.history_image.pixels()

    def row_of(self, freq: float) -> float:
        """Display row (fractional) where frequency ``freq`` (Hz) is drawn."""
        img = self.image
        nyquist = self.sample_rate / 2
        if self.scale != "linear":
            lo, hi = self.axis_range()
            return img.rows * (float(to_axis(freq, self.scale)) - lo) / (hi - lo)
        return freq / (nyquist * img.n_bins / (img.n_bins - 1) / img.rows)

    # -- cursor -----------------------------------------------------------------------------------

    def readout(
        self,
        time: float,
        freq: float | None,
        band: tuple[float, float] | None = None,
        theta_band: int | None = None,
    ) -> dict:
        """What is known at (stream time s, freq Hz): from the history (the nearest frame, the level
        shown over ``band`` Hz, the refined peak near ``freq`` with its note; see
        :meth:`.history.History.readout`), else from the live picture (the nearest column and
        bin). With a θ per band, ``theta_ms`` is that of the band holding ``freq`` (or of band
        ``theta_band``), named by ``theta_band`` in the answer. ``time`` in the answer is in the
        file (through the history's marks of seeks and loops)."""
        # The history's θ is of that frame and band; the θ panel holds only what it last drew.
        info = self.history.readout(time, freq, band, self.a4, theta_band) if self.history is not None else {}
        if not info:
            info = self._picture_readout(time, freq)
            if info and self.theta.bands > 1 and (freq is not None or theta_band is not None):
                value = self.theta.value_ms(time, freq, theta_band)
                if value is not None:
                    info["theta_ms"] = value
                    info["theta_band"] = self.theta.band_of(freq) if theta_band is None else int(theta_band)
        if info:
            info["time"] = self.file_time(info["time"])
        return info

    def file_time(self, time: float) -> float:
        """Where in the replayed file (s) stream time ``time`` (s) is: through the history's marks
        (seeks and loops, :meth:`.history.History.file_time`)."""
        return float(self.history.file_time(time)) if self.history is not None else float(time)

    def _picture_readout(self, time: float, freq: float | None) -> dict:
        img = self.image
        if img is None or img.count == 0:
            return {}
        dist = np.abs(img.time - time)
        slot = int(np.nanargmin(dist)) if np.isfinite(dist).any() else -1
        if slot < 0 or dist[slot] > img.group * self.hop / self.sample_rate:
            return {}
        info = {"time": float(img.time[slot]), "theta_ms": float(1000 * img.theta[slot] / self.sample_rate)}
        if freq is not None:
            b = int(np.clip(round(freq * self.n_fft / self.sample_rate), 0, img.n_bins - 1))
            info["freq"] = float(freq)
            info["db"] = float(img.db[slot, b])
        return info

    def readout_at(self, scene_pos: QtCore.QPointF) -> dict:
        """:meth:`readout` under a point of the scene (the mouse), {} outside the plots; the level
        is the loudest over the frequencies of the pointer's screen pixel, as drawn."""
        if self.image is None:
            return {}
        for p in (self.plot, self.theta):
            if p.vb.sceneBoundingRect().contains(scene_pos):
                v = p.vb.mapSceneToView(scene_pos)
                freq = band = theta_band = None
                if p is self.plot:
                    freq = float(from_axis(v.y(), self.scale))
                    half = 0.5 * self.visible().height() / max(p.vb.height(), 1.0)
                    band = tuple(float(from_axis(v.y() + d, self.scale)) for d in (-half, half))
                elif self.theta.bands > 1:
                    theta_band = int(np.clip(round(v.y()), 0, self.theta.bands - 1))
                info = self.readout(v.x() + self.now, freq, band, theta_band)
                self._show_harmonics(info.get("peak_hz"))
                return info
        self._show_harmonics(None)
        return {}

    def set_harmonics(self, on: bool, a4: float | None = None) -> None:
        """Show the harmonic cursor (lines at 2..8 × the peak under the pointer); A4 for notes."""
        self.harmonics_on = bool(on)
        if a4 is not None:
            self.a4 = float(a4)
        if not on:
            self._show_harmonics(None)

    def _show_harmonics(self, f0: float | None) -> None:
        lo, hi = self.axis_range()
        for k, line in enumerate(self.harmonic_lines, start=2):
            f = None if f0 is None or not self.harmonics_on else k * f0
            ok = f is not None and f < self.sample_rate / 2
            line.setVisible(ok)
            if ok:
                line.setValue(float(np.clip(to_axis(f, self.scale), lo, hi)))

    def _mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        self.hovered.emit(self.readout_at(scene_pos))
