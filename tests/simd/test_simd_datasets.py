"""Dataset registrations: published layouts, class lists, clear errors for missing paths; synthetic set."""
import json

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from shared.datasets.synthetic_tiny import AITOD_CLASSES, generate_synthetic_tiny
from simd.datasets import DATASET_LAYOUTS, SODAD_CLASSES, VISDRONE_CLASSES, _load, register_simd_datasets


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
    with pytest.raises(FileNotFoundError, match=r"'aitod_test'.*AI-TOD/annotations/aitod_test_v1.json.*DETECTRON2_DATASETS"):
        _load("aitod_test", DATASET_LAYOUTS["aitod_test"], str(tmp_path))


def test_aitod_loader_reads_the_synthetic_set_written_in_aitod_layout(tmp_path):
    generate_synthetic_tiny(str(tmp_path / "AI-TOD"), seed=1, image_size=96, num_train=2, num_val=1)
    records = _load("simdtest_aitod_train", DATASET_LAYOUTS["aitod_train"], str(tmp_path))
    assert len(records) == 2 and all(r["annotations"] for r in records)
    assert MetadataCatalog.get("simdtest_aitod_train").thing_classes == list(AITOD_CLASSES)
    # a json with other categories is refused with a message naming the expected classes
    bad = tmp_path / "AI-TOD" / "annotations" / "aitod_val_v1.json"
    data = json.loads(bad.read_text())
    data["categories"] = [{"id": 1, "name": "car"}]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] == 1]
    bad.write_text(json.dumps(data))
    MetadataCatalog.get("simdtest_aitod_val").set(thing_classes=list(AITOD_CLASSES))
    with pytest.raises(ValueError, match="not the expected"):
        _load("simdtest_aitod_val", DATASET_LAYOUTS["aitod_val"], str(tmp_path))


def test_synthetic_set_is_deterministic_cached_and_tiny(tmp_path):
    a = generate_synthetic_tiny(str(tmp_path / "a"), seed=5, image_size=128, num_train=3, num_val=1)
    b = generate_synthetic_tiny(str(tmp_path / "b"), seed=5, image_size=128, num_train=3, num_val=1)
    c = generate_synthetic_tiny(str(tmp_path / "c"), seed=6, image_size=128, num_train=3, num_val=1)
    read = lambda root: (tmp_path / root / "annotations" / "aitod_train_v1.json").read_bytes()  # noqa: E731
    assert read("a") == read("b") and read("a") != read("c")
    assert (tmp_path / "a" / "train" / "images" / "train_00001.png").read_bytes() == \
        (tmp_path / "b" / "train" / "images" / "train_00001.png").read_bytes()
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
    assert a and c
