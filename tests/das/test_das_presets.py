"""Provenance: every DAS preset equals the official run it reproduces, key by key.

The official values and their sources (official script and line) are in ``das/official_runs.py``; a preset
that drifts from them, or sets a key that has neither an official source nor an "ours" reason, fails here.
"""
import glob
import os

import pytest

import das  # noqa: F401
from das.config import add_das_config
from das.official_runs import (ADDER_DEFAULTS, OURS, RUNS, WEIGHTS_KEYS, markdown_table, official_config,
                               parse_flags)
from detectron2.config import get_cfg

from shared.engine import build_cfg
from shared.engine.provenance import (ProjectTables, assert_rows, diff, keys_set_by_yaml, ours_without_reason,
                                      undetected_mutations)

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "DAS", "configs")
PRESETS = sorted(os.path.relpath(p, CONFIG_DIR) for p in glob.glob(os.path.join(CONFIG_DIR, "*", "*.yaml"))
                 if not os.path.basename(p).startswith("Base-"))  # Base-*.yaml: shared by the presets
#: files that are not presets of an official run
NOT_PRESETS = {"Synthetic/triplet_distance.yaml": "the CPU demo (make demo-das)"}
README = os.path.join(CONFIG_DIR, "..", "README.md")


def test_every_preset_has_an_official_run():
    presets = set(PRESETS) - set(NOT_PRESETS)
    assert presets == set(RUNS), "a preset without an official run (or a run without a preset)"
    assert len(RUNS) == 28  # 3 datasets x (7 Table-2 losses + 2 Table-1 runs) + In-Shop


@pytest.mark.parametrize("preset", sorted(RUNS))
def test_preset_equals_the_official_run(preset):
    source, flags = RUNS[preset]
    cfg = build_cfg(add_das_config, os.path.join(CONFIG_DIR, preset))
    rows = [(key, value, where) for key, (value, where) in official_config(flags).items()]
    assert_rows(cfg, rows, f"{preset} ({source})", strict_types=False)


@pytest.mark.parametrize("preset", ["CUB200/triplet_distance.yaml", "SOP/margin_distance.yaml",
                                    "CARS196/multi_similarity_bninception512_table1.yaml"])
def test_changing_any_listed_value_fails_the_check(preset):
    """Each official value (MODEL.DAS.MTS.ENABLED, a config-adder default, included) is guarded."""
    cfg = build_cfg(add_das_config, os.path.join(CONFIG_DIR, preset))
    rows = [(key, value, where) for key, (value, where) in official_config(RUNS[preset][1]).items()]
    assert "MODEL.DAS.MTS.ENABLED" in [key for key, _, _ in rows]
    assert not undetected_mutations(lambda c: diff(c, rows, strict_types=False), cfg,
                                    [key for key, _, _ in rows])


@pytest.mark.parametrize("preset", sorted(RUNS))
def test_every_value_a_preset_sets_has_a_source(preset):
    official = set(official_config(RUNS[preset][1]))
    unexplained = keys_set_by_yaml(os.path.join(CONFIG_DIR, preset)) - official - set(OURS)
    assert not unexplained, (
        f"{preset} sets {sorted(unexplained)} with no official source and no 'ours' reason"
    )


def test_the_issue_14_values():
    """The values that had drifted: SOP margin MTS beta, floor(N / batch) iterations, BN-Inception runs."""
    def cfg(p):
        return build_cfg(add_das_config, os.path.join(CONFIG_DIR, p))

    assert (
        cfg("SOP/margin_distance.yaml").MODEL.DAS.MTS.SCALE == 0.01
    )  # table2.sh:112 passes no --das_mts_scale
    assert cfg("CARS196/triplet_distance.yaml").SOLVER.MAX_ITER == 300 * (8054 // 112) == 21300
    assert cfg("CUB200/multi_similarity_r512_table1.yaml").SOLVER.MAX_ITER == 300 * (5864 // 180) == 9600
    for data in ("CUB200", "CARS196", "SOP"):
        c = cfg(f"{data}/multi_similarity_bninception512_table1.yaml")
        assert (c.MODEL.EMBEDDING.BACKBONE, c.MODEL.EMBEDDING.DIM, c.INPUT.FORMAT) == (
            "bninception",
            512,
            "BGR",
        )


def test_flag_parser_is_argparse_like():
    o = parse_flags("--bs 112 --bs 180 --tau 200 250 --detach --das_mts_scale 0.1")
    assert o["bs"] == 180 and o["tau"] == (200, 250) and o["detach"] and not o["aux_loss"]
    assert (
        o["das_mts_scale"] == 0.1 and o["das_dfs_scale_left"] == 0.5
    )  # default of scripts/parameters.py:283


def test_readme_shows_the_current_table():
    with open(README) as f:
        text = f.read()
    assert markdown_table() in text, "README preset table is stale: run python -m das.official_runs"


def test_adder_defaults_match_their_table():
    """Every key add_das_config adds, with its source (MODEL.DAS.MTS.ENABLED among them); changing any default
    fails the check."""
    rows = [(key, value, source) for key, (value, source) in ADDER_DEFAULTS.items()]
    tables = ProjectTables(get_cfg, add_das_config, {}, rows, WEIGHTS_KEYS)
    assert not tables.adder_problems(tables.defaults())
    assert not ours_without_reason(rows)
    assert not undetected_mutations(tables.adder_problems, tables.defaults(), list(ADDER_DEFAULTS))

