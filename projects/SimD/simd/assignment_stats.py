"""Label-assignment statistics: how many GTs of each size get a positive RPN anchor or ROI proposal.

For every training image (resized as in training: ``ResizeShortestEdge(max(MIN_SIZE_TRAIN),
MAX_SIZE_TRAIN)``, no flip), the model's own anchor generator lays its anchors out on the padded image, the
configured similarity scores every (GT, anchor) pair and the configured RPN matcher
(``MODEL.RPN.IOU_THRESHOLDS``, ``LOW_QUALITY_MODE``, ``MIN_POS_SIM``, ``GT_MAX_ASSIGN_ALL``) labels the
anchors,
before sampling. Per GT size bin (AI-TOD's: very tiny < 8 px, tiny 8-16, small 16-32, medium >= 32, by
sqrt(w * h) of the annotation as the dataset defines its sizes) the table gives the share of GTs with at least
one positive anchor and the mean number of positive anchors per GT. Crowd / ignore boxes are left out.

ROI (second-stage) assignment. The ROI head labels the RPN's *proposals*, which depend on the trained RPN; a
model-free, deterministic stand-in is used instead (ours; the alternative, a freshly initialised RPN's
proposals, would depend on the seed and reflect no training): the proposals are the same
anchors, treated as detectron2's ``find_top_rpn_proposals`` treats proposals (clipped to the unpadded image,
empty boxes dropped; no top-k and no NMS), plus the GT boxes when ``MODEL.ROI_HEADS.PROPOSAL_APPEND_GT`` is
True (as ``add_ground_truth_to_proposals`` does in training; True in every preset). They are labelled by the
model's own ROI-head proposal matcher (built with ``build_roi_heads``: detectron2's ``Matcher`` with
``MODEL.ROI_HEADS.IOU_THRESHOLDS`` / ``IOU_LABELS``, no low-quality matches; for Cascade R-CNN the first
stage's), each similarity in turn, before ``_sample_proposals``. With GT appended, a GT's own box is always a
proposal of quality 1 (IoU, SimD; NWD and DotD 1 up to their epsilon), so nearly every GT is covered (all but
those whose own box another GT matches at least as well) and the mean includes that one proposal: the anchors'
contribution is then the mean minus one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Tuple

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.data.transforms import ResizeShortestEdge
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_anchor_generator, build_backbone, build_roi_heads
from detectron2.modeling.matcher import Matcher
from detectron2.structures import Boxes, BoxMode

from simd.modeling.rpn import rpn_matcher
from simd.similarity import build_similarity

#: (label, low, high) in pixels of sqrt(w * h): AI-TOD's size ranges
SIZE_BINS: Tuple[Tuple[str, float, float], ...] = (
    ("very tiny <8", 0.0, 8.0),
    ("tiny 8-16", 8.0, 16.0),
    ("small 16-32", 16.0, 32.0),
    ("medium >=32", 32.0, math.inf),
)


def size_bin(size: float) -> int:
    """Index in :data:`SIZE_BINS` of a GT of absolute size ``size`` = sqrt(w * h) pixels."""
    for index, (_, low, high) in enumerate(SIZE_BINS):
        if low <= size < high:
            return index
    raise ValueError(f"GT size {size!r} is not a finite non-negative number")


@dataclass
class BinCounts:
    """Per size bin: number of GTs, GTs with >= 1 positive anchor, total positive anchors."""

    gts: List[int] = field(default_factory=lambda: [0] * len(SIZE_BINS))
    covered: List[int] = field(default_factory=lambda: [0] * len(SIZE_BINS))
    positives: List[int] = field(default_factory=lambda: [0] * len(SIZE_BINS))

    def add(self, bins: torch.Tensor, positives_per_gt: torch.Tensor) -> None:
        for b, p in zip(bins.tolist(), positives_per_gt.tolist()):
            self.gts[b] += 1
            self.covered[b] += int(p > 0)
            self.positives[b] += int(p)

    def all(self) -> Tuple[int, int, int]:
        return sum(self.gts), sum(self.covered), sum(self.positives)


def positives_per_gt(matches: torch.Tensor, labels: torch.Tensor, num_gt: int) -> torch.Tensor:
    """Number of anchors labelled positive (1) for each GT index."""
    positive = labels == 1
    return torch.bincount(matches[positive], minlength=num_gt)[:num_gt]


class AnchorLayout:
    """The model's anchors for an image size (padded to the backbone's size divisibility)."""

    def __init__(self, cfg: CfgNode):
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        self.output_shape = shapes
        self.in_features = list(cfg.MODEL.RPN.IN_FEATURES)
        self.strides = [shapes[f].stride for f in self.in_features]
        self.generator = build_anchor_generator(
            cfg, [ShapeSpec(channels=shapes[f].channels, stride=shapes[f].stride) for f in self.in_features]
        )
        self.divisibility = int(backbone.size_divisibility)
        self._cache: Dict[Tuple[int, int], Boxes] = {}

    def anchors(self, height: int, width: int) -> Boxes:
        if self.divisibility > 1:
            height = int(math.ceil(height / self.divisibility) * self.divisibility)
            width = int(math.ceil(width / self.divisibility) * self.divisibility)
        if (height, width) not in self._cache:
            features = [
                torch.zeros(1, 1, int(math.ceil(height / s)), int(math.ceil(width / s))) for s in self.strides
            ]
            self._cache[(height, width)] = Boxes.cat(self.generator(features))
        return self._cache[(height, width)]


def roi_proposals(anchors: Boxes, gt: Boxes, height: int, width: int, append_gt: bool) -> Boxes:
    """The stand-in ROI proposals of an image of (unpadded) size ``height`` x ``width``: ``anchors`` clipped
    to the image, those with zero width or height dropped (detectron2's ``find_top_rpn_proposals`` with
    ``min_box_size`` 0), then ``gt`` appended when ``append_gt``."""
    boxes = anchors.clone()
    boxes.clip((height, width))
    boxes = boxes[boxes.nonempty()]
    return Boxes.cat([boxes, gt]) if append_gt else boxes


def roi_matcher(cfg: CfgNode, layout: AnchorLayout) -> Matcher:
    """The model's own ROI-head proposal matcher (the first stage's for Cascade R-CNN)."""
    heads = build_roi_heads(cfg, layout.output_shape)
    if hasattr(heads, "proposal_matchers"):
        return heads.proposal_matchers[0]
    return heads.proposal_matcher


#: the assignment stages :func:`stage_statistics` can count
STAGES = ("rpn", "roi")


def has_roi_heads(cfg: CfgNode) -> bool:
    """True for the two-stage architectures (detectron2's ``GeneralizedRCNN``), whose ROI heads label
    proposals; one-stage models (``SimilarityRetinaNet``) have none."""
    return cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"


def stage_statistics(
    cfg: CfgNode,
    records: Iterable[dict],
    similarities: Sequence[str],
    max_images: int = 0,
    stages: Sequence[str] = STAGES,
) -> Dict[str, Dict[str, BinCounts]]:
    """``{stage: {similarity: BinCounts}}`` over ``records`` (detectron2 dataset dicts), stage "rpn" (anchors
    labelled by the RPN matcher) and / or "roi" (stand-in proposals labelled by the ROI-head matcher; see the
    module docstring)."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown assignment stage(s) {unknown}; choose among {list(STAGES)}")
    if "roi" in stages and not has_roi_heads(cfg):
        raise ValueError(
            f"MODEL.META_ARCHITECTURE {cfg.MODEL.META_ARCHITECTURE!r} has no ROI heads: no 'roi' statistics"
        )
    layout = AnchorLayout(cfg)
    matchers = {}
    if "rpn" in stages:
        matchers["rpn"] = rpn_matcher(cfg)
    if "roi" in stages:
        matchers["roi"] = roi_matcher(cfg, layout)
    append_gt = bool(cfg.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT)
    functions = {kind: build_similarity(cfg, kind, "--similarities") for kind in similarities}
    counts = {stage: {kind: BinCounts() for kind in similarities} for stage in matchers}
    min_size, max_size = max(cfg.INPUT.MIN_SIZE_TRAIN), cfg.INPUT.MAX_SIZE_TRAIN
    for index, record in enumerate(records):
        if max_images and index >= max_images:
            break
        anns = [a for a in record.get("annotations", []) if not a.get("iscrowd", 0)]
        if not anns:
            continue
        h0, w0 = record["height"], record["width"]
        new_h, new_w = ResizeShortestEdge.get_output_shape(h0, w0, min_size, max_size)
        boxes = torch.tensor(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns], dtype=torch.float32
        )
        sizes = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0).sqrt()
        bins = torch.tensor([size_bin(float(s)) for s in sizes])
        boxes[:, 0::2] *= new_w / w0
        boxes[:, 1::2] *= new_h / h0
        gt = Boxes(boxes)
        anchors = layout.anchors(new_h, new_w)
        candidates = {"rpn": anchors}
        if "roi" in matchers:
            candidates["roi"] = roi_proposals(anchors, gt, new_h, new_w, append_gt)
        for stage, matcher in matchers.items():
            for kind, similarity in functions.items():
                matches, labels = matcher(similarity(gt, candidates[stage]))
                counts[stage][kind].add(bins, positives_per_gt(matches, labels, len(boxes)))
    return counts


def assignment_statistics(
    cfg: CfgNode, records: Iterable[dict], similarities: Sequence[str], max_images: int = 0
) -> Dict[str, BinCounts]:
    """``{similarity: BinCounts}`` over ``records`` (detectron2 dataset dicts) for the RPN assignment."""
    return stage_statistics(cfg, records, similarities, max_images, stages=("rpn",))["rpn"]


def format_table(counts: Dict[str, BinCounts], stage: str = "rpn", append_gt: bool = True) -> str:
    """One row per similarity: per size bin and for all GTs, 'covered %  (mean positives per GT)'; ``stage``
    ("rpn" or "roi") names the table and what a positive is; ``append_gt`` (ROI only) says whether the GT
    boxes were among the proposals."""
    if stage not in STAGES:
        raise ValueError(f"unknown assignment stage {stage!r}; choose among {list(STAGES)}")
    labels = [label for label, _, _ in SIZE_BINS] + ["all"]
    header = f"{stage.upper() + ' similarity':<16}" + "".join(f"{label:>22}" for label in labels)
    lines = [header, "-" * len(header)]
    for kind, c in counts.items():
        cells = []
        for gts, covered, positives in list(zip(c.gts, c.covered, c.positives)) + [c.all()]:
            cells.append(
                f"{'n/a':>22}"
                if gts == 0
                else f"{100.0 * covered / gts:9.1f}% ({positives / gts:5.2f}/GT)".rjust(22)
            )
        lines.append(f"{kind:<16}" + "".join(cells))
    first = next(iter(counts.values()))
    lines.append(
        "GTs per bin: "
        + ", ".join(f"{label} {n}" for (label, _, _), n in zip(SIZE_BINS, first.gts))
        + (
            "; cell = share of GTs with >= 1 positive anchor (mean positive anchors per GT), before sampling"
            if stage == "rpn"
            else "; cell = share of GTs with >= 1 positive proposal (mean positive proposals per GT), before "
            "sampling; proposals = clipped anchors" + (" + GT boxes" if append_gt else "")
        )
    )
    return "\n".join(lines)


def _training_records(cfg: CfgNode) -> Iterable[dict]:
    return (r for name in cfg.DATASETS.TRAIN for r in DatasetCatalog.get(name))


def statistics_for_cfg(
    cfg: CfgNode, similarities: Sequence[str], max_images: int = 0
) -> Dict[str, BinCounts]:
    """:func:`assignment_statistics` (RPN) over the config's training datasets (registered beforehand)."""
    return assignment_statistics(cfg, _training_records(cfg), similarities, max_images)


def stage_statistics_for_cfg(
    cfg: CfgNode, similarities: Sequence[str], max_images: int = 0, stages: Sequence[str] = STAGES
) -> Dict[str, Dict[str, BinCounts]]:
    """:func:`stage_statistics` over the config's training datasets (registered beforehand)."""
    return stage_statistics(cfg, _training_records(cfg), similarities, max_images, stages)
