"""NMS by a configured similarity, for RPN proposals and final detections (SimD-NMS is opt-in).

With similarity "iou" every function here defers to detectron2's own code path (torchvision's
``batched_nms``), so the default configs behave exactly like stock detectron2. Other similarities use
``shared.ops.batched_similarity_nms`` (greedy per-group NMS: a box is suppressed when its similarity to
a kept, higher-scoring box of the same group is > threshold).

To reuse detectron2's top-k / clipping / NaN filtering without copying it, the non-IoU paths call
detectron2's functions with an IoU threshold of 1.0 (IoU never exceeds 1, so nothing is suppressed) and
no top-k, then run the similarity NMS on what they return.
"""
from __future__ import annotations

import functools
from typing import Callable, List, Tuple

import torch
from detectron2.config import CfgNode
from detectron2.layers import batched_nms, cat
from detectron2.modeling.proposal_generator.proposal_utils import find_top_rpn_proposals
from detectron2.modeling.roi_heads.fast_rcnn import fast_rcnn_inference_single_image
from detectron2.structures import Boxes, Instances

from shared.ops import NMS_KINDS, batched_similarity_nms
from shared.registry import get_or_raise
from simd.similarity import similarity_kind, similarity_params

# (boxes [N, 4] XYXY, scores [N], groups [N]) -> kept indices sorted by decreasing score
BatchedNMS = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
_NO_IOU_SUPPRESSION = 1.0


def _shared_batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, kind: str,
                        threshold: float, params: dict) -> torch.Tensor:
    return batched_similarity_nms(boxes, scores, groups, kind, threshold, **params)


def build_batched_nms(cfg: CfgNode, kind: str, iou_threshold: float, sim_threshold: float,
                      key: str = "NMS similarity") -> BatchedNMS:
    """Batched NMS by ``kind``: IoU with ``iou_threshold``, anything else with ``sim_threshold``."""
    kind = similarity_kind(kind, key)
    get_or_raise(dict.fromkeys(NMS_KINDS), kind, key)  # NMS is implemented for these only
    if kind == "iou":
        return functools.partial(batched_nms, iou_threshold=iou_threshold)
    return functools.partial(_shared_batched_nms, kind=kind, threshold=float(sim_threshold),
                             params=similarity_params(cfg, kind, key))


def top_proposals_with_nms(
    nms: BatchedNMS,
    proposals: List[torch.Tensor],
    pred_objectness_logits: List[torch.Tensor],
    image_sizes: List[Tuple[int, int]],
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
) -> List[Instances]:
    """``find_top_rpn_proposals`` with a pluggable per-level NMS (same inputs and outputs)."""
    per_level = [
        find_top_rpn_proposals([p], [s], image_sizes, _NO_IOU_SUPPRESSION, pre_nms_topk, pre_nms_topk,
                               min_box_size, training)
        for p, s in zip(proposals, pred_objectness_logits)
    ]
    results = []
    for image_index, image_size in enumerate(image_sizes):
        levels = [level[image_index] for level in per_level]
        boxes = cat([x.proposal_boxes.tensor for x in levels], dim=0)
        scores = cat([x.objectness_logits for x in levels], dim=0)
        level_ids = cat([torch.full((len(x),), i, dtype=torch.int64, device=boxes.device)
                         for i, x in enumerate(levels)], dim=0)
        keep = nms(boxes, scores, level_ids)[:post_nms_topk]
        result = Instances(image_size)
        result.proposal_boxes = Boxes(boxes[keep])
        result.objectness_logits = scores[keep]
        results.append(result)
    return results


def detections_with_nms(
    nms: BatchedNMS,
    boxes: List[torch.Tensor],
    scores: List[torch.Tensor],
    image_shapes: List[Tuple[int, int]],
    score_thresh: float,
    topk_per_image: int,
) -> Tuple[List[Instances], List[torch.Tensor]]:
    """``fast_rcnn_inference`` with a pluggable per-class NMS (same inputs and outputs)."""
    results, kept_indices = [], []
    for boxes_i, scores_i, shape in zip(boxes, scores, image_shapes):
        candidates, proposal_index = fast_rcnn_inference_single_image(
            boxes_i, scores_i, shape, score_thresh, _NO_IOU_SUPPRESSION, -1)
        keep = nms(candidates.pred_boxes.tensor, candidates.scores, candidates.pred_classes)
        if topk_per_image >= 0:
            keep = keep[:topk_per_image]
        results.append(candidates[keep])
        kept_indices.append(proposal_index[keep])
    return results, kept_indices
