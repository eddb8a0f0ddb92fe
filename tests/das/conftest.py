"""Fixtures of the DAS tests: one small synthetic CUB-layout dataset per session, under pytest's tmp dir, and
the options that shrink the synthetic preset to it."""
import os

import pytest

import das  # noqa: F401  (compat layer + dataset registration)
from das.config import add_das_config
from shared.datasets.synthetic_fine_grained import generate_synthetic_fine_grained
from shared.engine import build_cfg

SYNTHETIC_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "projects", "DAS", "configs",
                                "Synthetic", "triplet_distance.yaml")
#: a 16-d test_resnet on 32 px images, P x K = 3 x 2; the dataset keys match ``das_dataset_root`` (8 classes
#: x 4 images, 32 px) so that the synthetic-data step of train_net.py finds it cached
TINY_OPTS = (
    "MODEL.EMBEDDING.BACKBONE", "test_resnet", "MODEL.EMBEDDING.DIM", "16", "MODEL.DAS.NUM_CLASSES", "4",
    "INPUT.TRAIN_SIZE", "32", "INPUT.TEST_RESIZE", "32", "INPUT.TEST_SIZE", "32",
    "SOLVER.IMS_PER_BATCH", "6", "TEST.RETRIEVAL.RECALL_KS", "(1, 2)",
    "DATASETS.SYNTHETIC_FINE_GRAINED.NUM_CLASSES", "8",
    "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGES_PER_CLASS", "4",
    "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGE_SIZE", "32",
)


@pytest.fixture
def tiny_opts():
    """:data:`TINY_OPTS` as a fresh list."""
    return list(TINY_OPTS)


@pytest.fixture
def tiny_cfg():
    """``tiny_cfg(*opts)``: the synthetic preset shrunk by :data:`TINY_OPTS`, then ``opts``."""
    def build(*opts):
        return build_cfg(add_das_config, SYNTHETIC_CONFIG, list(TINY_OPTS) + list(opts))

    return build


@pytest.fixture(scope="session")
def das_dataset_root(tmp_path_factory):
    """A ``$DETECTRON2_DATASETS``-style root holding ``synthetic_birds`` (8 classes × 4 images, 32 px)."""
    base = tmp_path_factory.mktemp("das_root")
    generate_synthetic_fine_grained(str(base / "synthetic_birds"), num_classes=8, images_per_class=4,
                                    image_size=32, seed=0)
    return base
