"""Trainer and setup shared by ``train_net.py``, ``demo.py`` and the tools."""
from __future__ import annotations

import logging
import weakref
from typing import List, Optional

from detectron2.config import CfgNode, get_cfg
from detectron2.engine import DefaultTrainer, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from shared.engine import AtomicDetectionCheckpointer, resolve_device
from simd.config import add_simd_config
from simd.datasets import register_datasets_for
from simd.evaluation import build_simd_evaluator
from simd.normalisers import resolve_normalisers

logger = logging.getLogger(__name__)


class SimDTrainer(DefaultTrainer):
    """``DefaultTrainer`` with atomic checkpoints and the tiny-object evaluators."""

    def build_hooks(self):
        # DefaultTrainer creates a plain DetectionCheckpointer just before calling build_hooks; swap it for
        # the atomic one before the PeriodicCheckpointer hook captures it
        self.checkpointer = AtomicDetectionCheckpointer(self.checkpointer.model, self.cfg.OUTPUT_DIR,
                                                        trainer=weakref.proxy(self))
        return super().build_hooks()

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None):
        return build_simd_evaluator(cfg, dataset_name, output_folder)


def build_cfg(config_file: str = "", opts: Optional[List[str]] = None) -> CfgNode:
    """detectron2 defaults + SimD keys + ``config_file`` + ``opts``; MODEL.DEVICE "auto" resolved."""
    cfg = get_cfg()
    add_simd_config(cfg)
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts or []))
    cfg.MODEL.DEVICE = resolve_device(cfg.MODEL.DEVICE)
    return cfg


def prepare_cfg(cfg: CfgNode) -> CfgNode:
    """Register the datasets the config names and resolve SimD's normalisers (estimated on the main
    process, read back from the OUTPUT_DIR cache by the others). Returns a frozen cfg."""
    register_datasets_for(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST))
    if comm.is_main_process():
        cfg = resolve_normalisers(cfg)
    comm.synchronize()
    if not comm.is_main_process():
        cfg = resolve_normalisers(cfg)
    cfg.freeze()
    return cfg


def setup(args) -> CfgNode:
    """``train_net.py`` setup: build the cfg from ``args``, detectron2's ``default_setup`` (logging,
    config dump, seeds), datasets and normalisers."""
    cfg = build_cfg(args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="simd")  # normaliser estimates etc.
    cfg = cfg.clone()
    cfg.defrost()
    return prepare_cfg(cfg)
