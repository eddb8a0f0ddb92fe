"""``AdaSPTrainer``: fastreid's ``DefaultTrainer`` with this project's evaluator, atomic checkpoints and
datasets read from ``$FASTREID_DATASETS`` at call time (fastreid reads the variable once, at import)."""
from __future__ import annotations

import logging
import random
from typing import List

from fastreid.data import build_reid_test_loader, build_reid_train_loader
from fastreid.data.common import CommDataset
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.transforms import build_transforms
from fastreid.engine import DefaultTrainer
from fastreid.utils import comm
from fastreid.utils.checkpoint import Checkpointer

from adasp.evaluation import SharedReidEvaluator
from shared.datasets.paths import FASTREID_ENV, dataset_root
from shared.engine import AtomicCheckpointing

__all__ = ["AdaSPTrainer", "load_reid_dataset"]

logger = logging.getLogger(__name__)


def load_reid_dataset(name: str, split_seed: int = -1, **kwargs):
    """Instantiate fastreid dataset ``name`` (``DATASETS.NAMES``) under ``$FASTREID_DATASETS``.

    ``split_seed >= 0`` seeds the random query/gallery split some loaders draw with Python's ``random``
    (VehicleID), without disturbing the global random state. A missing folder raises ``FileNotFoundError`` naming the dataset, the path and the env var (fastreid
    raises a bare ``RuntimeError('"<path>" is not found')``); an unknown name lists the registered ones.
    """
    registered = DATASET_REGISTRY._obj_map  # fastreid's Registry has no public membership test
    if name not in registered:
        known = sorted(registered)
        raise KeyError(f"unknown dataset {name!r} in DATASETS.NAMES/TESTS; registered: {known}")
    root = dataset_root(FASTREID_ENV)
    saved_state = random.getstate()
    if split_seed >= 0:
        random.seed(split_seed)
    try:
        return DATASET_REGISTRY.get(name)(root=root, **kwargs)
    except RuntimeError as err:
        if "is not found" not in str(err):
            raise
        raise FileNotFoundError(
            f"dataset {name!r}: {err} (root ${FASTREID_ENV}={root!r}); see projects/AdaSP/README.md for the "
            "expected folder layout") from err
    finally:
        if split_seed >= 0:
            random.setstate(saved_state)


class AdaSPTrainer(AtomicCheckpointing, DefaultTrainer):
    """fastreid's ``DefaultTrainer`` with this project's datasets, evaluator and atomic checkpoints.

    The model is whatever ``MODEL.META_ARCHITECTURE`` names (``AdaSPBaseline`` / ``AdaSPMGN`` are registered
    by ``import adasp``); logging, metrics.json, TensorBoard, LR schedule, evaluation and ``--resume`` are
    fastreid's ``DefaultTrainer`` machinery. Its optimizer is fastreid's with ``contiguous=False``, the
    default :mod:`shared.compat` installs (the contiguous one never updates a weight under torch 2).
    """

    checkpointer_cls = Checkpointer

    @classmethod
    def build_train_loader(cls, cfg):
        logger.info("Prepare training set")
        items = []
        for name in cfg.DATASETS.NAMES:
            dataset = load_reid_dataset(name, combineall=cfg.DATASETS.COMBINEALL)
            if comm.is_main_process():
                dataset.show_train()
            items.extend(dataset.train)
        if not items:
            raise ValueError(f"DATASETS.NAMES={tuple(cfg.DATASETS.NAMES)} yields no training images")
        train_set = CommDataset(items, build_transforms(cfg, is_train=True), relabel=True)
        return build_reid_train_loader(cfg, train_set=train_set)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        dataset = load_reid_dataset(dataset_name, split_seed=cfg.TEST.SPLIT_SEED)
        if comm.is_main_process():
            dataset.show_test()
        test_set = CommDataset(dataset.query + dataset.gallery, build_transforms(cfg, is_train=False),
                               relabel=False)
        return build_reid_test_loader(test_set=test_set, test_batch_size=cfg.TEST.IMS_PER_BATCH,
                                      num_query=len(dataset.query), num_workers=cfg.TEST.NUM_WORKERS)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_dir=None):
        data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
        return data_loader, SharedReidEvaluator(cfg, num_query, output_dir)
