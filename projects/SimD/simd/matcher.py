"""Anchor / proposal matchers: MMDetection's MaxIoUAssigner semantics or detectron2's ``Matcher``.

Both return what detectron2's ``Matcher.__call__`` returns, so they are drop-in replacements:
``(matches [A] int64 GT index, match_labels [A] int8 in {-1, 0, 1})``.

The two differ only in the low-quality step (each GT also gets its best anchors):

* detectron2: every GT gives label 1 to all anchors tied at its maximum, whatever that maximum is
  (even 0), and the anchor keeps the GT index of its own argmax.
* mmdet (``MaxIoUAssigner(match_low_quality=True, gt_max_assign_all=True)``): only GTs whose maximum
  is >= ``min_pos_quality`` take part, and the anchors tied at that maximum are *re-assigned* to that GT;
  GTs are visited in index order, so the highest GT index wins an anchor several GTs compete for.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from detectron2.modeling.matcher import Matcher

from simd.config import LOW_QUALITY_MODES


class MaxSimMatcher(Matcher):
    """detectron2 ``Matcher`` whose low-quality step follows mmdet's MaxIoUAssigner.

    Args:
        thresholds, labels: as in detectron2's ``Matcher`` (e.g. ``[0.3, 0.7]``, ``[0, -1, 1]``: below 0.3
            negative, from 0.3 to 0.7 ignored, at or above 0.7 positive).
        allow_low_quality_matches: run the low-quality step.
        min_pos_quality: mmdet's ``min_pos_iou``; a GT whose best quality is below it gets no low-quality
            positive.
    """

    def __init__(self, thresholds: List[float], labels: List[int], allow_low_quality_matches: bool = False,
                 min_pos_quality: float = 0.0):
        # the parent's own low-quality step stays off; ours runs after the thresholding instead
        super().__init__(thresholds, labels, allow_low_quality_matches=False)
        self.mmdet_low_quality_matches = allow_low_quality_matches
        self.min_pos_quality = float(min_pos_quality)

    def __call__(self, match_quality_matrix: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        matches, match_labels = super().__call__(match_quality_matrix)
        if self.mmdet_low_quality_matches and match_quality_matrix.numel() > 0:
            self._assign_low_quality_(matches, match_labels, match_quality_matrix)
        return matches, match_labels

    def _assign_low_quality_(self, matches: torch.Tensor, match_labels: torch.Tensor,
                             quality: torch.Tensor) -> None:
        gt_max, _ = quality.max(dim=1)  # [G]
        eligible = gt_max >= self.min_pos_quality
        tied = (quality == gt_max[:, None]) & eligible[:, None]  # [G, A]
        # 1-based GT index of the *last* eligible GT tied at each anchor (0 = none): mmdet's loop order
        gt_rank = torch.arange(1, quality.shape[0] + 1, device=quality.device)[:, None]
        last_gt = (tied.to(gt_rank.dtype) * gt_rank).max(dim=0).values
        hit = last_gt > 0
        matches[hit] = last_gt[hit] - 1
        match_labels[hit] = 1


def build_matcher(thresholds: List[float], labels: List[int], allow_low_quality_matches: bool,
                  low_quality_mode: str = "detectron2", min_pos_quality: float = 0.0) -> Matcher:
    """The matcher for ``low_quality_mode`` ("mmdet" or "detectron2"; see the module docstring)."""
    if low_quality_mode == "mmdet":
        return MaxSimMatcher(list(thresholds), list(labels), allow_low_quality_matches, min_pos_quality)
    if low_quality_mode == "detectron2":
        return Matcher(list(thresholds), list(labels), allow_low_quality_matches=allow_low_quality_matches)
    raise ValueError(f"unknown low-quality matching mode {low_quality_mode!r}; expected one of {LOW_QUALITY_MODES}")
