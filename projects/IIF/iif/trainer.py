"""``IIFTrainer``: detectron2's DefaultTrainer with LVIS evaluation, the IIF evaluation record and atomic
checkpoints."""
from __future__ import annotations

import os

from detectron2.data import MetadataCatalog, build_detection_train_loader, get_detection_dataset_dicts
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import DatasetEvaluator

from iif.evaluation import IIFEvaluator
from iif.predictor import RUN_PROJECT, iif_run_metadata
from iif.sampler import CLASS_BALANCED_REPEAT, ClassBalancedRepeatSampler, repeat_counts
from shared.engine import AtomicCheckpointing, write_run_info
from shared.evaluation import LVISEvaluator, build_coco_evaluator

__all__ = ["IIFTrainer"]


class IIFTrainer(AtomicCheckpointing, DefaultTrainer):
    """DefaultTrainer + ``LVISEvaluator`` (COCO for coco-type sets) wrapped in :class:`IIFEvaluator`, and
    mmdetection's class-balanced repeat (``DATALOADER.SAMPLER_TRAIN "ClassBalancedRepeatSampler"``)."""

    @classmethod
    def build_train_loader(cls, cfg):
        if cfg.DATALOADER.SAMPLER_TRAIN != CLASS_BALANCED_REPEAT:
            return super().build_train_loader(cfg)
        dataset = get_detection_dataset_dicts(cfg.DATASETS.TRAIN,
                                              filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)
        sampler = ClassBalancedRepeatSampler(repeat_counts(dataset, cfg.DATALOADER.REPEAT_THRESHOLD))
        return build_detection_train_loader(cfg, dataset=dataset, sampler=sampler)

    def __init__(self, cfg):
        super().__init__(cfg)
        # run.json: what shared.engine.load_run needs to turn OUTPUT_DIR into a predictor
        write_run_info(cfg, RUN_PROJECT, "iif.predictor", **iif_run_metadata(cfg))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str, output_folder: str | None = None) -> DatasetEvaluator:
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        max_dets = cfg.TEST.DETECTIONS_PER_IMAGE
        backend = cfg.TEST.EVAL_BACKEND  # shared.evaluation: faster-coco-eval or the reference tools
        if MetadataCatalog.get(dataset_name).get("evaluator_type", "lvis") == "coco":
            metrics = build_coco_evaluator(dataset_name, backend, output_dir=output_folder,
                                           max_dets_per_image=max_dets)
        else:
            metrics = LVISEvaluator(dataset_name, output_dir=output_folder, max_dets_per_image=max_dets,
                                    backend=backend)
        return IIFEvaluator(cfg, metrics, dataset_name=dataset_name, results_dir=output_folder)
