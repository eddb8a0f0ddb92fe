"""LVIS evaluation (lvis-api's rules) on faster-coco-eval or on lvis-api itself.

lvis-api (``lvis.LVISResults`` + ``lvis.LVISEval``) differs from COCO evaluation in four ways, all kept here:

1. at most ``max_dets`` detections per *image* (all classes together; LVIS v1: 300), the highest scores
   kept (a stable sort, so ties keep their input order); no per-class cap after that;
2. a detection is evaluated only if its class is in the image's ``neg_category_ids`` or has a ground truth
   in the image; all others are dropped (not counted as false positives);
3. unmatched detections of a class in the image's ``not_exhaustive_category_ids`` are ignored;
4. no crowd regions; AP is also reported per frequency group (``APr``/``APc``/``APf`` over the categories
   whose ``frequency`` is r / c / f).

With the faster-coco-eval backend, (1) is done here exactly as lvis-api does it, (2)-(4) by
faster-coco-eval's ``lvis_style`` mode, and the summary numbers are computed here from its precision /
recall arrays with lvis-api's rule (mean over the entries > -1).
"""
from __future__ import annotations

import contextlib
import copy
import io
from collections import OrderedDict, defaultdict
from typing import Any, Dict, List

import numpy as np
from faster_coco_eval import COCO as FasterCOCO

from shared.evaluation.backend import (DEFAULT_BACKEND, FasterCOCOeval, IndexedCOCO, gc_paused, is_fast,
                                       load_results, mean_valid)

__all__ = ["LVIS_AP_METRICS", "evaluate_lvis", "limit_dets_per_image", "lvis_summary"]

#: the metrics detectron2's LVISEvaluator reports
LVIS_AP_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
_AREAS = (("all", (0.0, 1e5 ** 2)), ("small", (0.0, 32.0 ** 2)), ("medium", (32.0 ** 2, 96.0 ** 2)),
          ("large", (96.0 ** 2, 1e5 ** 2)))
_FREQUENCIES = ("r", "c", "f")


def limit_dets_per_image(results: List[dict], max_dets: int) -> List[dict]:
    """lvis-api's per-image cap: results grouped by image (in order of first appearance); an image with more
    than ``max_dets`` keeps its ``max_dets`` highest scores (stable: equal scores keep their input order)."""
    per_image: Dict[Any, List[dict]] = defaultdict(list)
    for r in results:
        per_image[r["image_id"]].append(r)
    out: List[dict] = []
    for anns in per_image.values():
        if len(anns) > max_dets:
            anns = sorted(anns, key=lambda a: a["score"], reverse=True)[:max_dets]
        out.extend(anns)
    return out


def _faster_lvis_gt(lvis_gt: Any) -> FasterCOCO:
    """The LVIS ground truth as a faster-coco-eval ``COCO`` (cached on ``lvis_gt``).

    lvis-api never treats a box as a crowd region (it passes ``iscrowd = 0`` to the IoU), so ``iscrowd`` is
    set to 0 on the copies; a truthy ``ignore`` key (honoured by lvis-api, not part of the LVIS format) has no
    equivalent in faster-coco-eval and is refused.
    """
    if isinstance(lvis_gt, FasterCOCO):
        return lvis_gt
    dataset = lvis_gt.dataset
    anns = dataset.get("annotations", [])
    cached = getattr(lvis_gt, "_shared_faster_lvis", None)
    if cached is not None and cached[0] is anns and cached[1] == len(anns):
        return cached[2]
    for ann in anns:
        if ann.get("ignore"):
            raise ValueError(f"LVIS annotation id {ann.get('id')} has ignore={ann['ignore']!r}: 'ignore' is "
                             "not part of the LVIS format and the faster_coco_eval backend cannot honour it; "
                             "use TEST.EVAL_BACKEND 'lvis'")
    images = dataset.get("images", [])
    for img in images:
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            if key not in img:
                raise ValueError(f"LVIS image id {img.get('id')} has no {key!r} "
                                 "(required by the LVIS protocol)")
    for cat in dataset.get("categories", []):
        if cat.get("frequency") not in _FREQUENCIES:
            raise ValueError(f"LVIS category id {cat.get('id')} has frequency={cat.get('frequency')!r}; "
                             f"expected one of {list(_FREQUENCIES)}")
    converted = dict(dataset)
    converted["annotations"] = [dict(ann, iscrowd=0) for ann in anns]
    out = IndexedCOCO(converted)
    try:
        lvis_gt._shared_faster_lvis = (anns, len(anns), out)
    except AttributeError:  # pragma: no cover
        pass
    return out


def _evaluated_classes(gt: FasterCOCO, image_id: Any) -> set:
    """Classes whose detections lvis-api evaluates in an image: its GT classes and its neg_category_ids."""
    cache = gt.__dict__.setdefault("_shared_evaluated_classes", {})
    if image_id not in cache:
        if image_id not in gt.imgs:
            raise ValueError(f"a detection has image_id {image_id!r}, which is not in the LVIS ground truth")
        cache[image_id] = {a["category_id"] for a in gt.imgToAnns.get(image_id, ())} | set(
            gt.imgs[image_id]["neg_category_ids"])
    return cache[image_id]


def lvis_summary(precision: np.ndarray, recall: np.ndarray, iou_thrs: np.ndarray,
                 freq_groups: List[List[int]], max_dets: int = 300) -> "OrderedDict[str, float]":
    """lvis-api's ``summarize`` on precision ``[T, R, K, A]`` and recall ``[T, K, A]`` (areas all / small /
    medium / large): each number is the mean of the selected entries > -1 (-1 if none).
    Keys: AP, AP50, AP75, APs, APm, APl, APr, APc, APf, AR@<max_dets>, ARs@, ARm@, ARl@<max_dets>."""
    t50 = np.where(iou_thrs == 0.5)[0]
    t75 = np.where(iou_thrs == 0.75)[0]
    out: "OrderedDict[str, float]" = OrderedDict()
    out["AP"] = mean_valid(precision[:, :, :, 0])
    out["AP50"] = mean_valid(precision[t50][:, :, :, 0])
    out["AP75"] = mean_valid(precision[t75][:, :, :, 0])
    for a, (label, _) in enumerate(_AREAS[1:], start=1):
        out[f"AP{label[0]}"] = mean_valid(precision[:, :, :, a])
    for g, freq in enumerate(_FREQUENCIES):
        out[f"AP{freq}"] = mean_valid(precision[:, :, freq_groups[g], 0])
    out[f"AR@{max_dets}"] = mean_valid(recall[:, :, 0])
    for a, (label, _) in enumerate(_AREAS[1:], start=1):
        out[f"AR{label[0]}@{max_dets}"] = mean_valid(recall[:, :, a])
    return out


def _evaluate_faster(lvis_gt: Any, results: List[dict], iou_type: str,
                     max_dets: int) -> "OrderedDict[str, float]":
    gt = _faster_lvis_gt(lvis_gt)
    if max_dets >= 0:
        results = limit_dets_per_image(results, max_dets)
        cap = max_dets
    else:
        counts: Dict[Any, int] = defaultdict(int)
        for r in results:
            counts[r["image_id"]] += 1
        cap = max(counts.values(), default=1)
    # rule (2) applied before loading: faster-coco-eval 1.8.0 drops these detections itself, but in segm mode
    # it still rasterises them and fails (IndexError: unordered_map::at) on an image that has only dropped
    # detections and no ground truth. Dropping them first keeps the order of the others (ties unchanged).
    results = [r for r in results if r["category_id"] in _evaluated_classes(gt, r["image_id"])]
    if not results:
        raise ValueError("no detection of a class that is evaluated in its image (a GT class of the image "
                         "or one of its neg_category_ids)")
    dt = load_results(gt, results, "faster_coco_eval")  # copies the dicts
    ev = FasterCOCOeval(gt, dt, iou_type, lvis_style=True)
    ev.params.areaRng = [list(r) for _, r in _AREAS]
    ev.params.areaRngLbl = [label for label, _ in _AREAS]
    ev.params.maxDets = [max(cap, 1)]  # the per-image cap above bounds every (image, class) list
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval["precision"][..., 0]
    recall = ev.eval["recall"][..., 0]
    label = 300 if max_dets < 0 else max_dets
    return lvis_summary(precision, recall, ev.params.iouThrs, ev.freq_groups, label)


def _evaluate_lvis_api(lvis_gt: Any, results: List[dict], iou_type: str,
                       max_dets: int) -> "OrderedDict[str, float]":
    from lvis import LVISEval, LVISResults

    with contextlib.redirect_stdout(io.StringIO()):
        dt = LVISResults(lvis_gt, copy.deepcopy(results), max_dets=max_dets)
        ev = LVISEval(lvis_gt, dt, iou_type)
        ev.run()
    out = OrderedDict((k, float(v)) for k, v in ev.get_results().items())
    if max_dets >= 0 and max_dets != ev.params.max_dets:  # lvis-api labels AR with its own constant (300)
        out = OrderedDict((k.replace(f"@{ev.params.max_dets}", f"@{max_dets}"), v) for k, v in out.items())
    return out


def evaluate_lvis(lvis_gt: Any, results: List[dict], iou_type: str = "bbox", max_dets: int = 300,
                  backend: str = DEFAULT_BACKEND) -> "OrderedDict[str, float]":
    """LVIS metrics (fractions; -1 where undefined) of COCO-format ``results`` against ``lvis_gt`` (an
    lvis-api ``LVIS`` object, or a faster-coco-eval ``COCO`` of an LVIS json).

    ``max_dets``: detections kept per image (LVIS v1: 300; < 0 = no cap). ``iou_type``: "bbox" or "segm"
    (segm results need compressed RLE ``segmentation``; drop their ``bbox`` so that the mask area decides the
    area range, as detectron2 does). ``results`` is not modified.
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type={iou_type!r}: LVIS evaluates 'bbox' or 'segm'")
    if not results:
        raise ValueError("no detections to evaluate (lvis-api cannot load an empty result list)")
    if is_fast(backend):
        with gc_paused():
            return _evaluate_faster(lvis_gt, results, iou_type, max_dets)
    return _evaluate_lvis_api(lvis_gt, results, iou_type, max_dets)
