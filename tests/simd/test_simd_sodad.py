"""SODA-D: the split form with `ignore` loads, patch detections are merged into full images (shift + per-class
NMS 0.5) and scored on rawData/..._wo_ignore.json with `ignore` from its key."""

import json
import os

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from shared.datasets.synthetic_tiny import generate_synthetic_tiny, write_sodad_release
from simd.datasets import SODAD_CLASSES, register_coco_dataset
from simd.evaluation import build_simd_evaluator
from simd.sodad import evaluate_full_images, merge_patch_detections


@pytest.fixture(scope="module")
def sodad_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sodad")
    generate_synthetic_tiny(
        str(root / "src"), seed=4, image_size=160, num_train=1, num_val=2, objects_per_image=(5, 8)
    )
    write_sodad_release(str(root / "src"), str(root / "SODA-D"), "val", patch=96, overlap=40)
    return root / "SODA-D"


def test_merge_shifts_by_patch_origin_and_suppresses_duplicates_per_class():
    patches = {1: {"ori_id": 7, "start_coord": [0, 0]}, 2: {"ori_id": 7, "start_coord": [50, 20]}}
    results = [
        {"image_id": 1, "category_id": 3, "bbox": [60.0, 30.0, 10.0, 10.0], "score": 0.9},
        {
            "image_id": 2,
            "category_id": 3,
            "bbox": [10.5, 10.0, 10.0, 10.0],
            "score": 0.8,
        },  # same object, IoU 0.9
        {
            "image_id": 2,
            "category_id": 4,
            "bbox": [10.5, 10.0, 10.0, 10.0],
            "score": 0.7,
        },  # other class: kept
        {"image_id": 2, "category_id": 3, "bbox": [0.0, 0.0, 4.0, 4.0], "score": 0.6},
    ]
    merged = merge_patch_detections(results, patches)
    assert sorted((m["category_id"], m["score"]) for m in merged) == [(3, 0.6), (3, 0.9), (4, 0.7)]
    assert {tuple(m["bbox"]) for m in merged} >= {(60.5, 30.0, 10.0, 10.0), (50.0, 20.0, 4.0, 4.0)}
    assert all(m["image_id"] == 7 for m in merged)
    with pytest.raises(ValueError, match="not a patch"):
        merge_patch_detections([dict(results[0], image_id=99)], patches)


def test_split_form_with_ignore_loads(sodad_root):
    split = json.loads((sodad_root / "divData" / "Annotations" / "val.json").read_text())
    assert any(a["ignore"] for a in split["annotations"]) and all("ori_id" in i for i in split["images"])
    register_coco_dataset(
        "simdtest_sodad_val",
        str(sodad_root / "divData" / "Annotations" / "val.json"),
        str(sodad_root / "divData" / "Images" / "val"),
        SODAD_CLASSES,
        "sodad",
    )
    records = DatasetCatalog.get("simdtest_sodad_val")
    crowd = sum(a["iscrowd"] for r in records for a in r["annotations"])
    assert crowd == sum(bool(a["ignore"]) for a in split["annotations"]) > 0
    assert len(records) == len(split["images"]) and all(os.path.exists(r["file_name"]) for r in records)


def test_perfect_patch_detections_score_100_on_full_images_and_not_on_patches(sodad_root, tmp_path, caplog):
    split = json.loads((sodad_root / "divData" / "Annotations" / "val.json").read_text())
    full = str(sodad_root / "rawData" / "Annotations" / "val_wo_ignore.json")
    # every object lies wholly inside some patch (objects <= 32 px, overlap 40 px); predict those
    size = {i["id"]: i["width"] for i in split["images"]}
    whole = [
        a
        for a in split["annotations"]
        if not a["ignore"]
        and a["bbox"][0] > 0
        and a["bbox"][1] > 0
        and a["bbox"][0] + a["bbox"][2] < size[a["image_id"]]
        and a["bbox"][1] + a["bbox"][3] < size[a["image_id"]]
    ]
    dets = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in whole
    ]
    merged = merge_patch_detections(dets, {i["id"]: i for i in split["images"]})
    raw = json.loads(open(full).read())
    assert len(merged) <= len(dets) and len(merged) >= len(raw["annotations"])
    evaluator = evaluate_full_images(full, merged)
    assert evaluator.metrics["AP"] == pytest.approx(1.0)
    # through the detectron2 evaluator: full-image AP 100, patch numbers reported apart
    register_coco_dataset(
        "simdtest_sodad_eval",
        str(sodad_root / "divData" / "Annotations" / "val.json"),
        str(sodad_root / "divData" / "Images" / "val"),
        SODAD_CLASSES,
        "sodad",
    )
    DatasetCatalog.get("simdtest_sodad_eval")
    MetadataCatalog.get("simdtest_sodad_eval").set(full_image_json_file=full)
    from shared.engine import build_cfg
    from simd.config import add_simd_config

    cfg = build_cfg(add_simd_config, "", ["MODEL.DEVICE", "cpu", "TEST.SIMD_EVAL.PROTOCOL", "sodad"])
    ev = build_simd_evaluator(cfg, "simdtest_sodad_eval", str(tmp_path))
    ev.reset()
    contiguous = MetadataCatalog.get("simdtest_sodad_eval").thing_dataset_id_to_contiguous_id
    for image in split["images"]:
        mine = [d for d in dets if d["image_id"] == image["id"]]
        ev._predictions.append(
            {
                "image_id": image["id"],
                "instances": [dict(d, category_id=contiguous[d["category_id"]]) for d in mine],
            }
        )
    with caplog.at_level("INFO", logger="simd.sodad"):
        results = ev.evaluate()
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    # the log names the full-image ground truth the numbers are scored against
    assert f"SODA-D evaluation of simdtest_sodad_eval: {len(dets)} patch detections" in caplog.text
    assert f"scored against {os.path.abspath(full)}" in caplog.text
    assert "AP" in results["bbox_patches"]
    assert os.path.exists(tmp_path / "coco_instances_results_full_images.json")


def test_ignore_key_marks_ignored_ground_truth(sodad_root, tmp_path):
    raw = json.loads((sodad_root / "rawData" / "Annotations" / "val_wo_ignore.json").read_text())
    missed = raw["annotations"][0]
    missed["ignore"] = True  # no detection for it: ignored, so AP stays 100 (pycocotools would count a miss)
    path = tmp_path / "val_wo_ignore.json"
    path.write_text(json.dumps(raw))
    dets = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in raw["annotations"][1:]
    ]
    assert evaluate_full_images(str(path), dets).metrics["AP"] == pytest.approx(1.0)
    missed["ignore"] = False
    path.write_text(json.dumps(raw))
    assert evaluate_full_images(str(path), dets).metrics["AP"] < 1.0
