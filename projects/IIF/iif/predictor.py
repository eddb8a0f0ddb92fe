"""A trained IIF run as a predictor: ``shared.engine.load_run(OUTPUT_DIR)`` for runs whose ``run.json`` says
``"project": "iif"`` (written by :class:`iif.trainer.IIFTrainer`).

The config is the run's ``config.yaml`` built with :func:`iif.config.add_iif_config`; the IIF weights come
from the checkpoint (``MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE checkpoint``) and the class names and category ids
from ``run.json``, so the training set need not be present.
"""
from __future__ import annotations

from iif.config import add_iif_config
from shared.engine.run import (DetectionRunPredictor, RunInfo, detection_metadata, register_run_loader,
                               run_config)

__all__ = ["RUN_PROJECT", "iif_run_metadata", "load_iif_run"]

#: the project name in run.json
RUN_PROJECT = "iif"


def iif_run_metadata(cfg) -> dict:
    """What :func:`load_iif_run` needs beyond ``config.yaml``: class names and category ids of the training
    sets."""
    return detection_metadata(list(cfg.DATASETS.TRAIN) or list(cfg.DATASETS.TEST))


@register_run_loader(RUN_PROJECT)
def load_iif_run(run: RunInfo, checkpoint: str, device: str) -> DetectionRunPredictor:
    """``DetectionRunPredictor`` of an IIF (or softmax-baseline) Mask R-CNN run."""
    cfg = run_config(run, add_iif_config, checkpoint, device,
                     ["MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE", "checkpoint"])
    return DetectionRunPredictor(cfg, run.metadata.get("thing_classes", []),
                                 run.metadata.get("thing_dataset_ids"))
