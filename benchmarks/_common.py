"""Helpers shared by the benchmark scripts (imported as a sibling module: scripts run from this folder)."""
import os
import statistics
import time
from typing import Callable, Dict, Sequence, Tuple

import torch


def pin_threads(threads: int) -> int:
    """Use ``threads`` torch intra-op threads and at most that many OpenMP / BLAS threads (numpy, faiss),
    so that every ratio is measured at a stated thread count; returns it."""
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is installed with scikit-learn
        pass
    else:
        threadpool_limits(threads)
    return threads


def verdict(value: float, op: str, target: float) -> str:
    """"target <= 0.5: PASS" — one form for every benchmark's target, so that ``benchmarks/run_all.py`` can
    collect them; ``op`` is "<=" or ">=" (value must be at most / at least ``target``)."""
    if op not in ("<=", ">="):
        raise ValueError(f"verdict op must be '<=' or '>=', got {op!r}")
    ok = value <= target if op == "<=" else value >= target
    return f"target {op} {target:g}: {'PASS' if ok else 'FAIL'}"


def load_line() -> str:
    """"load average 1/5/15 min: a / b / c on N CPUs" (the machine's load when the ratios were measured)."""
    one, five, fifteen = os.getloadavg()
    return f"load average 1/5/15 min: {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


def median_time(fn, repeat: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(fns: Dict[str, Callable[[], object]], rounds: int,
                        warmup: int = 1) -> Dict[str, float]:
    """Median wall time of each function, measured in ``rounds`` rounds that call every function once in
    turn (A, B, C, A, B, C, ...): a change of machine load hits all sides alike, so their ratios stay
    comparable."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, list] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def paired_ratio_interval(numerator: Sequence[float], denominator: Sequence[float], rounds: int = 2000,
                          seed: int = 0) -> Tuple[float, float]:
    """95 % bootstrap interval of ``median(numerator) / median(denominator)`` for paired timings (entry i of
    both measured in the same round): ``rounds`` resamples of the rounds with replacement, each pair kept
    together, and the 2.5th / 97.5th percentiles of the resampled ratio (the spread of the ratio a run
    prints, from that run's own repeats)."""
    import numpy as np

    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"need two equal-length series of >= 2 paired timings, got {a.shape} / {b.shape}")
    idx = np.random.default_rng(seed).integers(0, a.size, size=(rounds, a.size))
    ratios = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def random_boxes(n: int, generator: torch.Generator, width: float = 1333.0,
                 height: float = 800.0) -> torch.Tensor:
    """``n`` XYXY boxes with top-left corners uniform in the image and sides uniform in [4, 128) px."""
    xy = torch.rand(n, 2, generator=generator) * torch.tensor([width, height])
    wh = 4.0 + torch.rand(n, 2, generator=generator) * 124.0
    return torch.cat([xy, xy + wh], dim=1)
