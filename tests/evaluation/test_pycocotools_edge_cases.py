"""FasterCOCOeval behaves as pycocotools' COCOeval where faster-coco-eval alone would not: keypoints without
GT annotations, areaRng=[], fewer than 3 maxDets, GT fields missing, results carrying only a segmentation.
Either both raise the same exception type or precision/recall are equal (detectron2's test_fast_eval rule)."""
import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import shared.evaluation  # noqa: F401  (rebinding; FasterCOCOeval below)
from shared.evaluation.backend import FasterCOCOeval

NUM_KEYPOINTS = 17
IMAGES = [{"id": 1, "height": 120, "width": 160}, {"id": 2, "height": 100, "width": 100}]
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 7, "name": "bag"}]


def _keypoints(x, y, w, h, visible=2):
    """Keypoints spread over the box in a fixed pattern (similar boxes get similar keypoints)."""
    k = np.arange(NUM_KEYPOINTS)
    pts = np.stack([x + w * k / (NUM_KEYPOINTS - 1), y + h * ((7 * k) % NUM_KEYPOINTS) / (NUM_KEYPOINTS - 1),
                    np.full(NUM_KEYPOINTS, visible)], axis=1)
    return [round(float(v), 2) for v in pts.ravel()]


def _gt():
    boxes = [(1, 1, 10.0, 12.0, 40.0, 60.0, 0), (2, 1, 60.0, 20.0, 30.0, 30.0, 0),
             (3, 7, 90.0, 50.0, 25.0, 20.0, 0), (4, 1, 5.0, 5.0, 50.0, 50.0, 1)]
    annotations = []
    for ann_id, cat, x, y, w, h, crowd in boxes:
        image = 1 if ann_id < 4 else 2
        annotations.append({
            "id": ann_id, "image_id": image, "category_id": cat, "bbox": [x, y, w, h], "area": w * h,
            "iscrowd": crowd, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            "keypoints": _keypoints(x, y, w, h), "num_keypoints": NUM_KEYPOINTS})
    return {"images": IMAGES, "categories": CATEGORIES, "annotations": annotations}


def _results(with_bbox=True):
    out = []
    detections = [(1, 1, 12.0, 14.0, 38.0, 55.0, 0.9), (1, 1, 58.0, 22.0, 30.0, 28.0, 0.8),
                  (1, 7, 88.0, 48.0, 27.0, 22.0, 0.7), (2, 1, 8.0, 6.0, 40.0, 45.0, 0.6),
                  (1, 7, 5.0, 90.0, 10.0, 10.0, 0.5)]
    for image, cat, x, y, w, h, score in detections:
        height, width = (120, 160) if image == 1 else (100, 100)
        mask = np.zeros((height, width), dtype=np.uint8, order="F")
        mask[int(y):int(y + h), int(x):int(x + w)] = 1
        rle = mask_utils.encode(mask)
        rle["counts"] = rle["counts"].decode("ascii")
        r = {"image_id": image, "category_id": cat, "score": score, "segmentation": rle,
             "keypoints": _keypoints(x, y, w, h, visible=1)}
        if with_bbox:
            r["bbox"] = [x, y, w, h]
        out.append(r)
    return out


def _without(gt, key):
    gt = copy.deepcopy(gt)
    for ann in gt["annotations"]:
        ann.pop(key, None)
    return gt


def _cases():
    gt, results = _gt(), _results()
    no_gt = copy.deepcopy(gt)
    no_gt["annotations"] = []
    return {
        "full": (gt, results, {}),
        "no_gt_annotations": (no_gt, results, {}),
        "no_categories": (gt, results, {"useCats": 0}),
        "one_max_det": (gt, results, {"maxDets": [1]}),
        "no_area_ranges": (gt, results, {"areaRng": [], "areaRngLbl": []}),
        "gt_without_area": (_without(gt, "area"), results, {}),
        "gt_without_iscrowd": (_without(gt, "iscrowd"), results, {}),
        "gt_without_num_keypoints": (_without(gt, "num_keypoints"), results, {}),
        "results_with_segmentation_only": (gt, _results(with_bbox=False), {}),
    }


def _pycoco(gt):
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _run(cls, gt, results, iou_type, params, coco_gt):
    """(evaluator, exception): load the results twice with pycocotools, as detectron2's test does."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt.loadRes(results)
            ev = cls(coco_gt, coco_gt.loadRes(results), iou_type)
            for key, value in params.items():
                setattr(ev.params, key, value)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return ev, None
    except Exception as exc:  # noqa: BLE001 - the exception type is what is compared
        return None, exc


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
@pytest.mark.parametrize("case", list(_cases()))
def test_same_outcome_as_pycocotools(case, iou_type):
    gt, results, params = _cases()[case]
    outcomes = []
    for cls in (COCOeval, FasterCOCOeval):
        coco_gt = _pycoco(gt)
        outcomes.append(_run(cls, gt, copy.deepcopy(results), iou_type, params, coco_gt))
    (ref, ref_exc), (ours, our_exc) = outcomes
    assert type(our_exc) is type(ref_exc), (case, iou_type, ref_exc, our_exc)
    if ref_exc is None:
        for key in ("precision", "recall"):
            a, b = np.asarray(ref.eval[key]), np.asarray(ours.eval[key])
            assert a.shape == b.shape, (case, iou_type, key)
            np.testing.assert_allclose(b, a, atol=1e-6, err_msg=f"{case} {iou_type} {key}")
        if case == "full":
            assert (np.asarray(ref.eval["precision"]) > 0).any()  # the set is not trivially empty


def test_expected_outcomes_by_hand():
    """The cases above are not vacuous: which ones pycocotools refuses, and the shapes it gives the others."""
    cases = _cases()
    gt, results, params = cases["no_gt_annotations"]
    coco_gt = _pycoco(gt)
    ours, exc = _run(FasterCOCOeval, gt, copy.deepcopy(results), "keypoints", params, coco_gt)
    assert exc is None and ours.eval["precision"].shape[2] == 2  # both GT categories, not 0
    for case, key in [("gt_without_area", "area"), ("gt_without_iscrowd", "iscrowd")]:
        gt, results, params = cases[case]
        coco_gt = _pycoco(gt)
        _, exc = _run(FasterCOCOeval, gt, copy.deepcopy(results), "bbox", params, coco_gt)
        assert isinstance(exc, KeyError) and exc.args == (key,)
    gt, results, params = cases["no_area_ranges"]
    coco_gt = _pycoco(gt)
    ours, exc = _run(FasterCOCOeval, gt, copy.deepcopy(results), "bbox", params, coco_gt)
    assert exc is None and np.all(ours.stats == -1)
