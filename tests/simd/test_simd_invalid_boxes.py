"""Invalid boxes in a training json: refused by default by training *and* the m/n estimator, or dropped
identically by both with DATASETS.DROP_INVALID_BOXES; the m/n cache follows the dataset files."""

import json
import os

import pytest
from detectron2.data import DatasetCatalog

from shared.datasets.synthetic_tiny import AITOD_CLASSES
from simd.datasets import register_coco_dataset, register_datasets_for
from simd.normalisers import cached_estimate, estimate_normalisers
from simd.trainer import SimDTrainer


def _corrupt_copy(tiny_root, tmp_path, name):
    src = os.path.join(tiny_root, "annotations", "aitod_train_v1.json")
    data = json.load(open(src))
    data["annotations"][0]["bbox"][2] = float("nan")
    data["annotations"][1]["bbox"][3] = -3.0
    path = tmp_path / "bad_train.json"
    path.write_text(json.dumps(data))
    register_coco_dataset(name, str(path), os.path.join(tiny_root, "train", "images"), AITOD_CLASSES, "aitod")
    return str(path), data


def test_training_and_estimator_refuse_invalid_boxes_by_default(small_cfg, tiny_root, tmp_path):
    path, data = _corrupt_copy(tiny_root, tmp_path, "simdtest_badboxes_train")
    cfg = small_cfg.clone()
    cfg.DATASETS.TRAIN = ("simdtest_badboxes_train",)
    bad_id = data["annotations"][0]["id"]
    with pytest.raises(
        ValueError, match=rf"bad_train.json: 2 invalid box.*annotation id {bad_id}.*bbox.width"
    ):
        SimDTrainer.build_train_loader(cfg)
    with pytest.raises(ValueError, match="bad_train.json: 2 invalid box"):
        estimate_normalisers(cfg)


def test_drop_switch_drops_the_same_boxes_for_training_and_estimator(small_cfg, tiny_root, tmp_path, caplog):
    path, data = _corrupt_copy(tiny_root, tmp_path, "simdtest_dropboxes_train")
    cfg = small_cfg.clone()
    cfg.DATASETS.TRAIN = ("simdtest_dropboxes_train",)
    cfg.DATASETS.DROP_INVALID_BOXES = True
    register_datasets_for(cfg.DATASETS.TRAIN, drop_invalid_boxes=True)
    with caplog.at_level("WARNING", logger="simd.datasets"):
        records = DatasetCatalog.get("simdtest_dropboxes_train")
    assert "dropped 2 invalid box(es)" in caplog.text
    kept = sum(len(r["annotations"]) for r in records)
    assert kept == len(data["annotations"]) - 2
    assert estimate_normalisers(cfg).num_gt == kept  # the estimator sees exactly the boxes training sees
    SimDTrainer.build_train_loader(cfg)  # builds without error


def test_normaliser_cache_follows_the_annotation_file(small_cfg, tiny_root, tmp_path):
    src = os.path.join(tiny_root, "annotations", "aitod_train_v1.json")
    data = json.load(open(src))
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    register_coco_dataset(
        "simdtest_cachekey_train",
        str(path),
        os.path.join(tiny_root, "train", "images"),
        AITOD_CLASSES,
        "aitod",
    )
    cfg = small_cfg.clone()
    cfg.DATASETS.TRAIN = ("simdtest_cachekey_train",)
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    first = cached_estimate(cfg, cfg.OUTPUT_DIR)
    # the same file name with other annotations (as after switching DETECTRON2_DATASETS): not from the cache
    data["annotations"] = data["annotations"][: len(data["annotations"]) // 2]
    path.write_text(json.dumps(data) + " ")
    second = cached_estimate(cfg, cfg.OUTPUT_DIR)
    assert second.num_gt == len(data["annotations"]) != first.num_gt
