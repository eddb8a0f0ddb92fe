"""The SimD trainer and the project step of ``setup`` (``prepare_cfg``), used by ``train_net.py``, ``demo.py``
and the tools; configs are built with ``shared.engine.build_cfg(add_simd_config, file, opts)``."""

from __future__ import annotations

import logging
import math
import os
from typing import Dict, Optional, Sequence, Tuple

from detectron2.config import CfgNode
from detectron2.engine import DefaultTrainer
from detectron2.utils import comm

from shared.engine import AtomicCheckpointing, write_run_info
from simd.datasets import register_datasets_for
from simd.evaluation import build_simd_evaluator
from simd.normalisers import CHECKPOINT_KEY, resolve_normalisers
from simd.predictor import RUN_PROJECT, simd_run_metadata

logger = logging.getLogger(__name__)


class NormaliserState:
    """Checkpointable holding the m, n a model is trained with, so every checkpoint carries them."""

    def __init__(self, m: float, n: float):
        self.m, self.n = float(m), float(n)

    def state_dict(self) -> Dict[str, float]:
        return {"m": self.m, "n": self.n}

    def load_state_dict(self, state: Dict[str, float]) -> None:
        # the config's values rule (they were resolved before the model was built); a mismatch is reported
        if (float(state["m"]), float(state["n"])) != (self.m, self.n):
            logger.warning(
                "checkpoint trained with SimD m=%s n=%s, config uses m=%s n=%s",
                state["m"],
                state["n"],
                self.m,
                self.n,
            )


def epoch_schedule(num_images: int, batch: int, epochs: int,
                   step_epochs: Sequence[int]) -> Tuple[int, Tuple[int, ...], int]:
    """Epochs -> iterations: ``E = ceil(num_images / batch)`` per epoch; returns
    ``(MAX_ITER, STEPS, E) = (epochs * E, step_epochs * E, E)``."""
    if num_images < 1 or batch < 1:
        raise ValueError(f"an epoch schedule needs training images and a batch, got {num_images} images at "
                         f"batch {batch}")
    per_epoch = math.ceil(num_images / batch)
    return epochs * per_epoch, tuple(int(s) * per_epoch for s in step_epochs), per_epoch


def resolve_epoch_schedule(cfg: CfgNode) -> CfgNode:
    """With ``SOLVER.EPOCHS > 0``: a copy of ``cfg`` whose MAX_ITER / STEPS / CHECKPOINT_PERIOD are
    :func:`epoch_schedule` of the training images as detectron2 loads them (``DATASETS.TRAIN`` after
    ``DATALOADER.FILTER_EMPTY_ANNOTATIONS``) at ``SOLVER.IMS_PER_BATCH`` (the batch of
    ``REFERENCE_WORLD_SIZE`` GPUs; detectron2 rescales the result for the actual GPU count). Otherwise
    ``cfg`` itself."""
    if cfg.SOLVER.EPOCHS <= 0:
        return cfg
    from detectron2.data import get_detection_dataset_dicts

    names = cfg.DATASETS.TRAIN
    num_images = len(get_detection_dataset_dicts(names, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS))
    max_iter, steps, per_epoch = epoch_schedule(num_images, cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.EPOCHS,
                                                cfg.SOLVER.STEP_EPOCHS)
    cfg = cfg.clone()
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.CHECKPOINT_PERIOD = max_iter, steps, per_epoch
    if was_frozen:
        cfg.freeze()
    logger.info("SOLVER.EPOCHS %d of %d training images (%s, empty images %s) at batch %d: %d it/epoch -> "
                "MAX_ITER %d, STEPS %s", cfg.SOLVER.EPOCHS, num_images, ", ".join(names),
                "dropped" if cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS else "kept", cfg.SOLVER.IMS_PER_BATCH,
                per_epoch, max_iter, steps)
    return cfg


class SimDTrainer(AtomicCheckpointing, DefaultTrainer):
    """``DefaultTrainer`` with atomic checkpoints holding SimD's m, n, and the tiny-object evaluators
    writing their predictions to ``OUTPUT_DIR/inference/<dataset>/``."""

    def __init__(self, cfg: CfgNode):
        super().__init__(resolve_epoch_schedule(cfg))
        self.checkpointer.checkpointables[CHECKPOINT_KEY] = NormaliserState(
            cfg.MODEL.SIMD.M, cfg.MODEL.SIMD.N
        )
        # run.json: what shared.engine.load_run needs to turn OUTPUT_DIR into a predictor
        write_run_info(cfg, RUN_PROJECT, "simd.predictor", **simd_run_metadata(cfg))

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_simd_evaluator(cfg, dataset_name, output_folder)


def prepare_cfg(cfg: CfgNode, write_config: bool = True) -> CfgNode:
    """Register the datasets the config names and resolve SimD's normalisers (estimated on the main
    process, read back from the OUTPUT_DIR cache by the others); with ``write_config`` (training) the main
    process then writes the resolved config to ``OUTPUT_DIR/config.yaml``, so ``DefaultPredictor`` built from
    it has m and n (the tools pass False and leave a run's config alone). Returns a frozen cfg."""
    register_datasets_for(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST), cfg.DATASETS.DROP_INVALID_BOXES)
    if comm.is_main_process():
        cfg = resolve_normalisers(cfg)
    comm.synchronize()
    if not comm.is_main_process():
        cfg = resolve_normalisers(cfg)
    if write_config and comm.is_main_process() and cfg.OUTPUT_DIR:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())
    cfg.freeze()
    return cfg
