"""Evaluation protocols of the tiny-object benchmarks, on ``COCOeval`` (faster-coco-eval or pycocotools,
``TEST.EVAL_BACKEND``; see shared.evaluation).

* ``aitod`` (AI-TOD / AI-TOD-v2, as cocoapi-aitod): area ranges all [0, 1e5^2], very tiny [0, 8^2],
  tiny [8^2, 16^2], small [16^2, 32^2], medium [32^2, 1e5^2]; maxDets [100, 300, 1500]; AP at 1500.
  Metrics: AP, AP@0.25, AP50, AP75, APvt, APt, APs, APm, then AR@100/300/1500 and ARvt/t/s/m at 1500.
  IoU threshold 0.25 is evaluated in addition to 0.50:0.95 (so AP@0.25 is a real number, not the -1 that
  cocoapi-aitod prints); AP/AR average over 0.50:0.95 only. Each threshold is matched independently in
  COCOeval, so the extra threshold does not change any other number.
* ``sodad`` (SODA-D; patches merged into full images first, see :mod:`simd.sodad`): every metric over
  "Small" [0, 32^2]; sub-ranges eS [0, 12^2], rS [12^2, 20^2],
  gS [20^2, 32^2] and Normal [32^2, 40*50]; maxDets [100, 300, 1000]; AP at 100.
  Metrics: AP, AP50, AP75, APeS, APrS, APgS, APN, AR@100/300/1000.
* ``coco`` (VisDrone as in the SimD repository): detectron2's ``COCOEvaluator`` with
  ``max_dets_per_image`` = 1000 (AP at 1000) (``use_fast_impl`` follows ``TEST.EVAL_BACKEND``).

All numbers are percentages (x100) like detectron2's evaluators.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from pycocotools.coco import COCO

from shared.atomic_io import atomic_open
from shared.evaluation import DEFAULT_BACKEND, BackendCOCOeval, load_results
from shared.evaluation.backend import is_fast
from shared.registry import get_or_raise

logger = logging.getLogger(__name__)
_BIG = 1e5 ** 2


@dataclass(frozen=True)
class Metric:
    """One summary number: AP or AR, at an IoU threshold (None = mean over 0.50:0.95), area label and
    maxDets value."""

    name: str
    kind: str  # "AP" or "AR"
    iou: Optional[float]
    area: str
    max_dets: int


@dataclass(frozen=True)
class Protocol:
    name: str
    area_ranges: Tuple[Tuple[str, Tuple[float, float]], ...]
    max_dets: Tuple[int, ...]
    extra_iou_thresholds: Tuple[float, ...]
    metrics: Tuple[Metric, ...]


def _aitod_protocol(max_dets: Sequence[int] = (100, 300, 1500)) -> Protocol:
    last = max_dets[-1]
    areas = (("all", (0.0, _BIG)), ("verytiny", (0.0, 8.0 ** 2)), ("tiny", (8.0 ** 2, 16.0 ** 2)),
             ("small", (16.0 ** 2, 32.0 ** 2)), ("medium", (32.0 ** 2, _BIG)))
    metrics = [
        Metric("AP", "AP", None, "all", last), Metric("AP25", "AP", 0.25, "all", last),
        Metric("AP50", "AP", 0.5, "all", last), Metric("AP75", "AP", 0.75, "all", last),
        Metric("APvt", "AP", None, "verytiny", last), Metric("APt", "AP", None, "tiny", last),
        Metric("APs", "AP", None, "small", last), Metric("APm", "AP", None, "medium", last),
    ]
    metrics += [Metric(f"AR@{d}", "AR", None, "all", d) for d in max_dets]
    metrics += [Metric(f"AR{suffix}", "AR", None, area, last)
                for suffix, area in (("vt", "verytiny"), ("t", "tiny"), ("s", "small"), ("m", "medium"))]
    return Protocol("aitod", areas, tuple(max_dets), (0.25,), tuple(metrics))


def _sodad_protocol(max_dets: Sequence[int] = (100, 300, 1000)) -> Protocol:
    first = max_dets[0]
    areas = (("Small", (0.0, 32.0 ** 2)), ("eS", (0.0, 12.0 ** 2)), ("rS", (12.0 ** 2, 20.0 ** 2)),
             ("gS", (20.0 ** 2, 32.0 ** 2)), ("Normal", (32.0 ** 2, 40.0 * 50.0)))
    metrics = [
        Metric("AP", "AP", None, "Small", first), Metric("AP50", "AP", 0.5, "Small", first),
        Metric("AP75", "AP", 0.75, "Small", first), Metric("APeS", "AP", None, "eS", first),
        Metric("APrS", "AP", None, "rS", first), Metric("APgS", "AP", None, "gS", first),
        Metric("APN", "AP", None, "Normal", first),
    ]
    metrics += [Metric(f"AR@{d}", "AR", None, "Small", d) for d in max_dets]
    return Protocol("sodad", areas, tuple(max_dets), (), tuple(metrics))


PROTOCOLS = {"aitod": _aitod_protocol, "sodad": _sodad_protocol}
#: every TEST.SIMD_EVAL.PROTOCOL value: the area-range protocols above and detectron2's "coco"
PROTOCOL_NAMES = (*PROTOCOLS, "coco")


def get_protocol(name: str, max_dets: Sequence[int] = ()) -> Protocol:
    return get_or_raise(PROTOCOLS, name, "TEST.SIMD_EVAL.PROTOCOL")(*([tuple(max_dets)] if max_dets else []))


class ProtocolCOCOeval(BackendCOCOeval):
    """``COCOeval`` with a protocol's area ranges, maxDets and extra IoU thresholds, whose
    ``summarize()`` fills ``self.stats`` (fractions, -1 when undefined) and ``self.metrics`` (name ->
    fraction) in the protocol's order."""

    def __init__(self, coco_gt: COCO, coco_dt: COCO, protocol: Protocol, iou_type: str = "bbox",
                 backend: str = DEFAULT_BACKEND):
        super().__init__(coco_gt, coco_dt, iou_type, backend=backend)
        self.protocol = protocol
        self.params.areaRng = [list(r) for _, r in protocol.area_ranges]
        self.params.areaRngLbl = [label for label, _ in protocol.area_ranges]
        self.params.maxDets = list(protocol.max_dets)
        standard = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
        self.params.iouThrs = np.unique(np.concatenate([standard, np.array(protocol.extra_iou_thresholds)]))
        self._standard_iou = standard

    def _value(self, metric: Metric) -> float:
        p = self.params
        a = p.areaRngLbl.index(metric.area)
        m = p.maxDets.index(metric.max_dets)
        if metric.iou is None:
            t = np.nonzero(np.isin(np.round(p.iouThrs, 4), np.round(self._standard_iou, 4)))[0]
        else:
            t = np.nonzero(np.isclose(p.iouThrs, metric.iou))[0]
        if metric.kind == "AP":
            values = self.eval["precision"][t, :, :, a, m]
        else:
            values = self.eval["recall"][t, :, a, m]
        values = values[values > -1]
        return float(np.mean(values)) if values.size else -1.0

    def summarize(self) -> None:
        if not self.eval:
            raise RuntimeError("call evaluate() and accumulate() before summarize()")
        self.metrics = OrderedDict((m.name, self._value(m)) for m in self.protocol.metrics)
        self.stats = np.array(list(self.metrics.values()))
        for metric, value in zip(self.protocol.metrics, self.stats):
            iou = "0.50:0.95" if metric.iou is None else f"{metric.iou:0.2f}"
            logger.info(" %-8s @[ IoU=%-9s | area=%8s | maxDets=%4d ] = %0.3f", metric.name, iou, metric.area,
                        metric.max_dets, value)

    def per_class_ap(self) -> np.ndarray:
        """AP (0.50:0.95) per category at the protocol's first metric's area and maxDets (-1 if undefined)."""
        head = self.protocol.metrics[0]
        p = self.params
        a, m = p.areaRngLbl.index(head.area), p.maxDets.index(head.max_dets)
        t = np.nonzero(np.isin(np.round(p.iouThrs, 4), np.round(self._standard_iou, 4)))[0]
        precision = self.eval["precision"][t, :, :, a, m]
        out = []
        for k in range(precision.shape[2]):
            values = precision[:, :, k]
            values = values[values > -1]
            out.append(float(np.mean(values)) if values.size else -1.0)
        return np.array(out)


def evaluate_coco_results(coco_gt: COCO, results: List[dict], protocol: Protocol,
                          img_ids: Optional[Sequence[int]] = None,
                          backend: str = DEFAULT_BACKEND) -> ProtocolCOCOeval:
    """Run the protocol on COCO-format ``results`` (bbox task)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = load_results(coco_gt, results, backend)  # copies the dicts (loaders add fields)
        evaluator = ProtocolCOCOeval(coco_gt, coco_dt, protocol, backend=backend)
        if img_ids is not None:
            evaluator.params.imgIds = list(img_ids)
        evaluator.evaluate()
        evaluator.accumulate()
    evaluator.summarize()
    return evaluator


class TinyObjectEvaluator(COCOEvaluator):
    """detectron2 ``COCOEvaluator`` whose bbox metrics follow an area-range protocol
    (``aitod`` or ``sodad``). Results: ``{"bbox": {metric: value x 100, "AP-<class>": ...}}``."""

    def __init__(self, dataset_name: str, protocol: str = "aitod", output_dir: Optional[str] = None,
                 max_dets: Sequence[int] = (), distributed: bool = True, backend: str = DEFAULT_BACKEND):
        self.protocol = get_protocol(protocol, max_dets)
        self.backend = backend
        super().__init__(dataset_name, tasks=("bbox",), distributed=distributed, output_dir=output_dir,
                         max_dets_per_image=self.protocol.max_dets[-1], use_fast_impl=False)

    def _eval_predictions(self, predictions, img_ids=None):
        coco_results = list(itertools.chain(*[x["instances"] for x in predictions]))
        mapping = getattr(self._metadata, "thing_dataset_id_to_contiguous_id", None)
        if mapping:
            reverse = {v: k for k, v in mapping.items()}
            for result in coco_results:
                if result["category_id"] not in reverse:
                    raise ValueError(f"a prediction has class {result['category_id']}, but the dataset has "
                                     f"{len(reverse)} classes")
                result["category_id"] = reverse[result["category_id"]]
        if self._output_dir:  # detectron2's file name, for external tools (LRP, VisDrone/SODA-D toolkits)
            with atomic_open(os.path.join(self._output_dir, "coco_instances_results.json"), "w") as f:
                json.dump(coco_results, f)
        if not self._do_evaluation:
            return
        names = [m.name for m in self.protocol.metrics]
        if not coco_results:
            self._logger.warning("no predictions: every %s metric is 0", self.protocol.name)
            self._results["bbox"] = {name: 0.0 for name in names}
            return
        evaluator = evaluate_coco_results(self._coco_api, coco_results, self.protocol, img_ids, self.backend)
        results: Dict[str, float] = {name: 100.0 * v if v >= 0 else float("nan")
                                     for name, v in evaluator.metrics.items()}
        class_names = self._metadata.get("thing_classes") or []
        for name, ap in zip(class_names, evaluator.per_class_ap()):
            results[f"AP-{name}"] = 100.0 * ap if ap >= 0 else float("nan")
        self._results["bbox"] = results


def keep_dataset_classes_(coco_api: COCO, class_names: Sequence[str]) -> int:
    """Drop, in place, the categories of ``coco_api`` whose names are not in ``class_names`` and their
    annotations (e.g. VisDrone's "ignored regions" and "others"), so COCO evaluation scores only the
    dataset's classes; returns the number of annotations dropped."""
    keep = {c["id"] for c in coco_api.dataset.get("categories", []) if c.get("name") in set(class_names)}
    annotations = coco_api.dataset.get("annotations", [])
    if not class_names or len(keep) == len(coco_api.dataset.get("categories", [])):
        return 0
    kept = [a for a in annotations if a.get("category_id") in keep]
    coco_api.dataset = dict(coco_api.dataset, annotations=kept,
                            categories=[c for c in coco_api.dataset["categories"] if c["id"] in keep])
    with contextlib.redirect_stdout(io.StringIO()):
        coco_api.createIndex()
    return len(annotations) - len(kept)


class DatasetClassesCOCOEvaluator(COCOEvaluator):
    """detectron2's ``COCOEvaluator`` on the dataset's classes only (``thing_classes``, by name): a json
    that keeps extra categories (VisDrone's ignored regions / others) would otherwise add classes to the
    evaluation."""

    def __init__(self, dataset_name: str, **kwargs):
        super().__init__(dataset_name, **kwargs)
        dropped = keep_dataset_classes_(self._coco_api, self._metadata.get("thing_classes", []))
        if dropped:
            self._logger.info("%s: %d annotations of categories outside the dataset's classes are not scored",
                              dataset_name, dropped)


def build_simd_evaluator(cfg: CfgNode, dataset_name: str, output_dir: Optional[str] = None):
    """The evaluator of ``TEST.SIMD_EVAL.PROTOCOL`` ("aitod", "sodad" or "coco") for ``dataset_name``."""
    protocol = cfg.TEST.SIMD_EVAL.PROTOCOL
    max_dets = list(cfg.TEST.SIMD_EVAL.MAX_DETS)
    backend = cfg.TEST.EVAL_BACKEND
    if protocol == "coco":
        return DatasetClassesCOCOEvaluator(dataset_name, tasks=("bbox",), output_dir=output_dir,
                                           max_dets_per_image=(max_dets[-1] if max_dets else 1000),
                                           use_fast_impl=is_fast(backend))
    get_or_raise(PROTOCOLS, protocol, "TEST.SIMD_EVAL.PROTOCOL")
    MetadataCatalog.get(dataset_name)  # make sure it exists before COCOEvaluator converts it
    if protocol == "sodad":  # patches merged into full images, SODA-D's official protocol
        from simd.sodad import SodaDEvaluator

        return SodaDEvaluator(dataset_name, protocol, output_dir=output_dir, max_dets=max_dets,
                              backend=backend)
    return TinyObjectEvaluator(dataset_name, protocol, output_dir=output_dir, max_dets=max_dets,
                               backend=backend)
