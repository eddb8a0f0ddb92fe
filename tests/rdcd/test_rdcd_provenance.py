"""Every RDCD DISC21 preset equals its official run key by key (the table with sources: rdcd_provenance.py),
every default of add_rdcd_config has a row, and changing a listed value makes these checks fail."""
from pathlib import Path

import pytest
from detectron2.config import get_cfg

import rdcd  # noqa: F401  (compat layer first)
from rdcd.config import add_rdcd_config
from rdcd.datasets import get_copy_detection_dataset
from shared.engine.provenance import (ProjectTables, load_module_beside, ours_without_reason,
                                      undetected_mutations)

TABLE = load_module_beside(__file__, "rdcd_provenance.py")
TABLES = ProjectTables(get_cfg, add_rdcd_config, TABLE.PRESETS, TABLE.ADDER_DEFAULTS, TABLE.WEIGHTS_KEYS)
CONFIGS = Path(__file__).resolve().parents[2] / "projects" / "RDCD" / "configs"


def _resolved(preset: str):
    cfg = TABLES.defaults()
    cfg.merge_from_file(str(CONFIGS / "DISC21" / preset))
    return cfg


def test_every_disc21_preset_is_tabled():
    assert {p.name for p in (CONFIGS / "DISC21").glob("*.yaml")} == set(TABLE.PRESETS)


@pytest.mark.parametrize("preset", sorted(TABLE.PRESETS))
def test_preset_matches_its_table(preset):
    assert not TABLES.preset_problems(_resolved(preset), preset)
    assert not ours_without_reason(TABLE.PRESETS[preset])


def test_adder_defaults_match_their_table():
    assert not TABLES.adder_problems(TABLES.defaults())
    assert not ours_without_reason(TABLE.ADDER_DEFAULTS)


@pytest.mark.parametrize("preset", ["rdcd_effb0_256.yaml", "rdcd_effb0_64_final_queries.yaml",
                                    "sscd_r50.yaml"])
def test_changing_any_listed_value_fails_the_check(preset):
    """The lr (a drift once missed) and every other row."""
    keys = [key for key, _, _ in TABLE.PRESETS[preset]]
    assert "SOLVER.BASE_LR" in keys
    escaped = undetected_mutations(lambda cfg: TABLES.preset_problems(cfg, preset), _resolved(preset), keys)
    assert not escaped


def test_changing_an_adder_default_fails_the_check():
    """The MoCo temperature (a drift once missed) and every other default of the adder."""
    keys = [key for key, _, _ in TABLE.ADDER_DEFAULTS]
    assert "MODEL.RDCD.MOCO.TEMP" in keys
    assert not undetected_mutations(TABLES.adder_problems, TABLES.defaults(), keys)


def test_both_readings_of_the_training_data(tmp_path, monkeypatch):
    """Released checkpoint: 1,000,000 // 256 = 3,906 it/epoch on images/train; train.sh: 50,000 // 256 = 195
    on images/final_queries. Warm-up 5 of 100 epochs from lr 0 in both."""
    checkpoint, train_sh = _resolved("rdcd_effb0_64.yaml"), _resolved("rdcd_effb0_64_final_queries.yaml")
    for cfg, per_epoch in ((checkpoint, 1_000_000 // 256), (train_sh, 50_000 // 256)):
        assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.WARMUP_ITERS) == (100 * per_epoch, 5 * per_epoch)
        assert cfg.SOLVER.WARMUP_FACTOR == 0.0 and cfg.MODEL.RDCD.DIM == 64
    for sub in ("images/references", "images/dev_queries", "images/train", "images/final_queries"):
        (tmp_path / "DISC21" / sub).mkdir(parents=True)
    (tmp_path / "DISC21" / "dev_ground_truth.csv").write_text("query_id,reference_id\n")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert get_copy_detection_dataset("disc21", checkpoint).train_dir.endswith("images/train")
    assert get_copy_detection_dataset("disc21_final_queries", train_sh).train_dir.endswith(
        "images/final_queries")
