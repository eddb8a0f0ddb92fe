"""detectron2 evaluators on the selected backend (``TEST.EVAL_BACKEND``).

* :func:`build_coco_evaluator`: detectron2's ``COCOEvaluator`` with ``use_fast_impl`` = (backend is
  faster-coco-eval); the fast path is faster-coco-eval through :mod:`shared.evaluation.detectron2_patch`.
* :class:`LVISEvaluator`: detectron2's ``LVISEvaluator`` whose metrics come from
  :func:`shared.evaluation.lvis.evaluate_lvis` on the chosen backend (lvis-api for "lvis"/"pycocotools").
"""
from __future__ import annotations

import itertools
import json
import os
from typing import Any, Optional

from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation import LVISEvaluator as _D2LVISEvaluator

from shared.atomic_io import atomic_open
from shared.evaluation.backend import DEFAULT_BACKEND, check_backend, is_fast
from shared.evaluation.lvis import LVIS_AP_METRICS, evaluate_lvis

__all__ = ["LVISEvaluator", "build_coco_evaluator", "build_lvis_evaluator"]


def build_coco_evaluator(dataset_name: str, backend: str = DEFAULT_BACKEND, **kwargs: Any) -> COCOEvaluator:
    """``COCOEvaluator(dataset_name, use_fast_impl=is_fast(backend), **kwargs)``."""
    if "use_fast_impl" in kwargs:
        raise TypeError("pass backend=..., not use_fast_impl (it is derived from the backend)")
    return COCOEvaluator(dataset_name, use_fast_impl=is_fast(backend), **kwargs)


class LVISEvaluator(_D2LVISEvaluator):
    """detectron2's ``LVISEvaluator`` with a ``backend`` argument.

    Same inputs, same ``lvis_instances_results.json``, same result keys (AP, AP50, AP75, APs, APm, APl,
    APr, APc, APf, x100; NaN for every key when there is no prediction, as detectron2). With the
    faster-coco-eval backend the numbers equal lvis-api's (tested to 1e-6 in ``tests/evaluation``).
    """

    def __init__(self, dataset_name: str, tasks=None, distributed: bool = True,
                 output_dir: Optional[str] = None, *, max_dets_per_image: Optional[int] = None,
                 backend: str = DEFAULT_BACKEND):
        self._backend = check_backend(backend)
        super().__init__(dataset_name, tasks=tasks, distributed=distributed, output_dir=output_dir,
                         max_dets_per_image=max_dets_per_image)

    def _eval_predictions(self, predictions):
        if not is_fast(self._backend):
            return super()._eval_predictions(predictions)
        results = list(itertools.chain(*[x["instances"] for x in predictions]))
        tasks = self._tasks or self._tasks_from_predictions(results)
        mapping = getattr(self._metadata, "thing_dataset_id_to_contiguous_id", None)
        if mapping:  # COCO-style ids (an LVIS evaluation of a COCO-category set)
            reverse = {v: k for k, v in mapping.items()}
            for r in results:
                r["category_id"] = reverse[r["category_id"]]
        else:  # LVIS: contiguous 0-based ids -> json ids 1..C
            for r in results:
                r["category_id"] += 1
        if self._output_dir:
            path = os.path.join(self._output_dir, "lvis_instances_results.json")
            self._logger.info("Saving results to %s", path)
            with atomic_open(path, "w") as f:  # a failed write keeps the previous file whole
                f.write(json.dumps(results))
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        max_dets = 300 if self._max_dets_per_image is None else self._max_dets_per_image
        for task in sorted(tasks):
            if not results:
                self._logger.warning("No predictions from the model!")
                self._results[task] = {m: float("nan") for m in LVIS_AP_METRICS}
                continue
            task_results = results
            if task == "segm":  # mask AP: the mask area decides the area range (detectron2's rule)
                task_results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
            metrics = evaluate_lvis(self._lvis_api, task_results, task, max_dets=max_dets,
                                    backend=self._backend)
            self._results[task] = {m: float(metrics[m] * 100) for m in LVIS_AP_METRICS}
            self._logger.info("LVIS %s (faster-coco-eval): %s", task,
                              ", ".join(f"{m} {v:.2f}" for m, v in self._results[task].items()))


def build_lvis_evaluator(dataset_name: str, backend: str = DEFAULT_BACKEND, **kwargs: Any) -> LVISEvaluator:
    """:class:`LVISEvaluator` on ``backend``."""
    return LVISEvaluator(dataset_name, backend=backend, **kwargs)
