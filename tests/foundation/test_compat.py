"""Each compatibility fix of ``shared.compat``, exercised through the code path it repairs."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import shared.compat


def test_fixes_are_recorded_and_idempotent():
    before = shared.compat.applied_fixes()
    shared.compat.apply()
    assert shared.compat.applied_fixes() == before


def test_pil_linear_alias_detectron2_extent_transform():
    # transform.py:46 uses Image.LINEAR as a default argument, evaluated at import time.
    from detectron2.data.transforms import ExtentTransform

    img = (np.arange(16 * 16 * 3) % 255).astype(np.uint8).reshape(16, 16, 3)
    out = ExtentTransform(src_rect=(0, 0, 16, 16), output_size=(8, 8)).apply_image(img)
    assert out.shape == (8, 8, 3)
    assert Image.LINEAR == Image.Resampling.BILINEAR


def test_pkg_resources_standin_model_zoo_config():
    from detectron2 import model_zoo

    path = model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml")
    assert path.endswith("faster_rcnn_R_50_FPN_1x.yaml")
    cfg = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml")
    assert cfg.MODEL.MASK_ON


def test_model_zoo_ships_all_config_files():
    import os

    from detectron2 import model_zoo

    root = os.path.dirname(model_zoo.get_config_file("Base-RCNN-FPN.yaml"))
    names = [f for _, _, files in os.walk(root) for f in files]
    # detectron2 v0.6 ships 92 yaml configs and 36 LazyConfig .py files (164 files once .pyc caches exist)
    assert sum(f.endswith(".yaml") for f in names) == 92
    assert sum(f.endswith(".py") for f in names) == 36


def test_numpy_aliases_lvis_accumulate_path():
    # lvis/eval.py:361 allocates with dtype=np.float
    assert np.float is float and np.int is int
    assert np.zeros(3, dtype=np.float).dtype == np.float64


def test_fastreid_imports_collections_mapping_and_torch_six():
    import fastreid.data.build  # torch._six and collections.Mapping at import time
    from fastreid.evaluation.testing import flatten_results_dict

    assert flatten_results_dict({"a": {"b": 1.0}}) == {"a/b": 1.0}
    from torch._six import string_classes

    assert str in string_classes


def test_fastreid_dataloaderx_runs_on_cpu():
    from fastreid.data import build

    ds = [{"images": torch.full((3,), float(i)), "targets": i} for i in range(6)]
    loader = build.DataLoaderX(0, dataset=ds, batch_size=4, collate_fn=build.fast_batch_collator)
    batches = list(iter(loader))
    assert [b["targets"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5]]
    assert batches[0]["images"].device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_fresh_interpreter_gets_fixes_from_any_project_package():
    code = (
        "import das\n"
        "from detectron2 import model_zoo\n"
        "import detectron2.engine, fastreid.data.build, lvis\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_detectron2_c_standin_names_the_missing_op():
    from detectron2 import _C

    if not getattr(_C, "IS_STANDIN", False):
        pytest.skip("an official compiled detectron2 is installed")
    assert isinstance(_C.get_compiler_version(), str)
    assert isinstance(_C.get_cuda_version(), str)
    assert _C.has_cuda() is False
    with pytest.raises(NotImplementedError, match="box_iou_rotated.*rotated-box"):
        _C.box_iou_rotated(torch.zeros(1, 5), torch.zeros(1, 5))
    with pytest.raises(NotImplementedError, match="use_fast_impl=False"):
        _C.COCOevalAccumulate({}, [])
    from detectron2.layers import DeformConv

    with pytest.raises(NotImplementedError, match="deform_conv_forward.*deformable"):
        _C.deform_conv_forward()
    # On CPU detectron2 0.6 routes DeformConv through torchvision, so it still runs.
    conv = DeformConv(2, 2, 3, padding=1)
    assert conv(torch.zeros(1, 2, 4, 4), torch.zeros(1, 18, 4, 4)).shape == (1, 2, 4, 4)


def test_collect_env_works_with_standin():
    from detectron2.utils.collect_env import collect_env_info

    assert "detectron2" in collect_env_info()
