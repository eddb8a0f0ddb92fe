"""IIF evaluation: the LVIS (or COCO) metrics plus a record of what the evaluation used.

:class:`IIFEvaluator` wraps the metric evaluator. While the model runs it counts, from the outputs, the
detections each image keeps after the score threshold, NMS and the per-image cap; at the end it returns the
metrics and writes ``OUTPUT_DIR/iif_evaluation.json`` (and the same file in
``OUTPUT_DIR/inference/<dataset>/``): variant, classifier, thresholds, detection cap, the mean number of
detections per image and the metrics. IIF scales the logits, which changes the score distribution; the count
shows how many detections survive the LVIS protocol's 1e-4 / 300 settings.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, Optional

from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from shared.engine import atomic_write_bytes

__all__ = ["IIFEvaluator", "evaluation_record"]

logger = logging.getLogger(__name__)

RECORD_FILE = "iif_evaluation.json"


def evaluation_record(cfg, results: Dict[str, Any], num_images: int, num_detections: int) -> Dict[str, Any]:
    """What an evaluation used (IIF variant, classifier, thresholds, mask binarisation) and its results.

    ``mean_detections_per_image = num_detections / num_images`` (``None`` without images).
    """
    iif_cfg = cfg.MODEL.ROI_BOX_HEAD.IIF
    return {
        "iif_enabled": bool(iif_cfg.ENABLED),
        "iif_variant": iif_cfg.VARIANT if iif_cfg.ENABLED else None,
        "cls_predictor": cfg.MODEL.ROI_BOX_HEAD.CLS_PREDICTOR,
        "mask_head": cfg.MODEL.ROI_MASK_HEAD.NAME,
        # detectron2 v0.6 pastes masks with a fixed 0.5 binarisation threshold (detector_postprocess),
        # the official runs' mask_thr_binary 0.5.
        "mask_threshold": 0.5,
        "score_thresh_test": cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
        "nms_thresh_test": cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
        "detections_per_image_cap": cfg.TEST.DETECTIONS_PER_IMAGE,
        "num_images": num_images,
        "mean_detections_per_image": num_detections / num_images if num_images else None,
        "results": results,
    }


class IIFEvaluator(DatasetEvaluator):
    """``evaluator`` (e.g. ``LVISEvaluator``) plus the detection count and the evaluation record.

    ``evaluate()`` returns the wrapped evaluator's results unchanged; the main process also writes
    ``<output_dir>/iif_evaluation.json`` (``output_dir`` empty: no file), naming ``dataset_name``, and the
    same record into ``results_dir`` (the dataset's ``OUTPUT_DIR/inference/<dataset>/``, beside its
    predictions, where one test set's record is not overwritten by the next).
    """

    def __init__(self, cfg, evaluator: DatasetEvaluator, output_dir: Optional[str] = None,
                 distributed: bool = True, dataset_name: str = "", results_dir: str = ""):
        self._cfg = cfg
        self._results_dir = results_dir
        self._dataset_name = dataset_name
        self._evaluator = evaluator
        self._output_dir = cfg.OUTPUT_DIR if output_dir is None else output_dir
        self._distributed = distributed
        self.reset()

    def reset(self) -> None:
        self._evaluator.reset()
        self._detections_per_image: list[int] = []

    def process(self, inputs, outputs) -> None:
        self._evaluator.process(inputs, outputs)
        for output in outputs:
            if "instances" in output:
                self._detections_per_image.append(len(output["instances"]))

    def evaluate(self):
        results = self._evaluator.evaluate()
        counts = self._detections_per_image
        if self._distributed:
            comm.synchronize()
            counts = list(itertools.chain(*comm.gather(counts, dst=0)))
            if not comm.is_main_process():
                return results
        record = evaluation_record(self._cfg, results if results is not None else {}, len(counts),
                                   sum(counts))
        record["dataset"] = self._dataset_name
        if record["mean_detections_per_image"] is not None:
            logger.info("IIF eval: %.1f detections per image survive score >= %g (cap %d); variant %s, "
                        "mask threshold %.2f", record["mean_detections_per_image"],
                        record["score_thresh_test"], record["detections_per_image_cap"],
                        record["iif_variant"] or "off (softmax baseline)", record["mask_threshold"])
        payload = json.dumps(record, indent=2, default=float).encode()
        for folder in dict.fromkeys(d for d in (self._output_dir, self._results_dir) if d):
            os.makedirs(folder, exist_ok=True)
            atomic_write_bytes(os.path.join(folder, RECORD_FILE), payload)
        return results if results is not None else OrderedDict()
