"""Config values checked when the config is built (before any data or model): one test per rule."""

import os

import pytest

from shared.engine import build_cfg
from shared.engine.validation import ConfigValueError
from simd.config import add_simd_config

BASE = os.path.join(
    os.path.dirname(__file__), "..", "..", "projects", "SimD", "configs", "Base-SimD-RCNN-FPN.yaml"
)


def _build(*opts):
    return build_cfg(add_simd_config, BASE, list(opts))


def test_the_shipped_base_config_passes():
    cfg = _build()
    assert cfg.MODEL.RPN.SIM_NMS_THRESH == 0.7


@pytest.mark.parametrize(
    "key,value",
    [
        # similarity names (one function, simd.similarity.similarity_kind, validates them all)
        ("MODEL.RPN.SIMILARITY", "siou"),
        ("MODEL.ROI_HEADS.SIMILARITY", "SimD"),
        ("MODEL.RETINANET.SIMILARITY", "wasserstein"),
        ("MODEL.RPN.NMS_SIMILARITY", "soft"),
        # NMS kernels exist for iou/diou/nwd/dotd/simd only
        ("MODEL.ROI_HEADS.NMS_SIMILARITY", "giou"),
        ("MODEL.RETINANET.NMS_SIMILARITY", "ciou"),
        # matcher semantics
        ("MODEL.RPN.LOW_QUALITY_MODE", "mmdetection"),
        ("MODEL.RETINANET.LOW_QUALITY_MODE", "d2"),
        # thresholds of similarities in [0, 1]
        ("MODEL.RPN.SIM_NMS_THRESH", "2.0"),
        ("MODEL.RPN.SIM_NMS_THRESH", "-0.1"),
        ("MODEL.ROI_HEADS.SIM_NMS_THRESH_TEST", "1.5"),
        ("MODEL.RETINANET.SIM_NMS_THRESH_TEST", "-1.0"),
        ("MODEL.RPN.MIN_POS_SIM", "1.3"),
        ("MODEL.RETINANET.MIN_POS_SIM", "-0.2"),
        ("MODEL.RPN.IOU_THRESHOLDS", "[0.3, 1.7]"),
        ("MODEL.ROI_HEADS.IOU_THRESHOLDS", "[-0.5]"),
        ("MODEL.RETINANET.IOU_THRESHOLDS", "[0.4, 5.0]"),
        # SimD parameters
        ("MODEL.SIMD.NORM_MODE", "times"),
        ("MODEL.SIMD.EPS", "0.0"),
        ("MODEL.SIMD.M", "0.0"),
        ("MODEL.SIMD.N", "-2.0"),
        ("MODEL.SIMD.ESTIMATE_MAX_IMAGES", "-5"),
        ("MODEL.NWD.CONSTANT", "0.0"),
        ("MODEL.DOTD.CONSTANT", "-12.7"),
        # evaluation protocol (a typo used to surface only after training)
        ("TEST.SIMD_EVAL.PROTOCOL", "aitd"),
    ],
)
def test_bad_value_is_refused_naming_its_key(key, value):
    with pytest.raises(ConfigValueError) as info:
        _build(key, value)
    assert info.value.key == key
    assert str(info.value).startswith(key)


def test_m_n_unset_is_allowed_at_build_time():
    # -1 means "estimate or give later"; the model build names the missing keys (test_simd_similarity)
    cfg = _build("MODEL.SIMD.M", "-1.0", "MODEL.SIMD.N", "-1.0")
    assert cfg.MODEL.SIMD.M == -1
