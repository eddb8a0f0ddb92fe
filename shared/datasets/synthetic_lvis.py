"""A small synthetic long-tailed instance-segmentation dataset in the LVIS v1 on-disk format.

Layout written under ``root`` (the same as detectron2's builtin ``lvis_v1_*`` registration expects under
``$DETECTRON2_DATASETS``)::

    root/coco/train2017/000000000001.jpg ...     images (split folder taken from each image's coco_url)
    root/coco/val2017/...
    root/lvis/lvis_v1_train.json                 LVIS v1 json: images, annotations (polygons), categories
    root/lvis/lvis_v1_val.json

Classes are filled polygons (shape x colour). Shapes repeat across colours and colours across shapes, so
a rare class has frequent look-alikes (the confusion the long-tail methods act on). The number of
TRAINING images per class decays geometrically from ``head_images`` to ``tail_images`` (a steep tail).
Category records carry ``image_count``/``instance_count`` (counted from the generated training split) and
``frequency`` r/c/f with LVIS's rule, scaled to the small set: rare <= ``rare_max_images`` training
images, common <= ``common_max_images``, frequent above. Instead of the geometric decay, ``image_counts``
gives every class its number of training images explicitly; then every training image gets at least one
class (no image is filled with a head class), so the counts are exactly the ones asked for and the share
of images holding the most frequent class is ``max(image_counts) / num_train_images``. The validation split
is class-balanced (every class appears in about the same number of images) so that APr/APc/APf are all
measurable. Labels are
exhaustive, so every image lists all absent categories in ``neg_category_ids`` and has an empty
``not_exhaustive_category_ids`` (the fields exist, as in LVIS, and detectron2/lvis read them).

Everything is deterministic given ``seed``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

__all__ = [
    "SyntheticLVISSpec",
    "generate_synthetic_lvis",
    "register_synthetic_lvis",
    "synthetic_lvis_paths",
]

SHAPES = ("circle", "square", "triangle", "diamond", "hexagon", "star")
COLOURS = {  # BGR (cv2) colours
    "red": (40, 40, 220),
    "green": (40, 190, 40),
    "blue": (220, 80, 30),
    "yellow": (30, 210, 230),
}


@dataclass(frozen=True)
class SyntheticLVISSpec:
    """Size and tail of the generated dataset (the defaults generate in about 1 s)."""

    num_classes: int = 12
    num_train_images: int = 300
    num_val_images: int = 60
    image_size: int = 128
    head_images: int = 180  # training images containing the most frequent class
    tail_images: int = 2  # training images containing the rarest class
    val_images_per_class: int = 8
    min_object_size: int = 18
    max_object_size: int = 40
    rare_max_images: int = 8  # LVIS: rare = 1..10 training images (scaled down here)
    common_max_images: int = 40  # LVIS: common = 11..100
    seed: int = 0
    # explicit training-image count per class (class 0 first; overrides head/tail_images when given)
    image_counts: Optional[Tuple[int, ...]] = None


def class_names(num_classes: int) -> list[str]:
    """``<colour>_<shape>`` names in a Latin-square order: class k has colour ``k % 4`` and shape
    ``(k % 4 + k // 4) % S`` (S = shapes in use), so every colour and every shape occurs among the frequent,
    the common AND the rare classes (a rare class always has a frequent look-alike)."""
    colours = list(COLOURS)
    num_shapes = max(1, math.ceil(num_classes / len(colours)))
    if num_shapes > len(SHAPES):
        raise ValueError(f"synthetic LVIS supports at most {len(SHAPES) * len(colours)} classes, "
                         f"got {num_classes}")
    names = []
    for k in range(num_classes):
        j, g = k % len(colours), k // len(colours)
        names.append(f"{colours[j]}_{SHAPES[(j + g) % num_shapes]}")
    return names


def _polygon(shape: str, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """(P, 2) float polygon of ``shape`` centred at (cx, cy) with circumradius ``size / 2``."""
    r = size / 2.0
    if shape == "circle":
        t = np.linspace(0, 2 * math.pi, 20, endpoint=False)
        radii = np.full_like(t, r)
    elif shape == "star":
        t = np.linspace(0, 2 * math.pi, 10, endpoint=False) + angle
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    else:
        sides = {"square": 4, "triangle": 3, "diamond": 4, "hexagon": 6}[shape]
        offset = {"square": math.pi / 4, "diamond": 0.0}.get(shape, 0.0)
        t = np.linspace(0, 2 * math.pi, sides, endpoint=False) + offset + angle
        radii = np.full_like(t, r)
        if shape == "diamond":
            radii = radii * np.where(np.arange(4) % 2 == 0, 1.0, 0.55)
    return np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], axis=1)


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _train_image_counts(spec: SyntheticLVISSpec) -> np.ndarray:
    """Target number of training images per class: ``spec.image_counts``, else geometric decay head ->
    tail."""
    if spec.image_counts is not None:
        return np.asarray(spec.image_counts, dtype=int)
    k = np.arange(spec.num_classes)
    ratio = (spec.tail_images / spec.head_images) ** (1.0 / max(spec.num_classes - 1, 1))
    return np.maximum(np.round(spec.head_images * ratio**k), 1).astype(int)


def _frequency(image_count: int, spec: SyntheticLVISSpec) -> str:
    if image_count <= spec.rare_max_images:
        return "r"
    return "c" if image_count <= spec.common_max_images else "f"


def _check_image_counts(spec: SyntheticLVISSpec) -> None:
    counts = spec.image_counts
    if len(counts) != spec.num_classes:
        raise ValueError(f"image_counts has {len(counts)} entries for num_classes={spec.num_classes}")
    if min(counts) < 1 or max(counts) > spec.num_train_images:
        raise ValueError(f"image_counts must lie in 1..num_train_images={spec.num_train_images}, got "
                         f"{min(counts)}..{max(counts)}")
    if sum(counts) < spec.num_train_images:
        raise ValueError(f"image_counts sum to {sum(counts)} < num_train_images={spec.num_train_images}: "
                         "some training image would hold no object")


def _covering_train_classes(rng, spec: SyntheticLVISSpec) -> List[List[int]]:
    """Objects per training image when ``spec.image_counts`` is given: class c lies in exactly
    ``image_counts[c]`` distinct images and every image holds at least one class. The first
    ``num_train_images`` of the shuffled (class, occurrence) list go to distinct images, the rest to random
    images that do not hold that class yet. Each class placed in an image gets 1 or 2 instances; an image
    keeps at most 5 objects, its second instances dropped first (every class keeps one)."""
    _check_image_counts(spec)
    occurrences = np.concatenate([np.full(n, c) for c, n in enumerate(spec.image_counts)])
    rng.shuffle(occurrences)
    n_images = spec.num_train_images
    present: List[List[int]] = [[int(c)] for c in occurrences[:n_images]]
    for c in occurrences[n_images:]:
        free = [i for i in range(n_images) if c not in present[i]]
        present[int(rng.choice(free))].append(int(c))
    train_classes = []
    for classes in present:
        rng.shuffle(classes)
        seconds = [c for c in classes if rng.integers(1, 3) == 2]
        train_classes.append(classes + seconds[:max(0, 5 - len(classes))])
    return train_classes


def _render_split(rng, image_classes: list[list[int]], names: list[str], spec, split_dir, split,
                  first_image_id, first_ann_id):
    import cv2

    size = spec.image_size
    images, annotations = [], []
    ann_id = first_ann_id
    for i, classes in enumerate(image_classes):
        image_id = first_image_id + i
        canvas = rng.integers(90, 150, size=(1, 1, 3)) + rng.normal(0, 12, size=(size, size, 3))
        canvas = np.clip(canvas, 0, 255).astype(np.uint8)
        placed: list[tuple[float, float, float]] = []
        for cat in classes:
            colour, shape = names[cat].split("_")
            for _ in range(50):  # rejection sampling: objects do not overlap
                obj = float(rng.uniform(spec.min_object_size, spec.max_object_size))
                cx, cy = rng.uniform(obj / 2 + 1, size - obj / 2 - 1, size=2)
                if all(math.hypot(cx - px, cy - py) > (obj + ps) / 2 + 2 for px, py, ps in placed):
                    break
            else:
                continue
            placed.append((cx, cy, obj))
            poly = _polygon(shape, cx, cy, obj, float(rng.uniform(0, 0.4)))
            poly = np.clip(poly, 0, size - 1)
            jitter = rng.integers(-25, 26, size=3)
            bgr = tuple(int(np.clip(v + j, 0, 255)) for v, j in zip(COLOURS[colour], jitter))
            cv2.fillPoly(canvas, [np.round(poly).astype(np.int32)], bgr, lineType=cv2.LINE_8)
            x0, y0 = poly.min(axis=0)
            x1, y1 = poly.max(axis=0)
            annotations.append({
                "id": ann_id,
                "image_id": image_id,
                "category_id": cat + 1,
                "segmentation": [[round(float(v), 2) for v in poly.reshape(-1)]],
                "bbox": [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2),
                         round(float(y1 - y0), 2)],
                "area": round(_polygon_area(poly), 2),
            })
            ann_id += 1
        file_name = f"{image_id:012d}.jpg"
        cv2.imwrite(os.path.join(split_dir, file_name), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({
            "id": image_id,
            "width": size,
            "height": size,
            "coco_url": f"http://images.cocodataset.org/{split}/{file_name}",
            "flickr_url": "",
            "license": 1,
            "date_captured": "2026-01-01 00:00:00",
        })
    present = {img["id"]: set() for img in images}
    for a in annotations:
        present[a["image_id"]].add(a["category_id"])
    for img in images:
        img["neg_category_ids"] = [c + 1 for c in range(len(names)) if c + 1 not in present[img["id"]]]
        img["not_exhaustive_category_ids"] = []
    return images, annotations, ann_id


def synthetic_lvis_paths(root: str) -> dict[str, str]:
    """Paths of the generated files under ``root`` (image roots end with '/', as detectron2's LVIS loader
    joins)."""
    return {
        "image_root": os.path.join(root, "coco") + os.sep,
        "train_json": os.path.join(root, "lvis", "lvis_v1_train.json"),
        "val_json": os.path.join(root, "lvis", "lvis_v1_val.json"),
    }


def generate_synthetic_lvis(root: str, spec: Optional[SyntheticLVISSpec] = None,
                            overwrite: bool = False) -> dict:
    """Write the dataset under ``root`` (skipped if both jsons exist and not ``overwrite``); return its
    paths."""
    spec = spec or SyntheticLVISSpec()
    paths = synthetic_lvis_paths(root)
    if not overwrite and os.path.exists(paths["train_json"]) and os.path.exists(paths["val_json"]):
        return paths
    rng = np.random.default_rng(spec.seed)
    names = class_names(spec.num_classes)

    if spec.image_counts is not None:
        train_classes = _covering_train_classes(rng, spec)
    else:
        # Training split: class c appears in `target[c]` distinct random images (steep tail).
        target = np.minimum(_train_image_counts(spec), spec.num_train_images)
        train_classes = [[] for _ in range(spec.num_train_images)]
        for c, n_c in enumerate(target):
            for i in rng.choice(spec.num_train_images, size=int(n_c), replace=False):
                train_classes[i].extend([c] * int(rng.integers(1, 3)))
        for i, classes in enumerate(train_classes):  # no empty training image: add a head class
            if not classes:
                classes.append(int(rng.integers(0, min(3, spec.num_classes))))
            rng.shuffle(classes)
            train_classes[i] = classes[:5]
    # Validation split: balanced, every class in about `val_images_per_class` images.
    val_classes: list[list[int]] = [[] for _ in range(spec.num_val_images)]
    for c in range(spec.num_classes):
        for i in rng.choice(spec.num_val_images, size=min(spec.val_images_per_class, spec.num_val_images),
                            replace=False):
            val_classes[i].append(c)
    for i, classes in enumerate(val_classes):
        if not classes:
            classes.append(int(rng.integers(0, spec.num_classes)))
        val_classes[i] = classes[:5]

    os.makedirs(os.path.dirname(paths["train_json"]), exist_ok=True)
    splits = {}
    next_image_id, next_ann_id = 1, 1
    for split, image_classes in (("train2017", train_classes), ("val2017", val_classes)):
        split_dir = os.path.join(root, "coco", split)
        os.makedirs(split_dir, exist_ok=True)
        images, anns, next_ann_id = _render_split(rng, image_classes, names, spec, split_dir, split,
                                                  next_image_id, next_ann_id)
        next_image_id += len(images)
        splits[split] = (images, anns)

    train_images, train_anns = splits["train2017"]
    image_count = np.zeros(spec.num_classes, dtype=int)
    instance_count = np.zeros(spec.num_classes, dtype=int)
    per_image: dict[int, set] = {}
    for a in train_anns:
        instance_count[a["category_id"] - 1] += 1
        per_image.setdefault(a["image_id"], set()).add(a["category_id"] - 1)
    for cats in per_image.values():
        for c in cats:
            image_count[c] += 1
    categories = [{
        "id": c + 1,
        "name": name,
        "synonyms": [name],
        "synset": f"{name}.n.01",
        "def": f"synthetic {name.replace('_', ' ')}",
        "image_count": int(image_count[c]),
        "instance_count": int(instance_count[c]),
        "frequency": _frequency(int(image_count[c]), spec),
    } for c, name in enumerate(names)]
    info = {"description": "synthetic long-tailed LVIS-format dataset", "version": "1.0", "year": 2026}
    licenses = [{"id": 1, "name": "CC0", "url": ""}]
    for split, key in (("train2017", "train_json"), ("val2017", "val_json")):
        images, anns = splits[split]
        payload = {"info": info, "licenses": licenses, "images": images, "annotations": anns,
                   "categories": categories}
        tmp = paths[key] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f)
        os.replace(tmp, paths[key])
    return paths


def register_synthetic_lvis(root: str, prefix: str = "synthetic_lvis") -> tuple[str, str]:
    """Register ``<prefix>_train`` / ``<prefix>_val`` (LVIS loader + LVIS evaluator metadata) for data under
    ``root``; idempotent. Returns the two dataset names."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets.lvis import load_lvis_json

    paths = synthetic_lvis_paths(root)
    with open(paths["val_json"]) as f:
        categories = sorted(json.load(f)["categories"], key=lambda c: c["id"])
    thing_classes = [c["name"] for c in categories]
    names = []
    for split, key in (("train", "train_json"), ("val", "val_json")):
        name = f"{prefix}_{split}"
        json_file, image_root = paths[key], paths["image_root"]
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda j=json_file, r=image_root: load_lvis_json(j, r, None))
        MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="lvis",
                                      thing_classes=thing_classes)
        names.append(name)
    return names[0], names[1]
