"""Label-assignment statistics: how many GTs of each size get a positive RPN anchor, and how many.

For every training image (resized as in training: ``ResizeShortestEdge(max(MIN_SIZE_TRAIN),
MAX_SIZE_TRAIN)``, no flip), the model's own anchor generator lays its anchors out on the padded image, the
configured similarity scores every (GT, anchor) pair and the configured RPN matcher
(``MODEL.RPN.IOU_THRESHOLDS``, ``LOW_QUALITY_MODE``, ``MIN_POS_SIM``, ``GT_MAX_ASSIGN_ALL``) labels the
anchors,
before sampling. Per GT size bin (AI-TOD's: very tiny < 8 px, tiny 8-16, small 16-32, medium >= 32, by
sqrt(w * h) of the annotation as the dataset defines its sizes) the table gives the share of GTs with at least
one positive anchor and the mean number of positive anchors per GT. Crowd / ignore boxes are left out.
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
from detectron2.modeling import build_anchor_generator, build_backbone
from detectron2.structures import Boxes, BoxMode

from simd.matcher import build_matcher
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


def assignment_statistics(
    cfg: CfgNode, records: Iterable[dict], similarities: Sequence[str], max_images: int = 0
) -> Dict[str, BinCounts]:
    """``{similarity: BinCounts}`` over ``records`` (detectron2 dataset dicts) for the RPN assignment."""
    layout = AnchorLayout(cfg)
    rpn = cfg.MODEL.RPN
    matcher = build_matcher(
        rpn.IOU_THRESHOLDS,
        rpn.IOU_LABELS,
        True,
        rpn.LOW_QUALITY_MODE,
        rpn.MIN_POS_SIM,
        rpn.GT_MAX_ASSIGN_ALL,
        "MODEL.RPN.LOW_QUALITY_MODE",
    )
    functions = {kind: build_similarity(cfg, kind, "--similarities") for kind in similarities}
    counts = {kind: BinCounts() for kind in similarities}
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
        anchors = layout.anchors(new_h, new_w)
        for kind, similarity in functions.items():
            matches, labels = matcher(similarity(Boxes(boxes), anchors))
            counts[kind].add(bins, positives_per_gt(matches, labels, len(boxes)))
    return counts


def format_table(counts: Dict[str, BinCounts]) -> str:
    """One row per similarity: per size bin and for all GTs, 'covered %  (mean positives per GT)'."""
    labels = [label for label, _, _ in SIZE_BINS] + ["all"]
    header = f"{'RPN similarity':<16}" + "".join(f"{label:>22}" for label in labels)
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
        + "; cell = share of GTs with >= 1 positive anchor (mean positive anchors per GT), before sampling"
    )
    return "\n".join(lines)


def statistics_for_cfg(
    cfg: CfgNode, similarities: Sequence[str], max_images: int = 0
) -> Dict[str, BinCounts]:
    """:func:`assignment_statistics` over the config's training datasets (registered beforehand)."""
    records = (r for name in cfg.DATASETS.TRAIN for r in DatasetCatalog.get(name))
    return assignment_statistics(cfg, records, similarities, max_images)
