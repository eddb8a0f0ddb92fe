"""The SimD trainer and the project step of ``setup`` (``prepare_cfg``), used by ``train_net.py``, ``demo.py``
and the tools; configs are built with ``shared.engine.build_cfg(add_simd_config, file, opts)``."""
from __future__ import annotations

import logging
from typing import Optional

from detectron2.config import CfgNode
from detectron2.engine import DefaultTrainer
from detectron2.utils import comm

from shared.engine import AtomicCheckpointing
from simd.datasets import register_datasets_for
from simd.evaluation import build_simd_evaluator
from simd.normalisers import resolve_normalisers

logger = logging.getLogger(__name__)


class SimDTrainer(AtomicCheckpointing, DefaultTrainer):
    """``DefaultTrainer`` with atomic checkpoints and the tiny-object evaluators."""

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None):
        return build_simd_evaluator(cfg, dataset_name, output_folder)


def prepare_cfg(cfg: CfgNode) -> CfgNode:
    """Register the datasets the config names and resolve SimD's normalisers (estimated on the main
    process, read back from the OUTPUT_DIR cache by the others). Returns a frozen cfg."""
    register_datasets_for(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST), cfg.DATASETS.DROP_INVALID_BOXES)
    if comm.is_main_process():
        cfg = resolve_normalisers(cfg)
    comm.synchronize()
    if not comm.is_main_process():
        cfg = resolve_normalisers(cfg)
    cfg.freeze()
    return cfg
