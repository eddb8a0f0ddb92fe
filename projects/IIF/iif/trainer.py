"""``IIFTrainer``: detectron2's DefaultTrainer with LVIS evaluation, atomic checkpoints and IIF bookkeeping."""
from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict

from detectron2.engine import DefaultTrainer
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from shared.engine import AtomicCheckpointing, atomic_write_bytes
from shared.evaluation import LVISEvaluator, build_coco_evaluator

__all__ = ["IIFTrainer", "evaluation_record"]

logger = logging.getLogger(__name__)


def evaluation_record(cfg, model, results: dict) -> dict:
    """What an evaluation used (spec §8: record variant and mask threshold) plus its results."""
    predictor = _unwrap(model).roi_heads.box_predictor
    images = getattr(predictor, "inference_images", 0)
    detections = getattr(predictor, "inference_detections", 0)
    iif_cfg = cfg.MODEL.ROI_BOX_HEAD.IIF
    return {
        "iif_enabled": bool(iif_cfg.ENABLED),
        "iif_variant": iif_cfg.VARIANT if iif_cfg.ENABLED else None,
        "cls_predictor": cfg.MODEL.ROI_BOX_HEAD.CLS_PREDICTOR,
        # detectron2 v0.6 pastes masks with a fixed 0.5 binarisation threshold (detector_postprocess).
        "mask_threshold": 0.5,
        "score_thresh_test": cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
        "nms_thresh_test": cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
        "detections_per_image_cap": cfg.TEST.DETECTIONS_PER_IMAGE,
        "mean_detections_per_image": detections / images if images else None,
        "results": results,
    }


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


class IIFTrainer(AtomicCheckpointing, DefaultTrainer):
    """DefaultTrainer + ``LVISEvaluator`` (or COCO for coco-type sets), atomic checkpoints, eval record."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str, output_folder: str | None = None) -> DatasetEvaluator:
        from detectron2.data import MetadataCatalog

        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", "lvis")
        backend = cfg.TEST.EVAL_BACKEND  # shared.evaluation: faster-coco-eval or the reference tools
        if evaluator_type == "coco":
            return build_coco_evaluator(dataset_name, backend, output_dir=output_folder,
                                        max_dets_per_image=cfg.TEST.DETECTIONS_PER_IMAGE)
        return LVISEvaluator(dataset_name, output_dir=output_folder,
                             max_dets_per_image=cfg.TEST.DETECTIONS_PER_IMAGE, backend=backend)

    @classmethod
    def test(cls, cfg, model, evaluators=None) -> OrderedDict:
        predictor = _unwrap(model).roi_heads.box_predictor
        predictor.inference_images = predictor.inference_detections = 0
        results = super().test(cfg, model, evaluators)
        record = evaluation_record(cfg, model, results)
        if record["mean_detections_per_image"] is not None:
            logger.info("IIF eval: %.1f detections per image survive score >= %g (cap %d); variant %s, mask "
                        "threshold %.2f", record["mean_detections_per_image"], record["score_thresh_test"],
                        record["detections_per_image_cap"], record["iif_variant"] or "off (softmax baseline)",
                        record["mask_threshold"])
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            atomic_write_bytes(os.path.join(cfg.OUTPUT_DIR, "iif_evaluation.json"),
                               json.dumps(record, indent=2, default=float).encode())
        return results
