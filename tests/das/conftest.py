"""Fixtures of the DAS tests: one small synthetic CUB-layout dataset per session, under pytest's tmp dir."""
import pytest

import das  # noqa: F401  (compat layer + dataset registration)
from shared.datasets.synthetic_fine_grained import generate_synthetic_fine_grained


@pytest.fixture(scope="session")
def das_dataset_root(tmp_path_factory):
    """A ``$DETECTRON2_DATASETS``-style root holding ``synthetic_birds`` (8 classes × 4 images, 32 px)."""
    base = tmp_path_factory.mktemp("das_root")
    generate_synthetic_fine_grained(str(base / "synthetic_birds"), num_classes=8, images_per_class=4,
                                    image_size=32, seed=0)
    return base
