"""Every SimD preset equals its official run key by key (the table with sources: simd_provenance.py), every
default of add_simd_config has a row, and changing a listed value makes these checks fail."""
from pathlib import Path

import pytest
from detectron2.config import get_cfg

import simd  # noqa: F401  (compat layer first)
from shared.engine.provenance import (assert_rows, diff, load_module_beside, ours_without_reason,
                                      undetected_mutations, unlisted_changes)
from simd.config import add_simd_config

TABLE = load_module_beside(__file__, "simd_provenance.py")
CONFIGS = Path(__file__).resolve().parents[2] / "projects" / "SimD" / "configs"


def _defaults(with_simd: bool = True):
    cfg = get_cfg()
    if with_simd:
        add_simd_config(cfg)
    return cfg


def _resolved(preset: str):
    cfg = _defaults()
    cfg.merge_from_file(str(CONFIGS / preset))
    return cfg


def _problems(cfg, rows, defaults):
    """Everything the provenance test objects to: drifted rows and changed keys without a row."""
    return diff(cfg, rows) + [f"{key}: changed without a row"
                              for key in unlisted_changes(cfg, defaults, [k for k, _, _ in rows])]


def test_every_preset_is_tabled():
    on_disk = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml") if not p.name.startswith("Base-")}
    assert on_disk == set(TABLE.PRESETS) | set(TABLE.OURS_PRESETS)


@pytest.mark.parametrize("preset", sorted(TABLE.PRESETS))
def test_preset_matches_its_table(preset):
    cfg, rows = _resolved(preset), TABLE.PRESETS[preset]
    assert_rows(cfg, rows, preset)
    unlisted = unlisted_changes(cfg, _defaults(), [k for k, _, _ in rows])
    assert not unlisted, f"{preset} sets keys without a row: {unlisted}"
    assert not ours_without_reason(rows), preset


def test_adder_defaults_match_their_table():
    cfg, rows = _defaults(), TABLE.ADDER_DEFAULTS
    assert_rows(cfg, rows, "add_simd_config")
    # every key the adder adds (or changes) has a row
    assert not unlisted_changes(cfg, _defaults(with_simd=False), [k for k, _, _ in rows])


@pytest.mark.parametrize("preset", ["visdrone/faster_rcnn_R_50_FPN_1x_simd.yaml",
                                    "aitod/faster_rcnn_R_50_FPN_1x_iou.yaml",
                                    "sodad/faster_rcnn_R_50_FPN_1x_simd.yaml"])
def test_changing_any_listed_value_fails_the_check(preset):
    """The issue's examples (post-NMS proposals, m, the AI-TOD lr, the splits) and every other row."""
    cfg, rows = _resolved(preset), TABLE.PRESETS[preset]
    assert not _problems(cfg, rows, _defaults())
    keys = [k for k, _, _ in rows]
    assert {"MODEL.RPN.POST_NMS_TOPK_TRAIN", "SOLVER.BASE_LR", "DATASETS.TEST"} <= set(keys)
    assert not undetected_mutations(lambda c: _problems(c, rows, _defaults()), cfg, keys)


def test_changing_an_adder_default_fails_the_check():
    rows = TABLE.ADDER_DEFAULTS
    keys = [k for k, _, _ in rows]
    assert not undetected_mutations(lambda c: diff(c, rows), _defaults(), keys)


def test_an_unlisted_change_is_caught():
    cfg, rows = _resolved("aitod/faster_rcnn_R_50_FPN_1x_iou.yaml"), TABLE.PRESETS[
        "aitod/faster_rcnn_R_50_FPN_1x_iou.yaml"]
    cfg.MODEL.RPN.HEAD_NAME = "SomeOtherHead"
    assert any("MODEL.RPN.HEAD_NAME" in p for p in _problems(cfg, rows, _defaults()))
