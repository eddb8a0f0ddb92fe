"""``SimilarityRPN``: detectron2's RPN with a configurable anchor-labelling similarity, matcher and NMS.

Select it with ``MODEL.PROPOSAL_GENERATOR.NAME "SimilarityRPN"``; ``MODEL.RPN.SIMILARITY "simd"`` gives
the SimD RPN of the paper (the released code crashes here: its overlap function asserts before reaching
its own 'sim' branch).
"""

from __future__ import annotations

import logging
from typing import Dict, List, Tuple

import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.proposal_generator import PROPOSAL_GENERATOR_REGISTRY, RPN
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

from simd.matcher import build_matcher
from simd.nms import BatchedNMS, build_batched_nms, top_proposals_with_nms
from simd.similarity import SimilarityFn, build_similarity, checked_quality, valid_gt_mask

logger = logging.getLogger(__name__)


def rpn_matcher(cfg: CfgNode):
    """The RPN's anchor matcher from ``MODEL.RPN`` (thresholds, labels, low-quality mode, ``min_pos`` gate,
    ``gt_max_assign_all``); used by :class:`SimilarityRPN` and the assignment statistics."""
    rpn = cfg.MODEL.RPN
    return build_matcher(
        rpn.IOU_THRESHOLDS,
        rpn.IOU_LABELS,
        True,
        rpn.LOW_QUALITY_MODE,
        rpn.MIN_POS_SIM,
        rpn.GT_MAX_ASSIGN_ALL,
        "MODEL.RPN.LOW_QUALITY_MODE",
    )


@PROPOSAL_GENERATOR_REGISTRY.register()
class SimilarityRPN(RPN):
    """RPN whose anchors are labelled by ``MODEL.RPN.SIMILARITY`` (not ``pairwise_iou``) with the matcher
    of ``MODEL.RPN.LOW_QUALITY_MODE``, and whose proposals are de-duplicated by ``MODEL.RPN.NMS_SIMILARITY``.

    Degenerate GT boxes (zero width/height) are left out of the matching: with IoU they would otherwise
    make detectron2's low-quality step label every anchor positive. NaN in GT boxes raises."""

    @configurable
    def __init__(
        self,
        *,
        similarity: SimilarityFn,
        similarity_name: str,
        proposal_nms: BatchedNMS,
        nms_similarity_name: str,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.similarity = similarity
        self.similarity_name = similarity_name
        self.proposal_nms = proposal_nms
        self.nms_similarity_name = nms_similarity_name

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]):
        ret = super().from_config(cfg, input_shape)
        rpn = cfg.MODEL.RPN
        ret["similarity"] = build_similarity(cfg, rpn.SIMILARITY, "MODEL.RPN.SIMILARITY")
        ret["similarity_name"] = rpn.SIMILARITY
        ret["anchor_matcher"] = rpn_matcher(cfg)
        ret["nms_similarity_name"] = rpn.NMS_SIMILARITY
        ret["proposal_nms"] = build_batched_nms(
            cfg, rpn.NMS_SIMILARITY, rpn.NMS_THRESH, rpn.SIM_NMS_THRESH, "MODEL.RPN.NMS_SIMILARITY"
        )
        return ret

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: List[Boxes], gt_instances: List[Instances]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        anchors = Boxes.cat(anchors)
        gt_labels, matched_gt_boxes = [], []
        num_gt, num_gt_without_positive = 0, 0
        for instances in gt_instances:
            gt_boxes = instances.gt_boxes
            if not bool(torch.isfinite(gt_boxes.tensor).all()):
                raise FloatingPointError(
                    f"RPN anchor labelling: ground-truth boxes contain NaN/Inf: {gt_boxes.tensor.tolist()}"
                )
            gt_boxes = gt_boxes[valid_gt_mask(gt_boxes)]
            quality = checked_quality(
                self.similarity, gt_boxes, anchors, f"RPN anchor labelling with {self.similarity_name!r}"
            )
            matched_idxs, labels = self.anchor_matcher(quality)
            labels = labels.to(device=gt_boxes.device)
            if len(gt_boxes):
                positives = labels == 1
                covered = torch.zeros(len(gt_boxes), dtype=torch.bool, device=labels.device)
                covered[matched_idxs[positives]] = True
                num_gt += len(gt_boxes)
                num_gt_without_positive += int((~covered).sum())
            del quality
            if self.anchor_boundary_thresh >= 0:
                labels[~anchors.inside_box(instances.image_size, self.anchor_boundary_thresh)] = -1
            labels = self._subsample_labels(labels)
            if len(gt_boxes) == 0:
                matched = torch.zeros_like(anchors.tensor)
            else:
                matched = gt_boxes[matched_idxs].tensor
            gt_labels.append(labels)
            matched_gt_boxes.append(matched)
        self._log_coverage(num_gt, num_gt_without_positive, len(gt_instances))
        return gt_labels, matched_gt_boxes

    @staticmethod
    def _log_coverage(num_gt: int, num_without_positive: int, num_images: int) -> None:
        """Put the number of GTs per image without any positive anchor into the event storage (worth
        watching: with SimD's strict normalisers tiny GTs can end up with none)."""
        try:
            storage = get_event_storage()
        except AssertionError:  # called outside a training loop (tests, visualisation)
            return
        storage.put_scalar("rpn/gt_without_positive_per_image", num_without_positive / max(num_images, 1))
        if num_gt:
            storage.put_scalar("rpn/gt_without_positive_fraction", num_without_positive / num_gt)

    def predict_proposals(self, anchors, pred_objectness_logits, pred_anchor_deltas, image_sizes):
        if self.nms_similarity_name == "iou":
            return super().predict_proposals(anchors, pred_objectness_logits, pred_anchor_deltas, image_sizes)
        with torch.no_grad():
            pred_proposals = self._decode_proposals(anchors, pred_anchor_deltas)
            return top_proposals_with_nms(
                self.proposal_nms,
                pred_proposals,
                pred_objectness_logits,
                image_sizes,
                self.pre_nms_topk[self.training],
                self.post_nms_topk[self.training],
                self.min_box_size,
                self.training,
            )
