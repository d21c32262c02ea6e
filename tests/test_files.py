"""Files in and out, on real files of every format and subtype the recorder offers: what is written
reads back (soundfile, FileSource and `rtdstft analyze`), integer PCM round-trips bit-exactly, a
killed recording leaves a readable file, an output is whole or absent, cut-short and non-seekable
inputs are handled without hanging or tracebacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import RTDSTFT, audio_test, block_peaks, in_a_small_tmpfs, tone, tone_reading

from rtdstft.audio import (
    PARTIAL_SUFFIX,
    RECORDING_FORMATS,
    AudioFileError,
    FileSource,
    Recorder,
    to_pcm,
)
from rtdstft.cli import main

ROOT = Path(__file__).resolve().parents[1]
RATE = 48000
LOSSY = {"VORBIS", "OPUS", "MPEG_LAYER_III"}
COMPANDED = {"ULAW", "ALAW"}
OFFERED = [
    (fmt, subtype)
    for fmt, subtypes in RECORDING_FORMATS.items()
    if fmt in sf.available_formats()
    for subtype in subtypes
    if subtype in sf.available_subtypes(fmt)
]
EXTENSION = {"AIFF": "aiff", "OGG": "ogg", "MP3": "mp3"}


def name_for(fmt: str, subtype: str) -> str:
    return f"{subtype.lower()}.{EXTENSION.get(fmt, fmt.lower())}"


def stored(x: np.ndarray, subtype: str) -> np.ndarray:
    """What a file of ``subtype`` holds for float ``x``, read back as float64."""
    if subtype in ("FLOAT", "DOUBLE"):
        return x.astype(np.float64)
    q = to_pcm(x, subtype)
    return q.astype(np.float64) / (2.0**15 if q.dtype == np.int16 else 2.0**31)


def check_holds(got: np.ndarray, rate: int, x: np.ndarray, subtype: str) -> None:
    """``got`` (float64, mono) holds ``x``: exactly for PCM and float, within the step for companded
    subtypes, by length, pitch and level for lossy codecs."""
    assert got.shape == x.shape, (subtype, got.shape, x.shape)
    if subtype in LOSSY:
        _, freqs, levels = block_peaks(got.astype(np.float32), rate, block=4096, hop=2048)
        np.testing.assert_allclose(freqs[1:-1], 1000.0, atol=15)
        np.testing.assert_allclose(levels[1:-1], 0.5, atol=0.1)
    elif subtype in COMPANDED:
        np.testing.assert_allclose(got, x, atol=0.02)
    else:
        np.testing.assert_array_equal(got, stored(x, subtype))


# -- every format and subtype offered reads back ---------------------------------------------------


@pytest.mark.parametrize(("fmt", "subtype"), OFFERED, ids=[f"{f}-{s}" for f, s in OFFERED])
def test_recorder_output_reads_back_in_every_offered_format(tmp_path, fmt, subtype):
    x = tone(1000, 0.5, RATE)
    path = tmp_path / name_for(fmt, subtype)
    with Recorder(path, RATE, subtype=subtype, format=fmt) as rec:
        for block in np.array_split(x, 5):
            rec.write(block)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no partial WAV left over
    got, rate = sf.read(str(path), dtype="float64")
    info = sf.info(str(path))
    assert (rate, info.format, info.subtype) == (RATE, fmt, subtype)
    check_holds(got, rate, x, subtype)
    with FileSource(path, realtime=False) as source:
        assert (source.frames, source.sample_rate, source.cut_short) == (x.shape[0], RATE, False)
        check_holds(source.read(x.shape[0] + 100).astype(np.float64), RATE, x, subtype)


#: Resynthesis writes through the same Recorder as above; once per way of writing (in place, and
#: each converted codec), each read back by soundfile, and by `rtdstft analyze` where named.
RESYNTH_TARGETS = [
    (f, s)
    for f, s in [
        ("WAV", "PCM_16"),
        ("FLAC", "PCM_16"),
        ("OGG", "VORBIS"),
        ("OGG", "OPUS"),
        ("MP3", "MPEG_LAYER_III"),
        ("CAF", "ALAC_16"),
    ]  # fmt: skip
    if (f, s) in OFFERED
]
ANALYZED = {"PCM_16", "VORBIS"}


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("in") / "tone.wav"
    sf.write(str(path), tone(1000, 0.5, RATE), RATE, subtype="FLOAT")
    return path


@pytest.mark.parametrize(("fmt", "subtype"), RESYNTH_TARGETS, ids=[f"{f}-{s}" for f, s in RESYNTH_TARGETS])
def test_resynth_writes_every_format_and_analyze_reads_it(tone_wav, tmp_path, capsys, fmt, subtype):
    out = tmp_path / name_for(fmt, subtype)
    assert main(["resynth", str(tone_wav), str(out), "--subtype", subtype]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    info = sf.info(str(out))
    assert (info.format, info.subtype, info.samplerate, info.frames) == (fmt, subtype, RATE, RATE // 2)
    check_holds(sf.read(str(out), dtype="float64")[0], RATE, tone(1000, 0.5, RATE), subtype)
    if fmt != "WAV" and subtype in ANALYZED:
        csv = tmp_path / "theta.csv"
        assert main(["analyze", str(out), "-o", str(tmp_path / "a.png"), "--csv", str(csv)]) == 0
        rows = csv.read_text().splitlines()
        assert len(rows) == 1 + 1 + RATE // 2 // 128  # header + one row per frame (hop 128 at 48 kHz)


def test_record_and_resynth_default_subtype_follows_the_format(tmp_path):
    rec = Recorder(tmp_path / "a.ogg", RATE)
    rec.close()
    assert (rec.format, rec.subtype) == ("OGG", "VORBIS")
    assert Recorder(tmp_path / "b.mp3", RATE).subtype == "MPEG_LAYER_III"
    assert Recorder(tmp_path / "c.flac", RATE).subtype == "PCM_16"


# -- integer PCM: bit-exact -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subtype", "dtype"), [("PCM_16", "int16"), ("PCM_U8", "int16"), ("PCM_24", "int32")]
)
def test_resynth_of_integer_pcm_writes_back_the_same_integers(tmp_path, capsys, subtype, dtype):
    rng = np.random.default_rng(3)
    bits = {"PCM_16": 16, "PCM_U8": 8, "PCM_24": 24}[subtype]
    steps = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), RATE // 2)
    steps[:10] = [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1, 0, 1, -1, 2, -2, 3, -3, 5]  # the extremes too
    source, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(source), (steps << (8 * (4 if dtype == "int32" else 2) - bits)).astype(dtype), RATE, subtype)
    assert main(["resynth", str(source), str(out)]) == 0
    stdout = capsys.readouterr().out
    written, _ = sf.read(str(out), dtype=dtype)
    original, _ = sf.read(str(source), dtype=dtype)
    assert sf.info(str(out)).subtype == subtype
    np.testing.assert_array_equal(written, original)
    assert "SNR inf dB" in stdout  # the SNR of the file as written: exact


@pytest.mark.parametrize("subtype", sorted(COMPANDED))
def test_resynth_of_companded_audio_writes_back_the_same_codes(tmp_path, capsys, subtype):
    """A-law decodes to the top of each code's interval: a float32 resynthesis a part in 10^7 above it
    is the next code (14 samples in 4000 of a tone were), a float64 one is exact."""
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-1, 1, RATE // 4), rng.uniform(-0.01, 0.01, RATE // 4)])
    source, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(str(source), x, RATE, subtype)  # every level of the code, loud and quiet
    assert main(["resynth", str(source), str(out)]) == 0
    assert "SNR inf dB" in capsys.readouterr().out
    assert sf.info(str(out)).subtype == subtype
    np.testing.assert_array_equal(sf.read(str(out), dtype="int16")[0], sf.read(str(source), dtype="int16")[0])


def test_pcm_rounding_is_to_nearest_and_clips():
    x = np.array([0.49 / 32768, 0.51 / 32768, -0.51 / 32768, 1.5, -1.5, np.nan, 32767.4 / 32768])
    np.testing.assert_array_equal(to_pcm(x, "PCM_16"), [0, 1, -1, 32767, -32768, 0, 32767])
    np.testing.assert_array_equal(to_pcm(np.array([0.5, -1.0]), "PCM_U8"), [64 << 8, -128 << 8])
    np.testing.assert_array_equal(to_pcm(np.array([0.5]), "PCM_24"), [(1 << 22) << 8])


# -- killed recordings ------------------------------------------------------------------------------

RECORD_EVERY_FORMAT_UNTIL_KILLED = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from rtdstft.audio import RECORDING_FORMATS, Recorder
    import soundfile as sf
    folder, pairs = sys.argv[1], [p.split(":") for p in sys.argv[2:]]
    recs = [Recorder(f"{folder}/{name}", 48000, subtype=st, format=fmt) for fmt, st, name in pairs]
    t = np.arange(4800 * 1000) / 48000
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    for i in range(1000):
        for rec in recs:
            rec.write(x[i * 4800 : (i + 1) * 4800])
        print(recs[-1].frames, flush=True)
        time.sleep(0.01)
    """
)


def wait_for_lines(child: subprocess.Popen, at_least: int) -> int:
    reported = 0
    for line in child.stdout:
        reported = int(line)
        if reported >= at_least:
            break
    return reported


def test_every_offered_format_survives_kill_9_with_the_audio_up_to_the_last_block(tmp_path):
    pairs = [f"{fmt}:{st}:{name_for(fmt, st)}" for fmt, st in OFFERED]
    child = subprocess.Popen(
        [sys.executable, "-c", RECORD_EVERY_FORMAT_UNTIL_KILLED, str(tmp_path), *pairs],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        reported = wait_for_lines(child, 5 * 4800)
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        child.kill()
        child.stdout.close()
    assert reported >= 5 * 4800, "the recorders never got going"
    x = tone(1000, 1000 * 0.1, RATE)
    for fmt, subtype in OFFERED:
        name = name_for(fmt, subtype)
        converted = fmt in ("FLAC", "OGG", "MP3") or subtype.startswith("ALAC")
        path = tmp_path / (name + PARTIAL_SUFFIX if converted else name)
        assert path.exists(), (fmt, subtype, sorted(p.name for p in tmp_path.iterdir()))
        got, rate = sf.read(str(path), dtype="float64")  # opens, and states a true length
        # Every block reported written is there, whole blocks only (the last few may be extra).
        assert rate == RATE and reported <= got.shape[0] <= reported + 4 * 4800, (fmt, subtype)
        assert got.shape[0] % 4800 == 0, (fmt, subtype, got.shape)
        check_holds(got, rate, x[: got.shape[0]], "FLOAT" if converted else subtype)
        if fmt == "WAV" and subtype.startswith("PCM"):
            with wave.open(str(path)) as strict:  # trusts the header's sizes, as many readers do
                assert strict.getnframes() == got.shape[0], subtype
        with FileSource(path, realtime=False) as source:
            assert source.frames == got.shape[0] and not source.cut_short


@pytest.fixture(scope="module")
def killed_flac(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A FLAC whose writer died without closing it: libsndfile states 2^63 - 1 frames."""
    path = tmp_path_factory.mktemp("killed") / "killed.flac"
    x = tone(1000, 1.0, RATE)
    script = (
        "import os, sys, numpy as np, soundfile as sf\n"
        "x = np.load(sys.argv[2])\n"
        "f = sf.SoundFile(sys.argv[1], 'w', 48000, 1, 'PCM_16')\n"
        "f.write(x); f.flush(); os._exit(0)\n"
    )
    np.save(path.with_suffix(".npy"), x)
    subprocess.run([sys.executable, "-c", script, str(path), str(path.with_suffix(".npy"))], check=True)
    assert sf.info(str(path)).frames > 2**62
    return path, x


def test_file_source_reads_a_cut_short_file_to_where_it_breaks(killed_flac):
    path, x = killed_flac
    with FileSource(path, realtime=False) as source:
        assert source.cut_short and source.declared_frames > 2**62
        assert 0 < source.frames < x.shape[0]
        got = source.read(10 * RATE)
        assert got.shape == (source.frames,) and source.finished
        np.testing.assert_allclose(got, x[: got.shape[0]], atol=1 / 32768)
    with FileSource(path, realtime=False, loop=True) as looped:  # wraps around the break
        again = looped.read(2 * looped.frames + 10)
        assert looped.loops == 2
        np.testing.assert_array_equal(again[: looped.frames], again[looped.frames : 2 * looped.frames])


def test_analyze_and_resynth_of_a_cut_short_file_warn_and_use_what_it_holds(killed_flac, tmp_path, capsys):
    path, _ = killed_flac
    held = FileSource(path, realtime=False).frames
    csv, out = tmp_path / "t.csv", tmp_path / "out.wav"
    assert main(["analyze", str(path), "-o", str(tmp_path / "a.png"), "--csv", str(csv)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and "cut short" in err and str(held) in err
    assert len(csv.read_text().splitlines()) == 1 + 1 + held // 128
    assert main(["resynth", str(path), str(out)]) == 0
    assert "cut short" in capsys.readouterr().err
    assert sf.info(str(out)).frames == held


# -- non-finite samples ----------------------------------------------------------------------------


def test_resynth_counts_replaced_nonfinite_samples_and_measures_the_finite_ones(tmp_path, capsys):
    x = tone(440, 0.5, 16000)
    x[[100, 2000, 2001]] = [np.nan, np.inf, -np.inf]
    source, out = tmp_path / "nan.wav", tmp_path / "out.wav"
    sf.write(str(source), x, 16000, subtype="FLOAT")
    assert main(["resynth", str(source), str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "replaced 3 non-finite input samples (NaN or inf) by 0" in stdout
    snr = float(stdout.split("SNR ")[1].split(" dB")[0])
    assert 100 <= snr < np.inf and "the finite input samples" in stdout
    written = sf.read(str(out))[0]
    assert np.isfinite(written).all() and np.max(np.abs(written[[100, 2000, 2001]])) < 1e-5


def test_entropy_of_a_spectrum_holding_nan_or_inf_is_nan_not_the_lowest():
    import torch

    from rtdstft import entropy

    spec = torch.rand(9, 12, dtype=torch.float64) + 0.1
    for bad in (float("nan"), float("inf")):
        held = spec.clone()
        held[3, 5] = bad
        for kind in ("shannon", "renyi"):
            assert torch.isnan(entropy(held, kind=kind))
            local = entropy(held, kind=kind, radius=1)
            assert torch.isnan(local[4:7]).all() and torch.isfinite(local[:4]).all()
    assert entropy(torch.zeros(9, 12)) == 0  # silence keeps its convention


# -- whole or absent --------------------------------------------------------------------------------


def test_failed_csv_leaves_no_picture(tone_wav, tmp_path, capsys):
    blocker = tmp_path / "theta.csv"
    blocker.mkdir()  # the CSV cannot replace a folder
    picture = tmp_path / "spec.png"
    assert main(["analyze", str(tone_wav), "-o", str(picture), "--csv", str(blocker)]) == 2
    assert "theta.csv" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theta.csv"]


@pytest.mark.parametrize("option", ["-o", "--csv", "--npz"])
def test_analyze_refuses_an_output_it_cannot_write_before_the_analysis(
    tone_wav, tmp_path, capsys, monkeypatch, option
):
    """resynth and edit check OUT before they start; analyze ran the whole file first (minutes for
    a long one) and only then failed to write."""
    import rtdstft.batch

    def no_analysis(*args, **kwargs):
        raise AssertionError("the file was analysed before its output was found unwritable")

    monkeypatch.setattr(rtdstft.batch, "analyze_file", no_analysis)
    (tmp_path / "a_file").write_text("")
    ext = {"-o": "png", "--csv": "csv", "--npz": "npz"}[option]
    bad = str(tmp_path / "a_file" / f"out.{ext}")  # its folder is a file
    others = ["--npz", str(tmp_path / "ok.npz")] if option != "--npz" else []
    assert main(["analyze", str(tone_wav), option, bad, *others]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: cannot write it" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    folder = tmp_path / f"a_folder.{ext}"  # a folder where the output would go: the rename would fail
    folder.mkdir()
    assert main(["analyze", str(tone_wav), option, str(folder), *others]) == 2
    assert f"{folder}: cannot write it (Is a directory)" in capsys.readouterr().err
    folder.rmdir()
    monkeypatch.undo()  # a missing folder is no reason to refuse, nor left behind by the check
    new = tmp_path / "new" / "sub" / f"out.{ext}"
    more = ["--npz", str(new.with_suffix(".npz"))] if option == "--csv" else []
    assert main(["analyze", str(tmp_path / "missing.wav"), option, str(new), *more]) == 2
    assert "missing.wav" in capsys.readouterr().err and not (tmp_path / "new").exists()
    assert main(["analyze", str(tone_wav), option, str(new), *more]) == 0 and new.is_file()


@pytest.mark.parametrize(
    ("outputs", "words"),
    [
        (["-o", "a.png", "--csv", "{in}"], "--csv {in} is the audio file FILE"),
        (["--npz", "./{in}"], "--npz {in} is the audio file FILE"),
        (["-o", "a.png", "--csv", "t.csv", "--npz", "t.csv"], "--csv and --npz name the same file t.csv"),
    ],
)
def test_analyze_refuses_outputs_that_are_its_input_or_each_other(
    tmp_path, monkeypatch, capsys, outputs, words
):
    """`analyze take.wav --csv take.wav` (a typo for take.csv) replaced the recording by the CSV;
    resynth and edit refuse OUT = IN."""
    monkeypatch.chdir(tmp_path)
    sf.write("take.wav", tone(440, 0.3, 16000), 16000, "PCM_16")
    before = Path("take.wav").read_bytes()
    argv = [a.format(**{"in": "take.wav"}) for a in outputs]
    assert main(["analyze", "take.wav", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words.format(**{"in": "take.wav"}) in err, err
    assert Path("take.wav").read_bytes() == before and sorted(os.listdir()) == ["take.wav"]


def test_refused_opus_rate_leaves_no_file(tmp_path, capsys):
    source, out = tmp_path / "in.wav", tmp_path / "out.ogg"
    sf.write(str(source), tone(440, 0.2, 44100), 44100)
    assert main(["resynth", str(source), str(out), "--subtype", "OPUS"]) == 2
    assert "out.ogg" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


@pytest.mark.parametrize("letter", ["a", "é"])  # 1 and 2 bytes in UTF-8
def test_outputs_may_have_the_longest_name_the_folder_takes(tone_wav, tmp_path, capsys, letter):
    """A name of 255 bytes is a valid name; its temporary twin (``.NAME.part-XXXXXXXX.EXT``) must
    fit too, or no command could write it."""
    stem = letter * ((255 - 4) // len(letter.encode()))
    outs = {ext: tmp_path / f"{stem}.{ext}" for ext in ("wav", "png", "csv", "npz")}
    assert all(len(os.fsencode(p.name)) > 240 for p in outs.values())
    assert main(["resynth", str(tone_wav), str(outs["wav"])]) == 0
    picture, csv, npz = (str(outs[e]) for e in ("png", "csv", "npz"))
    assert main(["analyze", str(tone_wav), "-o", picture, "--csv", csv, "--npz", npz]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in outs.values())
    assert sf.info(str(outs["wav"])).frames == sf.info(str(tone_wav)).frames


def test_a_full_disk_ends_resynth_and_edit_with_one_line_and_no_file(tmp_path):
    """Written block by block, the output meets the full disk after the checks that it can be
    created: one line naming OUT and the reason, status 2, nothing left on the disk."""
    source, disk = tmp_path / "in.wav", tmp_path / "disk"
    sf.write(str(source), tone(440, 1.0, 48000), 48000, "PCM_16")  # 96 KB: more than the disk holds
    code = f"""if True:
        import contextlib, io, json, os
        from rtdstft.cli import main
        runs = []
        for command in (["resynth"], ["edit", "--region", "0", "0.5", "100", "2000", "-10"]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = main([command[0], {str(source)!r}, {str(disk / "out.wav")!r}, *command[1:]])
            runs.append([status, err.getvalue(), os.listdir({str(disk)!r})])
        print(json.dumps(runs))
    """
    done = in_a_small_tmpfs(disk, 64, code)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    for status, err, left in json.loads(done.stdout.splitlines()[-1]):
        assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert f"{disk / 'out.wav'}: cannot write" in err and "No space left on device" in err, err
        assert left == []


def _wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_ctrl_c_during_resynth_leaves_no_output(tmp_path):
    source, out = tmp_path / "in.wav", tmp_path / "out" / "resynth.flac"
    sf.write(str(source), tone(440, 60.0, 16000), 16000)
    child = subprocess.Popen([*RTDSTFT, "resynth", str(source), str(out)], stderr=subprocess.PIPE)
    try:
        started = _wait_for(lambda: out.parent.exists() and any(out.parent.iterdir()))
        child.send_signal(signal.SIGINT)
        stderr = child.communicate(timeout=60)[1].decode()
    finally:
        child.kill()
    assert started, "resynth never began writing"
    assert child.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert list(out.parent.iterdir()) == []


# -- non-seekable input -----------------------------------------------------------------------------


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.wav"
    os.mkfifo(path)
    return path


def _refused_at_once(argv: list[str], fifo: Path, capsys) -> str:
    """Runs ``main(argv)`` in a thread; if it hangs, a writer opening the FIFO frees it."""
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(main(argv)), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # it opened the FIFO for reading and waits for a writer: unblock it
        with open(fifo, "wb"):
            pass
        worker.join(30)
        pytest.fail(f"{argv[0]} blocked on a FIFO")
    assert result == [2]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_fifo_input_is_refused_at_once_with_and_without_a_writer(tone_wav, tmp_path, capsys):
    fifo = _fifo(tmp_path)
    for argv in (
        ["analyze", str(fifo), "-o", str(tmp_path / "a.png")],
        ["resynth", str(fifo), str(tmp_path / "o.wav")],
    ):
        assert "pipe" in _refused_at_once(argv, fifo, capsys)
    writer = subprocess.Popen(["sh", "-c", f"cat '{tone_wav}' > '{fifo}'"])
    try:
        err = _refused_at_once(["analyze", str(fifo), "-o", str(tmp_path / "a.png")], fifo, capsys)
        assert "pipe (FIFO)" in err and "regular files" in err
    finally:
        writer.kill()
        writer.wait()
    with pytest.raises(AudioFileError, match="pipe"):
        FileSource(fifo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.wav"]


# -- recordings killed through the command and the application (a real PortAudio stream) -----------


@audio_test
def test_rtdstft_record_killed_leaves_files_that_hold_the_tone(tmp_path):
    from rtdstft.audio import OutputSink

    targets = {"wav": tmp_path / "take.wav", "flac": tmp_path / "take.flac", "ogg": tmp_path / "take.ogg"}
    children = []
    # The whole tone queued before the recorders start: a test that fed it in 0.1 s chunks left
    # gaps in it when the machine was busy.
    with OutputSink(sample_rate=RATE, latency="high", ring_seconds=100) as sink:
        sink.write(tone(1000.0, 95.0, RATE, amplitude=0.5))
        for path in targets.values():
            children.append(
                subprocess.Popen(
                    [*RTDSTFT, "record", str(path), "--seconds", "60"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        writing = [
            p if p.suffix == ".wav" else p.with_name(p.name + PARTIAL_SUFFIX) for p in targets.values()
        ]

        def long_enough() -> bool:
            return all(p.exists() and sf.info(str(p)).frames >= RATE // 2 for p in writing)

        try:
            recorded = _wait_for(long_enough, timeout=90)
            for child in children:
                child.send_signal(signal.SIGKILL)
        finally:
            outputs = []
            for child in children:
                child.kill()
                outputs.append(child.communicate(timeout=30)[1].decode())
    assert recorded, [(c.returncode, err) for c, err in zip(children, outputs, strict=True)]
    assert not targets["flac"].exists() and not targets["ogg"].exists()  # converted only at a clean end
    for path in writing:
        x, rate = sf.read(str(path), dtype="float32")
        assert rate == RATE and x.shape[0] >= RATE // 2
        share, hz = tone_reading(x[RATE // 8 :], rate)
        assert share > 0.5 and abs(hz - 1000.0) < 2, (path, share, hz)  # mostly the tone


@audio_test
def test_ctrl_c_ends_a_flac_recording_converted_whole(tmp_path):
    out = tmp_path / "take.flac"
    child = subprocess.Popen(
        [*RTDSTFT, "record", str(out), "--seconds", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    try:
        started = _wait_for(lambda: partial.exists() and sf.info(str(partial)).frames >= RATE // 2)
        child.send_signal(signal.SIGINT)
        stdout, stderr = (t.decode() for t in child.communicate(timeout=60))
    finally:
        child.kill()
    assert started and child.returncode == 130, stderr
    assert "stopped by Ctrl-C" in stdout and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.flac"]
    assert sf.info(str(out)).frames >= RATE // 2 and sf.read(str(out))[0].shape[0] >= RATE // 2


GUI_RECORDING = textwrap.dedent(
    """
    import sys
    from PyQt6 import QtWidgets
    app = QtWidgets.QApplication(sys.argv[:1])
    from rtdstft_gui.window import MainWindow
    window = MainWindow(settings_path=sys.argv[3], recordings_dir=sys.argv[2])
    window.show()
    window.open_file(sys.argv[1])
    window.toggle_record()
    app.exec()
    """
)


def test_gui_killed_while_recording_leaves_the_replayed_samples(tmp_path):
    rng = np.random.default_rng(5)
    source = tmp_path / "noise.wav"
    sf.write(str(source), (0.3 * rng.standard_normal(20 * RATE)).astype(np.float32), RATE, "PCM_16")
    folder = tmp_path / "recordings"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    child = subprocess.Popen(
        [sys.executable, "-c", GUI_RECORDING, str(source), str(folder), str(tmp_path / "gui.ini")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def recorded() -> list[Path]:
        takes = list(folder.glob("rec-*.wav")) if folder.exists() else []
        return takes if takes and sf.info(str(takes[0])).frames >= RATE else []

    try:
        ok = _wait_for(recorded, timeout=120)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        child.kill()
    assert ok, "the application never recorded a second"
    (take,) = recorded()
    got, rate = sf.read(str(take), dtype="int16")
    with wave.open(str(take)) as strict:  # trusts the header's sizes, as many readers do
        assert strict.getnframes() == got.shape[0]
    original, _ = sf.read(str(source), dtype="int16")
    assert rate == RATE and got.shape[0] >= RATE
    # The take is the replayed file from where recording began, sample for sample.
    head = got[:2000].astype(float)
    start = int(np.argmax(np.correlate(original[: 5 * RATE].astype(float), head, "valid")))
    np.testing.assert_array_equal(got, original[start : start + got.shape[0]])


def test_gui_refuses_a_fifo_with_a_dialog_and_stops_cleanly(qtbot, tmp_path):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from rtdstft_gui.window import MainWindow

    fifo = _fifo(tmp_path)
    window = MainWindow(settings_path=str(tmp_path / "gui.ini"), recordings_dir=str(tmp_path / "rec"))
    qtbot.addWidget(window)
    window.show()
    window.open_file(fifo)
    shown = lambda: window.error_dialog is not None and window.error_dialog.isVisible()  # noqa: E731
    qtbot.waitUntil(shown, timeout=20_000)
    said = window.error_dialog.text() + " " + window.error_dialog.informativeText()
    assert "pipe.wav" in said and "pipe (FIFO)" in said
    window.error_dialog.accept()
    window.shut_down()  # the engine thread ends: it never blocked on the FIFO
    assert window.worker.isFinished()
