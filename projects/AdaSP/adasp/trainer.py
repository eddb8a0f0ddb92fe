"""``AdaSPTrainer``: fastreid's ``DefaultTrainer`` with this project's evaluator, atomic checkpoints,
``SEED``, datasets read from ``$FASTREID_DATASETS`` at call time (fastreid reads the variable once, at
import), and test sets and schedule lengths checked before the first iteration."""
from __future__ import annotations

import json
import logging
import math
import os

from fastreid.data import build_reid_test_loader, build_reid_train_loader
from fastreid.data.common import CommDataset
from fastreid.data.transforms import build_transforms
from fastreid.engine import DefaultTrainer, hooks
from fastreid.utils import comm
from fastreid.utils.checkpoint import Checkpointer
from fastreid.evaluation.testing import flatten_results_dict
from fastreid.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter, get_event_storage
from detectron2.utils.env import seed_all_rng

from adasp.datasets import check_test_set, load_reid_dataset
from adasp.evaluation import SharedReidEvaluator
from adasp.predictor import write_adasp_run_info
from shared.engine import AtomicCheckpointing
from shared.engine.validation import ConfigValueError

__all__ = ["AdaSPTrainer", "FinalEpochEvalHook", "SafeMetricPrinter", "check_identity_count",
           "check_schedule_length", "seed_everything"]

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


class SafeMetricPrinter(CommonMetricPrinter):
    """fastreid's console printer, which divides by the iterations since its last line to estimate the ETA
    when no iteration time is recorded yet (the first iterations are the timer's warm-up): a second line at
    the same iteration -- end of the last step, then end of the epoch, in a run of <= 2 iterations -- raised
    ``ZeroDivisionError`` after the checkpoint was saved. Here that line simply has no ETA."""

    def write(self):
        if self._last_write is not None and get_event_storage().iter == self._last_write[0]:
            self._last_write = None
        super().write()


class FinalEpochEvalHook(hooks.EvalHook):
    """fastreid's ``EvalHook`` runs the final evaluation in ``after_train``, after the writers' last write, so
    its numbers reached only the console. This hook evaluates at the end of the last epoch too, before the
    writers run, so every evaluation -- periodic and final -- lands in ``metrics.json`` and TensorBoard.

    The writers keep only scalars of an iteration they have not written yet; an evaluation at an iteration
    whose losses were already written (always the last one: fastreid writes after the last step) is written
    by this hook itself, as one more ``metrics.json`` line and TensorBoard scalars at that iteration."""

    def _do_eval(self):
        super()._do_eval()
        results = getattr(self.trainer, "_last_eval_results", None)
        if not results or not comm.is_main_process():
            return
        scalars = {k: float(v) for k, v in flatten_results_dict(results).items()}
        iteration = get_event_storage().iter
        for hook in self.trainer._hooks:
            for writer in hook._writers if isinstance(hook, hooks.PeriodicWriter) else []:
                if not isinstance(writer, (JSONWriter, TensorboardXWriter)) or iteration > writer._last_write:
                    continue  # not a file writer, or its next write takes them
                if isinstance(writer, JSONWriter):
                    writer._file_handle.write(json.dumps(dict(scalars, iteration=iteration), sort_keys=True)
                                              + "\n")
                    writer._file_handle.flush()
                elif isinstance(writer, TensorboardXWriter):
                    for key, value in scalars.items():
                        writer._writer.add_scalar(key, value, iteration)

    def after_epoch(self):
        next_epoch = self.trainer.epoch + 1
        periodic = self._period > 0 and next_epoch % self._period == 0
        if periodic or next_epoch >= self.trainer.max_epoch:
            self._do_eval()

    def after_train(self):
        del self._func  # the evaluation already ran in after_epoch


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
        if comm.is_main_process():
            write_adasp_run_info(cfg, getattr(self.model, "module", self.model))

    def build_hooks(self):
        """fastreid's hooks with :class:`FinalEpochEvalHook` and :class:`SafeMetricPrinter`."""
        ret = super().build_hooks()
        for i, hook in enumerate(ret):
            if type(hook) is hooks.EvalHook:
                ret[i] = FinalEpochEvalHook(hook._period, hook._func)
            if isinstance(hook, hooks.PeriodicWriter):
                hook._writers = [SafeMetricPrinter(self.max_iter) if isinstance(w, CommonMetricPrinter) else w
                                 for w in hook._writers]
        return ret

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
        if output_dir is None and cfg.OUTPUT_DIR:
            output_dir = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return data_loader, SharedReidEvaluator(cfg, num_query, output_dir)
