"""Label-assignment statistics: size bins, hand-made cases, agreement with the model's own RPN labelling."""

import os

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.structures import Boxes, BoxMode

from simd.assignment_stats import (
    AnchorLayout,
    assignment_statistics,
    format_table,
    positives_per_gt,
    size_bin,
)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_size_bins_are_aitods():
    assert [size_bin(s) for s in (0.0, 7.99, 8.0, 15.99, 16.0, 31.99, 32.0, 500.0)] == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
    ]
    with pytest.raises(ValueError):
        size_bin(float("nan"))


def test_exact_anchor_is_covered_and_a_2px_box_is_not_with_iou(small_cfg):
    anchors = AnchorLayout(small_cfg).anchors(128, 128).tensor
    inside = anchors[
        (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] <= 128) & (anchors[:, 3] <= 128)
    ]
    x0, y0, x1, y1 = inside[len(inside) // 2].tolist()
    record = {
        "height": 128,
        "width": 128,
        "annotations": [
            {"bbox": [x0, y0, x1 - x0, y1 - y0], "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": 0},
            {
                "bbox": [60.0, 60.0, 2.0, 2.0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "iscrowd": 0,
            },  # IoU <= 4/64 < min_pos
            {
                "bbox": [10.0, 10.0, 30.0, 30.0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "iscrowd": 1,
            },  # crowd: left out
        ],
    }
    counts = assignment_statistics(small_cfg, [record], ["iou"])["iou"]
    assert sum(counts.gts) == 2 and counts.gts[0] == 1
    assert counts.covered[0] == 0 and sum(counts.covered) == 1 and counts.positives[size_bin(x1 - x0)] >= 1
    assert "n/a" in format_table({"iou": counts})


@pytest.mark.parametrize("kind", ["iou", "simd"])
def test_counts_equal_the_models_own_rpn_labelling(small_cfg, kind):
    cfg = small_cfg.clone()
    cfg.MODEL.RPN.SIMILARITY = kind
    cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N = 4.4, 4.4
    record = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])[0]
    ours = assignment_statistics(cfg, [record], [kind])[kind]
    rpn = build_model(cfg).proposal_generator
    boxes = torch.tensor(
        [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in record["annotations"]],
        dtype=torch.float32,
    )
    features = [torch.zeros(1, 1, 128 // s, 128 // s) for s in (4, 8, 16, 32, 64)]
    anchors = Boxes.cat(rpn.anchor_generator(features))
    matches, labels = rpn.anchor_matcher(rpn.similarity(Boxes(boxes), anchors))
    per_gt = positives_per_gt(matches, labels, len(boxes))
    assert sum(ours.positives) == int(per_gt.sum()) and sum(ours.covered) == int((per_gt > 0).sum())
