r"""Spoken digits (FSDD): best fixed window length against one learned jointly with a CNN.

Data: ``fsdd/recordings/{digit}_{speaker}_{index}.wav`` (8 kHz mono, 6 speakers × 10 digits × 50).
Split by recording index: 0-4 test (the official test set), 5-9 validation, 10-49 training (the
official training set 5-49 less its first five indices). Each recording is scaled to peak 1, then
zero-padded at the end or centre-cropped to T = 8000 samples (1 s).

Front end: :class:`rtdstft.nn.AdaptiveSpectrogram`, N = 512, H = 64 (F = 126 frames of 8 ms),
θ ∈ [64, 512] samples (8-64 ms), "l1" gain, features ln(|S|² + 1e-6), [B, 257, 126]. Classifier
(:class:`DigitCNN`): three conv blocks (8, 16, 32 channels, batch norm, ReLU), the first 5×3 with
stride (4, 2), then 3×3 with stride 2; average pooling to 4×4; one linear layer; about 11 k weights.

Arms, each over the same seeds (one seed fixes the CNN's initialisation and the batch order):
  (a) fixed: θ from a grid, the CNN alone trained; the θ with the best validation accuracy (mean over
      seeds) is the arm's pick, and its test accuracy is reported.
  (b) learned: θ starts at the geometric mean of the bounds (181 samples) and trains with the CNN by
      the cross-entropy loss, Adam, on a higher learning rate (in ρ, the front end's parameter) than
      the CNN's.
  (c) learned θ + hop (the seed paper's joint optimisation): as (b), and the frames' hop h is learnt
      too (``hop_mode="constant"``, h ∈ [H/2, 2H] = [32, 128] from H = 64, on θ's learning rate);
      F = 126 frames whatever h (past the end of the second the frames see zeros; with h < H the
      tail beyond the last frame is not analysed), so the CNN's input keeps its shape.
Both arms report the model after the last epoch (no early stopping), test accuracy mean ± std
(sample std, n - 1) over the seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..nn import AdaptiveSpectrogram
from .common import data_dir, experiment_main, machine_info

__all__ = ["FSDDConfig", "QUICK", "DigitCNN", "load_split", "run", "main"]


@dataclass(frozen=True)
class FSDDConfig:
    """Settings of the experiment (defaults: the full run)."""

    length: int = 8000
    n_fft: int = 512
    hop_length: int = 64
    win_min: float = 64.0
    win_max: float = 512.0
    grid: tuple = (64.0, 108.0, 181.0, 304.0, 512.0)
    seeds: tuple = (0, 1, 2)
    epochs: int = 8
    batch_size: int = 64
    lr: float = 3e-3
    theta_lr: float = 0.05
    width: int = 8
    train_index: tuple = tuple(range(10, 50))
    val_index: tuple = tuple(range(5, 10))
    test_index: tuple = tuple(range(0, 5))
    workers: int = 2
    threads: int = 1
    learn_hop: bool = True


#: The cut-down configuration of ``--quick``: 3 grid points, 2 seeds, 4 epochs, a fifth of the data.
QUICK = FSDDConfig(
    grid=(64.0, 181.0, 512.0),
    seeds=(0, 1),
    epochs=4,
    train_index=tuple(range(10, 18)),
    val_index=(5, 6),
    test_index=(0, 1, 2, 3, 4),
)

_CACHE: dict = {}


def _read(path: Path, length: int) -> np.ndarray:
    import soundfile

    audio, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(1)
    peak = float(np.abs(audio).max())
    if peak > 0:
        audio = audio / peak
    if audio.shape[0] >= length:
        start = (audio.shape[0] - length) // 2
        return audio[start : start + length]
    return np.pad(audio, (0, length - audio.shape[0]))


def load_split(root: Path, indices, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio [n, length] float32 and digit labels [n] int64 of every recording with these indices.

    Decoded once per (folder, indices, length) and kept in memory.
    """
    rec = Path(root) / "fsdd" / "recordings"
    key = (str(rec), tuple(indices), int(length))
    if key not in _CACHE:
        wanted = set(int(i) for i in indices)
        files = sorted(p for p in rec.glob("*.wav") if int(p.stem.rsplit("_", 1)[1]) in wanted)
        if not files:
            raise FileNotFoundError(f"no FSDD recordings with indices {sorted(wanted)} in {rec}")
        audio = np.stack([_read(p, length) for p in files])
        labels = np.array([int(p.stem.split("_", 1)[0]) for p in files])
        _CACHE[key] = (torch.from_numpy(audio), torch.from_numpy(labels))
    return _CACHE[key]


class DigitCNN(nn.Module):
    """Small CNN on a log spectrogram: [B, M, F] -> logits [B, n_classes].

    Input batch norm; a 5×3 conv of stride (4, 2) in (frequency, time) (the input is 257 bins tall:
    this first layer is most of the cost, and its stride makes it 2× cheaper than a 3×3 of stride 2);
    two 3×3 convs of stride 2; each conv followed by batch norm and ReLU; 4×4 average pooling; linear.
    """

    def __init__(self, n_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        chans = [1, width, 2 * width, 4 * width]
        layers: list[nn.Module] = [nn.BatchNorm2d(1)]
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
            kernel, stride, pad = ((5, 3), (4, 2), (2, 1)) if i == 0 else (3, 2, 1)
            layers += [nn.Conv2d(cin, cout, kernel, stride, pad), nn.BatchNorm2d(cout), nn.ReLU()]
        layers += [nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten(), nn.Linear(16 * chans[-1], n_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.net(spec.unsqueeze(1))


class _Classifier(nn.Module):
    def __init__(self, frontend: AdaptiveSpectrogram, cnn: DigitCNN) -> None:
        super().__init__()
        self.frontend, self.cnn = frontend, cnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(self.frontend(x))


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 200) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch)
    )
    return correct / len(x)


@torch.no_grad()
def _precompute(frontend: AdaptiveSpectrogram, data: dict, batch: int = 200) -> dict:
    """The fixed front end's features of every split, computed once: {split: (features, labels)}."""
    return {
        name: (torch.cat([frontend(x[i : i + batch]) for i in range(0, len(x), batch)]), y)
        for name, (x, y) in data.items()
    }


def train_one(cfg: FSDDConfig, data: dict, seed: int, theta: float | None, hop: bool = False) -> dict:
    """Trains one model; ``theta`` None learns θ, a number fixes it; ``hop`` learns the hop too.
    Returns accuracies, θ and the hop.

    With a fixed θ the features are computed once and only the CNN runs per step (the same
    arithmetic as running the front end every step, without repeating it).
    """
    torch.manual_seed(seed)
    frontend = AdaptiveSpectrogram(
        cfg.n_fft,
        cfg.hop_length,
        cfg.win_min,
        cfg.win_max,
        win_length=theta,
        learnable=theta is None,
        output="log",
        n_frames=1 + cfg.length // cfg.hop_length if hop else None,
        hop_mode="constant" if hop else "fixed",
        window_mode="constant",
    )
    cnn = DigitCNN(width=cfg.width)
    groups = [{"params": cnn.parameters(), "lr": cfg.lr}]
    if theta is None:
        model: nn.Module = _Classifier(frontend, cnn)
        groups.append({"params": [frontend.rho] + ([frontend.eta] if hop else []), "lr": cfg.theta_lr})
    else:
        model, data = cnn, _precompute(frontend, data)
    opt = torch.optim.Adam(groups)
    xtr, ytr = data["train"]
    gen = torch.Generator().manual_seed(seed)
    theta_start = float(frontend.win_length)
    losses: list[float] = []
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    k = max(1, min(10, len(losses) // 4))
    return {
        "seed": seed,
        "theta_start": theta_start,
        "theta": float(frontend.win_length),
        "hop": float(frontend.hops().detach()) if hop else float(cfg.hop_length),
        "val_acc": _accuracy(model, *data["val"]),
        "test_acc": _accuracy(model, *data["test"]),
        "loss_start": float(np.mean(losses[:k])),
        "loss_end": float(np.mean(losses[-k:])),
        "steps": len(losses),
    }


def _summary(arm: str, theta_label: str, runs: list[dict], seconds: float) -> dict:
    test = np.array([r["test_acc"] for r in runs]) * 100
    val = np.array([r["val_acc"] for r in runs]) * 100
    thetas = np.array([r["theta"] for r in runs])
    ddof = 1 if len(runs) > 1 else 0
    return {
        "arm": arm,
        "theta": theta_label,
        "theta_mean": float(thetas.mean()),
        "val_acc": float(val.mean()),
        "test_acc": float(test.mean()),
        "test_std": float(test.std(ddof=ddof)),
        "test_per_seed": " / ".join(f"{a:.1f}" for a in test),
        "seconds": seconds,
        "loss_start": float(np.mean([r["loss_start"] for r in runs])),
        "loss_end": float(np.mean([r["loss_end"] for r in runs])),
        "runs": runs,
    }


def _job(args: tuple) -> dict:
    """One training run in a worker process: (config, data folder, seed, θ or None) -> result."""
    config, root, seed, theta, hop = args
    torch.set_num_threads(config.threads)
    split = {
        name: load_split(root, getattr(config, f"{name}_index"), config.length)
        for name in ("train", "val", "test")
    }
    t0, c0 = time.perf_counter(), time.process_time()
    result = train_one(config, split, seed, theta, hop)
    return {**result, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def run(data: str | Path | None = None, config: FSDDConfig = FSDDConfig(), log=print) -> list[dict]:
    """Runs both arms; returns one row per grid θ, the picked fixed θ and the learned θ.

    The (θ, seed) runs are independent: ``config.workers`` processes run them side by side, each with
    ``config.threads`` torch threads (1 by default: on a busy 2-core machine, two single-threaded
    processes spend far less CPU than one process with two threads, which spin waiting for each other).

    Rows: arm ("grid", "fixed (best on val)", "learned", "learned θ + hop"), theta (label),
    theta_mean (samples), val_acc and test_acc (mean %, over seeds), test_std (%), test_per_seed,
    seconds (wall time of that row's runs, summed over seeds), loss_start / loss_end (mean training
    loss over the first / last steps), runs (per-seed details). The last row also holds
    ``total_seconds`` (wall time of the whole experiment, data loading included) and
    ``total_cpu_seconds`` (CPU time of all runs).
    """
    start = time.perf_counter()
    root = data_dir(data, "fsdd/recordings")
    jobs = [(config, root, s, None, True) for s in config.seeds] if config.learn_hop else []
    jobs += [(config, root, s, None, False) for s in config.seeds]  # the longest runs first
    jobs += [(config, root, s, float(theta), False) for theta in config.grid for s in config.seeds]
    log(f"fsdd: {len(jobs)} runs on {config.workers} worker(s) × {config.threads} thread(s)")
    if config.workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        # spawn, not fork: forking a process whose OpenMP pool already exists can deadlock.
        with ProcessPoolExecutor(config.workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_job, jobs))
    else:
        results = [_job(j) for j in jobs]
    by_theta: dict = {}
    for (_, _, _, theta, hop), result in zip(jobs, results, strict=True):
        by_theta.setdefault("hop" if hop else theta, []).append(result)

    def summary(arm: str, label: str, runs: list[dict]) -> dict:
        return _summary(arm, label, runs, sum(r["seconds"] for r in runs))

    rows = [summary("grid", f"{theta:g}", by_theta[float(theta)]) for theta in config.grid]
    for row in rows:
        log(f"  fixed θ={row['theta']}: val {row['val_acc']:.1f} %, test {row['test_acc']:.1f} %")
    best = max(rows, key=lambda r: r["val_acc"])
    rows.append({**best, "arm": "fixed (best on val)", "seconds": None})
    runs = by_theta[None]
    rows.append(summary("learned", " / ".join(f"{r['theta']:.0f}" for r in runs), runs))
    log(f"  learned θ={rows[-1]['theta']}: test {rows[-1]['test_acc']:.1f} %")
    if config.learn_hop:
        runs = by_theta["hop"]
        label = " / ".join(f"{r['theta']:.0f}, h {r['hop']:.1f}" for r in runs)
        rows.append(summary("learned θ + hop", label, runs))
        log(f"  learned θ, hop={label}: test {rows[-1]['test_acc']:.1f} %")
    rows[-1]["total_seconds"] = time.perf_counter() - start
    rows[-1]["total_cpu_seconds"] = sum(r["cpu_seconds"] for r in results)
    return rows


COLUMNS = [
    ("arm", "arm", ""),
    ("theta", "θ (samples)", ""),
    ("val_acc", "val acc (%)", ".1f"),
    ("test_acc", "test acc (%)", ".1f"),
    ("test_std", "± std", ".1f"),
    ("test_per_seed", "test per seed", ""),
    ("seconds", "train time, Σ seeds (s)", ".0f"),
]


def main(argv: list[str] | None = None) -> int:
    """``rtdstft reproduce fsdd [--quick] [--json PATH] [--data DIR]``."""

    def footer(config: FSDDConfig, rows: list[dict], total: float) -> str:
        return (
            f"seeds {list(config.seeds)}, {config.epochs} epochs, total {total:.0f} s "
            f"({total / 60:.1f} min, {rows[-1]['total_cpu_seconds']:.0f} CPU-s) on "
            f"{machine_info()['cpu']}, {config.workers} worker(s) × {config.threads} thread(s)"
        )

    description = "Spoken digits: best fixed window vs window learned with a CNN."
    return experiment_main(argv, "fsdd", description, run, (FSDDConfig(), QUICK), COLUMNS, footer)


if __name__ == "__main__":
    raise SystemExit(main())
