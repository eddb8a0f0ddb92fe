"""Detection evaluation on one backend for every protocol: faster-coco-eval (default) or the reference tools.

* :mod:`shared.evaluation.backend` — ``TEST.EVAL_BACKEND`` values, :class:`FasterCOCOeval` (faster-coco-eval
  on pycocotools / lvis-api objects), :class:`BackendCOCOeval` (a ``COCOeval`` base class whose implementation
  is chosen per instance; SimD's AI-TOD / SODA-D protocols subclass it), :func:`load_results`.
* :mod:`shared.evaluation.lvis` — :func:`evaluate_lvis` (lvis-api's rules on either backend).
* :mod:`shared.evaluation.evaluators` — :func:`build_coco_evaluator`, :class:`LVISEvaluator`.
* :mod:`shared.evaluation.config` — :func:`add_evaluation_config` (``TEST.EVAL_BACKEND``).
* :mod:`shared.evaluation.detectron2_patch` — applied on import: detectron2's
  ``COCOEvaluator(use_fast_impl=True)`` runs on faster-coco-eval instead of the missing compiled ``_C``.
"""
import shared  # noqa: F401  (the compatibility layer first: lvis / detectron2 need it)
from shared.evaluation import detectron2_patch as _detectron2_patch
from shared.evaluation.backend import (
    BACKENDS,
    DEFAULT_BACKEND,
    BackendCOCOeval,
    FasterCOCOeval,
    check_backend,
    cocoeval_class,
    is_fast,
    load_results,
    to_faster_coco,
)
from shared.evaluation.config import add_evaluation_config
from shared.evaluation.evaluators import LVISEvaluator, build_coco_evaluator, build_lvis_evaluator
from shared.evaluation.lvis import LVIS_AP_METRICS, evaluate_lvis, limit_dets_per_image

_detectron2_patch.apply()

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "BackendCOCOeval",
    "FasterCOCOeval",
    "LVISEvaluator",
    "LVIS_AP_METRICS",
    "add_evaluation_config",
    "build_coco_evaluator",
    "build_lvis_evaluator",
    "check_backend",
    "cocoeval_class",
    "evaluate_lvis",
    "is_fast",
    "limit_dets_per_image",
    "load_results",
    "to_faster_coco",
]
