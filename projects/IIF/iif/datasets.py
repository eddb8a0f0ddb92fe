"""Dataset preparation for IIF runs: the embedded synthetic LVIS set and checks for the real LVIS v1 files.

* ``synthetic_lvis_train`` / ``synthetic_lvis_val``: generated on first use under
  ``$DETECTRON2_DATASETS/synthetic_lvis`` (LVIS v1 on-disk layout) and registered.
* ``lvis_v1_*`` (detectron2 builtin registration, images under ``coco/``, jsons under ``lvis/``): the json
  and image root are checked so a missing dataset fails with the path and the env var, not deep in a loader.
"""
from __future__ import annotations

import os
from typing import Iterable

from detectron2.data import MetadataCatalog

from shared.datasets import dataset_root, require_path
from shared.datasets.synthetic_lvis import generate_synthetic_lvis, register_synthetic_lvis

__all__ = ["SYNTHETIC_PREFIX", "prepare_cfg", "prepare_datasets", "synthetic_lvis_root"]

SYNTHETIC_PREFIX = "synthetic_lvis"


def synthetic_lvis_root() -> str:
    """Where the synthetic LVIS set lives: ``$DETECTRON2_DATASETS/synthetic_lvis`` (default ./datasets)."""
    return os.path.join(dataset_root(), SYNTHETIC_PREFIX)


def prepare_datasets(dataset_names: Iterable[str]) -> None:
    """Generate + register the synthetic set if any name asks for it; check real datasets' files exist."""
    names = [n for n in dataset_names if n]
    if any(n.startswith(SYNTHETIC_PREFIX + "_") for n in names):
        root = synthetic_lvis_root()
        generate_synthetic_lvis(root)
        register_synthetic_lvis(root, prefix=SYNTHETIC_PREFIX)
    for name in names:
        meta = MetadataCatalog.get(name)
        json_file = meta.get("json_file", None)
        if json_file is not None:
            require_path(json_file, name,
                         hint="LVIS v1 expects lvis/lvis_v1_{train,val}.json and COCO images "
                                             "under coco/{train,val}2017/.")
        image_root = meta.get("image_root", None)
        if image_root is not None:
            require_path(image_root, name)


def prepare_cfg(cfg):
    """``setup``'s project step: make the datasets the config names available (:func:`prepare_datasets`)."""
    prepare_datasets(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST))
    return cfg
