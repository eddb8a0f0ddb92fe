"""Dataset registrations: published layouts, class lists, clear errors for missing paths; synthetic set."""

import json
import os
import subprocess
import sys

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from shared.datasets.synthetic_tiny import (
    AITOD_CLASSES,
    generate_synthetic_tiny,
    write_aitod_toolkit_tree,
    write_visdrone_release,
)
from simd.datasets import (
    DATASET_LAYOUTS,
    SODAD_CLASSES,
    VISDRONE_CLASSES,
    load_simd_coco,
    register_simd_datasets,
)

TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "SimD", "tools")
VISDRONE_TOOL = os.path.join(TOOLS, "convert_visdrone.py")


def _load(name, layout, root):
    json_file, image_dir = layout.resolve(root, name)
    return load_simd_coco(json_file, image_dir, name, layout.classes)


def test_every_dataset_is_registered_with_its_classes_and_protocol():
    names = register_simd_datasets()
    for name in ("aitod_trainval", "aitod_test", "aitodv2_trainval", "visdrone2019_det_train", "sodad_val"):
        assert name in names and name in DatasetCatalog.list()
    assert MetadataCatalog.get("aitodv2_test").thing_classes == list(AITOD_CLASSES)
    assert MetadataCatalog.get("visdrone2019_det_test").thing_classes == list(VISDRONE_CLASSES)
    assert MetadataCatalog.get("sodad_train").thing_classes == list(SODAD_CLASSES)
    assert MetadataCatalog.get("sodad_train").evaluator_type == "sodad"


def test_missing_dataset_names_the_path_and_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    with pytest.raises(
        FileNotFoundError,
        match=r"'aitod_test'.*aitod/annotations/aitod_test_v1.json.*DETECTRON2_DATASETS.*AI-TOD/annotations",
    ):
        _load("aitod_test", DATASET_LAYOUTS["aitod_test"], str(tmp_path))


def test_aitod_loader_reads_the_synthetic_set_written_in_aitod_layout(tmp_path):
    generate_synthetic_tiny(str(tmp_path / "AI-TOD"), seed=1, image_size=96, num_train=2, num_val=1)
    records = _load("simdtest_aitod_train", DATASET_LAYOUTS["aitod_train"], str(tmp_path))
    assert len(records) == 2 and all(r["annotations"] for r in records)
    # a json with other categories is refused with a message naming the expected classes
    bad = tmp_path / "AI-TOD" / "annotations" / "aitod_val_v1.json"
    data = json.loads(bad.read_text())
    data["categories"] = [{"id": 1, "name": "car"}]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] == 1]
    bad.write_text(json.dumps(data))
    with pytest.raises(
        ValueError,
        match=r"no categories named \['airplane'.*aitod_val_v1.json|aitod_val_v1.json.*"
        r"no categories named",
    ):
        _load("simdtest_aitod_val", DATASET_LAYOUTS["aitod_val"], str(tmp_path))


def test_synthetic_set_is_deterministic_cached_and_tiny(tmp_path):
    a = generate_synthetic_tiny(str(tmp_path / "a"), seed=5, image_size=128, num_train=3, num_val=1)
    b = generate_synthetic_tiny(str(tmp_path / "b"), seed=5, image_size=128, num_train=3, num_val=1)
    c = generate_synthetic_tiny(str(tmp_path / "c"), seed=6, image_size=128, num_train=3, num_val=1)
    read = lambda root: (tmp_path / root / "annotations" / "aitod_train_v1.json").read_bytes()  # noqa: E731
    assert read("a") == read("b") and read("a") != read("c")
    assert (tmp_path / "a" / "train" / "images" / "train_00001.png").read_bytes() == (
        tmp_path / "b" / "train" / "images" / "train_00001.png"
    ).read_bytes()
    data = json.loads(read("a"))
    assert [c["name"] for c in data["categories"]] == list(AITOD_CLASSES)
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128
        assert 2.0 <= (w * h) ** 0.5 <= 32.5 and ann["iscrowd"] == 0  # AI-TOD's absolute size sqrt(area)
    # cached: a second call does not rewrite (mtime unchanged)
    path = tmp_path / "a" / "annotations" / "aitod_train_v1.json"
    before = path.stat().st_mtime_ns
    generate_synthetic_tiny(str(tmp_path / "a"), seed=5, image_size=128, num_train=3, num_val=1)
    assert path.stat().st_mtime_ns == before
    assert a and b and c


def test_aitod_toolkit_layout_is_found(tmp_path):
    # the official toolkit (generate_aitod_imgs.py) writes aitod/images/<split>/ + aitod/annotations/
    generate_synthetic_tiny(str(tmp_path / "src"), seed=1, image_size=96, num_train=2, num_val=1)
    write_aitod_toolkit_tree(str(tmp_path / "src"), str(tmp_path / "aitod"))
    json_file, image_dir = DATASET_LAYOUTS["aitod_train"].resolve(str(tmp_path), "aitod_train")
    assert json_file.endswith("aitod/annotations/aitod_train_v1.json") and image_dir.endswith(
        "aitod/images/train"
    )
    records = _load("simdtest_toolkit_train", DATASET_LAYOUTS["aitod_train"], str(tmp_path))
    assert len(records) == 2 and all(os.path.exists(r["file_name"]) for r in records)


def _json_with(tmp_path, annotations, categories=None, name="x.json"):
    path = tmp_path / name
    (tmp_path / "img").mkdir(exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "images": [{"id": 7, "file_name": "a.png", "width": 64, "height": 64}],
                "annotations": annotations,
                "categories": categories or [{"id": i + 1, "name": n} for i, n in enumerate(AITOD_CLASSES)],
            }
        )
    )
    return str(path)


@pytest.mark.parametrize(
    "bbox,field",
    [
        ([1.0, 2.0, float("nan"), 4.0], "bbox.width (non-finite)"),
        ([1.0, 2.0, float("inf"), 4.0], "bbox.width (non-finite)"),
        ([1.0, 2.0, 3.0, -4.0], "bbox.height (not positive)"),
        ([1.0, 2.0, 0.0, 4.0], "bbox.width (not positive)"),
        ([float("nan"), 2.0, 3.0, 4.0], "bbox.x (non-finite)"),
    ],
)
def test_invalid_box_is_refused_naming_file_record_and_field(tmp_path, bbox, field):
    ok = {"id": 1, "image_id": 7, "category_id": 1, "bbox": [1.0, 1.0, 5.0, 5.0], "iscrowd": 0}
    bad = {"id": 42, "image_id": 7, "category_id": 2, "bbox": bbox, "iscrowd": 0}
    path = _json_with(tmp_path, [ok, bad])
    with pytest.raises(ValueError) as info:
        load_simd_coco(path, str(tmp_path / "img"), "simdtest_badbox", AITOD_CLASSES)
    message = str(info.value)
    assert path in message and "annotation id 42" in message and "a.png" in message and field in message
    assert "DATASETS.DROP_INVALID_BOXES" in message
    records = load_simd_coco(
        path, str(tmp_path / "img"), "simdtest_badbox", AITOD_CLASSES, drop_invalid_boxes=True
    )
    assert [a["id"] for a in records[0]["annotations"]] == [1]


def test_malformed_and_wrong_top_level_json_name_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(ValueError, match="malformed JSON in COCO annotations file .*broken.json"):
        load_simd_coco(str(broken), str(tmp_path), "simdtest_broken", AITOD_CLASSES)
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(ValueError, match="list.json: the top level must be a JSON object"):
        load_simd_coco(str(listed), str(tmp_path), "simdtest_list", AITOD_CLASSES)


def test_ignore_objects_and_ignored_regions_become_crowd_and_others_is_dropped(tmp_path):
    categories = (
        [{"id": 0, "name": "ignored regions"}]
        + [{"id": i + 1, "name": n} for i, n in enumerate(VISDRONE_CLASSES)]
        + [{"id": 11, "name": "others"}]
    )
    annotations = [
        {"id": 1, "image_id": 7, "category_id": 4, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        {
            "id": 2,
            "image_id": 7,
            "category_id": 4,
            "bbox": [9, 9, 5, 5],
            "iscrowd": 0,
            "ignore": True,
        },  # SODA-D
        {"id": 3, "image_id": 7, "category_id": 0, "bbox": [20, 20, 30, 30], "iscrowd": 0},  # ignored region
        {"id": 4, "image_id": 7, "category_id": 11, "bbox": [2, 2, 3, 3], "iscrowd": 0},  # others
    ]
    path = _json_with(tmp_path, annotations, categories)
    anns = load_simd_coco(path, str(tmp_path / "img"), "simdtest_visdrone_json", VISDRONE_CLASSES)[0][
        "annotations"
    ]
    assert [(a["id"], a["category_id"], a["iscrowd"]) for a in anns] == [(1, 3, 0), (2, 3, 1), (3, 0, 1)]


def test_visdrone_release_converts_and_loads(tmp_path):
    generate_synthetic_tiny(str(tmp_path / "src"), seed=2, image_size=96, num_train=3, num_val=1)
    release = write_visdrone_release(str(tmp_path / "src"), str(tmp_path / "VisDrone2019-DET-train"))
    out = tmp_path / "visdrone" / "train" / "annotations" / "result.json"
    tool = os.path.join(
        os.path.dirname(__file__), "..", "..", "projects", "SimD", "tools", "convert_visdrone.py"
    )
    printed = subprocess.run(
        [sys.executable, tool, release, str(out)], check=True, capture_output=True, text=True
    ).stdout
    assert "3 ignored regions" in printed and "left out 3 'others'" in printed
    os.symlink(os.path.join(release, "images"), tmp_path / "visdrone" / "train" / "images")
    source = json.loads((tmp_path / "src" / "annotations" / "aitod_train_v1.json").read_text())
    records = _load("simdtest_visdrone_train", DATASET_LAYOUTS["visdrone2019_det_train"], str(tmp_path))
    assert len(records) == 3 and all(os.path.exists(r["file_name"]) for r in records)
    objects = [a for r in records for a in r["annotations"] if not a["iscrowd"]]
    regions = [a for r in records for a in r["annotations"] if a["iscrowd"]]
    assert len(objects) == len(source["annotations"]) and len(regions) == 3
    assert regions[0]["bbox"] == [0.0, 0.0, 20.0, 20.0]
    first = source["annotations"][0]
    assert objects[0]["category_id"] == (first["category_id"] - 1) % 10  # VisDrone category k -> class k - 1


def test_visdrone_json_with_ignored_regions_evaluates_on_the_10_classes(tmp_path):
    from shared.engine import build_cfg
    from simd.config import add_simd_config
    from simd.datasets import register_coco_dataset
    from simd.evaluation import build_simd_evaluator

    generate_synthetic_tiny(str(tmp_path / "src"), seed=2, image_size=96, num_train=2, num_val=1)
    release = write_visdrone_release(str(tmp_path / "src"), str(tmp_path / "release"))
    subprocess.run([sys.executable, VISDRONE_TOOL, release, str(tmp_path / "result.json")], check=True,
                   capture_output=True)
    register_coco_dataset("simdtest_visdrone_eval", str(tmp_path / "result.json"),
                          os.path.join(release, "images"), VISDRONE_CLASSES, "coco")
    records = DatasetCatalog.get("simdtest_visdrone_eval")
    cfg = build_cfg(add_simd_config, "", ["MODEL.DEVICE", "cpu", "TEST.SIMD_EVAL.PROTOCOL", "coco",
                                          "TEST.SIMD_EVAL.MAX_DETS", "[1, 10, 1000]"])
    evaluator = build_simd_evaluator(cfg, "simdtest_visdrone_eval", str(tmp_path / "inference"))
    evaluator.reset()
    for r in records:  # perfect detections of the objects (not of the ignored regions)
        evaluator._predictions.append({"image_id": r["image_id"], "instances": [
            {"image_id": r["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in r["annotations"] if not a["iscrowd"]]})
    results = evaluator.evaluate()  # the json's "ignored regions" category is not an 11th class
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert os.path.exists(tmp_path / "inference" / "coco_instances_results.json")
