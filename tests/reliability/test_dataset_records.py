"""Ids and pixels are checked when a dataset is loaded, naming the file, the record and the field.

The fault table below is run against each COCO-style loader the projects use: SimD's own loader,
detectron2's ``load_coco_json`` (pycocotools ``COCO``) and detectron2's ``load_lvis_json`` (lvis-api ``LVIS``,
IIF). Before, every one of these faults loaded without a word (or failed later with an error that named
nothing): an annotation of an unknown image was dropped, a category id given as a string or missing from
``categories`` was dropped (SimD) or shifted to another class (LVIS), two images sharing an id shared their
objects, duplicate annotation ids made COCOeval report AP 0, ``width: 0`` was a ZeroDivisionError in SimD's
m/n estimator.
"""
import copy
import json
import os

import numpy as np
import pytest
from PIL import Image

import shared.engine  # noqa: F401  (installs the reader hooks, as every entry point does)
from shared.datasets.coco_checks import InvalidBoxError, InvalidRecordError
from shared.datasets.readers import MAX_PIXELS_ENV, ImageReadError, install_reader_hooks

CLASSES = ("plane", "ship", "car")


def _base():
    images = [{"id": i, "file_name": f"img{i}.png", "width": 64, "height": 48,
               "coco_url": f"http://images.cocodataset.org/train2017/img{i}.png"} for i in (1, 2, 3)]
    annotations = []
    for k, (image_id, category) in enumerate([(1, 1), (1, 2), (2, 3), (3, 1), (3, 3)]):
        annotations.append({"id": 10 + k, "image_id": image_id, "category_id": category,
                            "bbox": [4.0 + k, 5.0, 8.0, 6.0], "area": 48.0, "iscrowd": 0,
                            "segmentation": [[4.0, 5.0, 12.0, 5.0, 12.0, 11.0, 4.0, 11.0]]})
    categories = [{"id": c + 1, "name": name, "frequency": "f", "synset": name, "image_count": 1,
                   "instance_count": 1} for c, name in enumerate(CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _orphan(d):
    d["annotations"][2]["image_id"] = 99


def _string_category(d):
    d["annotations"][2]["category_id"] = "3"


def _unknown_category(d):
    d["annotations"][2]["category_id"] = 42


def _zero_based(d):
    for a in d["annotations"]:
        a["category_id"] -= 1


def _duplicate_annotation_id(d):
    d["annotations"][3]["id"] = d["annotations"][1]["id"]


def _duplicate_image_id(d):
    d["images"][2]["id"] = 2
    for a in d["annotations"]:
        if a["image_id"] == 3:
            a["image_id"] = 2


def _zero_width(d):
    d["images"][1]["width"] = 0


#: fault -> (how the json is altered, what the error must say)
FAULTS = {
    "annotation of an unknown image": (_orphan, r"annotation id 12 \(#2\) of image id 99: image_id = 99 \(no "
                                                r"image"),
    "category id as a string": (_string_category, r"annotation id 12.*category_id = '3' \(a string; the "
                                                  r"category id is the integer 3\)"),
    "category id not in categories": (_unknown_category, r"annotation id 12.*category_id = 42 \(no category"),
    "0-based category ids": (_zero_based, r"category_id = 0 .*look 0-based .*add 1 to every annotation"),
    "duplicate annotation ids": (_duplicate_annotation_id, r"annotation id 11 .*shared by 2 annotations"),
    "duplicate image ids": (_duplicate_image_id, r"image id 2 \(img3\.png\): id = 2 \(shared by 2 images"),
    "zero image width": (_zero_width, r"image id 2 \(img2\.png\): width = 0 \(must be a positive integer"),
}


def _write(tmp_path, data, name="train.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _simd(path, tmp_path, drop=False):
    from simd.datasets import load_simd_coco

    return load_simd_coco(path, str(tmp_path), "simdtest_records", CLASSES, drop_invalid_boxes=drop)


def _detectron2_coco(path, tmp_path):
    from detectron2.data.datasets import load_coco_json

    return load_coco_json(path, str(tmp_path))


def _detectron2_lvis(path, tmp_path):
    from detectron2.data.datasets.lvis import load_lvis_json

    return load_lvis_json(path, str(tmp_path))


LOADERS = {"simd": _simd, "detectron2-coco": _detectron2_coco, "detectron2-lvis": _detectron2_lvis}


@pytest.mark.parametrize("loader", list(LOADERS))
def test_the_clean_json_loads_in_every_loader(tmp_path, loader):
    records = LOADERS[loader](_write(tmp_path, _base()), tmp_path)
    assert sum(len(r["annotations"]) for r in records) == 5


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_table_every_id_and_size_fault_is_refused_naming_file_record_and_field(tmp_path, fault, loader):
    alter, message = FAULTS[fault]
    data = _base()
    alter(data)
    path = _write(tmp_path, data, "faulty_train.json")
    with pytest.raises(InvalidRecordError, match=r"faulty_train\.json: \d+ invalid record\(s\): .*"
                       + message):
        LOADERS[loader](path, tmp_path)


def test_categories_outside_the_class_list_are_still_left_out_with_a_count(tmp_path, caplog):
    """VisDrone's "others" is in ``categories`` but not a class: left out as mmdet does, now with a count.
    Only ids missing from ``categories`` are an error (the regression: both were dropped silently)."""
    data = _base()
    data["categories"].append({"id": 11, "name": "others"})
    data["annotations"][4]["category_id"] = 11
    with caplog.at_level("INFO", logger="simd.datasets"):
        records = _simd(_write(tmp_path, data), tmp_path)
    assert sum(len(r["annotations"]) for r in records) == 4
    assert "left out 1 annotation(s) of categories outside the class list: 'others' (id 11): 1" in caplog.text


def test_a_huge_box_is_refused_as_outside_its_image_or_dropped_by_the_switch(tmp_path):
    data = _base()
    data["annotations"][1]["bbox"] = [0, 0, 1e30, 1e30]  # was clipped to a whole-image box
    path = _write(tmp_path, data)
    with pytest.raises(InvalidBoxError, match=r"train\.json: 1 invalid box.*annotation id 11 of image id 1 "
                       r"\(img1\.png\): bbox \(less than half inside the 64 x 48 image"):
        _simd(path, tmp_path)
    records = _simd(path, tmp_path, drop=True)
    assert [a["id"] for r in records for a in r["annotations"]] == [10, 12, 13, 14]
    # a box crossing the border by a few pixels is kept (more than half of it inside)
    data["annotations"][1]["bbox"] = [58.0, 40.0, 8.0, 10.0]
    assert sum(len(r["annotations"]) for r in _simd(_write(tmp_path, data), tmp_path)) == 5


def test_width_zero_no_longer_reaches_the_normaliser_estimator(tmp_path):
    """Before: ZeroDivisionError in simd.normalisers.estimate_from_records (new_w / w0)."""
    from simd.normalisers import estimate_from_records

    data = _base()
    _zero_width(data)
    with pytest.raises(InvalidRecordError, match="width = 0"):
        estimate_from_records(_simd(_write(tmp_path, data), tmp_path), [], 48, 64)


# ------------------------------------------------------------------------------------------------ pixels
def _png16(path, values):
    Image.fromarray(values.astype(np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    return str(path)


def test_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    from detectron2.data import detection_utils
    from fastreid.data import common  # noqa: F401  (FastReID's reader module, hooked when imported)

    install_reader_hooks()
    values = np.arange(48 * 64).reshape(48, 64) * 21  # 0 .. 64491
    path = _png16(tmp_path / "depth.png", values)
    expected = np.rint(values / 257.0).astype(np.uint8)
    rgb = detection_utils.read_image(path, format="RGB")
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert abs(float(rgb.mean()) - float(expected.mean())) < 1e-9 and rgb.mean() < 128  # was 99.6 % white
    # 8-bit values stored in 16 bits (k * 257) come back exactly
    exact = _png16(tmp_path / "exact.png", np.arange(256).reshape(16, 16) * 257)
    gray = detection_utils.read_image(exact, format="L")[..., 0]
    assert np.array_equal(gray, np.arange(256).reshape(16, 16))
    reid = np.asarray(common.read_image(path))  # FastReID: a PIL RGB image
    assert reid.shape == (48, 64, 3) and np.array_equal(reid[..., 1], expected)
    # the EXIF orientation is still applied (here: rotated by 180 degrees)
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(values.astype(np.uint16)).save(tmp_path / "rotated.png", exif=exif)
    rotated = detection_utils.read_image(str(tmp_path / "rotated.png"), format="L")[..., 0]
    assert np.array_equal(rotated, expected[::-1, ::-1])


def test_16_bit_png_through_the_projects_that_read_with_pil(tmp_path):
    """DAS, RDCD and IIF classification read images with PIL (``shared.datasets.readers.open_rgb``)."""
    from das.datasets import ImageRecords
    from iif.classification.datasets import TextListDataset
    from rdcd.datasets import ImageListDataset

    values = np.arange(32 * 32).reshape(32, 32) * 60  # 0 .. 61380
    path = _png16(tmp_path / "gray16.png", values)
    expected = np.rint(values / 257.0).astype(np.uint8)
    (tmp_path / "list.txt").write_text("gray16.png 0\n")
    images = [
        ImageRecords([{"file_name": path, "label": 0}], transform=lambda im: im)[0][0],
        ImageListDataset([path], transform=lambda im: im)[0],
        TextListDataset(str(tmp_path), "list.txt", num_classes=1)[0][0],
    ]
    for image in images:
        rgb = np.asarray(image)
        assert rgb.shape == (32, 32, 3) and np.array_equal(rgb[..., 0], expected)


def test_32_bit_float_image_is_refused_naming_the_file(tmp_path):
    from detectron2.data import detection_utils

    path = tmp_path / "float.tiff"
    Image.fromarray(np.full((4, 4), 3.5, dtype=np.float32)).save(path)
    with pytest.raises(ImageReadError, match=r"float\.tiff: a 32-bit float image \(PIL mode F\)"):
        detection_utils.read_image(str(path), format="BGR")


def test_image_over_the_pixel_limit_is_named_and_the_switch_raises_the_limit(tmp_path, monkeypatch):
    from detectron2.data import detection_utils

    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((60, 50, 3), dtype=np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 3000 pixels > 2 x 1000: PIL refuses
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    with pytest.raises(ImageReadError, match=rf"cannot read image .*big\.png: .*{MAX_PIXELS_ENV}=<pixels>"):
        detection_utils.read_image(str(path), format="BGR")
    monkeypatch.setenv(MAX_PIXELS_ENV, "4000")
    assert detection_utils.read_image(str(path), format="BGR").shape == (60, 50, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "0")  # no limit
    assert detection_utils.read_image(str(path), format="BGR").shape == (60, 50, 3)
    assert Image.MAX_IMAGE_PIXELS is None


# ------------------------------------------------------------------------------------------------ folders
def test_image_folder_that_is_a_symlink_loop_is_reported_as_such(tmp_path):
    """AI-TOD in its older layout whose image folder links to itself: before, the error named the first
    layout's json as missing."""
    from simd.datasets import DATASET_LAYOUTS

    annotations = tmp_path / "AI-TOD" / "annotations"
    annotations.mkdir(parents=True)
    (annotations / "aitod_train_v1.json").write_text(json.dumps(copy.deepcopy(_base())))
    (tmp_path / "AI-TOD" / "train").mkdir()
    loop = tmp_path / "AI-TOD" / "train" / "images"
    os.symlink(str(loop), str(loop))
    with pytest.raises(FileNotFoundError, match=r"AI-TOD/train/images' cannot be opened: a symbolic link on "
                                                r"the way loops") as info:
        DATASET_LAYOUTS["aitod_train"].resolve(str(tmp_path), "aitod_train")
    assert "aitod_train_v1.json" not in str(info.value).split("loops")[0]
