"""Streams in lockstep: rtdstft.online.LockstepAdapter and rtdstft.batch.analyze_rows.

Every item of a lockstep run must get exactly what it gets alone: its θ track bit for bit, its
spectra, and (through the batch path) its whole row, whatever its length (shorter than a block,
ending on a block boundary, cut short) and whichever files run beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from rtdstft.batch import analyze_file, analyze_row, analyze_rows, run_batch
from rtdstft.online import LockstepAdapter, OnlineAdapter, _buffer
from rtdstft.scenes import scene

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd" / "recordings"
NO_DATA = "../shared/data not present (a user's clone has no shared data)"


def _piecewise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Tones, noise of random level, click trains and silence, in pieces of random length: θ moves,
    holds, and meets level changes."""
    parts, total = [], 0
    while total < n:
        m = int(rng.integers(150, 1200))
        t = np.arange(m)
        kind = int(rng.integers(4))
        if kind == 0:
            x = np.sin(2 * np.pi * rng.uniform(0.01, 0.3) * t)
        elif kind == 1:
            x = rng.standard_normal(m) * rng.uniform(0.01, 1.0)
        elif kind == 2:
            x = (t % int(rng.integers(50, 400)) == 0) * 1.0
        else:
            x = np.zeros(m)
        parts.append(x)
        total += m
    return np.concatenate(parts)[:n].astype(np.float32)


def _frames(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """The stream's frames [1 + T // H, N] (N/2 zeros before the signal, zeros after it)."""
    count = 1 + x.shape[0] // hop
    padded = np.concatenate([np.zeros(n_fft // 2, np.float32), x, np.zeros(n_fft + hop, np.float32)])
    return np.stack([padded[i * hop : i * hop + n_fft] for i in range(count)])


@pytest.mark.parametrize(("kind", "radius"), [("shannon", 4), ("renyi", 2)])
def test_lockstep_items_get_theta_and_spectra_bit_for_bit_as_each_stream_alone(kind, radius):
    n_fft, hop, k, lo, hi = 256, 32, 8, 64.0, 256.0
    rng = np.random.default_rng(7)
    # Lengths: shorter than one block (3 frames), ending on a block boundary (24 frames), others.
    lengths = [64, 23 * hop, 37, *rng.integers(100, 6000, size=9).tolist()]
    frames = [_frames(_piecewise(rng, n), n_fft, hop) for n in lengths]
    settings = dict(radius=radius, kind=kind, alpha=2.5)

    alone = []
    for f in frames:
        adapter, theta, track, spec = OnlineAdapter(n_fft, **settings), 150.0, [], []
        for n0 in range(0, f.shape[0], k):
            theta, s, _ = adapter.step(torch.from_numpy(f[n0 : n0 + k]), theta, lo, hi)
            track.append(theta)
            spec.append(s)
        alone.append((np.array(track), torch.cat(spec)))
    assert sum(len(np.unique(t)) > 2 for t, _ in alone) >= 3, "θ should move in these signals"

    together = LockstepAdapter(n_fft, len(frames), **settings)
    theta = np.full(len(frames), 150.0)
    tracks = [[] for _ in frames]
    specs = [[] for _ in frames]
    for b in range(max(math.ceil(f.shape[0] / k) for f in frames)):
        by_count: dict[int, list[int]] = {}
        for j, f in enumerate(frames):
            if b * k < f.shape[0]:
                by_count.setdefault(min(k, f.shape[0] - b * k), []).append(j)
        for count, js in by_count.items():
            block = torch.from_numpy(np.stack([frames[j][b * k : b * k + count] for j in js]))
            t, s = together.step(block, theta[js], lo, hi, items=js)
            for q, j in enumerate(js):
                theta[j] = t[q]
                tracks[j].append(t[q])
                specs[j].append(s[q])
    for j, (track, spec) in enumerate(alone):
        np.testing.assert_array_equal(np.array(tracks[j]), track, err_msg=f"item {j}")
        assert torch.equal(torch.cat(specs[j]), spec), f"item {j}"


def test_item_windows_remembered_or_new_are_those_of_each_set_alone():
    """The windows of θ sets with an item axis (the lockstep's), each set remembered alone: a set
    remembered, a new one, one that comes twice in a call, all give the bits the single stream
    computes for that set."""
    rng = np.random.default_rng(5)
    sets = np.log(rng.uniform(64.0, 256.0, (6, 7)))
    sets[4, 0] = sets[0, 0]  # a new set that starts like a remembered one (θ_prev shared)
    adapter = OnlineAdapter(256)
    adapter.windows(sets[:3])  # all new: computed together
    for batch in (sets[[2, 3, 0, 3, 4, 1]], sets[[5, 5]], sets[[1, 5, 4]]):
        theta, w = adapter.windows(batch)
        for j, row in enumerate(batch):
            alone_theta, alone_w = OnlineAdapter(256).windows(row)
            assert torch.equal(theta[j], alone_theta) and torch.equal(w[j], alone_w), j


def test_scratch_buffers_serve_every_shape_of_a_name_from_one_flat_buffer():
    """The lockstep's evaluations reuse their buffers whatever the item count (fresh ones of some MB
    cost a page fault per 4 KiB): one flat buffer per name and dtype, its first elements viewed in
    the shape asked for, made anew only when a larger one is asked for."""
    scratch: dict = {}
    a = _buffer(scratch, "power", (3, 4, 5), np.float32)
    b = _buffer(scratch, "power", (2, 4, 5), np.float32)  # fewer items: the same memory
    assert b.shape == (2, 4, 5) and b.flags.c_contiguous and np.shares_memory(a, b)
    assert not np.shares_memory(a, _buffer(scratch, "log", (3, 4, 5), np.float32))  # another name
    c = _buffer(scratch, "power", (4, 4, 5), np.float32)  # more: a larger buffer, kept from now on
    assert not np.shares_memory(a, c) and np.shares_memory(c, _buffer(scratch, "power", (20,), np.float32))
    t = _buffer(scratch, "spec", (2, 3), torch.complex64)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.complex64 and t.is_contiguous()
    assert _buffer(scratch, "spec", (5,), torch.complex64).data_ptr() == t.data_ptr()


def test_lockstep_refuses_a_bad_item_count():
    with pytest.raises(ValueError, match="items must be an integer >= 1"):
        LockstepAdapter(256, 0)


# -- files side by side -------------------------------------------------------------------------------


def _same_rows(alone: list[dict], together: list[dict]) -> None:
    assert [r["path"] for r in alone] == [r["path"] for r in together]
    for a, b in zip(alone, together, strict=True):
        for key in a:
            if isinstance(a[key], np.ndarray):
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{a['path']}: {key}")
            elif isinstance(a[key], float) and math.isnan(a[key]):
                assert math.isnan(b[key]), (a["path"], key)
            else:
                assert a[key] == b[key], (a["path"], key, a[key], b[key])


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory) -> list[str]:
    """Files whose ends fall everywhere in a block: shorter than one block, ending exactly on a
    block boundary, a sample after one, cut short inside its samples, two sample rates, a 6-channel
    file, and bad files (no samples, text)."""
    d = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(3)
    hop, k = 32, 8  # the settings suited to 8 kHz: F = 1 + T // H frames in blocks of K
    lengths = {
        "tiny": 100,  # 4 frames: shorter than one block
        "one_block": (k - 1) * hop,  # exactly one block
        "boundary": (5 * k - 1) * hop,  # 5 blocks exactly
        "past_boundary": 5 * k * hop,  # 5 blocks and one frame
        "long": 9000,
        "mid": 3333,
        "minutes": 8000 * 18,  # the mean local entropy is summed in runs of 512 frames and more
    }
    paths = []
    for name, n in lengths.items():
        p = d / f"{name}.wav"
        sf.write(p, _piecewise(rng, n), 8000, "PCM_16")
        paths.append(p)
    whole = (d / "long.wav").read_bytes()
    (d / "cut.wav").write_bytes(whole[: len(whole) // 2 + 1001])  # read as the shorter file it is
    paths.append(d / "cut.wav")
    sf.write(d / "long.flac", _piecewise(rng, 12000), 8000, "PCM_16")
    whole = (d / "long.flac").read_bytes()
    (d / "cut.flac").write_bytes(whole[: len(whole) // 2])  # its header states more than it holds
    paths.append(d / "cut.flac")
    sf.write(d / "rate16k.flac", scene([("chirp", 0.3), ("clicks", 0.2)], 16000), 16000, "PCM_24")
    paths.append(d / "rate16k.flac")
    six = np.stack([_piecewise(rng, 2500) * (c + 1) / 8 for c in range(6)], axis=1)
    sf.write(d / "six.wav", six, 8000, "FLOAT")
    paths.append(d / "six.wav")
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 8000)
    paths.append(d / "empty.wav")
    (d / "text.wav").write_text("not audio\n" * 40)
    paths.append(d / "text.wav")
    return [str(p) for p in paths]


def test_files_side_by_side_get_the_rows_they_get_alone(odd_files, tmp_path):
    alone_dir, together_dir = tmp_path / "alone", tmp_path / "together"
    alone = [analyze_row(p, None, str(alone_dir)) for p in odd_files]
    together = analyze_rows(odd_files, None, str(together_dir), batch_files=16)
    _same_rows(alone, together)
    status = {Path(r["path"]).name: r["status"] for r in together}
    assert status["cut.flac"] == "cut short" and status["empty.wav"] == status["text.wav"] == "error"
    assert sum(s == "ok" for s in status.values()) == 10
    for row in together:
        if row["spectrogram"] is not None:
            a = np.load(alone_dir / row["spectrogram"])
            np.testing.assert_array_equal(np.load(together_dir / row["spectrogram"]), a)
    # and the θ track is the streaming engine's, as `rtdstft analyze` gets it
    for row in together:
        if row["status"] != "error":
            np.testing.assert_array_equal(row["theta"], analyze_file(row["path"]).theta)


def test_nan_and_inf_samples_side_by_side_are_zeros_as_alone(tmp_path):
    """The engine analyses a NaN or ±inf sample as 0; side by side too (a float WAV can hold them)."""
    rng = np.random.default_rng(5)
    paths = []
    for name, spots in (("nan", [700, 3001]), ("inf", [1500]), ("clean", [])):
        x = _piecewise(rng, 6000)
        x[spots] = {"nan": np.nan, "inf": np.inf, "clean": 0.0}[name]
        if name == "inf":
            x[4000] = -np.inf
        paths.append(str(tmp_path / f"{name}.wav"))
        sf.write(paths[-1], x, 8000, "FLOAT")
    stereo = np.stack([_piecewise(rng, 5000), _piecewise(rng, 5000)], axis=1)
    stereo[2222, 1] = np.nan  # the mono mix is NaN there
    paths.append(str(tmp_path / "stereo.wav"))
    sf.write(paths[-1], stereo, 8000, "FLOAT")
    alone = [analyze_row(p, None) for p in paths]
    together = analyze_rows(paths, None, batch_files=4)
    assert all(math.isfinite(r["entropy_mean"]) for r in alone)
    _same_rows(alone, together)


def test_runs_of_any_size_give_the_same_dataset(odd_files, tmp_path):
    datasets = []
    for k in (1, 3, 16):
        out = tmp_path / f"k{k}"
        summary = run_batch(odd_files, out, workers=1, batch_files=k)
        assert (summary.files, summary.failed, summary.cut_short) == (len(odd_files), 2, 1)
        import pyarrow.dataset as pads

        rows = pads.dataset(out, format="parquet").to_table().to_pylist()
        datasets.append(sorted(rows, key=lambda r: r["path"]))
    assert datasets[0] == datasets[1] == datasets[2]


@pytest.mark.skipif(not FSDD.is_dir(), reason=NO_DATA)
def test_spoken_digits_side_by_side_get_the_rows_they_get_alone():
    paths = sorted(str(p) for p in FSDD.glob("*.wav"))[::50]  # 60 files, every speaker and digit
    alone = [analyze_row(p, None) for p in paths]
    _same_rows(alone, analyze_rows(paths, None, batch_files=32))


def test_batch_files_must_be_positive(odd_files, tmp_path):
    with pytest.raises(ValueError, match="batch_files must be an integer >= 1"):
        analyze_rows(odd_files, None, batch_files=0)
    with pytest.raises(ValueError, match="batch_files must be an integer >= 1"):
        run_batch(odd_files, tmp_path / "out", batch_files=-3)


def test_a_run_that_fails_side_by_side_is_redone_alone_and_says_so(odd_files, monkeypatch):
    """A fault of the side-by-side path (made here by a step that raises: a bug cannot be made real)
    costs no row, and is not silent: a RuntimeWarning names it."""
    alone = [analyze_row(p, None) for p in odd_files]

    def broken(self, *args, **kwargs):
        raise FloatingPointError("a lockstep bug")

    monkeypatch.setattr(LockstepAdapter, "step", broken)
    with pytest.warns(RuntimeWarning, match="files side by side failed .*a lockstep bug.*one at a time"):
        together = analyze_rows(odd_files, None, batch_files=16)
    _same_rows(alone, together)


@pytest.mark.parametrize("threads", [0, 257, True, 1.5])
def test_threads_must_be_in_range(odd_files, tmp_path, threads):
    expected = r"threads must be an integer in 1\.\.256 \(torch threads per worker\)"
    with pytest.raises(ValueError, match=expected):
        run_batch(odd_files, tmp_path / "out", threads=threads)
    assert not (tmp_path / "out").exists()  # refused before anything is written
