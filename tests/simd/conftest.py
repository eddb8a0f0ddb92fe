"""Fixtures of the SimD tests: a small synthetic tiny-object set and a CPU-sized Faster R-CNN config."""
import os

import pytest

import simd  # noqa: F401  (compat layer + registrations before detectron2)
from shared.datasets.synthetic_tiny import generate_synthetic_tiny
from simd.datasets import register_synthetic

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "SimD", "configs")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic_tiny"))
    generate_synthetic_tiny(root, seed=3, image_size=128, num_train=4, num_val=2, objects_per_image=(6, 10),
                            clutter_per_image=(3, 6))
    register_synthetic(root, prefix="simdtest_tiny")
    return root


@pytest.fixture
def small_cfg(tiny_root, tmp_path):
    """The synthetic R18 config shrunk further: 128 px, batch 2, tiny heads, on the test set."""
    from shared.engine import build_cfg
    from simd.config import add_simd_config

    return build_cfg(add_simd_config, os.path.join(CONFIG_DIR, "synthetic", "faster_rcnn_R18_FPN_iou.yaml"), [
        "DATASETS.TRAIN", "('simdtest_tiny_train',)", "DATASETS.TEST", "('simdtest_tiny_val',)",
        "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "128",
        "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "128",
        "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "1", "SOLVER.BASE_LR", "0.001",
        "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "64",
        "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100", "MODEL.RPN.POST_NMS_TOPK_TEST", "100",
        "OUTPUT_DIR", str(tmp_path / "out"),
    ])
