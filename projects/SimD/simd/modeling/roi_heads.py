"""ROI heads whose proposal labelling uses ``MODEL.ROI_HEADS.SIMILARITY`` instead of ``pairwise_iou``.

* ``SimilarityROIHeads`` (Faster R-CNN): labelling by the configured similarity, final NMS by
  ``MODEL.ROI_HEADS.NMS_SIMILARITY``.
* ``SimilarityCascadeROIHeads`` (Cascade R-CNN): every stage labels its proposals by the configured
  similarity, with that stage's threshold (``ROI_BOX_CASCADE_HEAD.IOUS``).

With similarity "iou" both defer to detectron2's own methods, so they reproduce the stock heads exactly.
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.modeling.proposal_generator.proposal_utils import add_ground_truth_to_proposals
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, CascadeROIHeads, StandardROIHeads
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import get_event_storage

from simd.nms import BatchedNMS, build_batched_nms, detections_with_nms
from simd.similarity import SimilarityFn, build_similarity, checked_quality, valid_gt_mask


class SimilarityNMSOutputLayers(FastRCNNOutputLayers):
    """``FastRCNNOutputLayers`` whose inference NMS is a given (non-IoU) batched similarity NMS."""

    def __init__(self, cfg: CfgNode, input_shape, nms: BatchedNMS, **kwargs):
        super().__init__(cfg, input_shape, **kwargs)
        self.similarity_nms = nms

    def inference(self, predictions, proposals: List[Instances]):
        boxes = self.predict_boxes(predictions, proposals)
        scores = self.predict_probs(predictions, proposals)
        image_shapes = [x.image_size for x in proposals]
        return detections_with_nms(
            self.similarity_nms, boxes, scores, image_shapes, self.test_score_thresh, self.test_topk_per_image
        )


def _match_quality(similarity: SimilarityFn, gt: Instances, proposals: Boxes, what: str) -> torch.Tensor:
    """[G, P] quality; degenerate GT boxes get quality 0 with every proposal (never matched above a
    positive threshold) so that GT indices stay aligned with ``gt``."""
    valid = valid_gt_mask(gt.gt_boxes)
    if bool(valid.all()):
        return checked_quality(similarity, gt.gt_boxes, proposals, what)
    quality = proposals.tensor.new_zeros((len(gt), len(proposals)))
    if bool(valid.any()):
        quality[valid] = checked_quality(similarity, gt.gt_boxes[valid], proposals, what)
    return quality


def _label_and_sample_by_similarity(
    heads: StandardROIHeads, proposals: List[Instances], targets: List[Instances]
) -> List[Instances]:
    """``ROIHeads.label_and_sample_proposals`` with ``heads.similarity`` in place of ``pairwise_iou``."""
    if heads.proposal_append_gt:
        proposals = add_ground_truth_to_proposals(targets, proposals)
    sampled, num_fg, num_bg = [], [], []
    for proposals_i, targets_i in zip(proposals, targets):
        quality = _match_quality(
            heads.similarity,
            targets_i,
            proposals_i.proposal_boxes,
            f"ROI-head proposal labelling with {heads.similarity_name!r}",
        )
        matched_idxs, matched_labels = heads.proposal_matcher(quality)
        sampled_idxs, gt_classes = heads._sample_proposals(matched_idxs, matched_labels, targets_i.gt_classes)
        proposals_i = proposals_i[sampled_idxs]
        proposals_i.gt_classes = gt_classes
        if len(targets_i) > 0:
            sampled_targets = matched_idxs[sampled_idxs]
            for name, value in targets_i.get_fields().items():
                if name.startswith("gt_") and not proposals_i.has(name):
                    proposals_i.set(name, value[sampled_targets])
        num_bg.append((gt_classes == heads.num_classes).sum().item())
        num_fg.append(gt_classes.numel() - num_bg[-1])
        sampled.append(proposals_i)
    storage = get_event_storage()
    storage.put_scalar("roi_head/num_fg_samples", np.mean(num_fg))
    storage.put_scalar("roi_head/num_bg_samples", np.mean(num_bg))
    return sampled


class SimilarityLabellingMixin:
    """Constructor arguments, config and ``label_and_sample_proposals`` shared by the two heads below;
    mix in before the detectron2 ROI-heads class."""

    @configurable
    def __init__(self, *, similarity: SimilarityFn, similarity_name: str, **kwargs):
        super().__init__(**kwargs)
        self.similarity = similarity
        self.similarity_name = similarity_name

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape):
        ret = super().from_config(cfg, input_shape)
        kind = cfg.MODEL.ROI_HEADS.SIMILARITY
        ret["similarity"] = build_similarity(cfg, kind, "MODEL.ROI_HEADS.SIMILARITY")
        ret["similarity_name"] = kind
        return ret

    @torch.no_grad()
    def label_and_sample_proposals(
        self, proposals: List[Instances], targets: List[Instances]
    ) -> List[Instances]:
        if self.similarity_name == "iou":
            return super().label_and_sample_proposals(proposals, targets)
        return _label_and_sample_by_similarity(self, proposals, targets)


@ROI_HEADS_REGISTRY.register()
class SimilarityROIHeads(SimilarityLabellingMixin, StandardROIHeads):
    """``StandardROIHeads`` with configurable labelling similarity and final-NMS similarity."""

    @classmethod
    def _init_box_head(cls, cfg: CfgNode, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        heads = cfg.MODEL.ROI_HEADS
        if heads.NMS_SIMILARITY != "iou":
            nms = build_batched_nms(
                cfg,
                heads.NMS_SIMILARITY,
                heads.NMS_THRESH_TEST,
                heads.SIM_NMS_THRESH_TEST,
                "MODEL.ROI_HEADS.NMS_SIMILARITY",
            )
            ret["box_predictor"] = SimilarityNMSOutputLayers(cfg, ret["box_head"].output_shape, nms)
        return ret


@ROI_HEADS_REGISTRY.register()
class SimilarityCascadeROIHeads(SimilarityLabellingMixin, CascadeROIHeads):
    """``CascadeROIHeads`` whose stages label proposals by ``MODEL.ROI_HEADS.SIMILARITY``.

    The final NMS stays IoU: ``MODEL.ROI_HEADS.NMS_SIMILARITY`` other than "iou" raises at build time."""

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape):
        if cfg.MODEL.ROI_HEADS.NMS_SIMILARITY != "iou":
            raise NotImplementedError(
                "SimilarityCascadeROIHeads: MODEL.ROI_HEADS.NMS_SIMILARITY must be 'iou' (similarity NMS is "
                "implemented for SimilarityROIHeads only)"
            )
        return super().from_config(cfg, input_shape)

    @torch.no_grad()
    def _match_and_label_boxes(self, proposals: List[Instances], stage: int, targets: List[Instances]):
        if self.similarity_name == "iou":
            return super()._match_and_label_boxes(proposals, stage, targets)
        num_fg, num_bg = [], []
        for proposals_i, targets_i in zip(proposals, targets):
            quality = _match_quality(
                self.similarity,
                targets_i,
                proposals_i.proposal_boxes,
                f"cascade stage {stage} labelling with {self.similarity_name!r}",
            )
            matched_idxs, labels = self.proposal_matchers[stage](quality)
            if len(targets_i) > 0:
                gt_classes = targets_i.gt_classes[matched_idxs]
                gt_classes[labels == 0] = self.num_classes
                gt_boxes = targets_i.gt_boxes[matched_idxs]
            else:
                gt_classes = torch.zeros_like(matched_idxs) + self.num_classes
                gt_boxes = Boxes(targets_i.gt_boxes.tensor.new_zeros((len(proposals_i), 4)))
            proposals_i.gt_classes = gt_classes
            proposals_i.gt_boxes = gt_boxes
            num_fg.append((labels == 1).sum().item())
            num_bg.append(labels.numel() - num_fg[-1])
        storage = get_event_storage()
        storage.put_scalar(f"stage{stage}/roi_head/num_fg_samples", sum(num_fg) / len(num_fg))
        storage.put_scalar(f"stage{stage}/roi_head/num_bg_samples", sum(num_bg) / len(num_bg))
        return proposals
