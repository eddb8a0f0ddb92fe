"""AI-TOD / SODA-D protocols: equal to pycocotools' COCOeval run with the same area ranges and maxDets."""

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from simd.evaluation import evaluate_coco_results, get_protocol

BIG = 1e5**2


def _fixture(seed=0, num_images=6):
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": 300, "height": 300, "file_name": f"{image_id}.png"})
        for _ in range(int(rng.integers(5, 15))):
            side = float(np.exp(rng.uniform(np.log(3), np.log(60))))
            w, h = side * rng.uniform(0.7, 1.3), side * rng.uniform(0.7, 1.3)
            x, y = rng.uniform(0, 300 - w), rng.uniform(0, 300 - h)
            cat = int(rng.integers(1, 3))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            if rng.random() < 0.8:  # detected, with localisation noise
                jitter = rng.normal(0, 0.15 * side, 4)
                dets.append(
                    {
                        "image_id": image_id,
                        "category_id": cat,
                        "score": float(rng.uniform(0.3, 1.0)),
                        "bbox": [
                            x + jitter[0],
                            y + jitter[1],
                            max(w + jitter[2], 1.0),
                            max(h + jitter[3], 1.0),
                        ],
                    }
                )
        for _ in range(int(rng.integers(2, 8))):  # false positives
            side = float(rng.uniform(3, 40))
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.integers(1, 3)),
                    "score": float(rng.uniform(0.0, 0.6)),
                    "bbox": [rng.uniform(0, 260), rng.uniform(0, 260), side, side],
                }
            )
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
    return coco, dets


def _reference_stats(coco, dets, area_ranges, max_dets, iou_thrs=None):
    """pycocotools' own summarize() with our ranges in the slots all/small/medium/large."""
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(json.loads(json.dumps(dets))), "bbox")
        ev.params.areaRng = [list(r) for r in area_ranges]
        ev.params.areaRngLbl = ["all", "small", "medium", "large"]
        ev.params.maxDets = list(max_dets)
        if iou_thrs is not None:
            ev.params.iouThrs = np.array(iou_thrs)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_aitod_protocol_equals_pycocotools():
    coco, dets = _fixture()
    ours = evaluate_coco_results(coco, dets, get_protocol("aitod")).metrics
    max_dets = [100, 300, 1500]
    ref = _reference_stats(coco, dets, [[0, BIG], [0, 64], [64, 256], [256, 1024]], max_dets)
    ref_medium = _reference_stats(coco, dets, [[0, BIG], [1024, BIG], [0, 1], [0, 1]], max_dets)
    ref_25 = _reference_stats(coco, dets, [[0, BIG], [0, 64], [64, 256], [256, 1024]], max_dets, [0.25])
    expected = {
        "AP": ref[0],
        "AP50": ref[1],
        "AP75": ref[2],
        "APvt": ref[3],
        "APt": ref[4],
        "APs": ref[5],
        "APm": ref_medium[3],
        "AP25": ref_25[0],
        "AR@100": ref[6],
        "AR@300": ref[7],
        "AR@1500": ref[8],
        "ARvt": ref[9],
        "ARt": ref[10],
        "ARs": ref[11],
        "ARm": ref_medium[9],
    }
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name
    assert 0 < ours["AP"] < ours["AP50"] < ours["AP25"] <= 1  # the extra 0.25 threshold is really evaluated


def test_sodad_protocol_equals_pycocotools():
    coco, dets = _fixture(seed=1)
    ours = evaluate_coco_results(coco, dets, get_protocol("sodad")).metrics
    ref = _reference_stats(coco, dets, [[0, 1024], [0, 144], [144, 400], [400, 1024]], [1, 10, 100])
    ref_normal = _reference_stats(coco, dets, [[0, 1024], [1024, 2000], [0, 1], [0, 1]], [1, 10, 100])
    ref_ar = _reference_stats(coco, dets, [[0, 1024], [0, 1], [0, 1], [0, 1]], [100, 300, 1000])
    expected = {
        "AP": ref[0],
        "AP50": ref[1],
        "AP75": ref[2],
        "APeS": ref[3],
        "APrS": ref[4],
        "APgS": ref[5],
        "APN": ref_normal[3],
        "AR@100": ref_ar[6],
        "AR@300": ref_ar[7],
        "AR@1000": ref_ar[8],
    }
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name


def test_hand_computed_single_tiny_object():
    coco, _ = _fixture(num_images=1)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "images": [{"id": 1, "width": 50, "height": 50}],
            "annotations": [
                {
                    "id": 1,
                    "image_id": 1,
                    "category_id": 1,
                    "bbox": [10, 10, 10, 10],
                    "area": 100.0,
                    "iscrowd": 0,
                }
            ],
            "categories": [{"id": 1, "name": "a"}],
        }
        coco.createIndex()
    # IoU with the GT = 8x10 / 10x10 = 0.8: a hit at 0.50..0.80 (7 of 10 thresholds) and at 0.25
    dets = [{"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [10, 10, 8, 10]}]
    m = evaluate_coco_results(coco, dets, get_protocol("aitod")).metrics
    assert m["AP50"] == pytest.approx(1.0) and m["AP25"] == pytest.approx(1.0)
    assert m["AP75"] == pytest.approx(1.0)
    assert m["AP"] == pytest.approx(0.7)
    assert m["APt"] == pytest.approx(0.7)  # area 100 is "tiny" [64, 256]
    assert m["APvt"] == -1.0 and m["APs"] == -1.0 and m["APm"] == -1.0  # no GT in those ranges


def test_unknown_protocol():
    with pytest.raises(KeyError, match="unknown TEST.SIMD_EVAL.PROTOCOL 'voc'"):
        get_protocol("voc")
