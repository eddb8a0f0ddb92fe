"""A trained SimD run as a predictor: ``shared.engine.load_run(OUTPUT_DIR)`` for runs whose ``run.json`` says
``"project": "simd"`` (written by :class:`simd.trainer.SimDTrainer`).

The config is the run's ``config.yaml`` built with :func:`simd.config.add_simd_config` (it holds the resolved
m, n); the class names and the dataset's category ids come from ``run.json``, so no dataset has to be
registered in the predicting process.
"""
from __future__ import annotations

from shared.engine.run import DetectionRunPredictor, RunInfo, register_run_loader, run_config
from simd.config import add_simd_config

__all__ = ["RUN_PROJECT", "load_simd_run", "simd_run_metadata"]

#: the project name in run.json
RUN_PROJECT = "simd"


def simd_run_metadata(cfg) -> dict:
    """What :func:`load_simd_run` needs beyond ``config.yaml``: class names and category ids of the training
    sets, and the m, n the model was trained with."""
    from shared.engine.run import detection_metadata

    meta = detection_metadata(list(cfg.DATASETS.TRAIN) or list(cfg.DATASETS.TEST))
    meta.update(simd_m=float(cfg.MODEL.SIMD.M), simd_n=float(cfg.MODEL.SIMD.N))
    return meta


@register_run_loader(RUN_PROJECT)
def load_simd_run(run: RunInfo, checkpoint: str, device: str) -> DetectionRunPredictor:
    """``DetectionRunPredictor`` of a SimD run (m, n of the run's config; the training-time values in
    ``run.json`` fill them in if the config still says -1)."""
    opts = []
    meta = run.metadata
    if meta.get("simd_m", -1) > 0 and meta.get("simd_n", -1) > 0:
        opts = ["MODEL.SIMD.M", str(meta["simd_m"]), "MODEL.SIMD.N", str(meta["simd_n"])]
    cfg = run_config(run, add_simd_config, checkpoint, device, opts)
    return DetectionRunPredictor(cfg, meta.get("thing_classes", []), meta.get("thing_dataset_ids"))
