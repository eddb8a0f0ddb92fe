"""Bad input files are errors that name the file: a truncated image (before: a bare ``OSError: image file is
truncated`` mid-run), malformed JSON (before: a ``JSONDecodeError`` without the file), a JSON whose top level
has the wrong type (before: reported as a category mismatch / a bare assertion)."""
import json

import numpy as np
import pytest
from PIL import Image

import shared.engine  # noqa: F401  (installs the reader hooks)
from shared.datasets.readers import (ImageReadError, InputFileError, install_reader_hooks, load_json,
                                     read_image)


@pytest.fixture
def truncated_jpg(tmp_path):
    path = tmp_path / "img_0007.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_image_names_the_file_in_detectron2_reader(truncated_jpg):
    from detectron2.data import detection_utils

    with pytest.raises(ImageReadError, match=r"cannot read image .*img_0007\.jpg: .*truncated"):
        detection_utils.read_image(str(truncated_jpg), format="BGR")  # what DatasetMapper calls
    with pytest.raises(ImageReadError, match=r"img_0007\.jpg"):
        read_image(str(truncated_jpg), "RGB")
    with pytest.raises(FileNotFoundError):
        read_image(str(truncated_jpg) + ".missing")


def test_truncated_image_names_the_file_in_fastreid_reader(truncated_jpg):
    from fastreid.data import common

    install_reader_hooks()
    with pytest.raises(ImageReadError, match=r"img_0007\.jpg"):
        common.read_image(str(truncated_jpg))


def test_good_image_reads_unchanged(tmp_path):
    from detectron2.data import detection_utils

    path = tmp_path / "ok.png"
    pixels = np.random.default_rng(1).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    assert np.array_equal(detection_utils.read_image(str(path), format="RGB"), pixels)


def test_load_json_names_the_file(tmp_path):
    bad = tmp_path / "instances_train.json"
    bad.write_text('{"images": [], "annotations": [,]}')
    with pytest.raises(InputFileError,
                       match=r"malformed JSON in COCO file .*instances_train\.json: .* line 1, column 32"):
        load_json(str(bad), dict, what="COCO")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(InputFileError,
                       match=r"list\.json: the top level must be a JSON object .*found a JSON array"):
        load_json(str(listed), dict)
    assert load_json(str(listed), list) == [1, 2]


def test_coco_json_errors_name_the_file(tmp_path):
    from detectron2.data.datasets import load_coco_json

    bad = tmp_path / "aitod_train.json"
    bad.write_text('{"images": [')
    with pytest.raises(InputFileError, match=r"malformed JSON in COCO annotation file .*aitod_train\.json"):
        load_coco_json(str(bad), str(tmp_path))
    listed = tmp_path / "aitod_list.json"
    listed.write_text(json.dumps([{"id": 1}]))
    with pytest.raises(InputFileError, match=r"aitod_list\.json: the top level must be a JSON object"):
        load_coco_json(str(listed), str(tmp_path))
