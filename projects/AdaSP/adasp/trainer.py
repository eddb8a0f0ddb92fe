"""``AdaSPTrainer``: fastreid's ``DefaultTrainer`` with this project's evaluator, atomic checkpoints,
``SEED``, datasets read from ``$FASTREID_DATASETS`` at call time (fastreid reads the variable once, at
import), and test sets and schedule lengths checked before the first iteration."""
from __future__ import annotations

import logging
import math

from fastreid.data import build_reid_test_loader, build_reid_train_loader
from fastreid.data.common import CommDataset
from fastreid.data.transforms import build_transforms
from fastreid.engine import DefaultTrainer
from fastreid.utils import comm
from fastreid.utils.checkpoint import Checkpointer
from detectron2.utils.env import seed_all_rng

from adasp.datasets import check_test_set, load_reid_dataset
from adasp.evaluation import SharedReidEvaluator
from shared.engine import AtomicCheckpointing
from shared.engine.validation import ConfigValueError

__all__ = ["AdaSPTrainer", "check_identity_count", "check_schedule_length", "seed_everything"]

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """``SEED >= 0``: seed Python, numpy and torch with ``SEED + rank`` (detectron2's rule); fastreid's
    identity samplers draw their own seed from numpy, so they follow. ``SEED < 0``: a fresh random seed,
    logged. fastreid's ``default_setup`` seeds nothing, so without this no two runs are alike."""
    seed_all_rng(None if seed < 0 else seed + comm.get_rank())


def check_schedule_length(cfg, iters_per_epoch: int) -> None:
    """Refuse schedules fastreid would crash on or silently mis-run, naming the keys.

    fastreid's cosine schedule runs over ``T_max = MAX_EPOCH - max(ceil(WARMUP_ITERS / iters_per_epoch),
    DELAY_EPOCHS)`` epochs (fastreid/solver/build.py), which divides by zero after the warm-up when
    ``T_max = 0``; a training set smaller than one batch has no iteration at all.
    """
    solver = cfg.SOLVER
    if iters_per_epoch <= 0:
        raise ConfigValueError("SOLVER.IMS_PER_BATCH", solver.IMS_PER_BATCH,
                               "larger than the training set: an epoch has no iteration")
    warmup_epochs = math.ceil(solver.WARMUP_ITERS / iters_per_epoch)
    if solver.SCHED == "CosineAnnealingLR" and solver.MAX_EPOCH <= max(warmup_epochs, solver.DELAY_EPOCHS):
        raise ConfigValueError(
            "SOLVER.MAX_EPOCH", solver.MAX_EPOCH,
            f"must exceed the warm-up epochs ceil(SOLVER.WARMUP_ITERS={solver.WARMUP_ITERS} / "
            f"{iters_per_epoch} iterations per epoch) = {warmup_epochs} and SOLVER.DELAY_EPOCHS="
            f"{solver.DELAY_EPOCHS} for the cosine schedule (SOLVER.SCHED CosineAnnealingLR)")


def check_identity_count(cfg, num_identities: int) -> None:
    """An identity sampler needs at least P = SOLVER.IMS_PER_BATCH / DATALOADER.NUM_INSTANCE identities:
    with fewer, fastreid's ``BalancedIdentitySampler`` drops them all and ``NaiveIdentitySampler`` never
    completes a batch, and both loop forever without output."""
    from shared.engine.run_checks import IDENTITY_SAMPLERS

    if cfg.DATALOADER.SAMPLER_TRAIN not in IDENTITY_SAMPLERS:
        return
    needed = cfg.SOLVER.IMS_PER_BATCH // cfg.DATALOADER.NUM_INSTANCE
    if num_identities < needed:
        raise ConfigValueError(
            "SOLVER.IMS_PER_BATCH", cfg.SOLVER.IMS_PER_BATCH,
            f"needs at least IMS_PER_BATCH / DATALOADER.NUM_INSTANCE={cfg.DATALOADER.NUM_INSTANCE} = "
            f"{needed} identities per batch, but DATASETS.NAMES={tuple(cfg.DATASETS.NAMES)} has "
            f"{num_identities} ({cfg.DATALOADER.SAMPLER_TRAIN} would loop forever)")


class AdaSPTrainer(AtomicCheckpointing, DefaultTrainer):
    """fastreid's ``DefaultTrainer`` with this project's datasets, evaluator and atomic checkpoints.

    The model is whatever ``MODEL.META_ARCHITECTURE`` names (``AdaSPBaseline`` / ``AdaSPMGN`` are registered
    by ``import adasp``); logging, metrics.json, TensorBoard, LR schedule, evaluation and ``--resume`` are
    fastreid's ``DefaultTrainer`` machinery. Its optimizer is fastreid's with ``contiguous=False``, the
    default :mod:`shared.compat` installs (the contiguous one never updates a weight under torch 2).
    """

    checkpointer_cls = Checkpointer

    def __init__(self, cfg):
        seed_everything(cfg.SEED)
        world = comm.get_world_size()
        if world > 1 and not cfg.MODEL.LOSSES.GLOBAL_BATCH:
            logger.warning("SOLVER.IMS_PER_BATCH %d over %d processes: each loss and BatchNorm sees %d "
                           "images (the official runs: one GPU, all %d); MODEL.LOSSES.GLOBAL_BATCH True "
                           "(+ syncBN) computes the losses on the whole batch",
                           cfg.SOLVER.IMS_PER_BATCH, world, cfg.SOLVER.IMS_PER_BATCH // world,
                           cfg.SOLVER.IMS_PER_BATCH)
        for name in cfg.DATASETS.TESTS:  # refuse an unusable test set now, not after training
            check_test_set(load_reid_dataset(name, split_seed=cfg.TEST.SPLIT_SEED), name)
        super().__init__(cfg)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer, iters_per_epoch):
        check_schedule_length(cfg, iters_per_epoch)
        return super().build_lr_scheduler(cfg, optimizer, iters_per_epoch)

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
        check_identity_count(cfg, len(train_set.pids))
        return build_reid_train_loader(cfg, train_set=train_set)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        dataset = load_reid_dataset(dataset_name, split_seed=cfg.TEST.SPLIT_SEED)
        check_test_set(dataset, dataset_name)
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
