"""StreamConfig, the one owner of the streaming engine's settings, and the engine's use of it:
validation, rate-suited defaults, derived values, live changes (and their thread safety), the dB
scale of a spectrum, integer input, and the adapter's entropy against rtdstft.entropy."""

from __future__ import annotations

import math
import os
import re
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt makes the QApplication

import numpy as np
import pytest
import torch

import rtdstft
from rtdstft.bands import DEFAULT_GUI_BANDS
from rtdstft.cli import _engine_config, build_parser
from rtdstft.config import LIVE_FIELDS, StreamConfig
from rtdstft.online import OnlineAdapter
from rtdstft.windows import hann_window

# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("sample_rate", math.inf),
        ("sample_rate", math.nan),
        ("lr", math.inf),
        ("lr", math.nan),
        ("smoothness", math.inf),
        ("alpha", math.inf),
        ("win_max", math.nan),
        ("win_min", math.inf),
        ("win_length", math.nan),
        ("sample_rate", "48000"),
        ("adapt", "yes"),
    ],
)
def test_non_finite_and_non_numbers_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field} must be"):
        StreamConfig(**{field: value})
    with pytest.raises(ValueError, match=f"{field} must be"):
        rtdstft.StreamingDSTFT(**{field: value})


def test_numpy_scalars_are_accepted_as_numbers():
    engine = rtdstft.StreamingDSTFT(
        sample_rate=np.float32(48000),
        n_fft=np.int64(1024),
        hop_length=np.int32(128),
        win_max=np.float64(900.0),
        lr=np.float32(0.2),
        radius=np.int16(2),
        adapt=np.bool_(True),
    )
    cfg = engine.config
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.win_max, cfg.radius) == (48000, 1024, 128, 900, 2)
    assert type(cfg.sample_rate) is float and type(cfg.n_fft) is int and type(cfg.radius) is int
    assert cfg.adapt is True
    assert engine.process(np.zeros(4096, np.float32)).n_frames > 0


def test_unknown_and_non_live_changes_are_refused_without_effect():
    cfg = StreamConfig()
    with pytest.raises(ValueError, match="unknown setting"):
        cfg.replace(window="hann")
    engine = rtdstft.StreamingDSTFT()
    with pytest.raises(ValueError, match=r"cannot change \['n_fft'\] on a running stream"):
        engine.configure(n_fft=1024)
    assert engine.config == StreamConfig()


# -- defaults ---------------------------------------------------------------------------------------


def test_defaults_derive_from_n_and_h_and_follow_them():
    cfg = StreamConfig(n_fft=1024)
    assert (cfg.hop_length, cfg.win_min, cfg.win_max) == (128, 256.0, 1024.0)
    assert cfg.win_length == pytest.approx(math.sqrt(256 * 1024))
    assert cfg.derived == {"hop_length", "win_min", "win_max", "win_length", "bands", "band_edges"}
    wider = cfg.replace(n_fft=4096)  # what was derived follows the new N
    assert (wider.hop_length, wider.win_min, wider.win_max) == (512, 1024.0, 4096.0)
    set_by_hand = StreamConfig(n_fft=1024, hop_length=64, win_min=300.0).replace(n_fft=4096)
    assert (set_by_hand.hop_length, set_by_hand.win_min, set_by_hand.win_max) == (64, 300.0, 4096.0)


@pytest.mark.parametrize(
    "rate,expected",
    [
        (8000, (1024, 32, 64.0, 680.0)),
        (16000, (2048, 32, 64.0, 1360.0)),
        (24000, (2048, 64, 128.0, 2040.0)),
        (44100, (4096, 128, 256.0, 3749.0)),
        (48000, (4096, 128, 256.0, 4080.0)),
    ],
)
def test_rate_suited_settings_span_5_to_85_ms(rate, expected):
    cfg = StreamConfig.for_rate(rate)
    assert (cfg.n_fft, cfg.hop_length, cfg.win_min, cfg.win_max) == expected
    assert cfg.sample_rate == rate
    assert cfg.win_length == pytest.approx(math.sqrt(cfg.win_min * cfg.win_max))
    assert 0.004 <= cfg.win_min / rate <= 0.0081 and cfg.win_max / rate == pytest.approx(0.085, abs=1e-3)
    # Given N or H, the rate chooses nothing of the geometry: the plain derivations apply.
    cfg = StreamConfig.for_rate(rate, n_fft=1024)
    assert (cfg.hop_length, cfg.win_min, cfg.win_max) == (128, 256.0, 1024.0)
    assert StreamConfig.for_rate(rate, adapt=False, win_length=None).adapt is False


@pytest.mark.parametrize("rate", [1, 100, 256, 700, 747])
def test_below_750_hz_the_rate_suited_settings_say_what_to_give(rate, tmp_path, capsys):
    """85 ms is fewer samples than 2H at the smallest H there: no rate-suited settings exist. The
    error blamed a setting nobody gave ("--win-max must be in (--hop = 32, --n-fft = 256], got 8");
    it now says why and which to give, and the settings it suggests work."""
    with pytest.raises(ValueError, match=f"sample_rate {rate} Hz is too low") as refused:
        StreamConfig.for_rate(rate)
    n, h = map(int, re.search(r"e\.g\. n_fft (\d+) and hop_length (\d+)$", str(refused.value)).groups())
    assert StreamConfig.for_rate(rate, n_fft=n, hop_length=h).win_max == n
    assert StreamConfig.for_rate(rate, win_max=200.0).win_max == 200.0  # bounds given: no suggestion
    import soundfile as sf

    from rtdstft.cli import main

    path = tmp_path / "slow.wav"
    sf.write(str(path), np.random.default_rng(0).standard_normal(40 * rate) * 0.1, rate)
    assert main(["analyze", str(path), "-o", str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert "too low" in err and f"--n-fft {n} and --hop {h}" in err and "--win-max" not in err, err
    given = ["--n-fft", str(n), "--hop", str(h)]
    assert main(["analyze", str(path), "-o", str(tmp_path / "a.png"), *given]) == 0
    assert StreamConfig.for_rate(748).win_max == 64.0  # the lowest rate that has them


def test_an_unset_starting_theta_follows_new_bounds():
    engine = rtdstft.StreamingDSTFT()  # n_fft 2048, hop 256, adapt: θ 512 .. 2048, starting θ 1024
    engine.configure(win_max=1000.0)
    assert engine.config.win_length == pytest.approx(math.sqrt(512 * 1000))
    out = engine.process(np.random.default_rng(0).standard_normal(48000).astype(np.float32) * 0.1)
    assert out.n_frames > 0 and np.all((out.win_length >= 512) & (out.win_length <= 1000))
    # A θ the user did set is checked against the new bounds, and the change refused.
    engine = rtdstft.StreamingDSTFT(win_length=1500.0)
    with pytest.raises(ValueError, match=r"win_length must be in \[win_min, win_max\] = \[512, 1000\]"):
        engine.configure(win_max=1000.0)
    assert engine.config.win_max == 2048.0


def test_live_fields_change_a_running_stream_and_only_they():
    engine = rtdstft.StreamingDSTFT(16000, 512, 64)
    changes = dict(
        adapt=False,
        win_length=300.0,
        win_min=200.0,
        win_max=400.0,
        lr=0.5,
        smoothness=0.5,
        entropy="renyi",
        alpha=2.0,
        radius=2,
        steps=1,
        steadiness=0.5,
    )
    assert set(changes) == set(LIVE_FIELDS)
    engine.configure(**changes)
    assert engine.config.changes_from(StreamConfig(16000, 512, 64)) == changes
    out = engine.process(np.random.default_rng(1).standard_normal(8000).astype(np.float32))
    assert out.n_frames > 0 and np.all(out.win_length == np.float32(300.0))


# -- the configure race ---------------------------------------------------------------------------


class _LockWithHook:
    """A lock that, once armed, runs ``hook`` in the arming thread right after that thread's first
    release: a pause exactly between the stream taking its new settings and whatever follows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hook = None
        self.thread = None
        self.fired = False

    def __enter__(self):
        self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()
        if self.thread is threading.current_thread() and not self.fired:
            self.fired = True
            self.hook()


def test_configure_landing_while_the_stream_takes_new_settings_is_checked_against_them():
    engine = rtdstft.StreamingDSTFT(16000, 512, 64, win_length=260.0)  # θ 128 .. 512
    lock = engine._lock = _LockWithHook()
    engine.configure(win_max=300.0)  # waits for the next block
    refused: list[Exception] = []

    def other_thread() -> None:
        try:
            engine.configure(win_length=400.0)  # fine under the old θ max 512, not under the new 300
        except ValueError as exc:
            refused.append(exc)

    def configure_from_another_thread() -> None:
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()

    lock.hook, lock.thread = configure_from_another_thread, threading.current_thread()
    x = (np.random.default_rng(2).standard_normal(16000) * 0.1).astype(np.float32)
    first = engine.process(x[:4000])  # the stream takes win_max=300 at its first block
    assert lock.fired, "the hook must run inside process, as the stream takes the new settings"
    assert len(refused) == 1, "checked against θ max 300, win_length 400 is refused"
    assert "win_length must be in [win_min, win_max] = [128, 300], got 400" in str(refused[0])
    rest = engine.process(x[4000:])  # and the stream goes on
    theta = np.concatenate([first.win_length, rest.win_length])
    assert theta.size > 0 and np.all((theta >= 128) & (theta <= 300))
    assert (engine.config.win_length, engine.config.win_max) == (260.0, 300.0)


# -- dB scale ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", ["l1", "peak"])
def test_a_full_scale_sine_reads_0_dbfs(normalization):
    sr, n = 48000, 2048
    t = np.arange(sr // 2) / sr
    x = np.sin(2 * np.pi * (100 * sr / n) * t)  # on bin 100
    for theta in (600.0, 1001.3, 2048.0):  # the "peak" scale depends on θ, frame by frame
        engine = rtdstft.StreamingDSTFT(
            sr, n, 256, adapt=False, win_length=theta, normalization=normalization, dtype=torch.float64
        )
        outs = [engine.process(x[i : i + 4096]) for i in range(0, x.size, 4096)]
        db = np.concatenate([engine.to_dbfs(o.spec, o.win_length) for o in outs])[8:-8]  # steady
        np.testing.assert_allclose(db.max(axis=1), 0.0, atol=0.05, err_msg=f"θ = {theta}")
        assert np.all(db.argmax(axis=1) == 100)
        half = engine.config.to_dbfs(outs[-1].spec * 0.5, outs[-1].win_length)
        np.testing.assert_allclose(half.max(axis=1), 20 * np.log10(0.5), atol=0.05)


# -- integer input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype,to_int",
    [
        (np.int16, lambda y: np.round(y * 32767).astype(np.int16)),
        (np.int32, lambda y: np.round(y * (2**31 - 1)).astype(np.int32)),
        (np.uint8, lambda y: (np.round(y * 127) + 128).astype(np.uint8)),
        (np.int8, lambda y: np.round(y * 127).astype(np.int8)),
    ],
)
def test_integer_samples_are_scaled_to_full_scale_as_soundfile_reads_them(dtype, to_int):
    y = np.sin(np.linspace(0, 300, 6000)) * 0.9
    pcm = to_int(y)
    assert pcm.dtype == dtype
    info = np.iinfo(dtype)
    half = 2.0 ** (info.bits - 1)
    expected = ((pcm.astype(np.float64) - (half if info.min == 0 else 0)) / half).astype(np.float32)
    a = rtdstft.StreamingDSTFT(16000, 512, 64)
    b = rtdstft.StreamingDSTFT(16000, 512, 64)
    got, want = a.process(pcm), b.process(expected)
    assert got.n_frames > 0
    np.testing.assert_array_equal(got.spec, want.spec)
    np.testing.assert_array_equal(got.audio, want.audio)
    assert np.abs(got.spec).max() < 512  # within full scale (an unscaled int16 would be ~10^4 × more)


# -- the adapter's entropy ------------------------------------------------------------------------


def _click_in_silence(sr: int = 16000) -> torch.Tensor:
    x = np.zeros(sr // 2)
    x[3000] = 1.0
    x[3010] = -0.5
    return torch.from_numpy(x)


@pytest.mark.parametrize("kind", ["shannon", "renyi"])
@pytest.mark.parametrize("start", [0, 2000, 2600, 3000, 5000])
def test_adapter_objective_equals_rtdstft_entropy_silent_frames_included(kind, start):
    """J(θ) of the online adapter for a block of K frames after 2r context frames equals the mean of
    rtdstft.entropy's local entropy over the scored frames, each weighted by the number of its
    neighbours known (the sequence ends with the block), plus λ (log θ - log θ_prev)²."""
    n, h, k, r, lam = 512, 64, 8, 3, 0.05
    x = _click_in_silence()
    adapter = OnlineAdapter(n, radius=r, kind=kind, alpha=2.5, smoothness=lam, dtype=torch.float64)
    if start >= (2 * r) * h:  # the emitted context before the block, with some θ
        ctx_frames = x[start - 2 * r * h : start - 2 * r * h + (2 * r - 1) * h + n].unfold(0, n, h)
        ctx = torch.fft.rfft(ctx_frames * hann_window(torch.tensor([200.0], dtype=torch.float64), n))
        adapter.push_context(ctx)
    else:  # a new stream: silence before it
        ctx = torch.zeros(2 * r, n // 2 + 1, dtype=torch.complex128)
    frames = x[start : start + (k - 1) * h + n].unfold(0, n, h)
    log_prev = math.log(250.0)
    log_theta = np.log([130.0, 250.0, 400.0, 512.0])
    cand = adapter._evaluate(frames, log_theta, log_prev)
    length = 2 * r + k
    known = np.array([min(i + r, length - 1) - max(i - r, 0) + 1 for i in range(r, length)], dtype=float)
    for c, s in enumerate(log_theta):
        spec = torch.fft.rfft(frames * hann_window(torch.tensor([math.exp(s)], dtype=torch.float64), n))
        sequence = torch.cat([ctx, spec]).T  # [M, 2r + K]: context, then the block
        local = rtdstft.entropy(sequence, kind=kind, alpha=2.5, radius=r)[r:]  # the scored frames
        expected = float(local.numpy() @ known / known.sum()) + lam * (s - log_prev) ** 2
        assert cand.obj[c] == pytest.approx(expected, rel=1e-9, abs=1e-12), (c, cand.obj[c], expected)
        assert np.isfinite(cand.obj[c]) and abs(cand.obj[c]) < 20  # never log(tiny) ≈ -708


# -- the command line and the application agree -----------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_cli_and_gui_build_the_same_engine_settings_at_every_rate(rate, tmp_path, qtbot):
    """``rtdstft analyze --no-adapt --bands 4 FILE`` and the application started with
    ``--no-adapt`` on its first start (no saved settings; it starts with a θ per band, 4 bands),
    on the same file: the same StreamConfig, field by field."""
    sf = pytest.importorskip("soundfile")
    from rtdstft_gui.window import MainWindow

    path = tmp_path / f"tone-{rate}.wav"
    t = np.arange(rate // 2) / rate
    sf.write(path, (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), rate)
    argv = [
        "analyze",
        str(path),
        "-o",
        str(tmp_path / "x.png"),
        "--no-adapt",
        "--bands",
        str(DEFAULT_GUI_BANDS),
    ]
    args = build_parser().parse_args(argv)
    cli = _engine_config(args, sf.info(str(path)).samplerate)

    w = MainWindow(
        settings_path=str(tmp_path / "first-start.ini"),
        recordings_dir=str(tmp_path / "recordings"),
        overrides={"adapt": False},
    )
    qtbot.addWidget(w)
    try:
        w.open_file(path)
        qtbot.waitUntil(lambda: w.worker.call(lambda wk: wk.engine_settings()).get("sample_rate") == rate)
        gui = w.worker.call(lambda wk: wk.engine.config)
    finally:
        w.close()
    assert gui.as_dict() == cli.as_dict()
    assert cli.adapt is False and cli.n_fft == StreamConfig.for_rate(rate).n_fft


def test_saved_settings_that_make_no_valid_config_give_way_to_the_defaults(tmp_path, qtbot):
    """An edited or older settings file whose analysis fields the engine would refuse (θ min below
    H) starts the application on the first-start settings instead of an engine that cannot run."""
    from PyQt6 import QtCore
    from rtdstft_gui.window import MainWindow

    ini = tmp_path / "edited.ini"
    saved = QtCore.QSettings(str(ini), QtCore.QSettings.Format.IniFormat)
    for key, value in {"auto": False, "n_fft": 1024, "hop_length": 256, "win_min": 100, "radius": 2}.items():
        saved.setValue(f"analysis/{key}", value)
    saved.sync()
    w = MainWindow(settings_path=str(ini), recordings_dir=str(tmp_path / "recordings"))
    qtbot.addWidget(w)
    try:
        shown = w.analysis.config()
    finally:
        w.close()
    first_start = StreamConfig.for_rate(48000, bands=DEFAULT_GUI_BANDS)
    assert shown == first_start.replace(win_length=shown.win_length)
    assert w.analysis.auto.isChecked()
