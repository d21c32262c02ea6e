"""`rtdstft batch` and rtdstft.batch: a corpus into a Parquet dataset, one row per file.

The spoken-digit corpus (3000 files, ../shared/data) is analysed once per session with two local
processes; the tests then check its rows against `rtdstft analyze --csv`, resume after a SIGKILL,
bad files among good ones, and the same job through Ray Data on a local Ray cluster.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from audio_helpers import in_a_small_tmpfs

from rtdstft.batch import _LocalEntropy, analyze_file, expand_inputs, run_batch
from rtdstft.cli import main
from rtdstft.config import StreamConfig
from rtdstft.entropy import entropy
from rtdstft.scenes import scene
from rtdstft.stream import StreamingDSTFT

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd" / "recordings"
NO_DATA = "../shared/data not present (a user's clone has no shared data)"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=NO_DATA)


def read_rows(out: Path) -> dict[str, dict]:
    """The dataset in ``out`` read the way a user would (pyarrow.dataset), rows by path."""
    table = pads.dataset(out, format="parquet").to_table()
    rows = table.to_pylist()
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows), "a file has more than one row"
    return by_path


def same_rows(a: dict, b: dict) -> None:
    for key in a:
        if key in ("theta", "frame_times"):
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)
        elif isinstance(a[key], float) and np.isnan(a[key]):
            assert np.isnan(b[key]), key
        else:
            assert a[key] == b[key], (key, a[key], b[key])


def rtdstft_command(*args) -> list[str]:
    return [sys.executable, "-m", "rtdstft", *map(str, args)]


# -- the spoken-digit corpus ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fsdd_run(tmp_path_factory):
    """The whole corpus, two local worker processes: (dataset folder, summary)."""
    if not FSDD.is_dir():
        pytest.skip(NO_DATA)
    out = tmp_path_factory.mktemp("fsdd") / "theta"
    summary = run_batch([FSDD], out, workers=2)
    return out, summary


@needs_fsdd
def test_fsdd_dataset_has_a_row_per_file_and_opens_with_pyarrow_and_pandas(fsdd_run):
    import pandas as pd

    out, summary = fsdd_run
    assert (summary.files, summary.analysed, summary.failed) == (3000, 3000, 0)
    frame = pd.read_parquet(out)
    assert len(frame) == 3000 and frame["path"].is_unique
    assert (frame["status"] == "ok").all() and frame["error"].isna().all()
    assert set(frame["sample_rate"]) == {8000} and set(frame["channels"]) == {1}
    # θ in samples within the rate's bounds, one per frame, frames every hop.
    s = StreamConfig.for_rate(8000)
    first = frame.iloc[0]
    assert len(first["theta"]) == len(first["frame_times"]) == 1 + first["frames"] // s.hop_length
    assert np.diff(first["frame_times"]) == pytest.approx(s.hop_length / 8000)
    theta = np.concatenate(frame["theta"].to_numpy())
    assert s.win_min * 0.999 <= theta.min() and theta.max() <= s.win_max * 1.001
    assert frame["duration"].sum() == pytest.approx((frame["frames"] / 8000).sum())
    schema = pq.read_schema(next(out.glob("part-*.parquet")))
    assert schema.field("theta").type == pa.list_(pa.float32())
    # Summaries follow from the track.
    row = frame.iloc[7]
    assert row["theta_median"] == pytest.approx(np.median(row["theta"]))
    assert row["share_max"] == pytest.approx(np.mean(row["theta"] >= s.win_max * (1 - 1e-5)))
    assert 0 < row["entropy_mean"] < np.log(row["frames"])


@needs_fsdd
def test_fsdd_theta_tracks_equal_rtdstft_analyze_csv(fsdd_run, tmp_path):
    out, _ = fsdd_run
    rows = read_rows(out)
    paths = sorted(rows)[::599]  # 6 files, several speakers and digits
    for path in paths:
        table = tmp_path / "theta.csv"
        assert main(["analyze", path, "-o", str(tmp_path / "x.png"), "--csv", str(table)]) == 0
        data = np.loadtxt(table, delimiter=",", skiprows=1)
        np.testing.assert_allclose(rows[path]["theta"], data[:, 2], atol=6e-4, rtol=0)
        np.testing.assert_allclose(rows[path]["frame_times"], data[:, 1], atol=6e-7, rtol=0)


@needs_fsdd
def test_sigkill_then_the_same_command_resumes_and_equals_an_uninterrupted_run(fsdd_run, tmp_path):
    reference = read_rows(fsdd_run[0])
    paths = sorted(reference)[:300]
    manifest = tmp_path / "corpus.csv"
    manifest.write_text("path\n" + "\n".join(paths) + "\n")
    out = tmp_path / "out"
    command = rtdstft_command("batch", manifest, "-o", out, "--workers", "2", "--shard-files", "20")
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 3:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no shard committed in 120 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its worker processes
    proc.wait()
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")}
    done_before = len(read_rows(out))  # whole shards only: a shard in the making is not read
    assert 0 < done_before < len(paths), "the kill came after the run had finished"

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(paths) - done_before} analysed, {done_before} skipped" in again.stdout
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")}
    assert {k: after[k] for k in before} == before, "a finished shard was written again"
    assert not list(out.glob(".tmp-*")), "a killed shard in the making was left behind"
    rows = read_rows(out)
    assert sorted(rows) == paths
    for path in paths:
        same_rows(reference[path], rows[path])


def _started_until_a_shard(command: list[str], out: Path) -> subprocess.Popen:
    """``command`` (a batch run into ``out``) started, once it has committed its first shard."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("part-*.parquet")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no shard committed in 120 s"
        time.sleep(0.01)
    return proc


def _grandchildren(pid: int) -> list[int]:
    """Processes whose parent's parent is ``pid`` (the pool's workers under its forkserver)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    children = {p for p, parent in parents.items() if parent == pid}
    return sorted(p for p, parent in parents.items() if parent in children)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc to find the worker processes")
def test_a_worker_killed_mid_run_costs_no_file(tmp_path):
    folder = tmp_path / "copies"
    folder.mkdir()
    x = scene([("clicks", 0.3), ("tones", 0.3)], 8000)
    for i in range(240):
        sf.write(folder / f"copy{i:03d}.wav", x, 8000, "PCM_16")
    out = tmp_path / "out"
    command = rtdstft_command(
        "batch", folder, "-o", out, "--workers", "2", "--shard-files", "20", "--verbose"
    )
    proc = _started_until_a_shard(command, out)
    workers = _grandchildren(proc.pid)
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer would
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "a worker process died" in stderr  # the kill came mid-run
    assert "240 files: 240 analysed, 0 skipped (done before), 0 failed" in stdout
    rows = read_rows(out)
    assert len(rows) == 240 and {r["status"] for r in rows.values()} == {"ok"}
    first = next(iter(rows.values()))["theta"]
    assert all(r["theta"] == first for r in rows.values())  # the same audio, the same track


# -- bad files, resume, inputs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """A folder of good and bad files: two good WAVs (8 and 16 kHz), a 6-channel FLAC, a WAV cut
    inside its samples (read as the shorter file it now is), a WAV of no samples, a file of no bytes,
    a WAV cut inside its header, a FLAC cut in half, text named .wav."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "sub").mkdir()
    f = {
        "good8": d / "good8.wav",
        "good16": d / "sub" / "good16.wav",
        "six": d / "six.flac",
        "empty": d / "empty.wav",
        "zero": d / "zero_bytes.wav",
        "header": d / "cut_header.wav",
        "samples": d / "cut_samples.wav",
        "flac": d / "cut.flac",
        "text": d / "notes.wav",
    }
    sf.write(f["good8"], scene([("clicks", 0.4), ("tones", 0.4)], 8000), 8000, "PCM_16")
    sf.write(f["good16"], scene([("chirp", 0.5)], 16000), 16000, "FLOAT")
    six = np.stack([scene([("tones", 0.3)], 16000) * (c + 1) / 8 for c in range(6)], axis=1)
    sf.write(f["six"], six, 16000, "PCM_24")
    sf.write(f["empty"], np.zeros(0, np.float32), 8000)
    f["zero"].write_bytes(b"")
    whole = f["good8"].read_bytes()
    f["header"].write_bytes(whole[:30])
    f["samples"].write_bytes(whole[: len(whole) // 2])
    whole = f["six"].read_bytes()
    f["flac"].write_bytes(whole[: len(whole) // 2])
    f["text"].write_text("this is not audio\n" * 50)
    return f


def test_bad_files_become_rows_with_their_error_and_match_analyze(corpus, tmp_path, capsys):
    folder = corpus["good8"].parent
    out = tmp_path / "out"
    status = main(["batch", str(folder), "-o", str(out), "--workers", "1"])
    printed = capsys.readouterr().out
    rows = read_rows(out)
    assert len(rows) == len(corpus)
    for name, path in corpus.items():
        row = rows[str(path)]
        rc = main(["analyze", str(path), "-o", str(tmp_path / "x.png")])
        capsys.readouterr()
        assert (row["status"] != "error") == (rc == 0), (name, row["error"], rc)
        if row["status"] == "error":
            assert row["theta"] is None and row["error"], name
        else:
            assert len(row["theta"]) == 1 + row["frames"] // json.loads(row["settings"])["hop_length"]
            assert (row["error"] is None) == (row["status"] == "ok"), name
    bad = {n for n, p in corpus.items() if rows[str(p)]["status"] == "error"}
    assert bad == {"empty", "zero", "header", "text"}
    cut = rows[str(corpus["flac"])]  # analysed as far as it decodes, as analyze does, and said so
    assert cut["status"] == "cut short" and "its header states" in cut["error"]
    assert cut["frames"] < sf.info(corpus["six"]).frames
    assert "no samples" in rows[str(corpus["empty"])]["error"]
    assert "not a readable audio file" in rows[str(corpus["text"])]["error"]
    assert rows[str(corpus["six"])]["channels"] == 6  # mixed down to mono, as analyze does
    assert rows[str(corpus["samples"])]["frames"] == sf.info(corpus["samples"]).frames < 6400
    fifo = tmp_path / "fifo.wav"  # named explicitly: a reader would wait on it forever
    os.mkfifo(fifo)
    assert main(["batch", str(fifo), "-o", str(out), "--workers", "1"]) == 1
    assert "not a regular file" in read_rows(out)[str(fifo)]["error"]
    assert status == 1
    assert "9 files: 9 analysed, 0 skipped (done before), 4 failed, 1 cut short;" in printed


def test_six_channels_are_mixed_down_as_analyze_does(corpus):
    six = analyze_file(corpus["six"])
    x = sf.read(corpus["six"], dtype="float32")[0].mean(axis=1)
    engine = StreamingDSTFT(config=six.config)
    out = [engine.process(x), engine.flush()]
    np.testing.assert_array_equal(six.theta, np.concatenate([o.win_length for o in out]))


def test_a_rerun_skips_done_files_a_changed_file_is_redone_and_overwrite_redoes_all(corpus, tmp_path):
    good = [corpus["good8"], corpus["good16"]]
    out = tmp_path / "out"
    first = run_batch(good, out, workers=1)
    assert (first.analysed, first.skipped, first.shards) == (2, 0, 1)
    again = run_batch(good, out, workers=1)
    assert (again.analysed, again.skipped, again.shards) == (0, 2, 0)
    changed = tmp_path / "changed.wav"
    sf.write(changed, scene([("tones", 0.3)], 8000), 8000)
    run_batch([*good, changed], out, workers=1)
    old_frames = read_rows(out)[str(changed)]["frames"]
    sf.write(changed, scene([("clicks", 0.6)], 8000), 8000)  # new size and mtime
    redo = run_batch([*good, changed], out, workers=1)
    assert (redo.analysed, redo.skipped) == (1, 2)
    rows = read_rows(out)  # the older row of the changed file is gone
    assert rows[str(changed)]["frames"] == sf.info(changed).frames != old_frames
    forced = run_batch([*good, changed], out, workers=1, overwrite=True)
    assert (forced.analysed, forced.skipped) == (3, 0)
    assert sorted(read_rows(out)) == sorted(map(str, [*good, changed]))


def _bit_rot(path: Path) -> bytes:
    """Spoils ``path``'s header in place, size and mtime kept (as a disk's bit rot or a bad copy
    does); returns its good bytes."""
    good, st = path.read_bytes(), path.stat()
    path.write_bytes(b"JUNK" + good[4:])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return good


def _restore(path: Path, good: bytes) -> None:
    """Puts the good bytes back with the same mtime, as ``rsync -a`` or ``cp -p`` from a backup do."""
    st = path.stat()
    path.write_bytes(good)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _retry_corpus(corpus, folder: Path) -> tuple[list[Path], Path, bytes]:
    """Two good files and one whose header rotted, in ``folder``: (files, the rotted one, its good bytes)."""
    folder.mkdir()
    files = [folder / "a.wav", folder / "b.wav", folder / "rotted.wav"]
    for f, src in zip(files, [corpus["good8"], corpus["good16"], corpus["good8"]], strict=True):
        f.write_bytes(src.read_bytes())
    return files, files[2], _bit_rot(files[2])


def _retry_then_check(files, victim, good, out, run, retry=None) -> None:
    """``run()`` makes the dataset with ``victim`` rotted; it is restored (same size and mtime) and
    ``retry()`` (default ``run``) must analyse it alone: its row good, the other rows and
    spectrograms untouched; ``run()`` then finds everything done."""
    first = run()
    assert (first.analysed, first.failed) == (3, 1)
    before = read_rows(out)
    assert before[str(victim)]["status"] == "error"
    images = {p: os.stat(out / before[str(p)]["spectrogram"]) for p in files[:2]}
    _restore(victim, good)  # the fix keeps what the error row recorded: only its status says redo
    again = (retry or run)()
    assert (again.analysed, again.retried, again.skipped, again.failed) == (1, 1, 2, 0)
    after = read_rows(out)
    assert sorted(after) == sorted(map(str, files))
    assert after[str(victim)]["status"] == "ok" and after[str(victim)]["error"] is None
    for p in files[:2]:  # bit for bit, and not recomputed: the spectrogram files were not rewritten
        same_rows(before[str(p)], after[str(p)])
        now = os.stat(out / after[str(p)]["spectrogram"])
        assert (now.st_ino, now.st_mtime_ns) == (images[p].st_ino, images[p].st_mtime_ns)
    assert (out / after[str(victim)]["spectrogram"]).is_file()
    assert run().analysed == 0  # its good row stands


def test_a_plain_rerun_retries_error_rows_only(corpus, tmp_path, capsys):
    """A re-run skipped a file whose row was an error while its size and mtime stood: a file restored
    from a backup, or a transient failure (a full disk, a network file system), needed --overwrite,
    which redid the whole corpus."""
    files, victim, good = _retry_corpus(corpus, tmp_path / "corpus")
    out = tmp_path / "out"
    _retry_then_check(files, victim, good, out, lambda: run_batch(files, out, workers=1, spectrogram=True))
    _bit_rot(victim)  # the command line says what it retried (a new dataset: the good row would stand)
    command = ["batch", str(tmp_path / "corpus"), "-o", str(tmp_path / "out2"), "--workers", "1"]
    assert main(command) == 1
    _restore(victim, good)
    capsys.readouterr()
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "3 files: 1 analysed (1 retried after an error), 2 skipped (done before), 0 failed;" in printed


def test_a_retry_killed_at_any_moment_leaves_each_file_one_row(corpus, tmp_path):
    """A file analysed again got its new row in a new shard, and its old row was removed only when
    the run ended: a run killed in between (or a reader meanwhile) saw both its error row and its
    good row. The new row now replaces the old one in its shard, one rename."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    files = [folder / f"f{i:03d}.wav" for i in range(200)]
    for f in files:
        f.write_bytes(corpus["good8"].read_bytes())
    good = corpus["good8"].read_bytes()
    for f in files[3:]:
        _bit_rot(f)
    out = tmp_path / "out"
    assert run_batch(files, out, workers=1).failed == 197
    for f in files[3:]:
        _restore(f, good)
    command = rtdstft_command(
        "batch", folder, "-o", out, "--workers", "1", "--batch-files", "1", "--shard-files", "2"
    )
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def good_rows() -> int:
        statuses = pads.dataset(out, format="parquet").to_table(columns=["status"]).column("status")
        return statuses.to_pylist().count("ok")

    deadline = time.monotonic() + 120
    while good_rows() < 3 + 4:  # two commits of the retry
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no retried row committed in 120 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rows = read_rows(out)  # one row per file, whatever the moment of the kill
    assert sorted(rows) == sorted(map(str, files))
    done = sum(r["status"] == "ok" for r in rows.values())
    assert 3 + 4 <= done < len(files), "the kill came after the run had finished"
    assert [p.name for p in out.glob("part-*")] == ["part-000000.parquet"]  # where the old rows were

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    left = len(files) - done
    assert f"{left} analysed ({left} retried after an error), {done} skipped" in again.stdout
    rows = read_rows(out)
    assert sorted(rows) == sorted(map(str, files)) and {r["status"] for r in rows.values()} == {"ok"}
    assert not list(out.glob(".tmp-*"))


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(corpus, tmp_path, capsys):
    """Two runs on one OUT (a cron job that overlaps the last one, the command typed in a second
    terminal) took the same shard numbers and removed each other's shards in the making: rows were
    lost or doubled. The second run is now refused while the first holds OUT."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(100):
        (folder / f"f{i:03d}.wav").write_bytes(corpus["good8"].read_bytes())
    out = tmp_path / "out"
    command = rtdstft_command(
        "batch", folder, "-o", out, "--workers", "1", "--batch-files", "1", "--shard-files", "2"
    )
    proc = _started_until_a_shard(command, out)
    os.kill(proc.pid, signal.SIGSTOP)  # the first run, mid-way, holds still
    try:
        assert proc.poll() is None, "the first run had finished"
        status = main(["batch", str(folder), "-o", str(out), "--workers", "1"])
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and f"output {out} is in use by another run" in err, err
    assert f"(process {proc.pid})" in err
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "100 files: 100 analysed, 0 skipped" in stdout
    rows = read_rows(out)
    assert len(rows) == 100 and {r["status"] for r in rows.values()} == {"ok"}
    assert run_batch([folder], out, workers=1).skipped == 100  # OUT is free again when a run ends


def test_an_output_that_cannot_be_written_is_refused_before_any_file_is_analysed(corpus, tmp_path):
    """A dataset on a read-only file system (a mirror, a snapshot, a full quota) with files to do:
    every file was analysed, then the first commit failed, a shard's work (up to 1000 files or 60 s)
    later, and with --spectrogram each file became an error row first. Now it is refused before any
    file is analysed; a dataset there with nothing to do still runs (it only reads)."""
    out = tmp_path / "out"
    new = tmp_path / "new.wav"
    new.write_bytes(corpus["good8"].read_bytes())
    assert run_batch([corpus["good8"]], out, workers=1).analysed == 1
    code = f"""if True:
        import sys
        import rtdstft.batch as batch
        from rtdstft.cli import main

        def refuse(*args, **kwargs):
            raise AssertionError("a file was analysed")

        batch.analyze_rows = batch.analyze_row = refuse
        done = main(["batch", {str(corpus["good8"])!r}, "-o", {str(out)!r}, "--workers", "1"])
        more = main(["batch", {str(corpus["good8"])!r}, {str(new)!r}, "-o", {str(out)!r}, "--workers", "1",
                     "--spectrogram"])
        print(done, more)
    """
    unshare = ["unshare", "--user", "--map-root-user", "--mount"]
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" -c "$3"'
    try:
        probe = subprocess.run([*unshare, "sh", "-c", script, "sh", out, "true", ""], capture_output=True)
    except FileNotFoundError:
        pytest.skip("no unshare here to mount a folder read-only")
    if probe.returncode != 0:
        pytest.skip(f"no read-only bind mount in a user namespace here ({probe.stderr.decode().strip()})")
    done = subprocess.run(
        [*unshare, "sh", "-c", script, "sh", out, sys.executable, code],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 2", (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr  # the refusal, one line
    assert f"output {out} cannot be written" in done.stderr and "Read-only file system" in done.stderr


def _latin1_named(corpus, folder: Path) -> tuple[Path, Path]:
    """``folder`` with a copy of good8 named in Latin-1 (``caf\\xe9.wav``: the byte 0xE9, no UTF-8)
    and one named in UTF-8: (the Latin-1 one, the other)."""
    folder.mkdir()
    odd = folder / os.fsdecode(b"caf\xe9.wav")
    try:
        odd.write_bytes(corpus["good8"].read_bytes())
    except (OSError, UnicodeError) as exc:
        pytest.skip(f"this file system takes no name that is not UTF-8 ({exc})")
    plain = folder / "caf\u00e9.wav"
    plain.write_bytes(corpus["good8"].read_bytes())
    return odd, plain


def test_file_names_that_are_not_utf8_are_rows_not_a_crash(corpus, tmp_path):
    """A file named in another encoding (an old archive's Latin-1 names) made the whole run end in a
    traceback at its shard's commit (Arrow strings are UTF-8), every time it was run again. Its row
    now names it with the bytes that are not UTF-8 written as \\xNN, and a re-run finds it done."""
    odd, plain = _latin1_named(corpus, tmp_path / "corpus")
    out = tmp_path / "out"
    summary = run_batch([tmp_path / "corpus"], out, workers=1, spectrogram=True)
    assert (summary.analysed, summary.failed) == (2, 0)
    rows = read_rows(out)
    name = str(odd.parent / "caf\\xe9.wav")
    assert sorted(rows) == sorted([name, str(plain)])
    assert rows[name]["status"] == "ok" and rows[name]["theta"] == rows[str(plain)]["theta"]
    assert (out / rows[name]["spectrogram"]).is_file()
    again = run_batch([tmp_path / "corpus"], out, workers=1, spectrogram=True)
    assert (again.analysed, again.skipped) == (0, 2)
    # analyze reads it too, and names it in its picture's title as the row does
    assert main(["analyze", str(odd), "-o", str(tmp_path / "odd.png")]) == 0


def test_a_rerun_with_other_options_or_spectrograms_redoes_the_rows_they_change(corpus, tmp_path):
    """A re-run with other engine options, or that asks for spectrograms the rows lack, skipped
    every file "done before": the options were silently ignored."""
    good, out = [corpus["good8"], corpus["good16"], corpus["empty"]], tmp_path / "out"
    assert run_batch(good, out, workers=1).analysed == 3

    def hops() -> list:
        rows = read_rows(out)
        return [json.loads(rows[str(p)]["settings"] or "{}").get("hop_length") for p in good]

    assert hops() == [32, 32, None]
    again = run_batch(good, out, options={"hop_length": 64}, workers=1)
    assert (again.analysed, again.skipped, again.failed) == (3, 0, 1)  # the error row is tried again
    assert hops() == [64, 64, None]
    assert run_batch(good, out, options={"hop_length": 64}, workers=1).analysed == 1  # the error row
    with_images = run_batch(good, out, options={"hop_length": 64}, workers=1, spectrogram=True)
    assert (with_images.analysed, with_images.skipped) == (3, 0)
    image = out / read_rows(out)[str(corpus["good8"])]["spectrogram"]
    image.unlink()
    redo = run_batch(good, out, options={"hop_length": 64}, workers=1, spectrogram=True)
    assert (redo.analysed, redo.skipped) == (2, 1) and image.is_file()
    assert sorted(read_rows(out)) == sorted(map(str, good))  # one row per file


def test_spectrogram_npy_is_the_engine_output_in_db(corpus, tmp_path):
    out = tmp_path / "out"
    run_batch([corpus["good16"]], out, workers=1, spectrogram=True)
    row = read_rows(out)[str(corpus["good16"])]
    image = np.load(out / row["spectrogram"])
    import pandas as pd

    assert len(pd.read_parquet(out)) == 1  # the .npy files are not taken for Parquet
    s = StreamConfig.for_rate(16000)
    assert image.dtype == np.float16 and image.shape == (s.n_fft // 2 + 1, len(row["theta"]))
    engine = StreamingDSTFT(config=s)
    x = sf.read(corpus["good16"], dtype="float32")[0]
    spec = np.concatenate([engine.process(x).spec, engine.flush().spec])
    expected = 20 * np.log10(np.maximum(np.abs(spec.T) * 4 / s.n_fft, 1e-12))  # "l1": a sine peaks at N/4
    np.testing.assert_allclose(image.astype(np.float64), expected, atol=0.07, rtol=2e-3)


def test_spectrograms_on_a_full_disk_are_error_rows_not_a_crash(corpus, tmp_path):
    """A memory-mapped spectrogram on a full disk killed the process with SIGBUS (no message, no
    shard); its disk space is now taken before it is written, and a full disk is the file's error."""
    disk = tmp_path / "disk"
    code = f"""if True:
        import json, os
        from rtdstft.batch import run_batch
        out = {str(disk / "out")!r}
        s = run_batch([{str(corpus["good16"])!r}], out, workers=1, spectrogram=True)
        import pyarrow.parquet as pq
        row = pq.read_table(out).to_pylist()[0]
        left = sorted(f for _, _, fs in os.walk(out) for f in fs if ".tmp" in f)
        print(json.dumps([s.failed, row["status"], row["error"], left]))
    """
    done = in_a_small_tmpfs(disk, 128, code)  # the spectrogram takes 514 KB, a shard a few
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    failed, status, error, left = json.loads(done.stdout.splitlines()[-1])
    assert failed == 1 and status == "error" and "No space left on device" in error, error
    assert left == []


def test_spectrograms_of_files_with_the_longest_names(corpus, tmp_path):
    """The .npy's name (stem, 16 hex digits, a temporary suffix while written) passed 255 bytes for
    a stem of 222 bytes and more: such a file became an error row ("File name too long")."""
    short = tmp_path / "short name.wav"
    files = [tmp_path / ("a" * 251 + ".wav"), tmp_path / ("é" * 125 + ".wav"), short]
    for f in files:
        f.write_bytes(corpus["good8"].read_bytes())
    out = tmp_path / "out"
    assert run_batch(files, out, workers=1, spectrogram=True).failed == 0
    rows = read_rows(out)
    for f in files:
        image = out / rows[str(f)]["spectrogram"]
        assert len(os.fsencode(image.name + ".tmp-12345678")) <= 255 and image.is_file()
    assert Path(rows[str(short)]["spectrogram"]).name.startswith("short name-")  # a short stem is whole


@pytest.mark.parametrize("radius, run", [(0, 1), (1, 1), (4, 1), (4, 5), (4, 512)])
def test_mean_local_entropy_in_pieces_equals_the_whole_spectrogram(radius, run):
    rng = np.random.default_rng(radius)
    spec = (rng.standard_normal((57, 33)) + 1j * rng.standard_normal((57, 33))).astype(np.complex64)
    spec[20:30] = 0  # silent frames too
    meter = _LocalEntropy("shannon", 3.0, radius, run=run)
    cuts = [0, 1, 2, 9, 9, 30, 50, 57]
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        meter.add(spec[a:b])
    meter.add(spec[:0], final=True)
    whole = entropy(torch.from_numpy(spec.T), kind="shannon", radius=radius).mean().item()
    assert meter.count == 57
    assert meter.mean == pytest.approx(whole, rel=1e-5)


def test_inputs_folders_globs_and_manifests(corpus, tmp_path):
    folder = corpus["good8"].parent
    everything = expand_inputs([folder])
    assert set(everything) == {str(p) for p in corpus.values()}
    assert expand_inputs([str(folder / "**" / "good*.wav")]) == sorted(
        [str(corpus["good8"]), str(corpus["good16"])]
    )
    manifest = folder / "list.csv"
    manifest.write_text("speaker,path\nx,good8.wav\ny,sub/good16.wav\nz,good8.wav\n")
    assert expand_inputs([manifest]) == [str(corpus["good8"]), str(corpus["good16"])]
    (tmp_path / "nopath.csv").write_text("file\na.wav\n")
    with pytest.raises(ValueError, match="no 'path' column"):
        expand_inputs([tmp_path / "nopath.csv"])
    with pytest.raises(ValueError, match="no such file, folder or pattern"):
        expand_inputs([tmp_path / "missing.wav"])
    manifest.unlink()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--workers", "0"], ["--workers", "integer >= 1", "0"]),
        (["--hop", "5000"], ["--hop", "5000"]),
        (["--shard-files", "-1"], ["--shard-files", "-1"]),
    ],
)
def test_bad_options_are_one_line_naming_the_option(corpus, tmp_path, capsys, args, words):
    status = main(["batch", str(corpus["good8"]), "-o", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("rtdstft")
    assert all(w in err for w in words), err


def test_a_pattern_searches_the_folders_it_matches_as_the_shell_expansion_does(tmp_path):
    """`rtdstft batch 'data/*'` (quoted) names what `rtdstft batch data/*` (the shell's expansion)
    names: the matched folders are searched, not dropped (which left 0 files and no word)."""
    for folder, names in {"a": ["x.wav", "y.flac"], "b/c": ["z.wav"], "": ["top.wav", "notes.txt"]}.items():
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (tmp_path / folder / name).write_bytes(b"")
    by_shell = expand_inputs(sorted(glob.glob(str(tmp_path / "*"))))
    assert expand_inputs([str(tmp_path / "*")]) == by_shell
    assert sorted(Path(p).name for p in by_shell) == ["notes.txt", "top.wav", "x.wav", "y.flac", "z.wav"]
    assert sorted(Path(p).name for p in expand_inputs([str(tmp_path / "?")])) == ["x.wav", "y.flac", "z.wav"]


def test_manifests_as_spreadsheets_save_them_and_bad_ones_are_one_line(corpus, tmp_path, capsys):
    """A spreadsheet's "CSV UTF-8" starts with a byte-order mark, which was taken as part of the first
    column's name ("no 'path' column (columns: path)"); text in another encoding or a NUL in a path
    was a traceback."""
    folder = corpus["good8"].parent
    manifest = tmp_path / "list.csv"
    manifest.write_bytes(b"\xef\xbb\xbfpath,speaker\r\n" + f"{folder / 'good8.wav'},x\r\n".encode())
    assert expand_inputs([manifest]) == [str(corpus["good8"])]
    for content, words in (
        (b"path\n\xe9t\xe9.wav\n", "is not UTF-8 text"),
        (b"path\na\x00b.wav\n", "line 2: a path holds a NUL"),
    ):
        manifest.write_bytes(content)
        status = main(["batch", str(manifest), "-o", str(tmp_path / "out"), "--workers", "1"])
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and words in err, err


@pytest.mark.parametrize(
    "case, words",
    [
        ("missing", ["missing.wav", "no such file, folder or pattern"]),
        ("pattern", ["nothing*.wav", "matches no file"]),
        ("manifest", ["no 'path' column"]),
        ("output", ["is a file; it must be a folder"]),
        ("device", ["device 'nodevice' is not available"]),
    ],
)
def test_bad_inputs_output_or_device_are_one_line_not_a_traceback(corpus, tmp_path, capsys, case, words):
    (tmp_path / "nopath.csv").write_text("file\na.wav\n")
    (tmp_path / "a_file").write_text("")
    inputs, out, more = [str(corpus["good8"])], str(tmp_path / "out"), []
    if case in ("missing", "pattern", "manifest"):
        name = {"missing": "missing.wav", "pattern": "nothing*.wav"}.get(case, "nopath.csv")
        inputs = [str(tmp_path / name)]
    elif case == "output":
        out = str(tmp_path / "a_file")
    else:
        more = ["--device", "nodevice"]
    status = main(["batch", *inputs, "-o", out, "--workers", "1", *more])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("rtdstft: error: "), err
    assert all(w in err for w in words), err


def test_engine_options_are_analyze_options_as_stream_config_fields(corpus, tmp_path):
    out = tmp_path / "out"
    run_batch([corpus["good16"]], out, options={"hop_length": 64, "adapt": False}, workers=1)
    row = read_rows(out)[str(corpus["good16"])]
    table = tmp_path / "theta.csv"
    command = ["analyze", str(corpus["good16"]), "-o", str(tmp_path / "x.png"), "--csv", str(table)]
    assert main([*command, "--hop", "64", "--no-adapt"]) == 0
    np.testing.assert_allclose(row["theta"], np.loadtxt(table, delimiter=",", skiprows=1)[:, 2], atol=6e-4)
    assert len(set(row["theta"])) == 1 and json.loads(row["settings"])["hop_length"] == 64
    with pytest.raises(ValueError, match="unknown engine options"):
        run_batch([corpus["good16"]], out, options={"hop": 64})
    with pytest.raises(ValueError, match="hop_length"):  # at no rate
        run_batch([corpus["good16"]], out, options={"hop_length": 100000})


def test_a_ray_address_no_cluster_answers_at_is_refused_in_one_line(corpus, tmp_path, capsys):
    import socket

    with socket.socket() as probe:  # a port that was just free: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address, words in [
        (f"127.0.0.1:{port}", "no Ray cluster answers at"),
        (f"ray://127.0.0.1:{port}", "no Ray cluster answers at"),
        ("headnode", "must be 'auto', 'local', HOST:PORT or ray://HOST:PORT"),
        ("headnode:70000", "PORT in 1..65535"),
    ]:
        # Refused by a connection tried first: ray.init itself retries for minutes.
        status = main(["batch", str(corpus["good8"]), "-o", str(tmp_path / "out"), f"--ray={address}"])
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and words in err and address in err, err
    assert not (tmp_path / "out").exists()  # nothing written


# -- Ray ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of two CPUs on loopback, for this module."""
    try:
        import ray
    except ImportError as exc:
        pytest.skip(f"Ray is not installed ({exc}); pip install 'rtdstft[scale]'")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - any reason Ray cannot start is the skip's reason
        pytest.skip(f"a local Ray cluster cannot start here: {exc}")
    yield ray
    ray.shutdown()


def test_ray_gives_the_same_rows_as_the_local_path(ray_cluster, corpus, tmp_path):
    files = sorted(expand_inputs([corpus["good8"].parent]))
    if FSDD.is_dir():
        files += sorted(expand_inputs([FSDD]))[:40]
    local = run_batch(files, tmp_path / "local", workers=1)
    remote = run_batch(files, tmp_path / "ray", use_ray=True)
    assert (remote.analysed, remote.failed) == (local.analysed, local.failed) == (len(files), 4)
    a, b = read_rows(tmp_path / "local"), read_rows(tmp_path / "ray")
    assert sorted(a) == sorted(b) == sorted(files)
    for path in files:
        same_rows(a[path], b[path])


def test_ray_reruns_retry_error_rows_only(ray_cluster, corpus, tmp_path):
    files, victim, good = _retry_corpus(corpus, tmp_path / "corpus")
    out = tmp_path / "out"
    _retry_then_check(  # the first and last runs on the local path: one Ray run keeps it short
        files,
        victim,
        good,
        out,
        lambda: run_batch(files, out, workers=1, spectrogram=True),
        lambda: run_batch(files, out, use_ray=True, spectrogram=True),
    )


def test_ray_takes_file_names_that_are_not_utf8(ray_cluster, corpus, tmp_path):
    odd, plain = _latin1_named(corpus, tmp_path / "corpus")
    summary = run_batch([tmp_path / "corpus"], tmp_path / "out", use_ray=True)
    assert (summary.analysed, summary.failed) == (2, 0)
    rows = read_rows(tmp_path / "out")
    assert rows[str(odd.parent / "caf\\xe9.wav")]["theta"] == rows[str(plain)]["theta"]


# -- GPU --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_engines_give_the_cpu_rows(corpus, tmp_path):
    files = [corpus["good8"], corpus["good16"], corpus["six"]]
    run_batch(files, tmp_path / "cpu", workers=1)
    run_batch(files, tmp_path / "cuda", workers=2, device="cuda")
    cpu, gpu = read_rows(tmp_path / "cpu"), read_rows(tmp_path / "cuda")
    for path in map(str, files):
        assert gpu[path]["status"] == "ok"
        # Another FFT rounds differently: a near tie between candidates may go the other way.
        assert np.mean(np.isclose(gpu[path]["theta"], cpu[path]["theta"], rtol=1e-3)) >= 0.9
