"""The `rtdstft` command end to end: the installed entry point run as a subprocess on files made here.

Analyze / resynth on WAV, a stereo FLAC at 44.1 kHz and OGG; the error cases
(one line on stderr, exit status 2, no traceback); devices and record through the PulseAudio null sink
(marked `audio`); bench and reproduce hand over to their modules.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_helpers import RTDSTFT, audio_test, tone, tone_reading

from rtdstft.cli import _PooledSpectrogram, main
from rtdstft.scenes import scene
from rtdstft.stream import settings_for_rate


def run(command: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """Runs a command; stdout and stderr decoded as they were written (a \\r stays a \\r)."""
    done = subprocess.run(command, capture_output=True, timeout=timeout)
    done.stdout, done.stderr = done.stdout.decode(), done.stderr.decode()
    return done


def rtdstft(*args: str | Path) -> subprocess.CompletedProcess:
    """Runs the installed command with ``args``."""
    return run([*RTDSTFT, *map(str, args)])


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def read_theta_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def check_png(path: Path) -> np.ndarray:
    """A valid PNG of a sensible size whose pixels are not all alike; returns the image."""
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert 500 <= height <= 3000 and 800 <= width <= 4000, image.shape
    assert image[..., :3].std() > 0.1  # a spectrogram, not a blank canvas
    return image


# -- files ---------------------------------------------------------------------------------------

CLICKS_S, TONES_S = 1.2, 1.2


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """click-then-tone WAV (16 kHz, mono), a stereo FLAC at 44.1 kHz (16 bit), an OGG (22.05 kHz)."""
    d = tmp_path_factory.mktemp("cli")
    out = {"wav": d / "click_tone.wav", "flac": d / "stereo.flac", "ogg": d / "tones.ogg"}
    sf.write(out["wav"], scene([("clicks", CLICKS_S), ("tones", TONES_S)], 16000), 16000, "PCM_16")
    left = scene([("clicks", 0.5), ("tones", 0.5)], 44100)
    right = scene([("chirp", 1.0)], 44100)
    n = min(len(left), len(right))
    sf.write(out["flac"], np.stack([left[:n], right[:n]], axis=1), 44100, "PCM_16")
    sf.write(out["ogg"], scene([("tones", 1.0)], 22050), 22050, format="OGG", subtype="VORBIS")
    return out


# -- analyze -------------------------------------------------------------------------------------


def test_analyze_wav_picture_and_theta_csv_short_on_clicks_long_on_tones(files, tmp_path):
    picture, table = tmp_path / "sub" / "spec.png", tmp_path / "theta.csv"
    done = ok(rtdstft("analyze", files["wav"], "-o", picture, "--csv", table, "--progress"))
    check_png(picture)
    # --progress draws the bar on a non-terminal stderr; it ends at 100 % on its own line.
    assert "\r" in done.stderr and "100%" in done.stderr and "Traceback" not in done.stderr

    header, rows = read_theta_csv(table)
    assert header == ["frame", "time_s", "win_length_samples", "win_length_ms"]
    rate = 16000
    suited = settings_for_rate(rate)  # the GUI's defaults: θ 4 .. 85 ms
    n_fft, hop, win_min, win_max = (suited[k] for k in ("n_fft", "hop_length", "win_min", "win_max"))
    assert (n_fft, hop, win_min, win_max) == (2048, 32, 64.0, 1360.0)
    samples = sf.info(str(files["wav"])).frames
    assert rows.shape == (1 + samples // hop, 4)  # one row per frame
    frame, time_s, theta, theta_ms = rows.T
    np.testing.assert_array_equal(frame, np.arange(rows.shape[0]))
    np.testing.assert_allclose(time_s, frame * hop / rate, atol=1e-6)
    np.testing.assert_allclose(theta_ms, 1000 * theta / rate, atol=1e-3)
    assert theta.min() >= win_min - 1e-3 and theta.max() <= win_max + 1e-3
    on_clicks = theta[(time_s > 0.1) & (time_s < CLICKS_S - 0.1)]
    on_tones = theta[(time_s > CLICKS_S + 0.25) & (time_s < CLICKS_S + TONES_S - 0.1)]
    assert np.median(on_clicks) <= 0.5 * np.median(on_tones), (np.median(on_clicks), np.median(on_tones))
    assert np.median(on_tones) >= 0.8 * win_max
    assert "wrote" in done.stdout and str(picture) in done.stdout


def test_analyze_stereo_flac_44k_mixdown_and_channel(files, tmp_path):
    picture, table = tmp_path / "stereo.png", tmp_path / "stereo.csv"
    done = ok(rtdstft("analyze", files["flac"], "-o", picture, "--csv", table, "--channel", "1"))
    assert done.stderr == ""  # no progress bar, no noise when stderr is not a terminal
    check_png(picture)
    header, rows = read_theta_csv(table)
    assert header == ["frame", "time_s", "win_length_samples", "win_length_ms"]
    hop = settings_for_rate(44100)["hop_length"]
    assert hop == 128
    assert rows.shape[0] == 1 + sf.info(str(files["flac"])).frames // hop


def test_analyze_ogg_fixed_window(files, tmp_path):
    picture, table = tmp_path / "ogg.png", tmp_path / "ogg.csv"
    ok(rtdstft("analyze", files["ogg"], "-o", picture, "--csv", table, "--no-adapt", "--win-length", "700"))
    check_png(picture)
    _, rows = read_theta_csv(table)
    assert rows.shape[0] == 1 + sf.info(str(files["ogg"])).frames // settings_for_rate(22050)["hop_length"]
    np.testing.assert_allclose(rows[:, 2], 700.0)


# -- resynth -------------------------------------------------------------------------------------


def resynth_snr(stdout: str) -> float:
    match = re.search(r"SNR (inf|[-\d.]+) dB", stdout)
    assert match, stdout
    return float(match.group(1))


def test_resynth_stereo_flac_44k_same_length_rate_and_channels(files, tmp_path):
    out = tmp_path / "resynth.flac"
    done = ok(rtdstft("resynth", files["flac"], out))
    assert resynth_snr(done.stdout) >= 100
    original, rate_in = sf.read(files["flac"], dtype="float32")
    again, rate_out = sf.read(out, dtype="float32")
    assert rate_out == rate_in == 44100 and again.shape == original.shape == (original.shape[0], 2)
    # Written with the input's 16-bit subtype: the resynthesis rounds back to the same samples.
    assert np.max(np.abs(again - original)) <= 1 / 32768


def test_resynth_ogg_to_wav(files, tmp_path):
    out = tmp_path / "from_ogg.wav"
    done = ok(rtdstft("resynth", files["ogg"], out))
    assert resynth_snr(done.stdout) >= 100
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames) == (22050, 1, sf.info(str(files["ogg"])).frames)


# -- errors --------------------------------------------------------------------------------------

#: name -> (arguments, strings the one stderr line must contain); {wav}, {tmp} are filled in.
ERROR_CASES = {
    "missing_file": (["analyze", "{tmp}/nope.wav", "-o", "{tmp}/x.png"], ["nope.wav", "no such file"]),
    "not_audio": (["analyze", "{tmp}/text.wav", "-o", "{tmp}/x.png"], ["text.wav", "not a readable audio"]),
    "directory": (["resynth", "{tmp}", "{tmp}/y.wav"], ["directory"]),
    "n_fft_odd": (["analyze", "{wav}", "-o", "{tmp}/x.png", "--n-fft", "1001"], ["--n-fft", "even", "1001"]),
    "n_fft_not_int": (["analyze", "{wav}", "-o", "{tmp}/x.png", "--n-fft", "abc"], ["--n-fft", "abc"]),
    "hop_zero": (
        ["analyze", "{wav}", "-o", "{tmp}/x.png", "--hop", "0"],
        ["--hop", "[1, --n-fft/2 = 1024]", "got 0"],
    ),
    "win_min_above_max": (
        ["resynth", "{wav}", "{tmp}/y.wav", "--win-min", "900", "--win-max", "600"],
        ["--win-min", "(--hop = 32, --win-max = 600]", "900"],
    ),
    "win_max_above_n_fft": (
        ["analyze", "{wav}", "-o", "{tmp}/x.png", "--win-max", "4096"],
        ["--win-max", "2048", "4096"],
    ),
    "win_length_outside": (
        ["analyze", "{wav}", "-o", "{tmp}/x.png", "--no-adapt", "--win-length", "50"],
        ["--win-length", "[64, 1360]", "50"],
    ),
    "lr_nan": (["analyze", "{wav}", "-o", "{tmp}/x.png", "--lr", "nan"], ["--lr", "nan"]),
    "alpha_one": (["analyze", "{wav}", "-o", "{tmp}/x.png", "--alpha", "1"], ["--alpha", "!= 1"]),
    "channel": (["analyze", "{wav}", "-o", "{tmp}/x.png", "--channel", "3"], ["--channel", "0..0", "3"]),
    "picture_format": (["analyze", "{wav}", "-o", "{tmp}/x.xyz"], ["x.xyz", "picture format", ".png"]),
    "audio_format": (["resynth", "{wav}", "{tmp}/y.xyz"], ["y.xyz", "audio format"]),
    "out_is_in": (["resynth", "{wav}", "{wav}"], ["OUT must differ"]),
    "seconds_negative": (["record", "{tmp}/r.wav", "--seconds", "-1"], ["--seconds", "> 0", "-1"]),
    "unknown_device": (
        ["record", "{tmp}/r.wav", "--seconds", "1", "--device", "no-such-device-xyz"],
        ["no-such-device-xyz"],
    ),
    "device_index": (["record", "{tmp}/r.wav", "--seconds", "1", "--device", "999"], ["device=999"]),
    "missing_output_option": (["analyze", "{wav}"], ["-o"]),
    "block_frames_memory": (
        ["analyze", "{wav}", "-o", "{tmp}/x.png", "--block-frames", "1000000000"],
        ["--block-frames 1000000000", "GiB of memory available"],
    ),
    "n_fft_memory": (
        ["resynth", "{wav}", "{tmp}/y.wav", "--n-fft", "100000000"],
        ["--n-fft 100000000", "GiB of memory available"],
    ),
    "fifo": (["analyze", "{tmp}/fifo.wav", "-o", "{tmp}/x.png"], ["fifo.wav", "pipe (FIFO)"]),
    "unknown_command": (["analyse", "{wav}"], ["analyse", "invalid choice"]),
    "threads_zero": (
        ["analyze", "{wav}", "-o", "{tmp}/x.png", "--threads", "0"],
        ["--threads", "1..256", "'0'"],
    ),
    "threads_word": (
        ["batch", "{wav}", "-o", "{tmp}/ds", "--threads", "many"],
        ["--threads", "1..256", "many"],
    ),
    "threads_too_many": (
        ["edit", "{wav}", "{tmp}/y.wav", "--threads", "1000"],
        ["--threads", "1..256", "1000"],
    ),
    "batch_files_zero": (
        ["batch", "{wav}", "-o", "{tmp}/ds", "--batch-files", "0"],
        ["--batch-files", ">= 1", "0"],
    ),
    "batch_n_fft_memory": (  # each worker's engine: refused before a worker takes the memory
        ["batch", "{wav}", "-o", "{tmp}/ds", "--n-fft", "100000000", "--workers", "1"],
        ["--n-fft 100000000", "GiB of memory available"],
    ),
}
#: The cases also run through the installed entry point, where a traceback would show.
ENTRY_POINT_CASES = ("missing_file", "n_fft_odd", "n_fft_not_int", "unknown_device", "n_fft_memory")


@pytest.fixture(scope="module")
def error_argv(files, tmp_path_factory) -> dict[str, list[str]]:
    tmp = tmp_path_factory.mktemp("errors")
    (tmp / "text.wav").write_text("this is not audio\n")
    os.mkfifo(tmp / "fifo.wav")  # no writer: opening it for reading would block
    fill = {"wav": str(files["wav"]), "tmp": str(tmp)}
    return {name: [a.format(**fill) for a in argv] for name, (argv, _) in ERROR_CASES.items()}


def test_a_bug_inside_a_command_keeps_its_traceback(monkeypatch, capsys):
    """Only validation errors become one line; a TypeError or a plain ValueError from inside a
    command is a bug and propagates (the console script then prints its traceback)."""
    import rtdstft.cli as cli
    from rtdstft.errors import ParameterError

    for bug in (TypeError("unsupported operand"), ValueError("math domain error")):

        def broken(args, bug=bug):
            raise bug

        monkeypatch.setattr(cli, "cmd_devices", broken)
        with pytest.raises(type(bug), match=str(bug)):
            main(["devices"])

    def refused(args):
        raise ParameterError("--thing must be in 1..3, got 7")

    monkeypatch.setattr(cli, "cmd_devices", refused)
    assert main(["devices"]) == 2
    assert capsys.readouterr().err == "rtdstft: error: --thing must be in 1..3, got 7\n"


def check_error(case: str, status: int, stdout: str, stderr: str) -> None:
    assert status == 2, (status, stdout, stderr)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("rtdstft") and "error:" in lines[0]
    for expected in ERROR_CASES[case][1]:
        assert expected in lines[0], (expected, lines[0])
    assert stdout == ""


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_error_is_one_line_naming_the_parameter_and_status_2(case, error_argv, capsys):
    # In process (each subprocess costs seconds of torch import); an escaping exception fails here.
    status = main(error_argv[case])
    out, err = capsys.readouterr()
    check_error(case, status, out, err)


def _run_all(commands: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Runs independent commands side by side: each spends most of its time importing torch."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run, argv) for name, argv in commands.items()}
        return {name: f.result() for name, f in futures.items()}


def test_entry_point_errors_exit_2_with_one_line_and_no_traceback(error_argv):
    runs = _run_all({case: [*RTDSTFT, *error_argv[case]] for case in ENTRY_POINT_CASES})
    for case, done in runs.items():
        check_error(case, done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_option_sets_the_torch_threads_the_engine_runs_with(
    files, tmp_path, monkeypatch, capsys, threads
):
    """--threads reaches torch.get_num_threads() where each command's engine runs (the engines'
    own methods record it and go on), and the count before the command is back after it."""
    import torch

    from rtdstft.online import LockstepAdapter
    from rtdstft.stream import StreamingDSTFT

    seen: dict[str, set[int]] = {}
    current = {"command": ""}

    def record(cls, name):
        real = getattr(cls, name)

        def spy(self, *args, **kwargs):
            seen.setdefault(current["command"], set()).add(torch.get_num_threads())
            return real(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, spy)

    record(StreamingDSTFT, "process")
    record(LockstepAdapter, "step")
    wav = str(files["wav"])
    commands = {
        "analyze": ["analyze", wav, "--npz", str(tmp_path / "t.npz")],
        "resynth": ["resynth", wav, str(tmp_path / "y.wav")],
        "edit": ["edit", wav, str(tmp_path / "e.wav"), "--region", "0.1", "0.5", "100", "2000", "-6"],
        "batch": ["batch", wav, "-o", str(tmp_path / "ds"), "--workers", "1"],
    }
    before = torch.get_num_threads()
    for name, argv in commands.items():
        current["command"] = name
        assert main([*argv, "--threads", str(threads)]) == 0, capsys.readouterr()
        assert torch.get_num_threads() == before, name
    capsys.readouterr()
    assert seen == {name: {threads} for name in commands}
    current["command"] = "default"
    assert main(commands["analyze"]) == 0
    assert seen["default"] == {1}  # the default: one thread


# -- help, bench, reproduce ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def entry_point_runs() -> dict[str, subprocess.CompletedProcess]:
    return _run_all(
        {
            "help": [*RTDSTFT, "--help"],
            "module": [sys.executable, "-m", "rtdstft", "--version"],
            "bench": [*RTDSTFT, "bench", "--help"],
            "reproduce": [*RTDSTFT, "reproduce", "--help"],
        }
    )


def test_help_lists_every_command_and_python_m_works(entry_point_runs):
    text = ok(entry_point_runs["help"]).stdout
    for command in ("devices", "analyze", "resynth", "record", "bench", "reproduce"):
        assert command in text
    assert ok(entry_point_runs["module"]).stdout.startswith("rtdstft ")


@pytest.mark.parametrize("command", ["analyze", "resynth", "record"])
def test_subcommand_help_documents_units_and_defaults(command, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default" in text
    if command == "record":
        assert "seconds" in text and "Hz" in text and "48000" in text
    else:
        assert "samples" in text and "4096 at 44.1-48 kHz" in text and "85 ms" in text
    if command == "analyze":
        assert "dB" in text and "ms" in text and "win_length_ms" in text


@pytest.mark.parametrize("command", ["bench", "reproduce"])
def test_bench_and_reproduce_hand_over_to_their_modules(command, entry_point_runs):
    done = entry_point_runs[command]
    text = " ".join((ok(done).stdout + done.stderr).split())
    assert "usage" in text.lower() and "Traceback" not in text
    if command == "reproduce":
        assert "fsdd" in text and "tracking" in text


def test_help_names_every_experiment_and_bench_says_its_whole_first_sentence(entry_point_runs):
    """tf-figure runs but no help named it; bench's description stopped mid-sentence ("... the
    streaming engine and")."""
    from rtdstft.experiments import EXPERIMENTS

    top = " ".join(ok(entry_point_runs["help"]).stdout.split())
    reproduce = " ".join(ok(entry_point_runs["reproduce"]).stdout.split())
    for name in EXPERIMENTS:
        assert f"| {name}" in top or f"{name} |" in top, name
        assert f"\n  {name} " in ok(entry_point_runs["reproduce"]).stdout, name
    assert "{" + "|".join(EXPERIMENTS) + "}" in reproduce
    bench = " ".join(ok(entry_point_runs["bench"]).stdout.split())
    assert "the streaming engine and how well its online adaptation does." in bench


# -- devices and record (a real PortAudio stream through the PulseAudio null sink) ---------------


@audio_test
def test_devices_lists_the_pulseaudio_devices():
    text = ok(rtdstft("devices")).stdout
    names = [line.split(None, 4)[-1] for line in text.splitlines()[1:-1]]
    assert any(name.startswith("pulse") for name in names), text
    assert any(line.startswith(("*", ">")) for line in text.splitlines()), "a default input is marked"


@audio_test
def test_record_one_second_of_a_tone_played_into_the_null_sink(tmp_path):
    from rtdstft.audio import OutputSink

    out, rate = tmp_path / "rec" / "take.wav", 48000
    chunk = tone(1000.0, 0.1, rate, amplitude=0.5)  # a whole number of cycles: joins seamlessly
    with OutputSink(sample_rate=rate, latency=0.1) as sink:
        proc = subprocess.Popen(
            [*RTDSTFT, "record", str(out), "--seconds", "1", "--rate", str(rate)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        while proc.poll() is None:  # keep the tone going for as long as the command runs
            sink.write(chunk, block=True, timeout=1)
        stdout, stderr = (text.decode() for text in proc.communicate(timeout=60))
    assert proc.returncode == 0, stderr
    assert stderr == ""
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames) == (rate, 1, rate)
    assert "recorded 1.00 s" in stdout
    x, _ = sf.read(out, dtype="float32")
    share, hz = tone_reading(x, rate)
    assert share > 0.8 and abs(hz - 1000.0) < 2, (share, hz)


# -- the pieces behind the picture and the bar ---------------------------------------------------


def test_pooled_spectrogram_is_a_max_over_groups_of_frames_whatever_the_blocks():
    rng = np.random.default_rng(0)
    n_frames, n_bins = 1000, 17
    spec = (rng.standard_normal((n_frames, n_bins)) + 1j * rng.standard_normal((n_frames, n_bins))).astype(
        np.complex64
    )
    image = _PooledSpectrogram(n_frames, n_bins, max_columns=300)
    assert image.pool == 4 and image.mag.shape == (250, n_bins)
    edges = np.cumsum(rng.integers(1, 40, 100))
    for lo, hi in zip(np.r_[0, edges], np.r_[edges, n_frames], strict=True):
        lo, hi = min(lo, n_frames), min(hi, n_frames)
        image.add(np.arange(lo, hi), spec[lo:hi])
    np.testing.assert_array_equal(image.mag, np.abs(spec).reshape(250, 4, n_bins).max(axis=1))
