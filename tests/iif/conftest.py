"""Fixtures of the IIF tests: a tiny synthetic LVIS-format dataset in a session tmp dir, registered."""
import iif  # noqa: F401  (compat layer first)
import pytest

from shared.datasets.synthetic_lvis import SyntheticLVISSpec, generate_synthetic_lvis, register_synthetic_lvis

TINY_SPEC = SyntheticLVISSpec(num_classes=6, num_train_images=16, num_val_images=6, image_size=64,
                              head_images=12,
                              tail_images=1, val_images_per_class=2, min_object_size=12, max_object_size=22,
                              rare_max_images=2, common_max_images=6)


@pytest.fixture(scope="session")
def tiny_lvis(tmp_path_factory):
    """(root, train_name, val_name, spec) of a 16/6-image synthetic LVIS set with 6 classes."""
    root = tmp_path_factory.mktemp("iif_tiny_lvis")
    generate_synthetic_lvis(str(root), TINY_SPEC)
    train_name, val_name = register_synthetic_lvis(str(root), prefix="iif_tiny_lvis")
    return root, train_name, val_name, TINY_SPEC
