"""Config -> similarity: SimD reference values, IoU identity, unit-interval mapping, bad config."""

import os
import math

import pytest
import torch
from detectron2.structures import Boxes, pairwise_iou

from shared.engine import build_cfg
from shared.engine.validation import ConfigValueError
from simd.config import add_simd_config
from simd.nms import build_batched_nms
from simd.similarity import build_similarity, checked_quality

BASE = os.path.join(
    os.path.dirname(__file__), "..", "..", "projects", "SimD", "configs", "Base-SimD-RCNN-FPN.yaml"
)


def _cxcywh(*rows):
    t = torch.tensor(rows, dtype=torch.float64)
    return Boxes(
        torch.stack(
            [t[:, 0] - t[:, 2] / 2, t[:, 1] - t[:, 3] / 2, t[:, 0] + t[:, 2] / 2, t[:, 1] + t[:, 3] / 2],
            dim=1,
        )
    )


REFERENCE_VALUES = [  # by hand from the formula, m = 6.13, n = 4.59: e.g. exp(-6.13 * 2 / 64) = 0.8257
    ((0, 0, 32, 32), (2, 0, 32, 32), 0.8257),
    ((0, 0, 32, 32), (4, 0, 32, 32), 0.6817),
    ((0, 0, 32, 32), (0, 2, 32, 32), 0.8664),
    ((0, 0, 30, 30), (0, 0, 32, 32), 0.7811),
    ((0, 0, 24, 24), (0, 0, 32, 32), 0.3349),
    ((0, 0, 8, 8), (0, 0, 32, 32), 0.0101),
]


def test_simd_from_config_matches_hand_computed_values():
    cfg = build_cfg(add_simd_config, BASE, ["MODEL.SIMD.M", "6.13", "MODEL.SIMD.N", "4.59"])
    similarity = build_similarity(cfg, "simd")
    for gt, anchor, expected in REFERENCE_VALUES:
        value = similarity(_cxcywh(gt), _cxcywh(anchor))
        assert value.shape == (1, 1)
        assert float(value) == pytest.approx(expected, abs=1e-4)


def test_simd_hand_computed_divide_mode():
    cfg = build_cfg(
        add_simd_config,
        BASE,
        ["MODEL.SIMD.M", "2.0", "MODEL.SIMD.N", "4.0", "MODEL.SIMD.NORM_MODE", "divide"],
    )
    value = float(build_similarity(cfg, "simd")(_cxcywh((0, 0, 10, 10)), _cxcywh((4, 0, 10, 10))))
    # loc = (4 / 20) / 2 = 0.1, shape = 0
    assert value == pytest.approx(math.exp(-0.1), rel=1e-5)


def test_iou_is_detectron2_pairwise_iou():
    cfg = build_cfg(add_simd_config, BASE)
    a, b = torch.rand(5, 2) * 50, torch.rand(7, 2) * 50
    a = Boxes(torch.cat([a, a + 10], 1))
    b = Boxes(torch.cat([b, b + 6], 1))
    assert torch.equal(build_similarity(cfg, "iou")(a, b), pairwise_iou(a, b))


@pytest.mark.parametrize("kind", ["giou", "diou", "ciou", "nwd", "dotd"])
def test_matching_similarities_are_in_unit_interval(kind):
    cfg = build_cfg(add_simd_config, BASE)
    gt = _cxcywh((10, 10, 4, 4), (50, 50, 20, 10))
    anchors = _cxcywh((10, 10, 4, 4), (200, 200, 8, 8), (52, 49, 16, 16))
    q = build_similarity(cfg, kind)(gt, anchors)
    assert q.shape == (2, 3)
    assert bool((q >= 0).all() and (q <= 1 + 1e-6).all())
    assert float(q[0, 0]) == pytest.approx(1.0, abs=1e-3)  # identical boxes (NWD / DotD carry an eps)


def test_unknown_similarity_name_names_the_key():
    cfg = build_cfg(add_simd_config, BASE)
    with pytest.raises(ValueError, match="MODEL.RPN.SIMILARITY='siou'"):
        build_similarity(cfg, "siou", "MODEL.RPN.SIMILARITY")
    with pytest.raises(KeyError, match="MODEL.RPN.NMS_SIMILARITY"):
        build_batched_nms(cfg, "giou", 0.7, 0.7, "MODEL.RPN.NMS_SIMILARITY")  # no GIoU NMS kernel


def test_simd_without_normalisers_is_a_clear_error():
    with pytest.raises(ValueError, match="MODEL.SIMD.M / MODEL.SIMD.N are not set"):
        build_similarity(build_cfg(add_simd_config, BASE), "simd")
    with pytest.raises(ConfigValueError, match="MODEL.SIMD.M=0.0"):
        build_similarity(
            build_cfg(add_simd_config, BASE, ["MODEL.SIMD.M", "0.0", "MODEL.SIMD.N", "1.0"]), "simd"
        )


def test_nan_boxes_raise_instead_of_silent_nan():
    cfg = build_cfg(add_simd_config, BASE, ["MODEL.SIMD.M", "6.13", "MODEL.SIMD.N", "4.59"])
    gt = Boxes(torch.tensor([[0.0, 0.0, float("nan"), 4.0]]))
    with pytest.raises(FloatingPointError, match="1 of the ground-truth boxes contain NaN"):
        checked_quality(build_similarity(cfg, "simd"), gt, _cxcywh((1, 1, 2, 2)), "test")


def test_similarity_nms_suppresses_by_simd_and_iou_path_is_torchvision():
    cfg = build_cfg(add_simd_config, BASE, ["MODEL.SIMD.M", "6.13", "MODEL.SIMD.N", "4.59"])
    boxes = _cxcywh((10, 10, 4, 4), (10.2, 10, 4, 4), (30, 30, 4, 4)).tensor.float()
    scores = torch.tensor([0.9, 0.8, 0.7])
    groups = torch.zeros(3, dtype=torch.int64)
    # SimD of the first two is exp(-6.13 * 0.2 / 8) ~ 0.86 > 0.5: suppressed
    assert build_batched_nms(cfg, "simd", 0.5, 0.5)(boxes, scores, groups).tolist() == [0, 2]
    # IoU of the first two is 0.905 (> 0.5): suppressed too; at 0.95 kept
    assert build_batched_nms(cfg, "iou", 0.95, 0.0)(boxes, scores, groups).tolist() == [0, 1, 2]
