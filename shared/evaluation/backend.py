"""Choice of the COCO-style evaluation implementation: faster-coco-eval (C++) or the reference Python tools.

Backends (``TEST.EVAL_BACKEND``):

* ``"faster_coco_eval"`` (default): the faster-coco-eval package (PyPI, pinned in requirements.txt), a C++
  reimplementation of pycocotools' ``evaluateImg``/``accumulate`` that also has lvis-api's rules
  (``lvis_style``). Parity with the reference tools is tested in ``tests/evaluation``.
* ``"pycocotools"`` / ``"lvis"``: the reference tool of the protocol — pycocotools' ``COCOeval`` for COCO,
  AI-TOD and SODA-D, lvis-api's ``LVISEval`` for LVIS. Both names select the same thing (the reference),
  so a config written for either dataset family reads naturally.

:class:`FasterCOCOeval` accepts pycocotools ``COCO`` objects (what detectron2's evaluators hold) and
converts them once; :class:`BackendCOCOeval` is a ``COCOeval`` whose implementation is chosen per instance,
so a protocol subclass (e.g. SimD's AI-TOD / SODA-D ``ProtocolCOCOeval``) runs on either backend.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import io
from collections import defaultdict
import logging
from typing import Any, List, Optional, Union

import numpy as np
import faster_coco_eval.faster_eval_api_cpp as _fce_cpp
from faster_coco_eval import COCO as FasterCOCO
from faster_coco_eval import COCOeval_faster

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "BackendCOCOeval", "FasterCOCOeval", "check_backend",
           "cocoeval_class", "is_fast", "load_results", "mean_valid", "reference_cocoeval_class",
           "to_faster_coco"]

#: valid values of ``TEST.EVAL_BACKEND``
BACKENDS = ("faster_coco_eval", "pycocotools", "lvis")
DEFAULT_BACKEND = "faster_coco_eval"


def check_backend(backend: str, key: str = "TEST.EVAL_BACKEND") -> str:
    """Return ``backend`` if valid, else raise a ``ValueError`` naming ``key`` and the valid choices."""
    if backend not in BACKENDS:
        raise ValueError(f"{key}={backend!r}: unknown evaluation backend; choose one of {list(BACKENDS)}")
    return backend


def is_fast(backend: str) -> bool:
    """True for faster-coco-eval, False for the reference tools (pycocotools / lvis-api)."""
    return check_backend(backend) == "faster_coco_eval"


class IndexedCOCO(FasterCOCO):
    """faster-coco-eval's ``COCO`` with a faster ``getAnnIds`` / ``loadAnns`` for what ``COCOeval._prepare``
    asks (annotations of given images and classes): the same annotations in the same order, built with one
    list comprehension instead of per-annotation ``filter``/``map`` lambdas and an id type check (about half
    of the Python time of preparing 230k detections). Other queries go to faster-coco-eval's own methods."""

    def getAnnIds(self, imgIds=None, catIds=None, areaRng=None, iscrowd=None):  # noqa: N802,N803 (COCO API)
        if areaRng or iscrowd is not None or not imgIds or not isinstance(imgIds, (list, tuple, set)):
            return super().getAnnIds(imgIds, catIds, areaRng, iscrowd)
        per_image = self.imgToAnns
        anns = [a for i in set(imgIds) for a in per_image.get(i, ())]  # faster-coco-eval's order: set(imgIds)
        if catIds:
            cats = set(catIds) if isinstance(catIds, (list, tuple, set)) else {catIds}
            return [a["id"] for a in anns if a["category_id"] in cats]
        return [a["id"] for a in anns]

    def loadAnns(self, ids=None):  # noqa: N802 (COCO API)
        if type(ids) is list:
            anns = self.anns
            return [anns[i] for i in ids]
        return super().loadAnns(ids)


def _plain_annotation(ann: dict) -> dict:
    """A shallow copy of ``ann`` whose ``bbox`` is a list: pycocotools' ``loadRes`` stores the box it derives
    from a result's segmentation as a numpy array, which faster-coco-eval's box IoU does not accept."""
    out = dict(ann)
    if isinstance(out.get("bbox"), np.ndarray):
        out["bbox"] = out["bbox"].tolist()
    return out


def to_faster_coco(coco: Any) -> Any:
    """A ``faster_coco_eval.COCO`` over the same annotations as ``coco`` (a pycocotools ``COCO``, an lvis-api
    ``LVIS`` or already a faster-coco-eval ``COCO``).

    The image and category records are shared; every annotation is a shallow copy, because the evaluator
    writes bookkeeping keys (``ignore``, ``rle``, ...) into them. The result is cached on ``coco`` (one
    conversion per ground-truth set, not per evaluation); it is rebuilt if the annotation list changes.
    """
    if isinstance(coco, FasterCOCO):
        return coco
    dataset = coco.dataset
    cached = getattr(coco, "_shared_faster_coco", None)
    if cached is not None and cached[0] is dataset.get("annotations") and cached[1] == len(dataset.get(
            "annotations", ())):
        return cached[2]
    converted = dict(dataset)
    if "annotations" in dataset:
        converted["annotations"] = [_plain_annotation(ann) for ann in dataset["annotations"]]
    out = IndexedCOCO(converted)
    try:
        coco._shared_faster_coco = (dataset.get("annotations"), len(dataset.get("annotations", ())), out)
    except AttributeError:  # pragma: no cover - objects without a __dict__
        pass
    return out


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector (restored on exit, also on error).

    Loading and evaluating creates millions of small dicts, lists and tuples and no reference cycle; the
    collector's repeated full scans of them cost more than the evaluation itself (measured: the per-pair
    IoU dict of faster-coco-eval on an LVIS-size set). Nothing here relies on cycle collection.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_bbox_results(gt: FasterCOCO, results: List[dict]) -> Optional[FasterCOCO]:
    """faster-coco-eval's ``loadRes`` for box results, without its per-box ``segmentation`` polygon (unused by
    box evaluation): each result is copied with ``area`` = w * h, ``id`` = position + 1 and ``iscrowd`` = 0,
    exactly the values ``loadRes`` (and pycocotools' ``loadRes``) give them. The index (``anns``,
    ``imgToAnns``, ``catToImgs``, ``imgs``, ``cats``, as ``createIndex`` builds it) is filled in the same
    pass as the copies instead of a second walk over them. None if a result has no ``bbox``."""
    known = gt.imgs
    anns: dict = {}
    img_to_anns: dict = defaultdict(list)
    cat_to_imgs: dict = defaultdict(list)
    for i, r in enumerate(results, 1):
        image_id = r["image_id"]
        if image_id not in known:
            raise ValueError(f"a detection has image_id {image_id!r}, which is not in the ground truth")
        ann = r.copy()
        box = ann.get("bbox")
        if box is None:
            return None
        ann["area"] = box[2] * box[3]
        ann["id"] = i
        ann["iscrowd"] = 0
        if type(image_id) is not int:
            ann["image_id"] = image_id = int(image_id)
        anns[i] = ann
        img_to_anns[image_id].append(ann)
        cat_to_imgs[ann["category_id"]].append(image_id)
    out = IndexedCOCO()
    out.dataset = {"images": list(gt.dataset.get("images", [])), "annotations": list(anns.values()),
                   "categories": list(gt.dataset.get("categories", []))}
    out.anns, out.imgToAnns, out.catToImgs = anns, img_to_anns, cat_to_imgs
    out.imgs = {img["id"]: img for img in out.dataset["images"]}
    out.cats = {cat["id"]: cat for cat in out.dataset["categories"]}
    return out


def load_results(coco_gt: Any, results: Union[List[dict], Any], backend: str) -> Any:
    """The detections ``results`` (COCO result dicts) as a COCO object of ``backend``.

    Each result dict is shallow-copied first (both loaders add top-level ``area``/``id``/``iscrowd``/
    ``segmentation``/``bbox`` keys to the dicts they are given and change nothing else). An already-loaded
    COCO object is returned as is.
    """
    if not isinstance(results, list):
        return results
    if not is_fast(backend):
        return coco_gt.loadRes([dict(r) for r in results])
    with gc_paused():
        gt = to_faster_coco(coco_gt)
        loaded = _load_bbox_results(gt, results) if results else None
        return loaded if loaded is not None else gt.loadRes([dict(r) for r in results])


class FasterCOCOeval(COCOeval_faster):
    """faster-coco-eval's ``COCOeval_faster`` that also accepts pycocotools ``COCO`` / lvis-api ``LVIS``
    inputs (converted once by :func:`to_faster_coco`) and logs at debug level instead of printing.

    Its ``summarize()`` fills ``stats`` in pycocotools' order (AP, AP50, AP75, AP per area, AR per maxDets,
    AR per area), with AP and area-AR at ``maxDets[-1]`` (detectron2's ``COCOevalMaxDets`` rule; the same as
    pycocotools for the default [1, 10, 100]).

    Where faster-coco-eval and pycocotools part ways, pycocotools' behaviour is kept (each case is tested
    against pycocotools in tests/evaluation, and detectron2's ``test_fast_eval`` runs on this class):

    * keypoints: the categories are all the GT categories (faster-coco-eval takes only those with an
      annotation, so a GT set without annotations had 0 categories instead of its categories);
    * GT annotations without ``iscrowd``, without ``area`` (non-crowd) or, for keypoints, without
      ``num_keypoints`` raise ``KeyError`` naming the key, as pycocotools' ``evaluate`` does (faster-coco-eval
      read them as 0);
    * results carrying only a segmentation, loaded by pycocotools' ``loadRes`` (numpy ``bbox``), evaluate as
      boxes (:func:`to_faster_coco` makes the box a list);
    * keypoints with ``useCats=0`` (rejected by faster-coco-eval's C++) are evaluated by pycocotools;
    * ``summarize`` with fewer than 3 ``maxDets`` raises ``IndexError`` (pycocotools reads ``maxDets[2]``),
      and area labels other than pycocotools' defaults (e.g. ``areaRng=[]``) are summarised by pycocotools'
      own ``summarize`` (-1 for the missing labels) instead of faster-coco-eval's ``ValueError``.
    """

    def __init__(self, cocoGt=None, cocoDt=None, iouType: str = "segm", **kwargs):
        if cocoGt is not None:
            cocoGt = to_faster_coco(cocoGt)
        if cocoDt is not None:
            cocoDt = to_faster_coco(cocoDt)
        kwargs.setdefault("print_function", logger.debug)
        super().__init__(cocoGt, cocoDt, iouType, **kwargs)
        if cocoGt is not None and "keypoints" in iouType:
            self.params.catIds = sorted(cocoGt.getCatIds())

    #: the pycocotools ``COCOeval`` that evaluates the cases faster-coco-eval cannot (see :meth:`evaluate`)
    _reference = None

    def _evaluate_with_reference(self) -> None:
        """pycocotools' ``evaluate`` on the same annotations and params (faster-coco-eval's C++ rejects
        keypoint evaluation with ``useCats=0``); :meth:`accumulate` then takes its ``eval``."""
        from pycocotools.coco import COCO

        def as_pycocotools(coco):
            out = COCO()
            out.dataset = coco.dataset
            with contextlib.redirect_stdout(io.StringIO()):
                out.createIndex()
            return out

        reference = reference_cocoeval_class()(as_pycocotools(self.cocoGt), as_pycocotools(self.cocoDt),
                                               self.params.iouType)
        for key in ("imgIds", "catIds", "iouThrs", "recThrs", "maxDets", "areaRng", "areaRngLbl", "useCats",
                    "kpt_oks_sigmas"):
            if hasattr(self.params, key):
                setattr(reference.params, key, copy.deepcopy(getattr(self.params, key)))
        reference.evaluate()
        self._reference = reference
        self._paramsEval = reference._paramsEval
        self.evalImgs = reference.evalImgs

    def _check_gt_keys(self) -> None:
        """``KeyError`` for the GT fields pycocotools' ``evaluate`` reads from every evaluated annotation."""
        p = self.params
        gts = self.cocoGt.loadAnns(self.cocoGt.getAnnIds(imgIds=p.imgIds, catIds=p.catIds or None))
        if "keypoints" in p.iouType and any("num_keypoints" not in g for g in gts):
            raise KeyError("num_keypoints")
        if any("iscrowd" not in g for g in gts):
            raise KeyError("iscrowd")
        if any("area" not in g and not g["iscrowd"] for g in gts):
            raise KeyError("area")

    #: evaluate class by class (see :meth:`evaluate`); False = one C++ call over every (image, class)
    per_class = True
    #: classes per C++ call in the class-by-class mode (each call has a fixed cost of ~1 ms)
    classes_per_call = 16

    def evaluate(self) -> None:
        """faster-coco-eval's ``evaluate`` (same ``_prepare``, same IoUs, same C++ routine), organised so that
        its cost follows the (image, class) pairs that hold something instead of all images x all classes:

        * IoUs are computed for the pairs with both GT and detections (as faster-coco-eval does); the rest of
          the ``ious[image][class]`` table is one shared empty list. Ids are Python ints (numpy scalars made
          faster-coco-eval's per-pair dict slow to hash).
        * With ``per_class`` (and ``useCats``, not ``separate_eval``), the C++ evaluate+accumulate runs per
          group of ``classes_per_call`` classes, over only the images where one of them has a GT or an
          evaluated detection. A class's precision / recall depend only on its own (image, class) results,
          and an image where it has neither contributes nothing (pycocotools' ``evaluateImg`` returns None
          there), so the arrays are the same; but C++ otherwise builds a record for every image x class x
          area (1.4 M for 300 images x 1,203 classes). Equality of the arrays with the one-call path is
          tested (tests/evaluation).
        """
        self._reference = None
        if "keypoints" in self.params.iouType and not self.params.useCats:
            self._evaluate_with_reference()
            return
        with gc_paused():
            p = self.params
            p.imgIds = [int(i) for i in np.unique(p.imgIds)]
            if p.useCats:
                p.catIds = [int(c) for c in np.unique(p.catIds)]
            p.maxDets = sorted(p.maxDets)
            self._check_gt_keys()
            self._prepare()
            if p.iouType in ("segm", "bbox", "boundary"):
                compute = self.computeIoU
            elif "keypoints" in p.iouType:
                compute = self.computeOks
            else:
                raise ValueError(f"iouType must be segm, bbox, boundary or keypoints, not {p.iouType!r}")
            cat_ids = p.catIds if p.useCats else [-1]
            cat_index = {c: k for k, c in enumerate(cat_ids)}
            img_index = {i: n for n, i in enumerate(p.imgIds)}
            empty: list = []
            table = [[empty] * len(cat_ids) for _ in p.imgIds]
            self.ious = {}
            for img_id, cat_id in self._nonempty_iou_pairs:
                if img_id in img_index and cat_id in cat_index:
                    value = compute(img_id, cat_id)
                    self.ious[img_id, cat_id] = value
                    table[img_index[img_id]][cat_index[cat_id]] = value
            self._paramsEval = copy.deepcopy(p)
            grouped = self.per_class and p.useCats and not self.separate_eval
            if grouped and len(cat_ids) > self.classes_per_call:
                self._evaluate_per_class(table, img_index, cat_ids)
            elif self.separate_eval:
                self._evalImgs_cpp = _fce_cpp.COCOevalEvaluateImages(
                    p.areaRng, p.maxDets[-1], p.iouThrs, table, self.gt_dataset, self.dt_dataset, p.imgIds,
                    p.catIds, bool(p.useCats))
            else:
                self.eval = _fce_cpp.COCOevalEvaluateAccumulate(
                    self._paramsEval, table, self.gt_dataset, self.dt_dataset, p.imgIds, p.catIds,
                    bool(p.useCats))

    def _evaluate_per_class(self, table: list, img_index: dict, cat_ids: list) -> None:
        p = self._paramsEval
        # images holding a GT or a detection of each class (a detection that lvis_style drops may add an image
        # whose (image, class) result is then empty: harmless, as in the one-call path)
        wanted = img_index.keys()
        gt_map, dt_map = self.cocoGt.catToImgs, self.cocoDt.catToImgs
        images_of = {c: (set(gt_map.get(c, ())) | set(dt_map.get(c, ()))) & wanted for c in cat_ids}
        n_t, n_r, n_k, n_a, n_m = len(p.iouThrs), len(p.recThrs), len(cat_ids), len(p.areaRng), len(p.maxDets)
        precision = -np.ones((n_t, n_r, n_k, n_a, n_m))
        scores = -np.ones((n_t, n_r, n_k, n_a, n_m))
        recall = -np.ones((n_t, n_k, n_a, n_m))
        matched: dict = {}
        size = 0
        out: dict = {}
        step = max(1, int(self.classes_per_call))
        for start in range(0, n_k, step):
            ks = [k for k in range(start, min(start + step, n_k)) if images_of[cat_ids[k]]]
            if not ks:
                continue
            cats = [cat_ids[k] for k in ks]
            img_ids = sorted(set().union(*(images_of[c] for c in cats)), key=img_index.__getitem__)
            sub = copy.copy(p)
            sub.imgIds, sub.catIds = img_ids, cats
            rows = [[table[img_index[i]][k] for k in ks] for i in img_ids]
            out = _fce_cpp.COCOevalEvaluateAccumulate(sub, rows, self.gt_dataset, self.dt_dataset, img_ids,
                                                      cats, True)
            precision[:, :, ks] = out["precision"]
            scores[:, :, ks] = out["scores"]
            recall[:, ks] = out["recall"]
            matched.update(out.get("matched", {}))
            size += int(out.get("evaluations_size", 0))
        self.eval = {"params": p, "counts": [n_t, n_r, n_k, n_a, n_m], "date": out.get("date", ""),
                     "matched": matched, "precision": precision, "scores": scores, "recall": recall,
                     "evaluations_size": size}

    def accumulate(self) -> None:
        if self._reference is not None:
            self._reference.accumulate()
            self.eval = self._reference.eval
            return
        with gc_paused():
            super().accumulate()

    #: the area labels faster-coco-eval's ``summarize`` looks up (pycocotools' defaults per iouType)
    SUMMARY_AREA_LABELS = {"detection": ["all", "small", "medium", "large"],
                           "keypoints": ["all", "medium", "large"]}

    def summarize(self) -> None:
        p = self.params
        keypoints = "keypoints" in p.iouType
        if not keypoints and len(p.maxDets) < 3:
            raise IndexError(f"summarize() reads maxDets[2], as pycocotools does; params.maxDets={p.maxDets} "
                             "has fewer than 3 values")
        if self._reference is None and list(p.areaRngLbl) == self.SUMMARY_AREA_LABELS[
                "keypoints" if keypoints else "detection"]:
            super().summarize()
            return
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            reference_cocoeval_class().summarize(self)
        self.print_function(text.getvalue().rstrip())


def reference_cocoeval_class():
    """pycocotools' ``COCOeval``."""
    from pycocotools.cocoeval import COCOeval

    return COCOeval


def cocoeval_class(backend: str):
    """The ``COCOeval`` class of ``backend`` (faster-coco-eval's, or pycocotools' for the reference names)."""
    return FasterCOCOeval if is_fast(backend) else reference_cocoeval_class()


_FORWARDED = frozenset({"params", "eval", "evalImgs", "ious", "cocoGt", "cocoDt", "stats", "_paramsEval"})


class BackendCOCOeval:
    """A ``COCOeval`` whose implementation is chosen per instance with ``backend``.

    Subclass it where you would subclass pycocotools' ``COCOeval``: ``params``, ``eval``, ``evaluate()``,
    ``accumulate()`` and ``summarize()`` behave as there (the ``eval["precision"]`` array is
    ``[T, R, K, A, M]`` in both). ``cocoDt`` may also be a list of result dicts, loaded with the backend's own
    loader (:func:`load_results`). Other attributes are read from the underlying evaluator (``impl``).
    """

    def __init__(self, cocoGt=None, cocoDt=None, iouType: str = "segm", backend: str = DEFAULT_BACKEND):
        backend = check_backend(backend)
        if isinstance(cocoDt, list):
            cocoDt = load_results(cocoGt, cocoDt, backend)
        object.__setattr__(self, "backend", backend)
        object.__setattr__(self, "impl", cocoeval_class(backend)(cocoGt, cocoDt, iouType))

    def __getattr__(self, name: str) -> Any:
        if name == "impl":  # not constructed yet
            raise AttributeError(name)
        return getattr(self.impl, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FORWARDED:
            setattr(self.impl, name, value)
        else:
            object.__setattr__(self, name, value)

    def evaluate(self) -> None:
        self.impl.evaluate()

    def accumulate(self) -> None:
        self.impl.accumulate()

    def summarize(self) -> None:
        self.impl.summarize()


def mean_valid(values: np.ndarray) -> float:
    """Mean of the entries > -1 (pycocotools' and lvis-api's summary rule); -1 when there are none."""
    values = np.asarray(values)
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0

