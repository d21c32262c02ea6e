"""Smoke test of `rtdstft bench --quick`: the table has its rows and numbers (no timing asserts)."""

from __future__ import annotations

import json
import math

from rtdstft.bench import FSDD, REFERENCE, STREAM_BUDGETS, format_table, main

RTDSTFT_ROWS = [
    "rtdstft forward, θ [F] shared",
    "rtdstft forward+backward, θ [F] shared",
    "rtdstft forward, θ [B, F] per item",
    "rtdstft forward+backward, θ [B, F] per item",
]
DSTFT_ROWS = ["dstft forward, θ [F] time-varying", "dstft forward+backward, θ [F] time-varying"]


def test_quick_bench_prints_table_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main(["--quick", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ") and "torch " in out and " threads" in out
    for name in (
        "streaming, bands=1, adaptation off",
        "streaming, bands=4, adaptation on",
        "analysis latency, bands=4",
    ):
        assert f"| {name} |" in out
    assert "| clicks → tones |" in out
    for name in [REFERENCE, *RTDSTFT_ROWS, *DSTFT_ROWS]:
        assert f"| {name} |" in out

    report = json.loads(path.read_text())
    assert report["config"]["batch"] == 2 and report["machine"]["cores"] >= 1
    rows = {row["name"]: row for row in report["offline"]}
    assert report["offline"][0]["name"] == REFERENCE and rows[REFERENCE]["ratio"] == 1.0
    for name in RTDSTFT_ROWS:
        ms, ratio = rows[name]["ms"], rows[name]["ratio"]
        assert ms > 0 and math.isclose(ratio, ms / rows[REFERENCE]["ms"])
    for name in DSTFT_ROWS:  # timed when dstft is installed, else a note says why not
        assert (rows[name]["ms"] or 0) > 0 or "not installed" in rows[name]["note"]
    for name in (
        "torch.stft forward+backward, Σ|S|²",
        "rtdstft forward+backward, θ [B, F] per item, Σ|S|²",
        "rtdstft forward, θ [B, F], real positions [F]",
        "rtdstft forward, frequency θ [M]",
        "rtdstft forward+backward, time-frequency θ [M, F], Σ|S|²",
    ):
        assert rows[name]["ms"] > 0 and math.isclose(
            rows[name]["ratio"], rows[name]["ms"] / rows[REFERENCE]["ms"]
        )
    assert "peak MB" in rows["rtdstft forward, time-frequency θ [M, F]"]
    for name, anchor in (
        ("rtdstft forward, θ [B, F] per item", REFERENCE),
        ("rtdstft forward+backward, θ [B, F] per item, Σ|S|²", "torch.stft forward+backward, Σ|S|²"),
    ):
        ratio = rows[name]["ms"] / rows[anchor]["ms"]
        assert rows[name]["budget"] == f"{ratio:.2f}× {anchor} (≤ 1×): {'met' if ratio <= 1 else 'NOT met'}"
    assert "budget" not in rows["rtdstft forward, θ [F] shared"]
    versus = {row["name"]: row for row in report["modes vs dstft"]}
    if "dstft comparison" not in versus:  # dstft installed
        for mode in ("frequency", "time-frequency"):
            assert versus[f"rtdstft forward, {mode}"]["× dstft"] > 0
            assert versus[f"dstft forward+backward, Σ|S|², {mode}"]["ms"] > 0
    inverse = {row["name"]: row for row in report["inverse"]}
    assert inverse["rtdstft inverse, time θ [F], real positions"]["SNR dB"] >= 250
    for mode in ("frequency", "time-frequency"):
        assert inverse[f"rtdstft inverse, {mode}"]["SNR dB"] >= 60
    stream = {row["name"]: row for row in report["stream"]}
    for bands in (1, 4):
        for adapt in ("off", "on"):
            row = stream[f"streaming, bands={bands}, adaptation {adapt}"]
            assert row["ms"] > 0 and row["real-time factor"] > 0
        rtf, limit = (
            stream[f"streaming, bands={bands}, adaptation on"]["real-time factor"],
            STREAM_BUDGETS[bands],
        )
        verdict = "met" if rtf <= limit else "NOT met"
        assert stream[f"streaming, bands={bands}, adaptation on"]["budget"] == f"≤ {limit:g}: {verdict}"
        assert "budget" not in stream[f"streaming, bands={bands}, adaptation off"]
    assert STREAM_BUDGETS == {1: 0.01, 4: 0.03}
    assert "| budget |" in out.split("streaming: ")[1].split("\n\n")[0]
    for bands in (1, 2, 4, 8):  # the latencies of every number of bands are printed
        for kind in ("analysis", "resynthesis"):
            assert f"| {kind} latency, bands={bands} |" in out
    assert stream["analysis latency, bands=1"]["ms"] == 1e3 * (1024 + 7 * 256) / 48000
    assert stream["analysis latency, bands=4"]["ms"] > stream["analysis latency, bands=1"]["ms"]
    (band,) = report["band_quality"]
    assert band["banded (B=4)"] < band["time-only (B=1)"]
    (quality,) = report["quality"]
    assert quality["online"] < quality["best fixed"]
    batch = {row["name"]: row for row in report["batch"]}
    if FSDD.is_dir():  # the corpus rows need the project's data folder
        for name in (
            "torch.stft, fixed window (anchor)",
            "rtdstft batch, 1 worker(s)",
            "rtdstft batch, 2 worker(s)",
        ):
            assert batch[name]["files"] == 40 and batch[name]["× real time"] > 0
        assert batch["rtdstft batch, 2 worker(s)"]["peak MB per worker"] > 0


def test_format_table_is_generic():
    rows = [
        {"name": "a", "ms": 2.0, "ratio": 1.0, "note": ""},
        {"name": "stream", "ms": None, "ratio": None, "note": "skipped", "rtf": 0.004},
    ]
    lines = format_table(rows).splitlines()
    assert lines[0] == "| name | ms | × torch.stft fwd | note | rtf |"
    assert lines[2] == "| a | 2.00 | 1.00 |  | – |"
    assert lines[3] == "| stream | – | – | skipped | 0.004 |"
