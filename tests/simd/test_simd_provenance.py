"""Every SimD preset equals its official run key by key (the table with sources: simd_provenance.py), every
default of add_simd_config has a row, and changing a listed value makes these checks fail."""
from pathlib import Path

import pytest
from detectron2.config import get_cfg

import simd  # noqa: F401  (compat layer first)
from shared.engine.provenance import (ProjectTables, load_module_beside, ours_without_reason,
                                      undetected_mutations)
from simd.config import add_simd_config

TABLE = load_module_beside(__file__, "simd_provenance.py")
TABLES = ProjectTables(get_cfg, add_simd_config, TABLE.PRESETS, TABLE.ADDER_DEFAULTS, TABLE.WEIGHTS_KEYS)
CONFIGS = Path(__file__).resolve().parents[2] / "projects" / "SimD" / "configs"


def _resolved(preset: str):
    cfg = TABLES.defaults()
    cfg.merge_from_file(str(CONFIGS / preset))
    return cfg


def test_every_preset_is_tabled():
    on_disk = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml") if not p.name.startswith("Base-")}
    assert on_disk == set(TABLE.PRESETS) | set(TABLE.OURS_PRESETS)


@pytest.mark.parametrize("preset", sorted(TABLE.PRESETS))
def test_preset_matches_its_table(preset):
    assert not TABLES.preset_problems(_resolved(preset), preset)
    assert not ours_without_reason(TABLE.PRESETS[preset])


def test_adder_defaults_match_their_table():
    assert not TABLES.adder_problems(TABLES.defaults())
    assert not ours_without_reason(TABLE.ADDER_DEFAULTS)


@pytest.mark.parametrize("preset", ["visdrone/faster_rcnn_R_50_FPN_1x_simd.yaml",
                                    "aitod/faster_rcnn_R_50_FPN_1x_iou.yaml",
                                    "sodad/faster_rcnn_R_50_FPN_1x_simd.yaml"])
def test_changing_any_listed_value_fails_the_check(preset):
    """Post-NMS proposals, m, the AI-TOD lr, the splits (drifts once missed) and every other row."""
    keys = [key for key, _, _ in TABLE.PRESETS[preset]]
    assert {"MODEL.RPN.POST_NMS_TOPK_TRAIN", "SOLVER.BASE_LR", "DATASETS.TEST"} <= set(keys)
    escaped = undetected_mutations(lambda cfg: TABLES.preset_problems(cfg, preset), _resolved(preset), keys)
    assert not escaped


def test_changing_an_adder_default_fails_the_check():
    keys = [key for key, _, _ in TABLE.ADDER_DEFAULTS]
    assert not undetected_mutations(TABLES.adder_problems, TABLES.defaults(), keys)


def test_an_unlisted_change_is_caught():
    preset = "aitod/faster_rcnn_R_50_FPN_1x_iou.yaml"
    cfg = _resolved(preset)
    cfg.MODEL.RPN.HEAD_NAME = "SomeOtherHead"
    assert any("MODEL.RPN.HEAD_NAME" in p for p in TABLES.preset_problems(cfg, preset))
