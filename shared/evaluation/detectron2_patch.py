"""Makes detectron2 v0.6's ``COCOEvaluator(use_fast_impl=True)`` work again, on faster-coco-eval.

detectron2's fast path is ``detectron2.evaluation.fast_eval_api.COCOeval_opt``, which calls the compiled
``detectron2._C.COCOevalEvaluateImages`` / ``COCOevalAccumulate``; our pure-Python detectron2 install has no
``_C`` (the stand-in raises). :func:`apply` (run on ``import shared.evaluation``, idempotent) rebinds:

* ``COCOeval_opt`` in ``detectron2.evaluation.fast_eval_api`` and in ``detectron2.evaluation.coco_evaluation``
  to :class:`shared.evaluation.backend.FasterCOCOeval`;
* ``coco_evaluation._evaluate_predictions_on_coco``, for ``use_fast_impl=True`` only, to a version that loads
  the detections with faster-coco-eval's loader (pycocotools' ``loadRes`` is a slow Python loop) and also
  uses the fast evaluator when ``max_dets_per_image[2] != 100``, where detectron2 silently falls back to its
  pycocotools-based ``COCOevalMaxDets`` (whose ``summarize`` rule — AP at ``maxDets[2]`` — faster-coco-eval's
  ``summarize`` already follows). ``use_fast_impl=False`` runs detectron2's own code, unchanged.

Module globals are looked up at call time, so the rebinding works whatever was imported first.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

from shared.evaluation.backend import FasterCOCOeval, load_results

__all__ = ["apply", "evaluate_predictions_on_coco_fast"]

_ORIGINAL = {}


def evaluate_predictions_on_coco_fast(coco_gt: Any, coco_results: List[dict], iou_type: str,
                                      kpt_oks_sigmas: Optional[Sequence[float]] = None,
                                      use_fast_impl: bool = True, img_ids: Optional[Sequence[int]] = None,
                                      max_dets_per_image: Optional[Sequence[int]] = None):
    """detectron2's ``_evaluate_predictions_on_coco`` contract; the ``use_fast_impl=True`` path on
    faster-coco-eval (see the module docstring). Returns the evaluator (``stats``, ``eval["precision"]``)."""
    if not use_fast_impl or iou_type == "keypoints":
        # keypoints: detectron2's own checks and COCOeval_opt (= FasterCOCOeval after apply())
        return _ORIGINAL["_evaluate_predictions_on_coco"](
            coco_gt, coco_results, iou_type, kpt_oks_sigmas=kpt_oks_sigmas, use_fast_impl=use_fast_impl,
            img_ids=img_ids, max_dets_per_image=max_dets_per_image)
    if len(coco_results) == 0:
        raise ValueError("no predictions to evaluate")
    results = [dict(r) for r in coco_results]
    if iou_type == "segm":
        # as detectron2: mask AP uses the mask area, so the box must not provide the area
        for r in results:
            r.pop("bbox", None)
    coco_dt = load_results(coco_gt, results, "faster_coco_eval")
    coco_eval = FasterCOCOeval(coco_gt, coco_dt, iou_type)
    max_dets = [1, 10, 100] if max_dets_per_image is None else list(max_dets_per_image)
    if len(max_dets) < 3:
        raise ValueError(f"max_dets_per_image={max_dets}: COCOeval needs at least 3 maxDets values")
    coco_eval.params.maxDets = max_dets
    if img_ids is not None:
        coco_eval.params.imgIds = list(img_ids)
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval


def apply() -> None:
    """Rebind detectron2's fast COCO evaluation to faster-coco-eval (idempotent)."""
    from detectron2.evaluation import coco_evaluation, fast_eval_api

    if _ORIGINAL:
        return
    _ORIGINAL["_evaluate_predictions_on_coco"] = coco_evaluation._evaluate_predictions_on_coco
    _ORIGINAL["COCOeval_opt"] = fast_eval_api.COCOeval_opt
    fast_eval_api.COCOeval_opt = FasterCOCOeval
    coco_evaluation.COCOeval_opt = FasterCOCOeval
    coco_evaluation._evaluate_predictions_on_coco = evaluate_predictions_on_coco_fast


def applied() -> bool:
    """True once :func:`apply` has rebound detectron2's fast path."""
    from detectron2.evaluation import coco_evaluation

    return coco_evaluation._evaluate_predictions_on_coco is evaluate_predictions_on_coco_fast
