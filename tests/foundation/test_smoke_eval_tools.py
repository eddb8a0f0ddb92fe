"""Smoke tests for the evaluation back ends: lvis' LVISEval (needs the numpy alias fix) and faiss kNN."""
import json

import numpy as np
import pytest

import shared  # noqa: F401


def _tiny_lvis(tmp_path):
    cats = [
        {"id": 1, "name": "a", "synset": "a.n.01", "frequency": "f", "image_count": 2, "instance_count": 2},
        {"id": 2, "name": "b", "synset": "b.n.01", "frequency": "r", "image_count": 1, "instance_count": 1},
    ]
    images = [
        {"id": i, "width": 100, "height": 100, "file_name": f"{i}.jpg", "neg_category_ids": [],
         "not_exhaustive_category_ids": []}
        for i in (1, 2)
    ]
    boxes = {1: [10, 10, 30, 30], 2: [50, 50, 20, 40], 3: [5, 60, 30, 30]}
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": boxes[1], "area": 900},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": boxes[2], "area": 800},
        {"id": 3, "image_id": 2, "category_id": 2, "bbox": boxes[3], "area": 900},
    ]
    for a in anns:
        x, y, w, h = a["bbox"]
        a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    path = tmp_path / "lvis_tiny.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return str(path), anns


def _evaluate(gt_path, dets):
    from lvis import LVIS, LVISEval, LVISResults

    gt = LVIS(gt_path)
    ev = LVISEval(gt, LVISResults(gt, dets, max_dets=300), iou_type="bbox")
    ev.run()
    return ev.get_results()


def test_lvis_eval_perfect_and_shifted(tmp_path):
    gt_path, anns = _tiny_lvis(tmp_path)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in anns]
    res = _evaluate(gt_path, perfect)
    assert res["AP"] == pytest.approx(1.0)
    assert res["APr"] == pytest.approx(1.0) and res["APf"] == pytest.approx(1.0)
    # Boxes shifted by their own width never reach IoU 0.5: AP must drop to 0.
    shifted = [dict(d, bbox=[d["bbox"][0] + d["bbox"][2], *d["bbox"][1:]]) for d in perfect]
    assert _evaluate(gt_path, shifted)["AP"] == pytest.approx(0.0)


def test_faiss_knn_matches_brute_force():
    import faiss

    rng = np.random.default_rng(0)
    db = rng.standard_normal((500, 32)).astype(np.float32)
    q = rng.standard_normal((20, 32)).astype(np.float32)
    index = faiss.IndexFlatL2(32)
    index.add(db)
    dist, idx = index.search(q, 5)
    brute = ((q[:, None, :] - db[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, np.argsort(brute, axis=1)[:, :5])
    np.testing.assert_allclose(dist, np.sort(brute, axis=1)[:, :5], rtol=1e-4)
