"""Per-class greedy non-maximum suppression by any similarity of the shared box library.

Semantics (identical to torchvision's ``batched_nms`` for ``kind="iou"``): boxes are visited in order of
decreasing score (ties: lower index first); a visited box that is not suppressed is kept and suppresses
every later box **of the same class** whose raw similarity to it is ``> threshold``. The result holds
the kept indices sorted by decreasing score. The threshold applies to the raw value (DIoU in (−1, 1]).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from shared.boxes.geometry import BoxGeometry, as_xyxy_tensor, compute_dtype
from shared.boxes.similarity import get_similarity
from shared import kernels
from shared.kernels import NMS_KINDS

__all__ = ["batched_similarity_nms", "reference_batched_similarity_nms"]


def _validate(boxes: Tensor, scores: Tensor, idxs: Tensor, kind: str, threshold: float, params: dict):
    if kind not in NMS_KINDS:
        raise ValueError(f"unsupported NMS similarity {kind!r}; valid names: {', '.join(NMS_KINDS)}")
    spec = get_similarity(kind)
    resolved = spec.resolve(params)
    boxes = as_xyxy_tensor(boxes, "boxes")
    n = boxes.shape[0]
    if scores.shape != (n,) or idxs.shape != (n,):
        raise ValueError(
            f"expected scores and idxs of shape ({n},), got {tuple(scores.shape)} and {tuple(idxs.shape)}"
        )
    if not (scores.device == idxs.device == boxes.device):
        raise ValueError("boxes, scores and idxs must be on the same device")
    if n and torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if idxs.is_floating_point():
        raise ValueError(f"idxs must be an integer tensor of class indices, got {idxs.dtype}")
    threshold = float(threshold)
    if threshold != threshold:
        raise ValueError("threshold is NaN")
    return spec, resolved, boxes, threshold


def _score_order_grouped_by_class(scores: Tensor, idxs: Tensor):
    """(order, grouped): ``order`` sorts by decreasing score (stable); ``grouped`` is ``order`` stably
    re-sorted by class, so each class is a contiguous run that keeps its score order."""
    order = torch.sort(scores, descending=True, stable=True).indices
    grouped = order[torch.sort(idxs[order], stable=True).indices]
    return order, grouped


def reference_batched_similarity_nms(
    boxes: Any, scores: Tensor, idxs: Tensor, kind: str, threshold: float, **params: Any
) -> Tensor:
    """Pure-PyTorch greedy NMS (fallback and test oracle): one similarity row per kept box, O(N) memory."""
    spec, resolved, boxes, threshold = _validate(boxes, scores, idxs, kind, threshold, params)
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros((0,), dtype=torch.int64, device=boxes.device)
    order, grouped = _score_order_grouped_by_class(scores, idxs)
    boxes = boxes.to(compute_dtype(boxes))
    keep = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    counts = torch.unique_consecutive(idxs[grouped], return_counts=True)[1].tolist()
    start = 0
    for count in counts:
        members = grouped[start:start + count]
        start += count
        geometry = BoxGeometry.from_xyxy(boxes[members])
        suppressed = torch.zeros(count, dtype=torch.bool, device=boxes.device)
        suppressed_host = [False] * count  # mirror of `suppressed` so the loop does not sync per box
        for i in range(count):
            if suppressed_host[i]:
                continue
            keep[members[i]] = True
            if i + 1 == count:
                break
            row = spec.formula(geometry.rows(i, i + 1), geometry.cols(i + 1, count),
                               **resolved)[0]
            suppressed[i + 1:] |= row.double() > threshold  # as torchvision: float value vs double threshold
            suppressed_host[i + 1:] = suppressed[i + 1:].tolist()
    return order[keep[order]]


def batched_similarity_nms(
    boxes: Any, scores: Tensor, idxs: Tensor, kind: str, threshold: float, *, backend: str = "auto",
    **params: Any
) -> Tensor:
    """Per-class greedy NMS by ``kind`` ∈ {iou, diou, nwd, dotd, simd}; int64 kept indices, best first.

    Args:
        boxes: ``[N, 4]`` XYXY (tensor or detectron2 ``Boxes``), float16/32/64.
        scores: ``[N]``; idxs: ``[N]`` integer class ids (NMS never crosses classes).
        threshold: a box is suppressed by a kept box when their similarity is ``> threshold``.
        backend: "auto" (compiled CPU/CUDA kernel when available, else PyTorch), "torch", or "kernel".
        params: the kind's parameters, e.g. ``m=6.13, n=4.59`` for simd, ``constant=12.8`` for nwd.
    """
    if backend not in ("auto", "torch", "kernel"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'kernel', got {backend!r}")
    spec, resolved, box_tensor, threshold = _validate(boxes, scores, idxs, kind, threshold, params)
    if backend != "torch":
        reason = kernels.device_unsupported_reason(box_tensor)
        if reason is None:
            if box_tensor.shape[0] == 0:
                return torch.zeros((0,), dtype=torch.int64, device=box_tensor.device)
            return kernels.nms_kernel(
                kind, box_tensor, scores, idxs, threshold, spec.kernel_params(resolved)
            )
        if backend == "kernel":
            raise RuntimeError(f"compiled NMS kernel cannot be used: {reason}")
    return reference_batched_similarity_nms(box_tensor, scores, idxs, kind, threshold, **resolved)
