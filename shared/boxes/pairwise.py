"""Pairwise (N×M) and aligned (N) box similarities: one entry point per form, selected by name.

Conventions (same as detectron2's ``pairwise_iou``):

* ``pairwise_similarity(kind, gt, anchors)`` returns ``[G, A]``; boxes are XYXY, given as detectron2
  ``Boxes`` or ``[N, 4]`` tensors on the same device.
* dtype: float16 / bfloat16 / float32 inputs are computed in float32 and the result is **float32**;
  float64 inputs are computed and returned in float64 (PyTorch path).
* empty inputs give an empty ``[0, M]`` / ``[N, 0]`` matrix; degenerate (zero-size) boxes give finite values.
* memory: the PyTorch path fills the preallocated output tile by tile, with tiles sized so the temporaries
  stay below half the output (``_tile_shape``); the compiled kernel needs no temporaries at all.
* threads (PyTorch path): on the CPU, torch's intra-op threads are set to 1 for the call (restored afterwards)
  and every op runs on one thread: the ~30 element-wise ops per tile are too small for ATen's parallel regions
  to pay, each region is a barrier, and on a busy machine a barrier waits for a descheduled thread while the
  spinning OpenMP worker takes CPU from the caller. Parallelism comes instead from splitting the columns into
  one contiguous range per thread (as many threads as the caller's intra-op count, at least
  ``MIN_ELEMENTS_PER_WORKER`` output elements each; the caller computes the first range), with no barrier
  until the final join. With one thread, tiles are of up to 2^16 elements (their temporaries stay in the L2
  cache); with several, of up to 2^18, so that the GIL each thread holds while dispatching an op is a small
  share of the op's time. Measured on 2 cores (benchmarks/bench_box_similarity.py, SimD 200 x 200,000, ratio
  to detectron2's ``pairwise_iou`` at the same thread count): one thread 0.29 idle and 0.27 beside two busy
  processes; two threads 0.31 idle and 0.30 beside two busy processes (ATen-parallel tiles had given
  0.35-0.51 idle and 0.53-0.57 loaded). On other devices one loop over tiles of up to 2^22 elements. Inputs
  that require grad are computed tile by tile on the calling thread (autograd records every tile); without
  grad, SimD's formula runs in place (``similarity.simd``).
* backend: ``"auto"`` uses the compiled ``shared._box_ops`` kernel when it is built, the device is
  supported, the dtype is not float64 and no input requires grad; otherwise PyTorch. ``"torch"`` forces
  PyTorch, ``"kernel"`` requires the kernel (``RuntimeError`` if it cannot be used).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from shared import kernels
from shared.boxes.geometry import BoxGeometry, as_xyxy_tensor, compute_dtype
from shared.boxes.similarity import get_similarity

__all__ = [
    "pairwise_similarity",
    "aligned_similarity",
    "pairwise_iou",
    "pairwise_giou",
    "pairwise_diou",
    "pairwise_ciou",
    "pairwise_nwd",
    "pairwise_dotd",
    "pairwise_simd",
]

BACKENDS = ("auto", "torch", "kernel")
#: upper bound of the number of [k, M] temporaries a formula holds at once (SimD/CIoU need the most).
FORMULA_TEMPORARIES = 8
#: tile size limits in elements: tiles are ≤ output/(2·FORMULA_TEMPORARIES), clipped to this range (see
#: "threads" in the module docstring for the two upper limits).
MIN_TILE_ELEMENTS = 1 << 12
MAX_TILE_ELEMENTS = 1 << 22
#: the upper limit on the CPU with one thread (no parallel region): 2^16 was the fastest size there.
MAX_TILE_ELEMENTS_CPU = 1 << 16
#: the upper limit on the CPU when worker threads share the columns: 2^16-element tiles left two threads
#: GIL-bound on idle cores (0.42 of ``pairwise_iou`` vs 0.31 with 2^18, bench_box_similarity.py).
MAX_TILE_ELEMENTS_CPU_THREADS = 1 << 18
#: the least number of output elements per CPU worker thread: smaller outputs (e.g. one image's 24 GT x
#: 65,472 anchors) are computed by the calling thread alone, where a thread start would not pay.
MIN_ELEMENTS_PER_WORKER = 1 << 20
#: rows per tile (when there are that many): multi-row tiles keep the number of tiles, hence of Python-level
#: op calls, proportional to the output size however long the rows are.
TILE_ROWS = 16


def _tile_shape(rows: int, cols: int, max_elements: Optional[int] = None) -> Tuple[int, int]:
    """Rows and columns of one PyTorch-path tile: up to TILE_ROWS rows and as many columns as the budget
    allows, the budget being min(max_elements, output / (2·FORMULA_TEMPORARIES)) elements (at least
    MIN_TILE_ELEMENTS; max_elements defaults to MAX_TILE_ELEMENTS), so the temporaries need at most half the
    memory of the [rows, cols] output."""
    budget = (rows * cols) // (2 * FORMULA_TEMPORARIES)
    budget = max(MIN_TILE_ELEMENTS, min(MAX_TILE_ELEMENTS if max_elements is None else max_elements, budget))
    tile_rows = max(1, min(rows, TILE_ROWS, budget))
    tile_cols = max(1, min(cols, budget // tile_rows))
    return tile_rows, tile_cols


def _prepare(kind: str, boxes1: Any, boxes2: Any, params: dict):
    spec = get_similarity(kind)
    resolved = spec.resolve(params)
    a = as_xyxy_tensor(boxes1, "boxes1")
    b = as_xyxy_tensor(boxes2, "boxes2")
    if a.device != b.device:
        raise ValueError(f"boxes1 is on {a.device} but boxes2 is on {b.device}")
    return spec, resolved, a, b


def _try_kernel(spec, resolved: dict, a: Tensor, b: Tensor, backend: str):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return None
    reason = kernels.pairwise_unsupported_reason(a, b)
    if reason is None:
        return kernels.pairwise_kernel(spec.name, a, b, spec.kernel_params(resolved))
    if backend == "kernel":
        raise RuntimeError(f"compiled pairwise kernel cannot be used: {reason}")
    return None


def pairwise_similarity(
    kind: str, boxes1: Any, boxes2: Any, *, backend: str = "auto", **params: Any
) -> Tensor:
    """Similarity ``kind`` between all pairs: ``[N, M]`` for ``N`` boxes1 (e.g. GT), ``M`` boxes2 (anchors).

    Args:
        kind: a registered name (``shared.boxes.similarity_names()``): iou, giou, diou, ciou, nwd, dotd, simd.
        boxes1, boxes2: detectron2 ``Boxes`` or ``[N, 4]`` / ``[M, 4]`` XYXY float tensors.
        backend: "auto" | "torch" | "kernel" (see module docstring).
        params: the kind's parameters (simd: ``m``, ``n``, optional ``eps``, ``norm_mode``;
            nwd / dotd: ``constant``, optional ``eps``).
    """
    spec, resolved, a, b = _prepare(kind, boxes1, boxes2, params)
    dtype = compute_dtype(a, b)
    rows, cols = a.shape[0], b.shape[0]
    if rows == 0 or cols == 0:
        return torch.zeros((rows, cols), dtype=dtype, device=a.device)
    out = _try_kernel(spec, resolved, a, b, backend)
    if out is not None:
        return out
    on_cpu = a.device.type == "cpu"
    workers = _cpu_workers(rows, cols, a, b) if on_cpu else 1
    with _one_cpu_thread(on_cpu):
        geo_a = BoxGeometry.from_xyxy(a.to(dtype))
        geo_b = BoxGeometry.from_xyxy(b.to(dtype))
        limit = MAX_TILE_ELEMENTS_CPU if workers == 1 else MAX_TILE_ELEMENTS_CPU_THREADS
        tile_rows, tile_cols = _tile_shape(rows, cols, limit if on_cpu else None)
        if tile_rows == rows and tile_cols == cols:  # one tile: no copy into a preallocated output
            return spec.formula(geo_a.rows(0, rows), geo_b.cols(), **resolved)
        out = torch.empty((rows, cols), dtype=dtype, device=a.device)
        row_blocks = [(r0, geo_a.rows(r0, r0 + tile_rows)) for r0 in range(0, rows, tile_rows)]

        def fill(col_starts: Sequence[int]) -> None:
            for c0 in col_starts:
                block_b = geo_b.cols(c0, c0 + tile_cols)
                for r0, block_a in row_blocks:
                    out[r0:r0 + tile_rows, c0:c0 + tile_cols] = spec.formula(block_a, block_b, **resolved)

        col_starts = list(range(0, cols, tile_cols))
        workers = min(workers, len(col_starts))
        shares = [col_starts[k * len(col_starts) // workers:(k + 1) * len(col_starts) // workers]
                  for k in range(workers)]
        _run_on_threads([lambda share=share: fill(share) for share in shares])
        return out


def _cpu_workers(rows: int, cols: int, a: Tensor, b: Tensor) -> int:
    """Threads that share the columns of a CPU PyTorch-path call: the caller's intra-op thread count, limited
    to one per ``MIN_ELEMENTS_PER_WORKER`` output elements; 1 when an input requires grad (autograd records
    the tiles on the calling thread)."""
    if a.requires_grad or b.requires_grad:
        return 1
    return max(1, min(torch.get_num_threads(), (rows * cols) // MIN_ELEMENTS_PER_WORKER))


def _run_on_threads(jobs: List[Callable[[], None]]) -> None:
    """Run ``jobs[0]`` on the calling thread and each other job on a thread of its own, with the caller's
    grad and inference modes (both are thread-local in PyTorch); re-raise the first error after all ended.
    Threads are started per call (no pool survives a ``fork``, e.g. of a DataLoader worker)."""
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    errors: List[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                job()
        except BaseException as error:  # handed to the caller, which re-raises it
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,), name="pairwise-similarity", daemon=True)
               for job in jobs[1:]]
    for thread in threads:
        thread.start()
    run(jobs[0])
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@contextlib.contextmanager
def _one_cpu_thread(enabled: bool) -> Iterator[None]:
    """Run the block with one torch intra-op thread (restored afterwards): the PyTorch path's CPU fast path
    (see "threads" in the module docstring). ``torch.set_num_threads`` is process-wide: another Python thread
    computing at the same moment also runs single-threaded until the block ends."""
    threads = torch.get_num_threads()
    if not enabled or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def aligned_similarity(kind: str, boxes1: Any, boxes2: Any, **params: Any) -> Tensor:
    """Similarity ``kind`` between ``boxes1[i]`` and ``boxes2[i]``: ``[N]`` (PyTorch, differentiable)."""
    spec, resolved, a, b = _prepare(kind, boxes1, boxes2, params)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"aligned similarity needs as many boxes1 as boxes2, got {a.shape[0]} and {b.shape[0]}"
        )
    dtype = compute_dtype(a, b)
    if a.shape[0] == 0:
        return torch.zeros((0,), dtype=dtype, device=a.device)
    return spec.formula(BoxGeometry.from_xyxy(a.to(dtype)), BoxGeometry.from_xyxy(b.to(dtype)), **resolved)


def pairwise_iou(boxes1: Any, boxes2: Any, *, backend: str = "auto") -> Tensor:
    """IoU, ``[N, M]`` (same values as detectron2's ``pairwise_iou``)."""
    return pairwise_similarity("iou", boxes1, boxes2, backend=backend)


def pairwise_giou(boxes1: Any, boxes2: Any, *, backend: str = "auto") -> Tensor:
    """GIoU in (−1, 1], ``[N, M]`` (torchvision ``generalized_box_iou``)."""
    return pairwise_similarity("giou", boxes1, boxes2, backend=backend)


def pairwise_diou(boxes1: Any, boxes2: Any, *, backend: str = "auto") -> Tensor:
    """DIoU in (−1, 1], ``[N, M]`` (torchvision ``distance_box_iou``)."""
    return pairwise_similarity("diou", boxes1, boxes2, backend=backend)


def pairwise_ciou(boxes1: Any, boxes2: Any, *, backend: str = "auto") -> Tensor:
    """CIoU in (−2, 1], ``[N, M]`` (torchvision ``complete_box_iou``)."""
    return pairwise_similarity("ciou", boxes1, boxes2, backend=backend)


def pairwise_nwd(
    boxes1: Any, boxes2: Any, constant: float, *, eps: float = 1e-6, backend: str = "auto"
) -> Tensor:
    """Normalized Wasserstein distance similarity exp(−W2/C) in (0, 1], ``[N, M]``."""
    return pairwise_similarity("nwd", boxes1, boxes2, backend=backend, constant=constant, eps=eps)


def pairwise_dotd(
    boxes1: Any, boxes2: Any, constant: float, *, eps: float = 1e-6, backend: str = "auto"
) -> Tensor:
    """Dot distance exp(−‖c_a − c_b‖/S) in (0, 1], ``[N, M]``."""
    return pairwise_similarity("dotd", boxes1, boxes2, backend=backend, constant=constant, eps=eps)


def pairwise_simd(
    gt: Any, anchors: Any, m: float, n: float, *, eps: float = 1e-6, norm_mode: str = "multiply",
    backend: str = "auto",
) -> Tensor:
    """SimD in [1e-6, 1], ``[G, A]``; ``m``, ``n``: the dataset normalisers (VisDrone preset 6.13 / 4.59)."""
    return pairwise_similarity("simd", gt, anchors, backend=backend, m=m, n=n, eps=eps, norm_mode=norm_mode)
