"""AdaSP (Adaptive Sparse Pairwise loss, CVPR 2023) as a FastReID project.

Importing the package applies :mod:`shared.compat` and registers ``AdaSPBaseline`` / ``AdaSPMGN`` in
fastreid's ``META_ARCH_REGISTRY`` and ``SyntheticMarket1501`` in its ``DATASET_REGISTRY``.
"""
import shared  # noqa: F401  (applies the compatibility layer before detectron2/fastreid are imported)

from adasp.config import add_adasp_config
from adasp.modeling import SparsePairLoss, sparse_pair_loss
from adasp import datasets, modeling  # noqa: F401  (registration side effects)

__all__ = ["add_adasp_config", "SparsePairLoss", "sparse_pair_loss"]
