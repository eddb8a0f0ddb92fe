"""The embedded synthetic ReID set as a fastreid dataset.

``SyntheticMarket1501`` *is* fastreid's ``Market1501`` loader; it only reads its files from the sub-folder
``synthetic_reid/`` of ``$FASTREID_DATASETS`` so that the generated data never collides with a real
Market-1501 copy at ``$FASTREID_DATASETS/Market-1501-v15.09.15``.
"""
from __future__ import annotations

import os

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.market1501 import Market1501

from shared.datasets.paths import FASTREID_ENV, dataset_root
from shared.datasets.synthetic_reid import SyntheticReIDSpec, generate_synthetic_market1501

__all__ = ["SYNTHETIC_SUBDIR", "SyntheticMarket1501", "prepare_synthetic_market1501"]

SYNTHETIC_SUBDIR = "synthetic_reid"


@DATASET_REGISTRY.register()
class SyntheticMarket1501(Market1501):
    """Market1501 read from ``<root>/synthetic_reid/Market-1501-v15.09.15``
    (written by shared/datasets/synthetic_reid.py)."""

    dataset_dir = SYNTHETIC_SUBDIR
    dataset_name = "synthetic_market1501"


def prepare_synthetic_market1501(spec: SyntheticReIDSpec = SyntheticReIDSpec()) -> dict:
    """Generate (or reuse) the synthetic set where ``SyntheticMarket1501`` reads it; returns the summary."""
    return generate_synthetic_market1501(os.path.join(dataset_root(FASTREID_ENV), SYNTHETIC_SUBDIR), spec)
