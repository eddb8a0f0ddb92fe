"""Anchor / proposal matchers: MMDetection's MaxIoUAssigner semantics or detectron2's ``Matcher``.

Both return what detectron2's ``Matcher.__call__`` returns, so they are drop-in replacements:
``(matches [A] int64 GT index, match_labels [A] int8 in {-1, 0, 1})``.

The two differ in the low-quality step (each GT also gets its best anchors) and in negative qualities:

* detectron2: every GT gives label 1 to all anchors tied at its maximum, whatever that maximum is
  (even 0), and the anchor keeps the GT index of its own argmax; qualities must be >= 0 (it asserts).
* mmdet (``MaxIoUAssigner(match_low_quality=True)``, mmdet/models/task_modules/assigners/
  max_iou_assigner.py): only GTs whose maximum is >= ``min_pos_quality`` take part; with
  ``gt_max_assign_all`` every anchor tied at that maximum is *re-assigned* to the GT, without it only the
  GT's first argmax anchor; GTs are visited in index order, so the highest GT index wins an anchor several
  GTs compete for. An anchor whose best quality is negative (mmdet writes -1 for anchors inside ignore
  regions) is never negative: it stays ignored (label -1) unless the low-quality step makes it positive.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from detectron2.modeling.matcher import Matcher

from shared.registry import get_or_raise


class MaxSimMatcher(Matcher):
    """detectron2 ``Matcher`` with mmdet's MaxIoUAssigner semantics (see the module docstring).

    Args:
        thresholds, labels: as in detectron2's ``Matcher`` (e.g. ``[0.3, 0.7]``, ``[0, -1, 1]``: below 0.3
            negative, from 0.3 to 0.7 ignored, at or above 0.7 positive).
        allow_low_quality_matches: run the low-quality step.
        min_pos_quality: mmdet's ``min_pos_iou``; a GT whose best quality is below it gets no low-quality
            positive.
        gt_max_assign_all: mmdet's ``gt_max_assign_all`` (default True, as mmdet).
    """

    def __init__(self, thresholds: List[float], labels: List[int], allow_low_quality_matches: bool = False,
                 min_pos_quality: float = 0.0, gt_max_assign_all: bool = True):
        # the parent's own low-quality step stays off; ours runs after the thresholding instead
        super().__init__(thresholds, labels, allow_low_quality_matches=False)
        self.mmdet_low_quality_matches = allow_low_quality_matches
        self.min_pos_quality = float(min_pos_quality)
        self.gt_max_assign_all = bool(gt_max_assign_all)

    def __call__(self, match_quality_matrix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        quality = match_quality_matrix
        if quality.dim() != 2:
            raise ValueError(f"the match-quality matrix must be [G, A], got shape {tuple(quality.shape)}")
        if quality.numel() == 0:
            matches = quality.new_full((quality.size(1),), 0, dtype=torch.int64)
            return matches, quality.new_full((quality.size(1),), self.labels[0], dtype=torch.int8)
        matched_vals, matches = quality.max(dim=0)
        match_labels = matches.new_full(matches.size(), 1, dtype=torch.int8)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            low_high = (matched_vals >= low) & (matched_vals < high)
            match_labels[low_high] = label
        # mmdet only labels an anchor negative when its best quality is >= 0 (ignore regions give -1)
        match_labels[matched_vals < 0] = -1
        if self.mmdet_low_quality_matches:
            self._assign_low_quality_(matches, match_labels, quality)
        return matches, match_labels

    def _assign_low_quality_(self, matches: torch.Tensor, match_labels: torch.Tensor,
                             quality: torch.Tensor) -> None:
        gt_max, gt_argmax = quality.max(dim=1)  # [G]
        eligible = gt_max >= self.min_pos_quality
        num_gt, num_anchors = quality.shape
        gt_index = torch.arange(num_gt, device=quality.device)
        if self.gt_max_assign_all:
            tied = (quality == gt_max[:, None]) & eligible[:, None]  # [G, A]
            # 1-based GT index of the *last* eligible GT tied at each anchor (0 = none): mmdet's loop order
            last_gt = (tied.to(torch.int64) * (gt_index[:, None] + 1)).max(dim=0).values
        else:
            last_gt = torch.zeros(num_anchors, dtype=torch.int64, device=quality.device)
            last_gt.scatter_reduce_(0, gt_argmax[eligible], gt_index[eligible] + 1, reduce="amax")
        hit = last_gt > 0
        matches[hit] = last_gt[hit] - 1
        match_labels[hit] = 1


def _mmdet_matcher(thresholds, labels, allow_low_quality_matches, min_pos_quality, gt_max_assign_all):
    return MaxSimMatcher(list(thresholds), list(labels), allow_low_quality_matches, min_pos_quality,
                         gt_max_assign_all)


def _detectron2_matcher(thresholds, labels, allow_low_quality_matches, min_pos_quality, gt_max_assign_all):
    return Matcher(list(thresholds), list(labels), allow_low_quality_matches=allow_low_quality_matches)


#: low-quality mode -> matcher factory
LOW_QUALITY_MATCHERS = {"mmdet": _mmdet_matcher, "detectron2": _detectron2_matcher}


def build_matcher(thresholds: List[float], labels: List[int], allow_low_quality_matches: bool,
                  low_quality_mode: str = "detectron2", min_pos_quality: float = 0.0,
                  gt_max_assign_all: bool = True, key: str = "LOW_QUALITY_MODE") -> Matcher:
    """The matcher for ``low_quality_mode`` ("mmdet" or "detectron2"; see the module docstring)."""
    factory = get_or_raise(LOW_QUALITY_MATCHERS, low_quality_mode, key)
    return factory(thresholds, labels, allow_low_quality_matches, min_pos_quality, gt_max_assign_all)
