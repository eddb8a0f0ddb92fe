"""Pairwise (N×M) and aligned (N) box similarities: one entry point per form, selected by name.

Conventions (same as detectron2's ``pairwise_iou``):

* ``pairwise_similarity(kind, gt, anchors)`` returns ``[G, A]``; boxes are XYXY, given as detectron2
  ``Boxes`` or ``[N, 4]`` tensors on the same device.
* dtype: float16 / bfloat16 / float32 inputs are computed in float32 and the result is **float32**;
  float64 inputs are computed and returned in float64 (PyTorch path).
* empty inputs give an empty ``[0, M]`` / ``[N, 0]`` matrix; degenerate (zero-size) boxes give finite values.
* memory: the PyTorch path fills the preallocated output tile by tile, with tiles sized so the temporaries
  stay below half the output (``_tile_shape``); the compiled kernel needs no temporaries at all.
* threads (PyTorch path): on the CPU the path is single-threaded by design: it sets torch's intra-op threads
  to 1 for the call (restored afterwards) and computes tiles of up to 2^16 elements, whose temporaries stay in
  the L2 cache. The ~30 element-wise ops per tile are too small for ATen's parallel regions to pay: each
  region is a barrier, and on a busy machine a barrier waits for a descheduled thread, while the spinning
  OpenMP worker takes CPU from the caller. Measured on 2 cores (benchmarks/bench_box_similarity.py, idle):
  a pool of Python threads over tiles was GIL-bound (0.67 of detectron2's ``pairwise_iou`` at 2 threads),
  ATen-parallel tiles of 2^20-2^22 elements gave 0.35-0.51 idle and 0.53-0.57 beside two busy torch
  processes. On other devices tiles of up to 2^22 elements. Inputs that require grad are computed tile by
  tile as well (autograd records every tile); without grad, SimD's formula runs in place
  (``similarity.simd``).
* backend: ``"auto"`` uses the compiled ``shared._box_ops`` kernel when it is built, the device is
  supported, the dtype is not float64 and no input requires grad; otherwise PyTorch. ``"torch"`` forces
  PyTorch, ``"kernel"`` requires the kernel (``RuntimeError`` if it cannot be used).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional, Tuple

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
#: the upper limit on the CPU (one thread, no parallel region): 2^16 was the fastest size there.
MAX_TILE_ELEMENTS_CPU = 1 << 16
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
    with _one_cpu_thread(on_cpu):
        geo_a = BoxGeometry.from_xyxy(a.to(dtype))
        geo_b = BoxGeometry.from_xyxy(b.to(dtype))
        tile_rows, tile_cols = _tile_shape(rows, cols, MAX_TILE_ELEMENTS_CPU if on_cpu else None)
        if tile_rows == rows and tile_cols == cols:  # one tile: no copy into a preallocated output
            return spec.formula(geo_a.rows(0, rows), geo_b.cols(), **resolved)
        out = torch.empty((rows, cols), dtype=dtype, device=a.device)
        for c0 in range(0, cols, tile_cols):
            for r0 in range(0, rows, tile_rows):
                out[r0:r0 + tile_rows, c0:c0 + tile_cols] = spec.formula(
                    geo_a.rows(r0, r0 + tile_rows), geo_b.cols(c0, c0 + tile_cols), **resolved
                )
        return out


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
