"""The synthetic long-tailed LVIS-format generator: format, counts, frequency groups, determinism."""
import json

import iif  # noqa: F401  (compat layer first)
import numpy as np
import pytest

from shared.datasets.synthetic_lvis import SyntheticLVISSpec, class_names, generate_synthetic_lvis

SPEC = SyntheticLVISSpec(num_classes=8, num_train_images=40, num_val_images=12, image_size=64, head_images=30,
                         tail_images=2, val_images_per_class=3, min_object_size=10, max_object_size=20,
                         rare_max_images=3, common_max_images=10)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_lvis")
    paths = generate_synthetic_lvis(str(root), SPEC)
    with open(paths["train_json"]) as f:
        train = json.load(f)
    with open(paths["val_json"]) as f:
        val = json.load(f)
    return root, paths, train, val


def test_lvis_v1_fields(dataset):
    root, paths, train, val = dataset
    for data in (train, val):
        assert {"images", "annotations", "categories"} <= set(data)
        for img in data["images"]:
            assert {"id", "width", "height", "coco_url", "neg_category_ids",
                    "not_exhaustive_category_ids"} <= set(img)
            split, name = img["coco_url"].split("/")[-2:]
            assert (root / "coco" / split / name).is_file()
        for cat in data["categories"]:
            assert {"id", "name", "synonyms", "image_count", "instance_count", "frequency"} <= set(cat)
        for ann in data["annotations"]:
            poly = np.array(ann["segmentation"][0]).reshape(-1, 2)
            x, y, w, h = ann["bbox"]
            assert len(poly) >= 3 and w > 0 and h > 0 and ann["area"] > 0
            assert poly.min() >= 0 and poly.max() <= SPEC.image_size - 1
            np.testing.assert_allclose([x, y, x + w, y + h], [*poly.min(0), *poly.max(0)], atol=0.02)


def test_counts_and_frequency_match_training_annotations(dataset):
    _, _, train, val = dataset
    per_image = {}
    instances = np.zeros(SPEC.num_classes, int)
    for ann in train["annotations"]:
        per_image.setdefault(ann["image_id"], set()).add(ann["category_id"])
        instances[ann["category_id"] - 1] += 1
    images = np.zeros(SPEC.num_classes, int)
    for cats in per_image.values():
        for c in cats:
            images[c - 1] += 1
    cats = sorted(train["categories"], key=lambda c: c["id"])
    assert [c["image_count"] for c in cats] == images.tolist()
    assert [c["instance_count"] for c in cats] == instances.tolist()
    for c in cats:
        expected = "r" if c["image_count"] <= 3 else ("c" if c["image_count"] <= 10 else "f")
        assert c["frequency"] == expected
    assert {c["frequency"] for c in cats} == {"r", "c", "f"}
    assert images[0] >= 10 * max(images[-1], 1)  # steep tail
    assert val["categories"] == train["categories"]
    # every class is in the (balanced) validation split; negatives = every absent class
    assert {a["category_id"] for a in val["annotations"]} == set(range(1, SPEC.num_classes + 1))
    for img in val["images"]:
        pos = {a["category_id"] for a in val["annotations"] if a["image_id"] == img["id"]}
        assert set(img["neg_category_ids"]) == set(range(1, SPEC.num_classes + 1)) - pos


def test_deterministic_and_skips_existing(dataset, tmp_path):
    _, _, train, _ = dataset
    paths = generate_synthetic_lvis(str(tmp_path), SPEC)
    with open(paths["train_json"]) as f:
        assert json.load(f) == train
    mtime = (tmp_path / "lvis" / "lvis_v1_train.json").stat().st_mtime_ns
    generate_synthetic_lvis(str(tmp_path), SPEC)
    assert (tmp_path / "lvis" / "lvis_v1_train.json").stat().st_mtime_ns == mtime


def test_class_names_latin_square():
    names = class_names(12)
    assert len(set(names)) == 12
    for group in (names[0:4], names[4:8], names[8:12]):  # frequent / common / rare blocks
        assert len({n.split("_")[0] for n in group}) == 4  # all colours in every block
    with pytest.raises(ValueError, match="at most"):
        class_names(100)
