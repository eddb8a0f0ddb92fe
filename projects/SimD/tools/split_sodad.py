#!/usr/bin/env python
"""Cut SODA-D's full images into the overlapping patches the SODA-D benchmarks train and test on, as the
official split tool does (SODA-mmdetection ``tools/img_split/sodad_split.py`` with its released settings, and
``generate_wo_ignore.py``), written for this toolkit (numpy 2, no shapely, no multiprocessing needed).

    python projects/SimD/tools/split_sodad.py datasets/SODA-D --splits train val test [--workers 4]

reads   ``SODA-D/rawData/Images/<file_name>``, ``SODA-D/rawData/Annotations/<split>.json``
writes  ``SODA-D/divData/Images/<split>/<stem>_<k>.jpg``, ``SODA-D/divData/Annotations/<split>.json`` and
        ``SODA-D/rawData/Annotations/<split>_wo_ignore.json`` (what the SimD ``sodad_<split>`` datasets read)

The rules (the official tool's, with its released values as defaults):

* patches of 800 x 800 px overlapping by 150 px: along each axis the origins are 0, 650, 1300, ... and the
  last one is moved back to ``size - 800`` so it ends at the border (:func:`patch_origins`); the x origin is
  the outer loop, so ``<stem>_<k>`` counts the patches column by column;
* an image narrower or lower than 800 px is padded (bottom / right) to 800 px with the fill value;
* in ``train`` the image is first cut to the annotations' extent (``min(size, max(int(x) + int(w)) + 5)``,
  same for y), and a patch is kept only when it holds at least one object; ``k`` counts the kept patches;
* only images with at least one annotation are split (the official tool walks pycocotools' ``imgToAnns``);
* a box that overlaps a patch is clipped to it (``bbox`` relative to the patch, ``area`` the clipped area,
  ``segmentation`` the clipped box's corners as integers) and gets ``"ignore": true`` when at most 40 % of its
  area is inside the patch;
* "ignore" regions (category 10) are painted with the fill value (0, 0, 0), except where an object box lies
  inside them, and are not written as annotations (the patch json has the 9 object classes);
* patch images carry ``ori_id`` (the full image's id) and ``start_coord`` ``[x, y]`` (the patch origin),
  which SODA-D evaluation uses to merge the patch detections back; image and annotation ids count from 0;
* ``<split>_wo_ignore.json`` is ``<split>.json`` without the category-10 annotations.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections import OrderedDict
from multiprocessing import Pool
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

logger = logging.getLogger("simd.split_sodad")

#: the official split's settings (tools/img_split/split_configs/split_train.json)
PATCH_SIZE = 800
OVERLAP = 150
IGNORE_AREA_RATIO = 0.40
FILL_VALUE = (0, 0, 0)  # BGR
IGNORE_CATEGORY = 10
#: the 9 object classes, ids 1-9 (the ignore category is not written to the patch json)
CATEGORIES = ("people", "rider", "bicycle", "motor", "vehicle", "traffic-sign", "traffic-light",
              "traffic-camera", "warning-cone")
#: extra pixels kept beyond the annotations' extent in train mode
TRAIN_MARGIN = 5


def patch_origins(size: int, patch: int = PATCH_SIZE, overlap: int = OVERLAP) -> List[int]:
    """Origins of the patches along one axis of length ``size``: 0, s, 2s, ... with s = patch - overlap, the
    last one moved to ``max(size - patch, 0)`` (the first origin o with o + patch >= size)."""
    if patch <= overlap:
        raise ValueError(f"patch size {patch} must exceed the overlap {overlap}")
    origins, origin = [], 0
    while origin + patch < size:
        origins.append(origin)
        origin += patch - overlap
    origins.append(max(size - patch, 0))
    return origins


def _corners(x: float, y: float, w: float, h: float) -> List[int]:
    """The box's corners clockwise from the top left, as integers (the official ``segmentation``)."""
    return [int(v) for v in (x, y, x + w, y, x + w, y + h, x, y + h)]


def split_image(image: np.ndarray, annotations: Sequence[dict], mode: str, patch: int = PATCH_SIZE,
                overlap: int = OVERLAP, ignore_ratio: float = IGNORE_AREA_RATIO,
                fill: Tuple[int, int, int] = FILL_VALUE) -> List[Tuple[List[int], np.ndarray, List[dict]]]:
    """The kept patches of one full image: ``[(start_coord [x, y], patch image, patch annotations)]`` (module
    docstring for the rules). ``annotations``: the image's COCO annotations (``bbox`` x, y, w, h)."""
    height, width = image.shape[:2]
    if mode == "train":
        right = max([int(a["bbox"][0]) + int(a["bbox"][2]) for a in annotations] + [0])
        bottom = max([int(a["bbox"][1]) + int(a["bbox"][3]) for a in annotations] + [0])
        width, height = min(width, right + TRAIN_MARGIN), min(height, bottom + TRAIN_MARGIN)
    if width < patch or height < patch:
        shape = (max(image.shape[0], patch), max(image.shape[1], patch), image.shape[2])
        padded = np.empty(shape, image.dtype)
        padded[...] = np.asarray(fill, dtype=image.dtype)
        padded[:image.shape[0], :image.shape[1]] = image
        image, width, height = padded, max(width, patch), max(height, patch)
    boxes = np.array([a["bbox"] for a in annotations], dtype=np.float64).reshape(-1, 4)
    out = []
    for left in patch_origins(width, patch, overlap):
        for up in patch_origins(height, patch, overlap):
            x0 = np.maximum(boxes[:, 0], left)
            y0 = np.maximum(boxes[:, 1], up)
            x1 = np.minimum(boxes[:, 0] + boxes[:, 2], left + patch)
            y1 = np.minimum(boxes[:, 1] + boxes[:, 3], up + patch)
            inside = (x1 - x0 > 0) & (y1 - y0 > 0)
            crop = image[up:up + patch, left:left + patch].copy()
            ignore_mask = np.zeros(crop.shape[:2], dtype=bool)
            for i in np.flatnonzero(inside):  # ignore regions first, then objects carved out of them
                if annotations[i]["category_id"] == IGNORE_CATEGORY:
                    ignore_mask[int(y0[i] - up):int(y1[i] - up), int(x0[i] - left):int(x1[i] - left)] = True
            for i in np.flatnonzero(inside):
                if annotations[i]["category_id"] != IGNORE_CATEGORY:
                    ignore_mask[int(y0[i] - up):int(y1[i] - up), int(x0[i] - left):int(x1[i] - left)] = False
            crop[ignore_mask] = np.asarray(fill, dtype=crop.dtype)
            records = []
            for i in np.flatnonzero(inside):
                if annotations[i]["category_id"] == IGNORE_CATEGORY:
                    continue
                bbox = [float(x0[i] - left), float(y0[i] - up), float(x1[i] - x0[i]), float(y1[i] - y0[i])]
                area = bbox[2] * bbox[3]
                records.append({
                    "segmentation": [_corners(*bbox)],
                    "bbox": bbox,
                    "category_id": int(annotations[i]["category_id"]),
                    "area": area,
                    "ignore": bool(area / (boxes[i, 2] * boxes[i, 3]) <= ignore_ratio),
                    "iscrowd": 0,
                })
            if mode == "train" and not records:
                continue
            out.append(([int(left), int(up)], crop, records))
    return out


def _split_one(job) -> Tuple[List[dict], List[List[dict]]]:
    image_record, annotations, image_dir, out_dir, mode, options = job
    path = os.path.join(image_dir, image_record["file_name"])
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path} (image id {image_record['id']})")
    stem = os.path.basename(image_record["file_name"]).split(".")[0]  # to the first dot, as the official tool
    images, per_patch = [], []
    for k, (origin, crop, records) in enumerate(split_image(image, annotations, mode, **options)):
        name = f"{stem}_{k}.jpg"
        if not cv2.imwrite(os.path.join(out_dir, name), crop):
            raise OSError(f"cannot write {os.path.join(out_dir, name)}")
        images.append({"file_name": name, "height": int(crop.shape[0]), "width": int(crop.shape[1]),
                       "ori_id": image_record["id"], "start_coord": origin})
        per_patch.append(records)
    return images, per_patch


def split_sodad(root: str, split: str, workers: int = 1, patch: int = PATCH_SIZE, overlap: int = OVERLAP,
                ignore_ratio: float = IGNORE_AREA_RATIO,
                fill: Tuple[int, int, int] = FILL_VALUE) -> Dict[str, int]:
    """Split ``root/rawData`` (``Images/``, ``Annotations/<split>.json``) into ``root/divData`` and write
    ``rawData/Annotations/<split>_wo_ignore.json``. ``split`` ``"train"`` applies the train-only rules.
    Returns counts (full images split, images skipped without annotations, patches, patch annotations)."""
    from shared.datasets.readers import load_json

    raw_json = os.path.join(root, "rawData", "Annotations", f"{split}.json")
    raw = load_json(raw_json, dict, what="SODA-D annotations")
    for key in ("images", "annotations"):
        if key not in raw:
            raise KeyError(f"{raw_json}: no {key!r} list (not a COCO-style SODA-D annotation file)")
    images = {im["id"]: im for im in raw["images"]}
    by_image: "OrderedDict[int, List[dict]]" = OrderedDict()
    for ann in raw["annotations"]:
        if ann["image_id"] not in images:
            raise KeyError(f"{raw_json}: annotation {ann.get('id')} names image {ann['image_id']}, which is "
                           "not in 'images'")
        by_image.setdefault(ann["image_id"], []).append(ann)
    out_dir = os.path.join(root, "divData", "Images", split)
    if os.path.isdir(out_dir):  # as the official tool: no stale patch of an earlier split survives
        logger.info("removing the earlier patches in %s", out_dir)
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    os.makedirs(os.path.join(root, "divData", "Annotations"), exist_ok=True)
    options = dict(patch=patch, overlap=overlap, ignore_ratio=ignore_ratio, fill=tuple(fill))
    mode = "train" if split == "train" else "test"
    jobs = [(images[i], anns, os.path.join(root, "rawData", "Images"), out_dir, mode, options)
            for i, anns in by_image.items()]
    if workers > 1:
        with Pool(workers) as pool:
            outputs = list(pool.imap(_split_one, jobs, chunksize=4))
    else:
        outputs = [_split_one(job) for job in jobs]
    patch_images, patch_annotations = [], []
    for patches, per_patch in outputs:
        for image_record, records in zip(patches, per_patch):
            image_id = len(patch_images)
            patch_images.append(dict(image_record, id=image_id))
            for record in records:
                patch_annotations.append(dict(record, image_id=image_id, id=len(patch_annotations)))
    divided = {"type": "instance", "images": patch_images, "annotations": patch_annotations,
               "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)]}
    with open(os.path.join(root, "divData", "Annotations", f"{split}.json"), "w") as f:
        json.dump(divided, f)
    without = dict(raw, annotations=[a for a in raw["annotations"] if a["category_id"] != IGNORE_CATEGORY])
    with open(os.path.join(root, "rawData", "Annotations", f"{split}_wo_ignore.json"), "w") as f:
        json.dump(without, f)
    counts = {"images": len(jobs), "skipped_without_annotations": len(images) - len(jobs),
              "patches": len(patch_images), "annotations": len(patch_annotations)}
    logger.info("SODA-D %s: %d full images -> %d patches, %d annotations (%d images without annotations "
                "skipped, as the official tool)", split, counts["images"], counts["patches"],
                counts["annotations"], counts["skipped_without_annotations"])
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="the SODA-D folder holding rawData/ (e.g. datasets/SODA-D)")
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"],
                        choices=["train", "val", "test"])
    parser.add_argument("--workers", type=int, default=1, help="processes cutting images in parallel")
    parser.add_argument("--patch-size", type=int, default=PATCH_SIZE)
    parser.add_argument("--overlap", type=int, default=OVERLAP)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for split in args.splits:
        counts = split_sodad(args.root, split, workers=args.workers, patch=args.patch_size,
                             overlap=args.overlap)
        print(f"{split}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
