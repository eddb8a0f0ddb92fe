"""Helpers shared by the benchmark scripts (imported as a sibling module: scripts run from this folder)."""
import statistics
import time

import torch


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


def random_boxes(n: int, generator: torch.Generator, width: float = 1333.0,
                 height: float = 800.0) -> torch.Tensor:
    """``n`` XYXY boxes with top-left corners uniform in the image and sides uniform in [4, 128) px."""
    xy = torch.rand(n, 2, generator=generator) * torch.tensor([width, height])
    wh = 4.0 + torch.rand(n, 2, generator=generator) * 124.0
    return torch.cat([xy, xy + wh], dim=1)
