"""A config or proposal file never runs code.

Before: fvcore's ``CfgNode`` (every detectron2-side project, ``--eval-only``, a predictor's
``get_cfg()``) fell back to ``yaml.unsafe_load`` for a file ``yaml.safe_load`` refused, so
``!!python/object/apply:os.system`` ran -- also from a ``_BASE_`` file or a ``_BASE_`` URL; detectron2 read
``DATASETS.PROPOSAL_FILES_TRAIN`` with ``pickle.load``. Each payload here would create a file; the tests
assert it does not exist and that the error names the file.
"""
import http.server
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from shared.compat.safe_config import ConfigFileError
from shared.engine import build_cfg
from shared.engine.checkpoint import UnsafePickleError

ROOT = Path(__file__).resolve().parents[2]


def _payload_yaml(path: Path, marker: Path, extra: str = "") -> Path:
    path.write_text(f"{extra}SEED: !!python/object/apply:os.system [\"touch {marker}\"]\n")
    return path


def _adders():
    from adasp.config import add_adasp_config
    from das.config import add_das_config
    from iif.classification import add_iif_cls_config
    from iif.config import add_iif_config
    from rdcd.config import add_rdcd_config
    from simd.config import add_simd_config

    return {"simd": (add_simd_config, "detectron2"), "iif": (add_iif_config, "detectron2"),
            "iif_cls": (add_iif_cls_config, "detectron2"), "rdcd": (add_rdcd_config, "detectron2"),
            "das": (add_das_config, "detectron2"), "adasp": (add_adasp_config, "fastreid")}


@pytest.mark.parametrize("project", ["simd", "iif", "iif_cls", "rdcd", "das", "adasp"])
def test_config_with_a_python_tag_is_refused_in_every_project(tmp_path, project):
    add, framework = _adders()[project]
    marker = tmp_path / "ran"
    config = _payload_yaml(tmp_path / "evil.yaml", marker)
    with pytest.raises(ConfigFileError, match=f"{config}.*line 1.*safe_load"):
        build_cfg(add, str(config), framework=framework)
    assert not marker.exists()


@pytest.mark.parametrize("framework", ["detectron2", "fastreid"])
def test_payload_in_a_base_file_is_refused_naming_that_file(tmp_path, framework):
    from adasp.config import add_adasp_config
    from simd.config import add_simd_config

    marker = tmp_path / "ran"
    base = _payload_yaml(tmp_path / "base.yaml", marker)
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: base.yaml\nSEED: 3\n")
    add = add_simd_config if framework == "detectron2" else add_adasp_config
    with pytest.raises(ConfigFileError, match=str(base)):
        build_cfg(add, str(child), framework=framework)
    assert not marker.exists()


def test_predictor_style_get_cfg_refuses_the_payload(tmp_path):
    # what a DefaultPredictor script does: detectron2's get_cfg().merge_from_file (allow_unsafe=True there)
    from detectron2.config import get_cfg

    marker = tmp_path / "ran"
    config = _payload_yaml(tmp_path / "evil.yaml", marker)
    with pytest.raises(ConfigFileError, match=str(config)):
        get_cfg().merge_from_file(str(config), allow_unsafe=True)
    assert not marker.exists()


def test_command_line_overrides_are_values_not_code(tmp_path):
    from simd.config import add_simd_config

    marker = tmp_path / "ran"
    payload = f"!!python/object/apply:os.system ['touch {marker}']"
    cfg = build_cfg(add_simd_config, opts=["OUTPUT_DIR", payload])
    assert cfg.OUTPUT_DIR == payload and not marker.exists()
    with pytest.raises(AssertionError, match="_BASE_"):  # no base file from the command line either
        build_cfg(add_simd_config, opts=["_BASE_", str(tmp_path / "x.yaml")])


def test_base_url_is_refused_without_fetching_it(tmp_path):
    from simd.config import add_simd_config

    marker = tmp_path / "ran"
    served = _payload_yaml(tmp_path / "served.yaml", marker)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            requests.append(args)

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        child = tmp_path / "child.yaml"
        url = f"http://127.0.0.1:{server.server_port}/{served.name}"
        child.write_text(f"_BASE_: {url}\n")
        with pytest.raises(ConfigFileError, match=f"{child}.*{url}.*is a URL"):
            build_cfg(add_simd_config, str(child))
    finally:
        server.shutdown()
    assert not marker.exists() and not requests


def test_train_net_eval_only_refuses_the_payload(tmp_path):
    marker = tmp_path / "ran"
    config = _payload_yaml(tmp_path / "evil.yaml", marker, extra="_BASE_: " + str(
        ROOT / "projects/SimD/configs/synthetic/faster_rcnn_R18_FPN_iou.yaml") + "\n")
    proc = subprocess.run([sys.executable, str(ROOT / "projects/SimD/train_net.py"),
                           "--config-file", str(config), "--eval-only", "MODEL.WEIGHTS", "x.pth",
                           "OUTPUT_DIR", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "ConfigFileError" in proc.stderr and str(config) in proc.stderr
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- proposals
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _register_two_images(name):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda: [
            {"file_name": "a.png", "image_id": 1, "height": 8, "width": 8, "annotations": []},
            {"file_name": "b.png", "image_id": "b2", "height": 8, "width": 8, "annotations": []}])
        MetadataCatalog.get(name).thing_classes = ["x"]


def test_proposal_file_with_a_callable_is_refused_and_never_runs(tmp_path):
    from detectron2.data import get_detection_dataset_dicts

    _register_two_images("_proposal_payload_set")
    marker = tmp_path / "ran"
    path = tmp_path / "proposals.pkl"
    with open(path, "wb") as f:
        pickle.dump({"ids": [1, "b2"], "boxes": [_Payload(marker)], "objectness_logits": []}, f)
    with pytest.raises(UnsafePickleError, match=f"{path}.*posix.system"):
        get_detection_dataset_dicts(["_proposal_payload_set"], filter_empty=False, proposal_files=[str(path)])
    assert not marker.exists()


def test_plain_proposal_file_still_loads_sorted_by_objectness(tmp_path):
    from detectron2.data import get_detection_dataset_dicts
    from detectron2.structures import BoxMode

    _register_two_images("_proposal_plain_set")
    boxes = [np.array([[0, 0, 1, 1], [1, 1, 3, 3], [2, 2, 5, 5]], dtype=np.float32),
             np.array([[0, 0, 2, 2]], dtype=np.float32)]
    path = tmp_path / "proposals.pkl"
    with open(path, "wb") as f:  # Detectron1 key names, ids as int and str
        pickle.dump({"indexes": ["b2", 1], "boxes": boxes[::-1],
                     "scores": [np.array([0.5]), np.array([0.1, 0.9, 0.4])], "bbox_mode": 0}, f)
    dicts = get_detection_dataset_dicts(["_proposal_plain_set"], filter_empty=False,
                                        proposal_files=[str(path)])
    assert dicts[0]["proposal_boxes"].tolist() == [[1, 1, 3, 3], [2, 2, 5, 5], [0, 0, 1, 1]]
    assert dicts[0]["proposal_objectness_logits"].tolist() == pytest.approx([0.9, 0.4, 0.1])
    assert dicts[1]["proposal_boxes"].tolist() == [[0, 0, 2, 2]]
    assert dicts[1]["proposal_bbox_mode"] == BoxMode.XYXY_ABS


def test_model_zoo_retinanet_config_loads_its_arithmetic_anchor_sizes():
    # detectron2's Base-RetinaNet.yaml writes its anchor sizes as !!python/object/apply:eval of a list
    # comprehension; the safe loader computes it without eval, to the values yaml.unsafe_load gives
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    path = model_zoo.get_config_file("COCO-Detection/retinanet_R_50_FPN_1x.yaml")
    cfg = get_cfg()
    cfg.merge_from_file(path)
    expected = [[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]]
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == expected
    assert cfg.MODEL.META_ARCHITECTURE == "RetinaNet"


@pytest.mark.parametrize("expression, value", [
    ("[2 ** 3, -1.5 * 2, 7 // 2, 7 % 4, 1 / 4]", [8, -3.0, 3, 3, 0.25]),
    ("[[x, y * 10] for x in [1, 2] for y in (3,)]", [[1, 30], [2, 30]]),
    ("(1, [2])", (1, [2])),
])
def test_arithmetic_value_hand_values(expression, value):
    from shared.compat.safe_config import arithmetic_value

    assert arithmetic_value(expression) == value


@pytest.mark.parametrize("expression, reason", [
    ("__import__('os').system('touch x')", "Call"),
    ("[x for x in [1] if x]", "comprehensions"),
    ("os.sep", "Attribute"),
    ("y + 1", "Name"),
    ("'a' * 3", "Constant"),
    ("10 ** 10 ** 10", "exponent"),
    ("[1] * 3", "list or tuple"),
    ("1 / 0", "division by zero"),
])
def test_arithmetic_value_refuses_everything_else(expression, reason):
    from shared.compat.safe_config import arithmetic_value

    with pytest.raises(ValueError, match=reason):
        arithmetic_value(expression)


def test_eval_tag_with_code_is_refused_naming_the_file_and_line(tmp_path):
    marker = tmp_path / "ran"
    config = tmp_path / "evil_eval.yaml"
    config.write_text(f"SEED: 1\nOUTPUT_DIR: !!python/object/apply:eval [\"open('{marker}', 'w')\"]\n")
    from simd.config import add_simd_config

    with pytest.raises(ConfigFileError, match=f"{config}.*line 2.*not plain arithmetic.*Call"):
        build_cfg(add_simd_config, str(config), framework="detectron2")
    assert not marker.exists()
