"""Provenance: every AdaSP preset resolves, key by key, to the official run
(the table is tests/adasp/adasp_official_presets.py).

For each preset the expected config is FastReID's defaults + ``add_adasp_config``, then the official file's
``_BASE_`` chain from the root down, then the keys listed as ours (with the reason). The whole resolved
config is compared: a key the official run does not set must keep its default, so an unofficial value
cannot slip in.
"""
import posixpath
from pathlib import Path

import pytest
from fastreid.config import get_cfg

import adasp  # noqa: F401
from adasp.config import add_adasp_config
from shared.engine import build_cfg
from shared.engine.checkpoint import add_checkpoint_config
from shared.engine.provenance import flatten, load_module_beside, same, undetected_mutations

CONFIG_DIR = Path(__file__).resolve().parents[2] / "projects" / "AdaSP" / "configs"


_TABLE = load_module_beside(__file__, "adasp_official_presets.py")
NOT_IN_FASTREID, OFFICIAL_FILES, OURS = _TABLE.NOT_IN_FASTREID, _TABLE.OFFICIAL_FILES, _TABLE.OURS
ADDER_DEFAULTS = _TABLE.ADDER_DEFAULTS
OURS_PER_PRESET, PRESETS = _TABLE.OURS_PER_PRESET, _TABLE.PRESETS


def _official_chain(official_file):
    """[(file, keys)] from the root base down to ``official_file``."""
    chain = []
    path = official_file
    while path is not None:
        keys = OFFICIAL_FILES[path]
        chain.append((path, keys))
        base = keys.get("_BASE_")
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), base[0])) if base else None
    return chain[::-1]


def expected_config(preset):
    """{key: (value, source)} of the official run, with our documented deviations applied."""
    defaults = get_cfg()
    add_checkpoint_config(defaults)  # shared keys build_cfg adds for every framework (MODEL.WEIGHTS_REINIT)
    expected = {key: (value, "default") for key, value in flatten(defaults).items()}
    expected.update(ADDER_DEFAULTS)  # the adder's keys from the table, not from add_adasp_config
    for path, keys in _official_chain(PRESETS[preset]):
        for key, (value, line) in keys.items():
            if key == "_BASE_" or key in NOT_IN_FASTREID:
                continue
            assert key in expected, f"official key {key} ({path}:{line}) is neither a config key nor listed"
            expected[key] = (value, f"{path}:{line}")
    for key, (ours, why) in OURS.items():
        expected[key] = (ours(preset, expected[key][0]), f"ours: {why}")
    for key, (value, why) in OURS_PER_PRESET.get(preset, {}).items():
        expected[key] = (value, why)
    return expected


def test_every_preset_is_covered():
    on_disk = {str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yml")
               if not p.name.startswith("Base-") and p.parent.name != "Synthetic"}
    assert on_disk == set(PRESETS)
    adasp_presets = {path for path in OFFICIAL_FILES if "adasp" in path or "sp-h" in path or "sp-lh" in path}
    assert adasp_presets == set(PRESETS.values())  # every official AdaSP / SP-H / SP-LH run has a preset


def _resolved(preset):
    """build_cfg's config; MODEL.DEVICE / AMP (resolved for this machine by build_cfg) as the file sets
    them."""
    resolved = build_cfg(add_adasp_config, str(CONFIG_DIR / preset), ["MODEL.DEVICE", "auto"],
                         framework="fastreid")
    raw = get_cfg()
    add_adasp_config(raw)
    raw.merge_from_file(str(CONFIG_DIR / preset))
    resolved.defrost()
    resolved.MODEL.DEVICE, resolved.SOLVER.AMP.ENABLED = raw.MODEL.DEVICE, raw.SOLVER.AMP.ENABLED
    return resolved


def _wrong(cfg, preset):
    """One message per key whose value differs from the official run (or that either side lacks)."""
    actual, expected = flatten(cfg), expected_config(preset)
    missing = [f"{key}: only in one of ours / official" for key in sorted(set(actual) ^ set(expected))]
    return missing + [f"{key}: ours {actual[key]!r} != {value!r} ({source})"
                      for key, (value, source) in sorted(expected.items())
                      if key in actual and not same(actual[key], value, rel=0.0, strict_types=False)]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_equals_the_official_run_key_by_key(preset):
    wrong = _wrong(_resolved(preset), preset)
    assert not wrong, "\n".join(wrong)


def test_adder_defaults_are_the_table():
    """A changed default of add_adasp_config fails here (the expected configs take the table's values)."""
    cfg = get_cfg()
    add_adasp_config(cfg)
    actual = flatten(cfg)
    assert {key: actual[key] for key in ADDER_DEFAULTS} == {k: v for k, (v, _) in ADDER_DEFAULTS.items()}


@pytest.mark.parametrize("preset", ["Market1501/mgn_R50-ibn_adasp.yml",
                                    "VehicleID/bagtricks_R50-ibn_adasp.yml"])
def test_changing_any_official_or_default_value_fails_the_check(preset):
    """Every key of the official chain, every "ours" key and every adder default is guarded."""
    keys = [k for path, _ in _official_chain(PRESETS[preset]) for k in OFFICIAL_FILES[path]
            if k != "_BASE_" and k not in NOT_IN_FASTREID]
    keys += list(OURS) + list(ADDER_DEFAULTS)
    assert not undetected_mutations(lambda c: _wrong(c, preset), _resolved(preset), sorted(set(keys)))



def test_issue_values_are_pinned():
    """The fixes of the provenance review, each read from the resolved preset."""
    def cfg(name):
        return build_cfg(add_adasp_config, str(CONFIG_DIR / name), framework="fastreid")

    for name in ("Market1501/mgn_R50_ce_adasp.yml", "DukeMTMC/mgn_R50-ibn_ce_adasp.yml",
                 "MSMT17/mgn_R50-ibn_ce_adasp.yml", "VeRi/sbs_R50-ibn_ce_adasp.yml"):
        heads = cfg(name).MODEL.HEADS
        assert (heads.CLS_LAYER, heads.SCALE, heads.MARGIN) == ("Linear", 1, 0.0), name
    for name in ("VehicleID/bagtricks_R50-ibn_adasp.yml", "VehicleID/bagtricks_R50-ibn_ce_adasp.yml"):
        heads = cfg(name).MODEL.HEADS
        assert (heads.NECK_FEAT, heads.POOL_LAYER) == ("after", "GeneralizedMeanPooling"), name
    assert cfg("Market1501/mgn_R50_ce_adasp.yml").MODEL.BACKBONE.WITH_IBN is False
    for variant in ("sp-h", "sp-lh"):
        assert cfg(f"MSMT17/mgn_R50-ibn_{variant}.yml").MODEL.LOSSES.ADASP.TYPE == variant
