"""Dataset roots, and generators of small synthetic datasets in the real datasets' on-disk formats."""
from shared.datasets.paths import dataset_root, require_path

__all__ = ["dataset_root", "require_path"]
