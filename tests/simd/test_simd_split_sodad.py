"""Our SODA-D splitter (projects/SimD/tools/split_sodad.py) on hand-made full images: patch origins, names,
clipping, the 40 % ignore rule, painted ignore regions, padding, the train-only rules, and the result read by
the SimD loader."""
import json
import os
import runpy
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog

from simd.datasets import SODAD_CLASSES, register_coco_dataset

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "SimD", "tools", "split_sodad.py")


def _tool():
    """The tool's functions (a script, not a package module)."""
    return SimpleNamespace(**runpy.run_path(TOOL))


def _ann(i, image_id, category, bbox):
    return {"id": i, "image_id": image_id, "category_id": category, "bbox": bbox, "area": bbox[2] * bbox[3],
            "iscrowd": 0, "ignore": category == 10}


@pytest.fixture
def raw_sodad(tmp_path):
    """rawData with A (1000 x 900, four objects and an ignore region), B (no annotation), C (500 x 400)."""
    images_dir = tmp_path / "rawData" / "Images"
    images_dir.mkdir(parents=True)
    for name, (w, h) in {"00001.jpg": (1000, 900), "00002.jpg": (900, 900), "00003.jpg": (500, 400)}.items():
        cv2.imwrite(str(images_dir / name), np.full((h, w, 3), 200, np.uint8))
    anns = [_ann(1, 1, 1, [100, 100, 20, 20]), _ann(2, 1, 5, [780, 50, 40, 10]),
            _ann(3, 1, 2, [790, 700, 30, 10]), _ann(4, 1, 10, [300, 300, 50, 50]),
            _ann(5, 1, 3, [310, 310, 10, 10]), _ann(6, 3, 4, [10, 20, 30, 40])]
    raw = {"images": [{"id": 1, "file_name": "00001.jpg", "width": 1000, "height": 900},
                      {"id": 2, "file_name": "00002.jpg", "width": 900, "height": 900},
                      {"id": 3, "file_name": "00003.jpg", "width": 500, "height": 400}],
           "annotations": anns, "categories": [{"id": i, "name": n} for i, n in enumerate(SODAD_CLASSES, 1)]
           + [{"id": 10, "name": "ignore"}]}
    (tmp_path / "rawData" / "Annotations").mkdir()
    for split in ("val", "train"):
        (tmp_path / "rawData" / "Annotations" / f"{split}.json").write_text(json.dumps(raw))
    return tmp_path


def test_patch_origins_end_at_the_border():
    origins = _tool().patch_origins
    assert origins(1000) == [0, 200] and origins(800) == [0] and origins(500) == [0]
    assert origins(2000) == [0, 650, 1200] and origins(1450) == [0, 650] and origins(1451) == [0, 650, 651]
    with pytest.raises(ValueError, match="must exceed the overlap"):
        origins(1000, patch=100, overlap=100)


def test_val_split_clips_marks_paints_and_pads(raw_sodad):
    counts = _tool().split_sodad(str(raw_sodad), "val")
    assert counts == {"images": 2, "skipped_without_annotations": 1, "patches": 5, "annotations": 13}
    div = json.loads((raw_sodad / "divData" / "Annotations" / "val.json").read_text())
    names = [(im["file_name"], im["ori_id"], im["start_coord"], im["width"], im["height"])
             for im in div["images"]]
    assert names == [("00001_0.jpg", 1, [0, 0], 800, 800), ("00001_1.jpg", 1, [0, 100], 800, 800),
                     ("00001_2.jpg", 1, [200, 0], 800, 800), ("00001_3.jpg", 1, [200, 100], 800, 800),
                     ("00003_0.jpg", 3, [0, 0], 800, 800)]
    assert [im["id"] for im in div["images"]] == [0, 1, 2, 3, 4] and div["categories"][-1]["id"] == 9
    per = {}
    for a in div["annotations"]:
        per.setdefault(a["image_id"], []).append((a["category_id"], a["bbox"], a["ignore"]))
    # half inside: kept; a third inside: ignored
    assert per[0] == [(1, [100, 100, 20, 20], False), (5, [780, 50, 20, 10], False),
                      (2, [790, 700, 10, 10], True), (3, [310, 310, 10, 10], False)]
    assert per[1] == [(1, [100, 0, 20, 20], False), (2, [790, 600, 10, 10], True),
                      (3, [310, 210, 10, 10], False)]
    assert per[2] == [(5, [580, 50, 40, 10], False), (2, [590, 700, 30, 10], False),
                      (3, [110, 310, 10, 10], False)]
    assert per[3] == [(2, [590, 600, 30, 10], False), (3, [110, 210, 10, 10], False)]
    assert per[4] == [(4, [10, 20, 30, 40], False)]
    first = [a for a in div["annotations"] if a["image_id"] == 0][1]
    assert first["segmentation"] == [[780, 50, 800, 50, 800, 60, 780, 60]] and first["area"] == 200
    patch = cv2.imread(str(raw_sodad / "divData" / "Images" / "val" / "00001_0.jpg"))
    # the ignore region is painted black, except the object inside it; the rest is the image
    assert patch[305, 305].max() < 10 and abs(int(patch[315, 315, 0]) - 200) < 10
    assert abs(int(patch[360, 360, 0]) - 200) < 10
    padded = cv2.imread(str(raw_sodad / "divData" / "Images" / "val" / "00003_0.jpg"))
    assert padded.shape == (800, 800, 3) and padded[600, 450].max() < 10
    assert abs(int(padded[100, 100, 0]) - 200) < 10
    without = json.loads((raw_sodad / "rawData" / "Annotations" / "val_wo_ignore.json").read_text())
    assert [a["id"] for a in without["annotations"]] == [1, 2, 3, 5, 6]
    # the SimD loader reads the result; "ignore" objects become crowd regions
    register_coco_dataset("simdtest_split_sodad_val", str(raw_sodad / "divData" / "Annotations" / "val.json"),
                          str(raw_sodad / "divData" / "Images" / "val"), SODAD_CLASSES, "sodad")
    records = DatasetCatalog.get("simdtest_split_sodad_val")
    assert len(records) == 5 and sum(a["iscrowd"] for r in records for a in r["annotations"]) == 2


def test_train_split_cuts_to_the_annotations_and_keeps_patches_with_objects(raw_sodad):
    raw_json = raw_sodad / "rawData" / "Annotations" / "train.json"
    raw = json.loads(raw_json.read_text())
    cv2.imwrite(str(raw_sodad / "rawData" / "Images" / "00004.jpg"), np.full((800, 2000, 3), 90, np.uint8))
    raw["images"].append({"id": 4, "file_name": "00004.jpg", "width": 2000, "height": 800})
    raw["annotations"].append(_ann(7, 4, 6, [1500, 100, 10, 10]))
    raw_json.write_text(json.dumps(raw))
    counts = _tool().split_sodad(str(raw_sodad), "train")
    div = json.loads((raw_sodad / "divData" / "Annotations" / "train.json").read_text())
    # A: width cut to 820 + 5 -> origins 0, 25; height 710 + 5 < 800 -> padded to 800, one row
    # D: width cut to 1515 -> origins 0, 650, 715; only the last holds the object, and it is D's patch 0
    assert [(im["file_name"], im["start_coord"]) for im in div["images"]] == [
        ("00001_0.jpg", [0, 0]), ("00001_1.jpg", [25, 0]),
        ("00003_0.jpg", [0, 0]), ("00004_0.jpg", [715, 0])]
    assert counts["patches"] == 4
    assert [a["bbox"] for a in div["annotations"] if a["image_id"] == 3] == [[785, 100, 10, 10]]


def test_missing_image_is_named(raw_sodad):
    os.remove(raw_sodad / "rawData" / "Images" / "00003.jpg")
    with pytest.raises(FileNotFoundError, match="00003.jpg .image id 3."):
        _tool().split_sodad(str(raw_sodad), "val")


def test_readme_split_command(raw_sodad, tmp_path_factory):
    """The command the README's data table shows, run as shown in a user's folder."""
    import shlex
    import shutil
    import subprocess
    import sys

    command = "python projects/SimD/tools/split_sodad.py datasets/SODA-D --splits train val test"
    readme = os.path.join(os.path.dirname(TOOL), "..", "README.md")
    assert f"`{command}`" in open(readme).read()
    cwd = tmp_path_factory.mktemp("sodad_user")
    (cwd / "projects").symlink_to(os.path.abspath(os.path.join(os.path.dirname(TOOL), "..", "..")))
    shutil.copytree(raw_sodad / "rawData", cwd / "datasets" / "SODA-D" / "rawData")
    shutil.copy(cwd / "datasets" / "SODA-D" / "rawData" / "Annotations" / "val.json",
                cwd / "datasets" / "SODA-D" / "rawData" / "Annotations" / "test.json")
    argv = shlex.split(command)
    out = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    expected = "val: {'images': 2, 'skipped_without_annotations': 1, 'patches': 5, 'annotations': 13}"
    assert out.stdout.splitlines()[1] == expected
    for split in ("train", "val", "test"):
        assert (cwd / "datasets" / "SODA-D" / "divData" / "Annotations" / f"{split}.json").is_file()
        assert (cwd / "datasets" / "SODA-D" / "rawData" / "Annotations" / f"{split}_wo_ignore.json").is_file()
