"""Label-assignment statistics: size bins, hand-made cases, agreement with the model's own RPN labelling, the
ROI-head statistics and the CLI."""

import importlib.util
import os

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.modeling.matcher import Matcher
from detectron2.structures import Boxes, BoxMode, pairwise_iou

from simd.assignment_stats import (
    AnchorLayout,
    BinCounts,
    assignment_statistics,
    format_table,
    positives_per_gt,
    roi_matcher,
    roi_proposals,
    size_bin,
    stage_statistics,
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


def test_roi_matcher_is_the_models_own(small_cfg):
    matcher = roi_matcher(small_cfg, AnchorLayout(small_cfg))
    assert type(matcher) is Matcher
    assert matcher.thresholds[1:-1] == [0.5] and matcher.labels == [0, 1]
    assert not matcher.allow_low_quality_matches


def test_roi_proposals_clip_drop_empty_and_append_gt():
    anchors = Boxes(
        torch.tensor([[-4.0, -4.0, 4.0, 4.0], [120.0, 0.0, 140.0, 8.0], [130.0, 0.0, 140.0, 8.0]])
    )
    gt = Boxes(torch.tensor([[10.0, 10.0, 20.0, 20.0]]))
    without = roi_proposals(anchors, gt, 128, 128, append_gt=False).tensor
    # the third anchor lies outside the 128 px wide image: clipped to zero width, dropped
    assert without.tolist() == [[0.0, 0.0, 4.0, 4.0], [120.0, 0.0, 128.0, 8.0]]
    with_gt = roi_proposals(anchors, gt, 128, 128, append_gt=True).tensor
    assert with_gt.tolist() == without.tolist() + [[10.0, 10.0, 20.0, 20.0]]


def test_roi_positives_of_a_hand_made_image():
    """Three GTs (sizes 10, 40, 4 px) and five anchors-as-proposals, ROI threshold 0.5 (IoU):
    A [0,0,10,10] has the proposals [0,0,10,10] (IoU 1) and [0,0,10,12] (100/120 = 0.83), not [0,0,10,25]
    (100/250 = 0.4); B [50,50,90,90] has [50,50,90,80] (1200/1600 = 0.75); C [200,200,204,204] has none."""
    gt = Boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 90.0, 90.0], [200.0, 200.0, 204.0, 204.0]]))
    anchors = Boxes(torch.tensor([
        [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 12.0], [0.0, 0.0, 10.0, 25.0],
        [50.0, 50.0, 90.0, 80.0], [100.0, 100.0, 110.0, 110.0],
    ]))
    matcher = Matcher([0.5], [0, 1], allow_low_quality_matches=False)
    bins = torch.tensor([size_bin(10.0), size_bin(40.0), size_bin(4.0)])
    expected = {False: [2, 1, 0], True: [3, 2, 1]}  # appended GT: each GT gains its own box
    for append_gt, per_gt in expected.items():
        proposals = roi_proposals(anchors, gt, 256, 256, append_gt)
        matches, labels = matcher(pairwise_iou(gt, proposals))
        positives = positives_per_gt(matches, labels, len(gt))
        assert positives.tolist() == per_gt
        counts = BinCounts()
        counts.add(bins, positives)
        # bins: very tiny (C), tiny (A), small (none), medium (B)
        assert counts.gts == [1, 1, 0, 1]
        assert counts.covered == ([0, 1, 0, 1] if not append_gt else [1, 1, 0, 1])
        assert counts.positives == [per_gt[2], per_gt[0], 0, per_gt[1]]


def test_appended_gt_adds_exactly_one_positive_per_isolated_gt(small_cfg):
    """On a real record: every GT box that no other GT overlaps adds exactly one ROI positive (its own box,
    quality 1, matched to itself); the RPN counts do not depend on PROPOSAL_APPEND_GT."""
    record = DatasetCatalog.get(small_cfg.DATASETS.TRAIN[0])[0]
    boxes = torch.tensor(
        [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in record["annotations"]
         if not a.get("iscrowd", 0)]
    )
    overlap = pairwise_iou(Boxes(boxes), Boxes(boxes))
    assert bool((overlap - torch.eye(len(boxes)) == 0).all()), "the test needs non-overlapping GTs"
    results = {}
    for append_gt in (False, True):
        cfg = small_cfg.clone()
        cfg.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT = append_gt
        results[append_gt] = stage_statistics(cfg, [record], ["iou"])
    without, with_gt = results[False]["roi"]["iou"], results[True]["roi"]["iou"]
    assert [b - a for a, b in zip(without.positives, with_gt.positives)] == with_gt.gts
    assert with_gt.covered == with_gt.gts
    assert results[False]["rpn"]["iou"] == results[True]["rpn"]["iou"]
    with pytest.raises(ValueError, match="unknown assignment stage"):
        stage_statistics(small_cfg, [record], ["iou"], stages=("rcnn",))
    one_stage = small_cfg.clone()
    one_stage.MODEL.META_ARCHITECTURE = "SimilarityRetinaNet"
    with pytest.raises(ValueError, match="has no ROI heads"):
        stage_statistics(one_stage, [record], ["iou"])


def test_cli_prints_rpn_and_roi_tables(small_cfg, capsys):
    path = os.path.join(ROOT, "projects", "SimD", "assignment_stats.py")
    spec = importlib.util.spec_from_file_location("simd_assignment_stats_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = os.path.join(ROOT, "projects", "SimD", "configs", "synthetic", "faster_rcnn_R18_FPN_iou.yaml")
    opts = [
        "DATASETS.TRAIN", "('simdtest_tiny_train',)", "INPUT.MIN_SIZE_TRAIN", "(128,)",
        "INPUT.MAX_SIZE_TRAIN", "128", "MODEL.SIMD.M", "4.4", "MODEL.SIMD.N", "4.4",
        "OUTPUT_DIR", small_cfg.OUTPUT_DIR,
    ]
    module.main(["--config-file", config, "--similarities", "iou", "simd", "--max-images", "2"] + opts)
    out = capsys.readouterr().out
    assert "RPN label assignment" in out and "ROI label assignment" in out
    assert out.index("RPN similarity") < out.index("ROI similarity")
    for header in ("RPN similarity", "ROI similarity"):
        table = out[out.index(header):].splitlines()
        assert table[2].startswith("iou") and table[3].startswith("simd")
    assert "proposals = clipped anchors + GT boxes" in out
