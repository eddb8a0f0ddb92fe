"""Random ground truth + detections in COCO / LVIS json form, for backend parity tests and benchmarks.

The sets are built to reach the corner cases of the matching rules: crowd regions, images without any
ground truth, classes that have detections but no ground truth, many detections per image (more than the
maxDets cap), tied scores, detections that are jittered copies of a ground-truth box (true positives at
varied IoU) next to random boxes (false positives), and for LVIS the ``neg_category_ids`` /
``not_exhaustive_category_ids`` image lists and the r/c/f frequency groups.
"""
from __future__ import annotations

from typing import Dict, List, Tuple, Union

import numpy as np

__all__ = ["random_detection_set"]


def _boxes(rng: np.random.Generator, n: int, width: int, height: int, size_mean: float) -> np.ndarray:
    """``n`` XYWH boxes inside a ``width x height`` image, sides log-normal around ``size_mean`` px."""
    wh = np.exp(rng.normal(np.log(size_mean), 0.6, size=(n, 2)))
    wh = np.clip(wh, 1.0, [width * 0.9, height * 0.9])
    xy = rng.uniform(0, 1, size=(n, 2)) * (np.array([width, height]) - wh)
    return np.concatenate([xy, wh], axis=1)


def _polygon(rng: np.random.Generator, box: np.ndarray) -> List[float]:
    """An octagon-like polygon inscribed in the XYWH ``box`` (random vertex offsets)."""
    x, y, w, h = box
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    r = rng.uniform(0.7, 1.0, size=8)
    px = x + w / 2 + np.cos(t) * r * w / 2
    py = y + h / 2 + np.sin(t) * r * h / 2
    return [float(v) for pair in zip(px, py) for v in pair]


def random_detection_set(
    num_images: int = 20,
    num_classes: int = 8,
    gt_per_image: float = 10.0,
    dets_per_image: Union[int, Tuple[int, int]] = 100,
    size_mean: float = 24.0,
    image_size: Tuple[int, int] = (400, 600),
    crowd_fraction: float = 0.05,
    empty_fraction: float = 0.15,
    classes_without_gt: int = 2,
    tie_fraction: float = 0.1,
    segm: bool = False,
    lvis: bool = False,
    seed: int = 0,
) -> Tuple[Dict, List[Dict]]:
    """``(ground_truth_json, results)``.

    * ``ground_truth_json``: COCO instances json (``images``, ``annotations``, ``categories``); with ``lvis``
      the LVIS v1 form instead (no ``iscrowd``; categories carry ``frequency`` r/c/f; every image has
      ``neg_category_ids`` and ``not_exhaustive_category_ids``).
    * ``results``: COCO result dicts (``image_id``, ``category_id``, ``bbox`` XYWH, ``score``, and an RLE
      ``segmentation`` when ``segm``), ``dets_per_image`` per image (an int, or ``(low, high)``: uniform
      in [low, high] per image), scores in (0, 1] with a share
      ``tie_fraction`` rounded to 2 decimals (ties).
    * GT per image is Poisson(``gt_per_image``); ``empty_fraction`` of the images have none.
      The last ``classes_without_gt`` categories never get a GT box (they still get detections).
    """
    rng = np.random.default_rng(seed)
    if segm:
        from pycocotools import mask as mask_utils
    gt_classes = max(1, num_classes - classes_without_gt)
    freqs = ("r", "c", "f")
    categories = [{"id": k + 1, "name": f"class_{k + 1}"} for k in range(num_classes)]
    if lvis:
        for k, cat in enumerate(categories):
            cat["frequency"] = freqs[k % 3]
            cat["synset"] = cat["name"]
    images, annotations, results = [], [], []
    ann_id = 1
    for i in range(num_images):
        img_id = i + 1
        h = int(rng.integers(image_size[0], image_size[1] + 1))
        w = int(rng.integers(image_size[0], image_size[1] + 1))
        image = {"id": img_id, "width": w, "height": h, "file_name": f"{img_id:06d}.jpg"}
        n_gt = 0 if rng.random() < empty_fraction else int(rng.poisson(gt_per_image))
        boxes = _boxes(rng, n_gt, w, h, size_mean)
        labels = rng.integers(1, gt_classes + 1, size=n_gt)
        for box, label in zip(boxes, labels):
            ann = {"id": ann_id, "image_id": img_id, "category_id": int(label),
                   "bbox": [float(v) for v in box]}
            if segm:
                poly = _polygon(rng, box)
                ann["segmentation"] = [poly]
                rle = mask_utils.frPyObjects([poly], h, w)
                ann["area"] = float(mask_utils.area(mask_utils.merge(rle)))
            else:
                ann["area"] = float(box[2] * box[3])
            if not lvis:
                crowd = rng.random() < crowd_fraction
                ann["iscrowd"] = int(crowd)
                if crowd and segm:
                    rle = mask_utils.merge(mask_utils.frPyObjects([ann["segmentation"][0]], h, w))
                    ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            annotations.append(ann)
            ann_id += 1
        if lvis:
            present = sorted(set(int(x) for x in labels))
            absent = [c for c in range(1, num_classes + 1) if c not in present]
            image["neg_category_ids"] = sorted(int(c) for c in rng.choice(
                absent, size=min(len(absent), int(rng.integers(0, 4))), replace=False)) if absent else []
            image["not_exhaustive_category_ids"] = sorted(int(c) for c in rng.choice(
                present, size=min(len(present), int(rng.integers(0, 3))), replace=False)) if present else []
        images.append(image)
        # detections: jittered copies of the GT boxes (with a right or a wrong class) + random boxes
        if isinstance(dets_per_image, int):
            n_det = dets_per_image
        else:
            n_det = int(rng.integers(dets_per_image[0], dets_per_image[1] + 1))
        n_tp = min(len(boxes), n_det // 2)
        src = rng.integers(0, max(len(boxes), 1), size=n_tp) if len(boxes) else np.zeros(0, dtype=int)
        tp_boxes = boxes[src] if len(boxes) else np.zeros((0, 4))
        jitter = rng.normal(0, 0.15, size=tp_boxes.shape) * np.repeat(tp_boxes[:, 2:], 2, axis=1)
        tp_boxes = tp_boxes + jitter
        tp_boxes[:, 2:] = np.maximum(tp_boxes[:, 2:], 1.0)
        tp_labels = labels[src] if len(boxes) else np.zeros(0, dtype=int)
        wrong = rng.random(n_tp) < 0.1
        tp_labels = np.where(wrong, rng.integers(1, num_classes + 1, size=n_tp), tp_labels)
        n_fp = n_det - n_tp
        fp_boxes = _boxes(rng, n_fp, w, h, size_mean)
        fp_labels = rng.integers(1, num_classes + 1, size=n_fp)
        det_boxes = np.concatenate([tp_boxes, fp_boxes])
        det_labels = np.concatenate([tp_labels, fp_labels])
        scores = np.concatenate([rng.uniform(0.3, 1.0, n_tp), rng.uniform(0.0, 0.8, n_fp)])
        ties = rng.random(len(scores)) < tie_fraction
        scores = np.where(ties, np.round(scores, 2), scores)
        scores = np.clip(scores, 1e-4, 1.0)
        for box, label, score in zip(det_boxes, det_labels, scores):
            res = {"image_id": img_id, "category_id": int(label), "bbox": [float(v) for v in box],
                   "score": float(score)}
            if segm:
                rle = mask_utils.frPyObjects([_polygon(rng, box)], h, w)[0]
                res["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            results.append(res)
    gt = {"images": images, "annotations": annotations, "categories": categories,
          "info": {"description": "random evaluation set (shared.evaluation.synthetic)"}}
    return gt, results
