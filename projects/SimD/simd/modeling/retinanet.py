"""``SimilarityRetinaNet``: detectron2's RetinaNet with a configurable anchor-labelling similarity.

Select it with ``MODEL.META_ARCHITECTURE "SimilarityRetinaNet"`` and ``MODEL.RETINANET.SIMILARITY``; the
matcher semantics come from ``MODEL.RETINANET.LOW_QUALITY_MODE`` / ``MIN_POS_SIM`` and the final NMS from
``MODEL.RETINANET.NMS_SIMILARITY``.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from detectron2.config import CfgNode, configurable
from detectron2.modeling import META_ARCH_REGISTRY, RetinaNet
from detectron2.structures import Boxes, Instances

from simd.matcher import build_matcher
from simd.nms import BatchedNMS, build_batched_nms
from simd.similarity import SimilarityFn, build_similarity, checked_quality, valid_gt_mask


@META_ARCH_REGISTRY.register()
class SimilarityRetinaNet(RetinaNet):
    """RetinaNet whose anchors are labelled by the configured similarity (see the module docstring)."""

    @configurable
    def __init__(
        self, *, similarity: SimilarityFn, similarity_name: str, detection_nms: BatchedNMS, **kwargs
    ):
        super().__init__(**kwargs)
        self.similarity = similarity
        self.similarity_name = similarity_name
        self.detection_nms = detection_nms

    @classmethod
    def from_config(cls, cfg: CfgNode):
        ret = super().from_config(cfg)
        head = cfg.MODEL.RETINANET
        ret["similarity"] = build_similarity(cfg, head.SIMILARITY, "MODEL.RETINANET.SIMILARITY")
        ret["similarity_name"] = head.SIMILARITY
        ret["anchor_matcher"] = build_matcher(
            head.IOU_THRESHOLDS,
            head.IOU_LABELS,
            True,
            head.LOW_QUALITY_MODE,
            head.MIN_POS_SIM,
            head.GT_MAX_ASSIGN_ALL,
            "MODEL.RETINANET.LOW_QUALITY_MODE",
        )
        ret["detection_nms"] = build_batched_nms(
            cfg,
            head.NMS_SIMILARITY,
            head.NMS_THRESH_TEST,
            head.SIM_NMS_THRESH_TEST,
            "MODEL.RETINANET.NMS_SIMILARITY",
        )
        return ret

    @torch.no_grad()
    def label_anchors(
        self, anchors: List[Boxes], gt_instances: List[Instances]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        anchors = Boxes.cat(anchors)
        gt_labels, matched_gt_boxes = [], []
        for instances in gt_instances:
            if not bool(torch.isfinite(instances.gt_boxes.tensor).all()):
                raise FloatingPointError("RetinaNet anchor labelling: ground-truth boxes contain NaN/Inf")
            instances = instances[valid_gt_mask(instances.gt_boxes)]
            quality = checked_quality(
                self.similarity,
                instances.gt_boxes,
                anchors,
                f"RetinaNet anchor labelling with {self.similarity_name!r}",
            )
            matched_idxs, anchor_labels = self.anchor_matcher(quality)
            del quality
            if len(instances) > 0:
                matched = instances.gt_boxes.tensor[matched_idxs]
                labels = instances.gt_classes[matched_idxs]
                labels[anchor_labels == 0] = self.num_classes
                labels[anchor_labels == -1] = -1
            else:
                matched = torch.zeros_like(anchors.tensor)
                labels = torch.zeros_like(matched_idxs) + self.num_classes
            gt_labels.append(labels)
            matched_gt_boxes.append(matched)
        return gt_labels, matched_gt_boxes

    def inference_single_image(self, anchors, box_cls, box_delta, image_size):
        pred = self._decode_multi_level_predictions(
            anchors, box_cls, box_delta, self.test_score_thresh, self.test_topk_candidates, image_size
        )
        keep = self.detection_nms(pred.pred_boxes.tensor, pred.scores, pred.pred_classes)
        return pred[keep[: self.max_detections_per_image]]
