"""SOLVER.EPOCHS: MAX_ITER / STEPS / CHECKPOINT_PERIOD counted from the training images as loaded (images
without boxes dropped with DATALOADER.FILTER_EMPTY_ANNOTATIONS, as mmdet's CocoDataset in training), and the
presets that use it (AI-TOD, AI-TOD-v2, SODA-D)."""
import json
import os

import pytest

from shared.datasets.synthetic_tiny import AITOD_CLASSES
from shared.engine import build_cfg
from shared.engine.validation import ConfigValueError
from simd.config import add_simd_config
from simd.datasets import register_coco_dataset
from simd.trainer import epoch_schedule, resolve_epoch_schedule

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "SimD", "configs")


def test_epoch_schedule_by_hand():
    # AI-TOD trainval with every image kept: 14,018 / 2 = 7,009 it/epoch (the former fixed preset values)
    assert epoch_schedule(14018, 2, 12, (8, 11)) == (84108, (56072, 77099), 7009)
    # a partial last batch is one more iteration: ceil(20,001 / 16) = 1,251
    assert epoch_schedule(20001, 16, 12, (8, 11)) == (15012, (10008, 13761), 1251)
    with pytest.raises(ValueError, match="0 images"):
        epoch_schedule(0, 2, 12, (8, 11))


def _register_three_images(tmp_path):
    """3 images, the second without any box."""
    images = [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 64} for i in (1, 2, 3)]
    annotations = [{"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [4, 4, 8, 8], "area": 64,
                    "iscrowd": 0} for i in (1, 3)]
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(AITOD_CLASSES)]
    path = tmp_path / "three.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    (tmp_path / "images").mkdir()
    register_coco_dataset("simdtest_epochs_train", str(path), str(tmp_path / "images"), AITOD_CLASSES,
                          "aitod")


@pytest.mark.parametrize("filter_empty, per_epoch", [(True, 1), (False, 2)])
def test_epochs_count_the_images_left_after_the_empty_filter(tmp_path, filter_empty, per_epoch):
    _register_three_images(tmp_path)
    cfg = build_cfg(add_simd_config, opts=[
        "DATASETS.TRAIN", "('simdtest_epochs_train',)", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.EPOCHS", "12",
        "SOLVER.STEP_EPOCHS", "(8, 11)", "DATALOADER.FILTER_EMPTY_ANNOTATIONS", str(filter_empty)])
    cfg.freeze()
    resolved = resolve_epoch_schedule(cfg)
    assert resolved.is_frozen() and cfg.SOLVER.MAX_ITER == 40000  # the input is left alone
    assert (resolved.SOLVER.MAX_ITER, resolved.SOLVER.STEPS, resolved.SOLVER.CHECKPOINT_PERIOD) == (
        12 * per_epoch, (8 * per_epoch, 11 * per_epoch), per_epoch)


def test_epochs_zero_keeps_the_configured_iterations():
    cfg = build_cfg(add_simd_config, opts=["SOLVER.MAX_ITER", "77"])
    assert cfg.SOLVER.EPOCHS == 0 and resolve_epoch_schedule(cfg) is cfg


def test_step_epochs_must_lie_inside_the_run():
    with pytest.raises(ConfigValueError, match="SOLVER.STEP_EPOCHS"):
        build_cfg(add_simd_config, opts=["SOLVER.EPOCHS", "10", "SOLVER.STEP_EPOCHS", "(8, 11)"])


@pytest.mark.parametrize("config", ["aitod/faster_rcnn_R_50_FPN_1x_iou.yaml",
                                    "aitodv2/faster_rcnn_R_50_FPN_1x_simd.yaml",
                                    "sodad/faster_rcnn_R_50_FPN_1x_iou.yaml"])
def test_epoch_presets_drop_empty_images_and_count_twelve_epochs(config):
    cfg = build_cfg(add_simd_config, os.path.join(CONFIGS, config))
    assert cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS is True
    assert (cfg.SOLVER.EPOCHS, tuple(cfg.SOLVER.STEP_EPOCHS)) == (12, (8, 11))
