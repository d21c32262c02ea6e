"""The history: the last minutes of what the application analysed, the one model that the
spectrogram's look-back, the selections and the readouts share (views draw it, none owns it).

It keeps three rings, filled from the engine thread's output at each redraw:

- display columns: each frame's dB column quantised to uint8 (``DB_RANGE`` in 256 steps of
  0.63 dB), max-pooled to at most ``MAX_ROWS`` rows and ``MAX_COLUMN_RATE`` columns per second;
  with a pyramid of coarser copies (each level the max of 4 columns of the one below), so that a
  picture of any stretch costs about 4 × its pixel columns, not the stretch's length;
- θ of every frame (float32, samples), one per band with a θ per band;
- the input audio (float32), so that any part can be transformed again exactly
  (:class:`rtdstft.selection.Excerpt`) and resynthesised.

Stream time is the time of the analysis: it goes on when a file replay seeks (or loops), so that
the history keeps what was analysed before, in the order it was analysed. The :attr:`History.marks`
say where in the file each stretch came from (:meth:`History.file_time`, :meth:`History.file_span`
and its inverse :meth:`History.stream_span`); a seek adds one (:meth:`History.mark`), so do a loop
and samples the replay skipped (:meth:`History.jump`), and the view draws a line there. A live
input has one mark, (time0, time0): its file time is its stream time (s since it started).

Memory (:attr:`History.nbytes`) at 48 kHz, N = 2048, H = 256, 10 minutes: 115 MB of columns +
38 MB of pyramid + 115 MB of audio + 0.5 MB of θ per band ≈ 270 MB; at N = 4096, H = 128 the same
(the columns are pooled to 1025 rows and 187.5 per second), but for 0.9 MB of θ per band.
"""

from __future__ import annotations

import math

import numpy as np

from rtdstft.pitch import note, peak_frequency
from rtdstft.selection import Excerpt

#: dB range of the stored columns (dBFS): code 0 is at or below the first, 255 at the second.
DB_RANGE = (-150.0, 10.0)
MAX_ROWS = 1025
MAX_COLUMN_RATE = 200.0
DEFAULT_SECONDS = 600.0


def db_to_code(db: np.ndarray) -> np.ndarray:
    lo, hi = DB_RANGE
    # fmax: NaN and anything below the range go to code 0; +inf to 255.
    return np.minimum(np.rint((np.fmax(db, lo) - lo) * (255.0 / (hi - lo))), 255).astype(np.uint8)


def code_to_db(code) -> np.ndarray:
    lo, hi = DB_RANGE
    return lo + np.asarray(code, np.float32) * ((hi - lo) / 255.0)


def pool_max(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``np.maximum.reduceat(data, starts, axis=0)`` for non-decreasing ``starts``, a few times
    faster when each segment holds a few rows (a gather and a max per row of the longest
    segment, instead of numpy's per-segment loop); reduceat itself when segments are long."""
    ends = np.append(starts[1:], len(data))
    count = np.maximum(ends - starts, 1)
    longest = int(count.max())
    if longest > 8:
        return np.maximum.reduceat(data, starts, axis=0)
    out = data[starts]
    for j in range(1, longest):
        np.maximum(out, data[np.minimum(starts + j, starts + count - 1)], out=out)
    return out


class History:
    """The last ``seconds`` (default 10 minutes) of a stream's analysis; see the module docstring.

    Stream times: frame n is at ``time0 + n·H / sr``; input sample k at ``time0 + k / sr``
    (``time0`` from :meth:`reset`, where a new engine started).
    """

    def __init__(self, seconds: float = DEFAULT_SECONDS) -> None:
        if not 1.0 <= seconds <= 3600.0:
            raise ValueError(f"history seconds must be in 1..3600, got {seconds!r}")
        self.seconds = float(seconds)
        self.sample_rate, self.n_fft, self.hop = 48000.0, 2048, 256
        self.time0 = 0.0
        self.marks: list[tuple[float, float]] = [(0.0, 0.0)]  # (stream time, file time) s, in order
        self.settings: dict = {}
        self.bands, self.band_edges = 1, ()
        self.frames = 0  # frames received since the reset (frame indices 0 .. frames - 1)
        self.samples = 0  # input samples received since the reset
        self.columns = 0  # whole columns written
        self._resets = 0
        self._alloc()

    # -- layout -----------------------------------------------------------------------------------

    def reset(
        self,
        sample_rate: float,
        n_fft: int,
        hop: int,
        time0: float = 0.0,
        settings=None,
        file_time: float | None = None,
    ) -> None:
        """Forget everything: a new stream of this geometry starts at stream time ``time0`` (s),
        ``file_time`` s into its file (default: ``time0``)."""
        self.sample_rate, self.n_fft, self.hop = float(sample_rate), int(n_fft), int(hop)
        self.time0 = float(time0)
        self.marks = [(self.time0, self.time0 if file_time is None else float(file_time))]
        self.settings = dict(settings or {})
        self.bands = int(self.settings.get("bands") or 1)
        self.band_edges = tuple(self.settings.get("band_edges") or ())
        self.frames = self.samples = self.columns = 0
        self._resets += 1
        self._alloc()

    def _alloc(self) -> None:
        n_bins = self.n_fft // 2 + 1
        self.bin_pool = -(-n_bins // MAX_ROWS)
        self.rows = -(-n_bins // self.bin_pool)
        frame_rate = self.sample_rate / self.hop
        self.group = max(1, math.ceil(frame_rate / MAX_COLUMN_RATE - 1e-9))
        self.frame_cap = int(math.ceil(self.seconds * frame_rate)) + self.group
        self.col_cap = -(-self.frame_cap // self.group)
        self.audio_cap = self.frame_cap * self.hop + self.n_fft
        self.audio = np.zeros(self.audio_cap, np.float32)
        self.theta = np.zeros((self.frame_cap, self.bands), np.float32)
        self.levels = [np.zeros((self.col_cap, self.rows), np.uint8)]
        size = self.col_cap
        while size > 256:
            size = -(-size // 4) + 1
            self.levels.append(np.zeros((size, self.rows), np.uint8))
        self._pending = np.zeros((self.group, self.rows), np.uint8)

    @property
    def nbytes(self) -> int:
        """Bytes held by the rings (columns, pyramid, θ, audio)."""
        return int(sum(a.nbytes for a in self.levels) + self.theta.nbytes + self.audio.nbytes)

    @property
    def column_seconds(self) -> float:
        return self.group * self.hop / self.sample_rate

    def column_time(self, c) -> np.ndarray:
        """Stream time (s) of column(s) ``c``: the middle of its frames."""
        return self.time0 + (np.asarray(c) * self.group + (self.group - 1) / 2) * self.hop / self.sample_rate

    @property
    def first_frame(self) -> int:
        return max(0, self.frames - (self.frame_cap - self.group))

    @property
    def first_column(self) -> int:
        return max(0, self.columns - (self.col_cap - 1))

    def time_span(self) -> tuple[float, float]:
        """Stream times (s) of the oldest and newest frame held (equal when empty)."""
        per = self.hop / self.sample_rate
        return self.time0 + self.first_frame * per, self.time0 + max(self.frames - 1, 0) * per

    def row_frequencies(self) -> np.ndarray:
        """Frequency (Hz) of the lowest bin of each stored row."""
        return np.arange(self.rows) * self.bin_pool * self.sample_rate / self.n_fft

    def file_time(self, time):
        """Where in the file (s) stream time(s) ``time`` (s) came from, by the last mark at or
        before it: ``file time = a_k + (time - s_k)`` for the last mark (s_k, a_k) with s_k <= time.
        Without a seek or a loop (a live input: one mark, (time0, time0)) this is ``time`` itself."""
        starts = np.array([m[0] for m in self.marks])
        at = np.array([m[1] for m in self.marks])
        i = np.clip(np.searchsorted(starts, np.asarray(time) + 1e-9, side="right") - 1, 0, len(starts) - 1)
        return at[i] + (time - starts[i])

    def file_span(self, t0: float, t1: float) -> tuple[float, float]:
        """The file times (s) of stream times t0 .. t1 (s) when they are one stretch of the file.

        Raises ValueError when a mark (a seek, a loop, samples skipped) lies strictly inside: the
        stretch is then two places of the file, which no one interval (a label) can say."""
        t0, t1 = sorted((float(t0), float(t1)))
        inside = [m for m in self.marks[1:] if t0 + 1e-6 < m[0] < t1 - 1e-6]
        if inside:
            s, a = inside[0]
            was = float(self.file_time(s - 1e-6))
            raise ValueError(
                f"the selection {t0:.3f}..{t1:.3f} s spans a jump in the file at {s:.3f} s (from "
                f"{was:.3f} s to {a:.3f} s in the file: a seek or a loop), so it is no one stretch "
                "of the file: select each side on its own"
            )
        a0 = float(self.file_time(t0))
        return a0, a0 + (t1 - t0)

    def stream_span(self, f0: float, f1: float) -> tuple[float, float]:
        """The inverse of :meth:`file_span`: the stream times (s) at which file times f0 .. f1 (s)
        were analysed in one stretch, the latest such stretch that has begun (a file played more
        than once: the newest); ValueError when none holds them whole (never analysed, or only
        across a jump)."""
        f0, f1 = sorted((float(f0), float(f1)))
        starts = [m[0] for m in self.marks]
        ends = starts[1:] + [math.inf]
        newest = self.time_span()[1]
        found = None
        for (s, a), end in zip(self.marks, ends, strict=True):
            t = s + (f0 - a)
            if t >= s - 1e-6 and t + (f1 - f0) <= end + 1e-6 and (found is None or t <= newest):
                found = t
        if found is None:
            raise ValueError(
                f"the file's {f0:.3f}..{f1:.3f} s were not analysed in one stretch since the history "
                "started (not played, or only across a seek or a loop)"
            )
        return found, found + (f1 - f0)

    # -- input ------------------------------------------------------------------------------------

    def mark(self, time: float, file_time: float) -> None:
        """The stream goes on at stream time ``time`` (s) from ``file_time`` s into its file (a
        seek). The frames go on from :attr:`frames` (``time`` must be where the next one is due);
        the audio, which may end short of it (the engine ended its stream with zeros), is padded
        with zeros up to it, so that sample k stays at stream time ``time0 + k / sr``."""
        s0 = int(round((time - self.time0) * self.sample_rate))
        if s0 > self.samples:
            self.add_audio(np.zeros(s0 - self.samples, np.float32))
        self.samples = s0
        self.jump(time, file_time)

    def jump(self, time: float, file_time: float) -> None:
        """The file goes on from ``file_time`` (s) at stream time ``time`` (s) with no break in
        the stream (a loop, or samples the replay skipped). Every mark since the reset is kept (two
        floats each), so that stretches the history has forgotten still map to the file (a kept
        selection's label)."""
        self.marks.append((float(time), float(file_time)))

    def add_audio(self, samples: np.ndarray) -> None:
        """The next input samples of the stream (the engine's input, in order)."""
        x = np.asarray(samples, np.float32).reshape(-1)[-self.audio_cap :]
        slots = (self.samples + np.arange(len(x))) % self.audio_cap
        self.audio[slots] = x
        self.samples += len(samples)

    def add_frames(self, db: np.ndarray, theta: np.ndarray, time: np.ndarray) -> None:
        """The next frames: dB [k, bins] (dBFS), θ [k] or [k, bands] (samples), stream time [k]
        (s). Frames must follow each other; a gap (frames the GUI never got) is filled with
        silence."""
        if len(time) == 0:
            return
        n = np.rint((np.asarray(time) - self.time0) * self.sample_rate / self.hop).astype(np.int64)
        keep = n >= self.frames
        theta = np.asarray(theta, np.float32).reshape(len(n), -1)
        db, theta, n = np.asarray(db)[keep], theta[keep], n[keep]
        if len(n) == 0:
            return
        if self.bin_pool > 1:  # pooled before quantising (half the work): the code is monotone in dB
            db = np.asarray(db, np.float32)
            pooled = db[:, :: self.bin_pool].copy()
            for j in range(1, self.bin_pool):
                part = db[:, j :: self.bin_pool]
                head = pooled[:, : part.shape[1]]
                np.fmax(head, part, out=head)  # fmax: NaN counts as the lowest, as db_to_code has it
            db = pooled
        codes = db_to_code(db)
        if n[0] > self.frames:  # a gap: silence
            self._put_columns(np.zeros((n[0] - self.frames, self.rows), np.uint8), self.frames)
            self.theta[np.arange(self.frames, n[0]) % self.frame_cap] = theta[0]
        self.theta[n % self.frame_cap] = theta
        self._put_columns(codes, int(n[0]))
        self.frames = int(n[-1]) + 1

    def _put_columns(self, codes: np.ndarray, first_frame: int) -> None:
        g, base = self.group, self.levels[0]
        for start in range(0, len(codes), 4096):  # bounded temporaries
            chunk = codes[start : start + 4096]
            c = (first_frame + start + np.arange(len(chunk))) // g
            starts = np.flatnonzero(np.diff(c, prepend=-1))  # frames in order: a column's are adjacent
            cols, rows = c[starts], pool_max(chunk, starts)
            if cols[0] < self.columns:  # a column begun at the last call: add its new frames
                np.maximum(rows[0], base[cols[0] % self.col_cap], out=rows[0])
            base[cols % self.col_cap] = rows
            self.columns = max(self.columns, int(cols[-1]) + 1)
            self._update_pyramid(int(cols[0]), int(cols[-1]) + 1)

    def _update_pyramid(self, ca: int, cb: int) -> None:
        """Recompute the pyramid's entries over base columns ``ca .. cb`` (end excluded): each
        entry the max of its (up to) 4 children below."""
        count = self.columns
        for level in range(1, len(self.levels)):
            below, here = self.levels[level - 1], self.levels[level]
            pa, pb = ca // 4, (cb - 1) // 4 + 1
            if pb - pa <= 4:  # a redraw's few columns: a slice per entry, no temporaries
                for p in range(pa, pb):
                    i, k = (4 * p) % len(below), min(4, count - 4 * p)
                    kids = (
                        below[i : i + k]
                        if i + k <= len(below)
                        else below[(4 * p + np.arange(k)) % len(below)]
                    )
                    np.max(kids, axis=0, out=here[p % len(here)])
            else:
                children = np.arange(4 * pa, 4 * pb)
                valid = children < count
                block = np.zeros((len(children), self.rows), np.uint8)
                block[valid] = below[children[valid] % len(below)]
                here[np.arange(pa, pb) % len(here)] = block.reshape(pb - pa, 4, self.rows).max(axis=1)
            ca, cb, count = pa, pb, -(-count // 4)

    # -- queries ----------------------------------------------------------------------------------

    def picture(self, t0: float, t1: float, width: int) -> np.ndarray:
        """The columns of stream times t0 .. t1 s as ``width`` pixel columns: uint8 codes
        [width, rows], each pixel the loudest column it covers (the nearest when zoomed in);
        0 where the history has nothing."""
        return self.picture_since(t0, t1, width, None)[1]

    @property
    def state(self) -> tuple[int, int, int]:
        """(reset count, columns written, oldest column held): what :meth:`picture_since` needs
        to know of an earlier picture."""
        return self._resets, self.columns, self.first_column

    def picture_since(self, t0: float, t1: float, width: int, then: tuple | None) -> tuple[int, np.ndarray]:
        """``(p, codes)``: the pixel columns p .. width-1 of :meth:`picture` (t0, t1, width); the
        ones before p are those of the same picture drawn when the history's :attr:`state` was
        ``then`` (p = 0 without ``then``, after a reset, or when what it forgot since was in
        view). Only the pixels showing the columns written since, and the newest one before them
        (which may have grown), are drawn again: at the live edge a redraw costs its new columns."""
        width = max(1, int(width))
        if self.columns == 0 or not t1 > t0:
            return 0, np.zeros((width, self.rows), np.uint8)
        per = self.column_seconds
        col_of = lambda t: (t - self.time0) / per - (self.group - 1) / (2 * self.group)  # noqa: E731
        edges = col_of(np.linspace(t0, t1, width + 1))
        span = edges[-1] - edges[0]
        level = 0
        while level + 1 < len(self.levels) and span / 4 ** (level + 1) >= width:
            level += 1
        scale = 4**level
        first = -(-self.first_column // scale)
        last = (self.columns - 1) // scale  # the newest entry may be partial: it is a true max
        lo = np.floor(edges[:-1] / scale + 0.5).astype(np.int64)
        hi = np.maximum(np.floor(edges[1:] / scale + 0.5).astype(np.int64), lo + 1)
        p = 0
        if then is not None and then[0] == self._resets and 0 < then[1] <= self.columns:
            # Pixels cover entries lo .. hi-1, both non-decreasing: from the first that reaches
            # the entry that held the newest column then; all of them if a forgotten one showed.
            p = int(np.searchsorted(hi, (then[1] - 1) // scale, side="right"))
            if then[2] != self.first_column and lo[0] < first:
                p = 0
        lo, hi = lo[p:], hi[p:]
        out = np.zeros((width - p, self.rows), np.uint8)
        has = (hi > first) & (lo <= last)
        if not has.any():
            return p, out
        lo, hi = np.clip(lo, first, last), np.clip(hi, first + 1, last + 1)
        a, b = int(lo[has].min()), int(hi[has].max())
        ring = self.levels[level]
        data = ring[np.arange(a, b) % len(ring)]
        out[has] = pool_max(data, lo[has] - a)
        return p, out

    def last_frames(self, until: float, count: int, chunk: int = 2048):
        """The held frames at stream times up to ``until`` (s), the newest ``count`` of them, as
        the engine gave them to the view but from what is stored, oldest first, in parts of at
        most ``chunk`` frames (bounded temporaries): each part (dB [k, n_fft/2+1] float32, each bin
        the level of its stored row and column, i.e. quantised to DB_RANGE's 256 steps and the max
        over the row's bins and the column's frames; θ [k] or [k, bands] (samples); stream time
        [k] (s)). For a view that redraws its picture of the same stream."""
        per = self.hop / self.sample_rate
        b = min(self.frames, math.floor((until - self.time0) / per + 1e-6) + 1)
        a = max(self.first_frame, b - max(int(count), 0))
        for start in range(a, b, chunk):
            n = np.arange(start, min(start + chunk, b))
            codes = self.levels[0][(n // self.group) % self.col_cap]  # [k, rows]
            db = code_to_db(np.repeat(codes, self.bin_pool, axis=1)[:, : self.n_fft // 2 + 1])
            theta = self.theta[n % self.frame_cap]
            yield db, (theta[:, 0] if self.bands == 1 else theta), self.time0 + n * per

    def band_of(self, freq: float) -> int:
        """The band (0 .. bands-1) holding frequency ``freq`` (Hz)."""
        return int(np.searchsorted(np.asarray(self.band_edges), freq, side="right"))

    def _band(self, freq: float | None, band: int | None = None) -> int | None:
        """``band``, else the band holding ``freq`` (Hz), clipped to 0 .. bands-1; None for neither."""
        if band is None and freq is not None:
            band = self.band_of(freq)
        return None if band is None else int(np.clip(band, 0, self.bands - 1))

    def _theta(self, n: np.ndarray, freq: float | None, band: int | None = None) -> np.ndarray:
        """θ (samples) of frames ``n``: of ``band``, else of the band holding ``freq`` (Hz), else
        the shortest of the frame's bands."""
        th = self.theta[np.asarray(n) % self.frame_cap]
        band = self._band(freq, band)
        return th.min(axis=-1) if band is None else th[..., band]

    def theta_curve(self, t0: float, t1: float, points: int) -> tuple[np.ndarray, np.ndarray]:
        """(time s, θ samples: [k], or [k, bands] with a θ per band) of the frames in t0 .. t1,
        thinned to about ``points`` (each kept point the shortest θ of the frames it stands for)."""
        per = self.hop / self.sample_rate
        a = max(self.first_frame, math.floor((t0 - self.time0) / per))
        b = min(self.frames, math.ceil((t1 - self.time0) / per) + 1)
        if b <= a:
            return np.zeros(0), np.zeros(0)
        step = max(1, (b - a) // max(points, 1))
        n = np.arange(a, b)
        th = self.theta[n % self.frame_cap]
        if step > 1:
            whole = (len(n) // step) * step
            n, th = n[:whole:step], th[:whole].reshape(-1, step, self.bands).min(axis=1)
        return self.time0 + n * per, (th[:, 0] if self.bands == 1 else th)

    def readout(
        self,
        time: float,
        freq: float | None,
        band: tuple[float, float] | None = None,
        a4: float = 440.0,
        theta_band: int | None = None,
    ) -> dict:
        """What the history holds at (stream time s, ``freq`` Hz), {} where it holds nothing:

        ``time`` (of the nearest frame, s), ``theta_ms`` (of band ``theta_band``, else of the band
        holding ``freq``, else the frame's shortest) and, with a θ per band, ``theta_band`` (the
        band it is of, when there is one); with ``freq``: ``freq``, ``db`` (the
        loudest stored level over ``band`` (Hz; default the row of ``freq``), as the picture shows
        it), and the spectral peak near ``freq`` refined by the phase-derivative instantaneous
        frequency from the input samples (:func:`rtdstft.pitch.peak_frequency`): ``peak_hz``,
        ``peak_db``, its ``note`` name and ``cents`` with A4 at ``a4`` Hz.
        """
        per = self.hop / self.sample_rate
        n = round((time - self.time0) / per)
        if self.frames == 0 or not self.first_frame <= n < self.frames:
            return {}
        info = {"time": self.time0 + n * per}
        info["theta_ms"] = 1000.0 * float(self._theta(n, freq, theta_band)) / self.sample_rate
        if self.bands > 1 and (band_index := self._band(freq, theta_band)) is not None:
            info["theta_band"] = band_index
        theta = float(self._theta(n, freq))  # the window of the bins around freq, for the peak
        if freq is None:
            return info
        row_hz = self.bin_pool * self.sample_rate / self.n_fft
        lo, hi = band if band is not None else (freq, freq)
        r0 = int(np.clip(np.floor(min(lo, hi) / row_hz + 0.5), 0, self.rows - 1))
        r1 = int(np.clip(np.floor(max(lo, hi) / row_hz + 0.5), r0, self.rows - 1))
        column = self.levels[0][(n // self.group) % self.col_cap]
        info.update(freq=float(freq), db=float(code_to_db(column[r0 : r1 + 1].max())))
        centre = n * self.hop
        reach = self.n_fft // 2 + self.hop
        a = centre - reach
        if a < max(0, self.samples - self.audio_cap) or centre + reach > self.samples:
            return info
        x = self.audio[np.arange(a, centre + reach) % self.audio_cap]
        peak_hz, peak_db = peak_frequency(x, reach, freq, self.sample_rate, self.n_fft, self.hop, theta)
        if peak_hz > 0:
            name, cents = note(peak_hz, a4)
            info.update(peak_hz=peak_hz, peak_db=peak_db, note=name, cents=cents)
        return info

    def excerpt(self, t0: float, t1: float, freq: float | None = None) -> Excerpt:
        """The audio and θ of stream times t0 .. t1 (s) and the frames' reach (± N/2) around
        them, as far as the history still holds them; for :mod:`rtdstft.selection`. With a θ per
        band, the θ of the band holding ``freq`` (Hz; the selection's centre), else the shortest."""
        per = self.hop / self.sample_rate
        n0 = max(self.first_frame, math.floor((t0 - self.time0) / per) - 1)
        n1 = min(self.frames, math.ceil((t1 - self.time0) / per) + 2)
        if n1 <= n0:
            raise ValueError(f"the history holds nothing in {t0:.3f}..{t1:.3f} s")
        reach = self.n_fft // 2 + 2 * self.hop
        s0 = max(n0 * self.hop - reach, self.samples - self.audio_cap, 0)
        s1 = min(n1 * self.hop + reach, self.samples)
        audio = self._audio_between(s0, s1)
        theta = self._theta(np.arange(n0, n1), freq)
        return Excerpt(
            audio, s0, theta, n0, self.sample_rate, self.n_fft, self.hop, self.time0, dict(self.settings)
        )

    def signal(
        self, t0: float | None = None, t1: float | None = None, freq: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """The held input cut at frame centres, with the θ of its frames, for an offline edit of
        what the history holds: (audio float32 [T], θ float32 [1 + T // H], stream time (s) of
        audio[0]). Frame j of the result is centred at audio[j·H]. The span is every frame whose
        samples (from H before its centre to H after) the history still holds, or those of them
        in t0 .. t1 s. With a θ per band: that of the band holding ``freq`` (Hz), else the
        shortest."""
        per = self.hop / self.sample_rate
        oldest = max(0, self.samples - self.audio_cap)
        a = max(self.first_frame, -(-oldest // self.hop))
        b = min(self.frames, self.samples // self.hop)
        if t0 is not None:
            a = max(a, math.floor((t0 - self.time0) / per))
        if t1 is not None:
            b = min(b, math.ceil((t1 - self.time0) / per) + 1)
        if b <= a:
            raise ValueError("the history holds no audio there")
        audio = self._audio_between(a * self.hop, b * self.hop - 1)
        return audio, self._theta(np.arange(a, b), freq), self.time0 + a * per

    def _audio_between(self, s0: int, s1: int) -> np.ndarray:
        """A copy of input samples s0 .. s1 (end excluded), which the ring must still hold."""
        i, n = s0 % self.audio_cap, s1 - s0
        if i + n <= self.audio_cap:
            return self.audio[i : i + n].copy()
        return np.concatenate([self.audio[i:], self.audio[: i + n - self.audio_cap]])
