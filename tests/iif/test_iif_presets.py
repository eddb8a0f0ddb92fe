"""Every IIF preset equals the official run, key by key (the table with sources: iif_provenance.py)."""
from pathlib import Path
from typing import Callable, Optional

import iif  # noqa: F401  (compat layer first; registers the IIF heads)
import pytest
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.layers import ShapeSpec

from iif.config import add_iif_config
from iif.modeling import IIFOutputLayers, NormedConv2d, NormedLinear
from shared.engine.provenance import (ProjectTables, assert_rows, load_module_beside, ours_without_reason,
                                      problems, undetected_mutations, unlisted_changes)

PROVENANCE = load_module_beside(__file__, "iif_provenance.py")
CLS_PRESETS, LVIS_PRESETS = PROVENANCE.CLS_PRESETS, PROVENANCE.LVIS_PRESETS
lvis_rows = PROVENANCE.lvis_rows
CONFIGS = Path(__file__).resolve().parents[2] / "projects" / "IIF" / "configs"
LVIS_DIR = CONFIGS / "LVIS-InstanceSegmentation"
MSRA_DIR = CONFIGS / "LVIS-InstanceSegmentation-MSRA"


def _resolved(path: Optional[Path] = None, add_config: Callable = add_iif_config) -> CfgNode:
    """detectron2 defaults + ``add_config``, merged with ``path`` when given (else the defaults)."""
    cfg = get_cfg()
    add_config(cfg)
    if path is not None:
        cfg.merge_from_file(str(path))
    return cfg


def test_every_lvis_preset_file_has_a_table_and_back():
    assert sorted(p.name for p in LVIS_DIR.glob("*.yaml")) == sorted(LVIS_PRESETS)
    assert sorted(p.name for p in MSRA_DIR.glob("*.yaml")) == sorted(LVIS_PRESETS)


@pytest.mark.parametrize("msra", [False, True], ids=["torchvision", "msra"])
@pytest.mark.parametrize("preset", sorted(LVIS_PRESETS))
def test_lvis_preset_matches_its_official_values(preset, msra):
    cfg = _resolved((MSRA_DIR if msra else LVIS_DIR) / preset)
    rows = lvis_rows(preset, msra)
    assert_rows(cfg, rows, preset)
    # drift the table does not know: a key the preset changes from the defaults must have a row
    unlisted = unlisted_changes(cfg, _resolved(), [key for key, _, _ in rows])
    assert not unlisted, f"{preset} sets keys without a source: {unlisted}"


def test_ours_rows_say_why():
    for preset in LVIS_PRESETS:
        for msra in (False, True):
            assert not ours_without_reason(lvis_rows(preset, msra)), preset


def test_rfs_schedule_is_longer_than_uniform_by_the_official_epoch_ratio():
    """RFS epochs are 7,674 iterations and uniform ones 6,213 in the official logs (+23.5 %)."""
    rfs = _resolved(LVIS_DIR / "mask_rcnn_R_50_FPN_iif_raw_rfs_1x.yaml").SOLVER
    uniform = _resolved(LVIS_DIR / "mask_rcnn_R_50_FPN_iif_raw_1x.yaml").SOLVER
    assert (rfs.MAX_ITER, uniform.MAX_ITER) == (92088, 74556)
    assert rfs.MAX_ITER / uniform.MAX_ITER == pytest.approx(7674 / 6213)
    assert rfs.STEPS == (61392, 84414) and uniform.STEPS == (49704, 68343)


def test_all_enhancements_preset_builds_cosine_box_and_mask_predictors():
    cfg = _resolved(LVIS_DIR / "mask_rcnn_R_50_FPN_iif_base10_obj_rfs_cos_norm_2x.yaml")
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_BOX_HEAD.IIF.ENABLED = False  # no LVIS json here; the predictor type is what is tested
    torch.manual_seed(0)
    head = IIFOutputLayers(cfg, ShapeSpec(channels=1024))
    assert isinstance(head.cls_score, NormedLinear) and head.cls_score.scale == 8.0
    # normal(std 0.01) init (official NormedLinear), not the linear IIF runs' constant 0.001
    assert head.cls_score.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(head.cls_score.bias == 0)
    from detectron2.modeling.roi_heads.mask_head import build_mask_head

    mask_head = build_mask_head(cfg, ShapeSpec(channels=256, height=14, width=14))
    assert isinstance(mask_head.predictor, NormedConv2d) and mask_head.predictor.scale == 20.0


def test_normed_conv2d_is_temperature_times_cosine():
    torch.manual_seed(0)
    conv = NormedConv2d(5, 3, kernel_size=1, scale=20.0)
    conv.bias.data = torch.tensor([0.5, -1.0, 2.0])
    x = torch.randn(2, 5, 4, 4)
    y = conv(x)
    feat = x.permute(0, 2, 3, 1).reshape(-1, 5)
    w = conv.weight.reshape(3, 5)
    eps = 1e-6
    cos = (feat / (feat.norm(dim=1, keepdim=True) + eps)) @ (w / (w.norm(dim=1, keepdim=True) + eps)).T
    expected = (20.0 * cos + conv.bias).reshape(2, 4, 4, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv(7.0 * x), y, rtol=1e-5, atol=1e-5)  # invariant to the feature scale
    assert (y - conv.bias.view(1, 3, 1, 1)).abs().max() <= 20.0 + 1e-4



def _is_stage1_checkpoint(value) -> bool:
    return isinstance(value, str) and value.endswith("/model_final.pth")


def _cls_resolved(path: Optional[Path] = None) -> CfgNode:
    from iif.classification import add_iif_cls_config

    return _resolved(path, add_iif_cls_config)


def test_every_preset_is_in_a_table():
    listed = {f"classification/{name}" for name in CLS_PRESETS} | set(PROVENANCE.SYNTHETIC_PRESETS)
    on_disk = {str(p.relative_to(CONFIGS)) for sub in ("classification", "synthetic")
               for p in (CONFIGS / sub).glob("*.yaml") if not p.name.startswith("Base-")}
    assert on_disk == listed


@pytest.mark.parametrize("preset", sorted(CLS_PRESETS))
def test_classification_preset_matches_its_official_values(preset):
    cfg = _cls_resolved(CONFIGS / "classification" / preset)
    rows = CLS_PRESETS[preset][1]
    # None: the first stage's checkpoint (its path is checked against stage 1's OUTPUT_DIR below)
    assert_rows(cfg, [(key, _is_stage1_checkpoint if value is None else value, source)
                      for key, value, source in rows], preset)
    unlisted = unlisted_changes(cfg, _cls_resolved(), [key for key, _, _ in rows])
    assert not unlisted, f"{preset} sets keys without a source: {unlisted}"


def test_decoupled_presets_start_from_their_first_stage_output():
    for preset in CLS_PRESETS:
        if preset.endswith("_decoupled.yaml"):
            stage2 = _cls_resolved(CONFIGS / "classification" / preset)
            stage1 = _cls_resolved(CONFIGS / "classification" / preset.replace("_decoupled", ""))
            assert stage2.MODEL.WEIGHTS == f"{stage1.OUTPUT_DIR}/model_final.pth"


def test_presets_md_is_the_table():
    """projects/IIF/PRESETS.md is generated from the provenance table; a stale copy fails."""
    assert (CONFIGS.parent / "PRESETS.md").read_text() == PROVENANCE.presets_markdown()


def _cls_config(cfg):
    from iif.classification import add_iif_cls_config

    add_iif_cls_config(cfg)


#: the adders' default tables (presets are checked above, preset by preset)
DETECTION = ProjectTables(get_cfg, add_iif_config, {}, PROVENANCE.ADDER_DEFAULTS)
CLASSIFICATION = ProjectTables(get_cfg, _cls_config, {}, PROVENANCE.CLS_ADDER_DEFAULTS)


@pytest.mark.parametrize("tables", [DETECTION, CLASSIFICATION], ids=["add_iif_config", "add_iif_cls_config"])
def test_adder_defaults_match_their_table(tables):
    assert not tables.adder_problems(tables.defaults())
    assert not ours_without_reason(tables.adder_defaults)
    # ... and a changed default is caught, for each of them
    keys = [key for key, _, _ in tables.adder_defaults]
    assert not undetected_mutations(tables.adder_problems, tables.defaults(), keys)


@pytest.mark.parametrize("preset", ["mask_rcnn_R_50_FPN_iif_raw_rfs_2x.yaml",
                                    "mask_rcnn_R_50_FPN_iif_base10_obj_rfs_cos_norm_2x.yaml"])
def test_changing_any_listed_lvis_value_fails_the_check(preset):
    cfg, rows = _resolved(LVIS_DIR / preset), lvis_rows(preset)
    keys = [key for key, _, _ in rows]
    assert not undetected_mutations(lambda c: problems(c, rows, _resolved()), cfg, keys)


@pytest.mark.parametrize("preset", ["places_lt_se_resnet152.yaml", "cifar100_lt_se_resnet32_decoupled.yaml"])
def test_changing_any_listed_classification_value_fails_the_check(preset):
    rows = [(key, _is_stage1_checkpoint if value is None else value, source)
            for key, value, source in CLS_PRESETS[preset][1]]
    keys = [key for key, _, _ in rows]
    assert "MODEL.CLS.TRAINABLE" in keys
    assert not undetected_mutations(lambda c: problems(c, rows, _cls_resolved()),
                                    _cls_resolved(CONFIGS / "classification" / preset), keys)

