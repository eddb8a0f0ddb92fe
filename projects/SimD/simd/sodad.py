"""SODA-D's official evaluation protocol: detections on the split patches are merged into full images and
scored there (SODA-mmdetection, mmdet/datasets/sodad.py ``merge_dets`` / ``_merge_func`` and
mmdet/datasets/sodad_eval/sodadeval.py).

1. Every patch's detections are shifted by the patch origin (``start_coord`` of the patch json's image).
2. Per original image (``ori_id``) and class, greedy NMS at IoU 0.5 removes the duplicates of overlapping
   patches.
3. The merged detections are scored against ``rawData/Annotations/{val,test}_wo_ignore.json`` with the SODA-D
   area ranges; a ground truth is ignored when its ``ignore`` key is true (not through ``iscrowd``, which the
   official evaluator sets to 0 for every box).

:class:`SodaDEvaluator` does this after inference and also reports the patch-level numbers, under the
separate task name ``bbox_patches`` (not comparable with published SODA-D results).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import torch
from pycocotools.coco import COCO
from torchvision.ops import batched_nms

from shared.atomic_io import atomic_open
from simd.evaluation import ProtocolCOCOeval, TinyObjectEvaluator, get_protocol

MERGE_NMS_THRESH = 0.5  # SODA-mmdetection evaluate(): merge_dets(nms_iou_thr=0.5)

logger = logging.getLogger(__name__)


def merge_patch_detections(
    results: Sequence[dict], patches: Dict[int, dict], nms_thresh: float = MERGE_NMS_THRESH
) -> List[dict]:
    """COCO-format patch detections -> COCO-format full-image detections (steps 1-2 of the module docstring).

    Args:
        results: ``{"image_id": patch id, "category_id", "bbox": [x, y, w, h], "score"}`` dicts.
        patches: patch id -> the patch json's image record (with ``ori_id`` and ``start_coord`` = [x, y]).
    """
    grouped: Dict[int, List[Tuple[List[float], float, int]]] = defaultdict(list)
    for det in results:
        patch = patches.get(det["image_id"])
        if patch is None or "ori_id" not in patch or "start_coord" not in patch:
            raise ValueError(
                f"detection on image id {det['image_id']!r}, which is not a patch of the split json "
                "(its image records need 'ori_id' and 'start_coord', as SODA-D's split tool writes)"
            )
        dx, dy = patch["start_coord"]
        x, y, w, h = det["bbox"]
        grouped[patch["ori_id"]].append(
            ([x + dx, y + dy, x + dx + w, y + dy + h], float(det["score"]), int(det["category_id"]))
        )
    merged = []
    for image_id, dets in grouped.items():
        boxes = torch.tensor([d[0] for d in dets], dtype=torch.float32)
        scores = torch.tensor([d[1] for d in dets], dtype=torch.float32)
        classes = torch.tensor([d[2] for d in dets], dtype=torch.int64)
        for i in batched_nms(boxes, scores, classes, nms_thresh).tolist():
            (x0, y0, x1, y1), score, category = dets[i]  # the float64 values, not the NMS tensors' float32
            merged.append(
                {
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": score,
                }
            )
    return merged


class SodaDCOCOeval(ProtocolCOCOeval):
    """``ProtocolCOCOeval`` with the SODA-D evaluator's ground-truth handling: ``ignore`` comes from the
    annotation's ``ignore`` key and every box is matched as a non-crowd box. Always computed with the
    pycocotools backend, whose Python ``_prepare`` step is where the ignore flags are set."""

    def __init__(self, coco_gt: COCO, coco_dt: COCO, protocol, iou_type: str = "bbox"):
        for ann in coco_gt.anns.values():
            ann["_sodad_ignore"] = int(bool(ann.get("ignore", 0)))
            ann["iscrowd"] = 0
        super().__init__(coco_gt, coco_dt, protocol, iou_type, backend="pycocotools")
        impl = self.impl
        prepare = impl._prepare

        def prepare_with_ignore_key() -> None:
            prepare()  # pycocotools sets ignore = iscrowd (0 here); SODA-D takes the ignore key instead
            for gts in impl._gts.values():
                for gt in gts:
                    gt["ignore"] = gt["_sodad_ignore"]

        impl._prepare = prepare_with_ignore_key


def evaluate_full_images(
    full_image_json: str, merged: List[dict], max_dets: Sequence[int] = ()
) -> SodaDCOCOeval:
    """Score merged detections on the full images of ``full_image_json`` with the SODA-D protocol."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(full_image_json)
        coco_dt = coco_gt.loadRes(copy.deepcopy(merged)) if merged else COCO()
        evaluator = SodaDCOCOeval(coco_gt, coco_dt, get_protocol("sodad", max_dets))
        evaluator.params.imgIds = sorted(coco_gt.getImgIds())
        evaluator.evaluate()
        evaluator.accumulate()
    evaluator.summarize()
    return evaluator


class SodaDEvaluator(TinyObjectEvaluator):
    """The ``sodad`` protocol on full images (see the module docstring). The dataset's metadata must name
    the full-image json (``full_image_json_file``: ``rawData/Annotations/<split>_wo_ignore.json``)."""

    def _eval_predictions(self, predictions, img_ids=None):
        super()._eval_predictions(predictions, img_ids)  # patch level; writes coco_instances_results.json
        patch_metrics = self._results.pop("bbox", None)
        full_json = self._metadata.get("full_image_json_file", None)
        if not full_json or not os.path.isfile(full_json):
            raise FileNotFoundError(
                "SODA-D evaluation needs the full-image annotations "
                f"rawData/Annotations/<split>_wo_ignore.json "
                f"(metadata full_image_json_file={full_json!r}); patch-level numbers are not comparable with "
                "published ones"
            )
        results = [r for x in predictions for r in x["instances"]]  # the base class mapped them to json ids
        merged = merge_patch_detections(results, self._coco_api.imgs)
        logger.info("SODA-D evaluation of %s: %d patch detections merged into %d on the full images, scored "
                    "against %s", self._metadata.name, len(results), len(merged), os.path.abspath(full_json))
        if self._output_dir:
            with atomic_open(os.path.join(self._output_dir, "coco_instances_results_full_images.json"),
                             "w") as f:
                json.dump(merged, f)
        names = [m.name for m in self.protocol.metrics]
        if not merged:
            self._results["bbox"] = {name: 0.0 for name in names}
        else:
            evaluator = evaluate_full_images(full_json, merged, self.protocol.max_dets)
            self._results["bbox"] = {
                name: 100.0 * v if v >= 0 else float("nan") for name, v in evaluator.metrics.items()
            }
        if patch_metrics is not None:
            self._results["bbox_patches"] = patch_metrics
