"""faster-coco-eval backend == the reference tools (pycocotools, lvis-api) on random sets with crowd regions,
empty images, more detections per image than maxDets, tied scores and classes without ground truth."""
import contextlib
import copy
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import shared.evaluation as se
from shared.evaluation.backend import FasterCOCOeval, load_results
from shared.evaluation.synthetic import random_detection_set

TOL = 1e-6


def _pycoco(gt: dict) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
    return coco


def _lvis(gt: dict, tmp_path):
    from lvis import LVIS

    path = tmp_path / "lvis_gt.json"
    path.write_text(json.dumps(gt))
    return LVIS(str(path))


def _reference_cocoeval(gt, results, iou_type, max_dets):
    coco = _pycoco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), iou_type)
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
    return ev


def _fast_cocoeval(gt, results, iou_type, max_dets, per_class=True):
    coco = _pycoco(gt)
    ev = FasterCOCOeval(coco, load_results(coco, results, "faster_coco_eval"), iou_type)
    ev.per_class = per_class
    ev.params.maxDets = list(max_dets)
    ev.evaluate()
    ev.accumulate()
    return ev


def _assert_arrays_close(ref, ours):
    for key in ("precision", "recall"):
        a, b = np.asarray(ref.eval[key]), np.asarray(ours.eval[key])
        assert a.shape == b.shape, key
        assert np.array_equal(a == -1, b == -1), f"{key}: different undefined (-1) entries"
        assert np.max(np.abs(a - b)) <= TOL, key


def test_random_set_has_the_corner_cases():
    gt, results = random_detection_set(num_images=12, dets_per_image=1100, seed=2)
    per_image = np.bincount([r["image_id"] for r in results])
    assert per_image.max() >= 1000
    assert any(a["iscrowd"] for a in gt["annotations"])
    with_gt = {a["image_id"] for a in gt["annotations"]}
    assert any(img["id"] not in with_gt for img in gt["images"])  # empty images
    gt_classes = {a["category_id"] for a in gt["annotations"]}
    assert {r["category_id"] for r in results} - gt_classes  # classes with detections and no GT
    scores = [r["score"] for r in results]
    assert len(set(scores)) < len(scores)  # tied scores


@pytest.mark.parametrize("max_dets", [(1, 10, 100), (1, 10, 1000)])
def test_coco_bbox_parity(max_dets):
    gt, results = random_detection_set(num_images=12, dets_per_image=1100, seed=2)
    ref = _reference_cocoeval(gt, results, "bbox", max_dets)
    ours = _fast_cocoeval(gt, results, "bbox", max_dets)
    _assert_arrays_close(ref, ours)
    with contextlib.redirect_stdout(io.StringIO()):
        ref.summarize()
    ours.summarize()
    if max_dets[2] == 100:  # pycocotools' summarize reads maxDets=100; identical stats
        np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=TOL)
    assert 0 < ours.stats[0] < 1


def test_coco_segm_parity():
    gt, results = random_detection_set(num_images=12, dets_per_image=120, segm=True, seed=2)
    for r in results:  # mask AP: the mask area decides the area range (detectron2 drops the box too)
        r.pop("bbox")
    ref = _reference_cocoeval(gt, results, "segm", (1, 10, 100))
    ours = _fast_cocoeval(gt, results, "segm", (1, 10, 100))
    _assert_arrays_close(ref, ours)
    assert np.max(ours.eval["precision"]) > 0


def test_class_by_class_evaluation_equals_one_call():
    gt, results = random_detection_set(num_images=25, num_classes=200, dets_per_image=30, seed=4)
    a = _fast_cocoeval(gt, results, "bbox", (1, 10, 100), per_class=False)
    b = _fast_cocoeval(gt, results, "bbox", (1, 10, 100), per_class=True)
    for key in ("precision", "recall", "scores"):
        assert np.array_equal(a.eval[key], b.eval[key]), key
    assert a.eval["matched"] == b.eval["matched"]
    assert b.eval["evaluations_size"] < a.eval["evaluations_size"]


@pytest.mark.parametrize("protocol", ["aitod", "sodad"])
def test_tiny_object_protocols_parity(protocol):
    from simd.evaluation import evaluate_coco_results, get_protocol

    gt, results = random_detection_set(num_images=5, gt_per_image=30, dets_per_image=1600, size_mean=12.0,
                                       seed=5)
    prot = get_protocol(protocol)
    ref = evaluate_coco_results(_pycoco(gt), results, prot, backend="pycocotools")
    ours = evaluate_coco_results(_pycoco(gt), results, prot, backend="faster_coco_eval")
    assert ours.backend == "faster_coco_eval" and ref.backend == "pycocotools"
    assert type(ours.impl) is FasterCOCOeval and type(ref.impl) is COCOeval
    assert list(ours.metrics) == list(ref.metrics)
    for name in ref.metrics:
        assert abs(ours.metrics[name] - ref.metrics[name]) <= TOL, name
    _assert_arrays_close(ref, ours)
    np.testing.assert_allclose(ours.per_class_ap(), ref.per_class_ap(), rtol=0, atol=TOL)
    if protocol == "aitod":
        assert ours.metrics["AP25"] > ours.metrics["AP50"] > 0


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_lvis_parity(iou_type, tmp_path):
    gt, results = random_detection_set(num_images=16, num_classes=15, dets_per_image=330, lvis=True,
                                       segm=iou_type == "segm", seed=3)
    if iou_type == "segm":
        for r in results:
            r.pop("bbox")
    assert any(img["neg_category_ids"] for img in gt["images"])
    assert any(img["not_exhaustive_category_ids"] for img in gt["images"])
    lvis_gt = _lvis(gt, tmp_path)
    ref = se.evaluate_lvis(lvis_gt, results, iou_type, max_dets=300, backend="lvis")
    ours = se.evaluate_lvis(lvis_gt, results, iou_type, max_dets=300, backend="faster_coco_eval")
    assert list(ours) == list(ref)
    for name in ref:
        assert abs(ours[name] - ref[name]) <= TOL, name
    assert ours["AP"] > 0 and ours["APr"] != ours["APf"]


def _tiny_lvis_set():
    """One image, classes 1..3 (r, c, f): one GT of class 1; class 2 is in neg_category_ids, class 3 in
    neither list; class 1 is not exhaustively annotated in the image when asked."""
    gt = {"images": [{"id": 1, "width": 100, "height": 100, "neg_category_ids": [2],
                      "not_exhaustive_category_ids": []}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400.0,
                           "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]}],
          "categories": [{"id": k, "name": f"c{k}", "frequency": f}
                         for k, f in ((1, "r"), (2, "c"), (3, "f"))]}
    hit = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.5}
    return gt, hit


@pytest.mark.parametrize("backend", ["faster_coco_eval", "lvis"])
def test_lvis_rules_by_hand(backend, tmp_path):
    gt, hit = _tiny_lvis_set()
    better_fp = {"image_id": 1, "category_id": 1, "bbox": [60, 60, 20, 20], "score": 0.9}
    # a false positive scored above the true positive: precision 1/2 at recall 1 -> AP 0.5
    lvis_gt = _lvis(gt, tmp_path)
    assert se.evaluate_lvis(lvis_gt, [hit, better_fp], backend=backend)["AP"] == pytest.approx(0.5, abs=1e-9)
    # ... unless class 1 is not exhaustively annotated in the image: the unmatched box is ignored -> AP 1
    gt_ne = copy.deepcopy(gt)
    gt_ne["images"][0]["not_exhaustive_category_ids"] = [1]
    (tmp_path / "ne").mkdir()
    out = se.evaluate_lvis(_lvis(gt_ne, tmp_path / "ne"), [hit, better_fp], backend=backend)
    assert out["AP"] == pytest.approx(1.0, abs=1e-9)
    # a class in neither list (3) is not evaluated in this image; a neg class (2) has no GT anywhere -> -1
    other = {"image_id": 1, "category_id": 3, "bbox": [60, 60, 20, 20], "score": 0.95}
    neg = {"image_id": 1, "category_id": 2, "bbox": [60, 60, 20, 20], "score": 0.95}
    out = se.evaluate_lvis(lvis_gt, [hit, other, neg], backend=backend)
    assert out["AP"] == pytest.approx(1.0, abs=1e-9) and out["APr"] == pytest.approx(1.0, abs=1e-9)
    assert out["APc"] == -1.0 and out["APf"] == -1.0
    # the per-image cap keeps the highest scores: with max_dets=1 only the false positive survives
    assert se.evaluate_lvis(lvis_gt, [hit, better_fp], max_dets=1, backend=backend)["AP"] == 0.0


def test_limit_dets_per_image_is_stable():
    res = [{"image_id": 1, "score": s, "k": k} for k, s in enumerate([0.5, 0.9, 0.5, 0.1, 0.9])]
    res.append({"image_id": 2, "score": 0.3, "k": 9})
    kept = se.limit_dets_per_image(res, 3)
    assert [r["k"] for r in kept] == [1, 4, 0, 9]


def test_lvis_ignore_key_is_refused(tmp_path):
    gt, hit = _tiny_lvis_set()
    gt["annotations"][0]["ignore"] = 1
    with pytest.raises(ValueError, match="ignore"):
        se.evaluate_lvis(_lvis(gt, tmp_path), [hit], backend="faster_coco_eval")


def test_unknown_image_and_backend_errors():
    gt, results = random_detection_set(num_images=3, dets_per_image=5, seed=0)
    coco = _pycoco(gt)
    bad = [dict(results[0], image_id=999)]
    with pytest.raises(ValueError, match="image_id 999"):
        load_results(coco, bad, "faster_coco_eval")
    with pytest.raises(ValueError, match="TEST.EVAL_BACKEND='fast'"):
        se.check_backend("fast")
    with pytest.raises(ValueError, match="choose one of"):
        se.BackendCOCOeval(coco, coco, "bbox", backend="cocoapi")


def test_results_are_not_modified():
    gt, results = random_detection_set(num_images=3, dets_per_image=20, seed=0)
    before = copy.deepcopy(results)
    load_results(_pycoco(gt), results, "faster_coco_eval")
    load_results(_pycoco(gt), results, "pycocotools")
    assert results == before


def test_indexed_coco_queries_equal_faster_coco():
    from faster_coco_eval import COCO as FasterCOCO

    from shared.evaluation.backend import IndexedCOCO

    gt, _ = random_detection_set(num_images=15, num_classes=6, seed=9)
    plain, indexed = FasterCOCO(copy.deepcopy(gt)), IndexedCOCO(copy.deepcopy(gt))
    img_ids = [img["id"] for img in gt["images"]]
    for imgs, cats in ((img_ids, [1, 3]), (img_ids[:4], []), (img_ids[2:9], [2]), ([], [1])):
        ids = indexed.getAnnIds(imgIds=imgs, catIds=cats)
        assert ids == plain.getAnnIds(imgIds=imgs, catIds=cats)
        assert indexed.loadAnns(ids) == plain.loadAnns(ids)
    assert len(indexed.getAnnIds(imgIds=img_ids, catIds=[1, 3])) > 0
