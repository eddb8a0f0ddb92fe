"""A small synthetic tiny-object detection set in AI-TOD's on-disk COCO-json layout.

Layout written under ``root`` (the same file names as AI-TOD v1, so the AI-TOD registration in the
SimD project can also read it)::

    root/annotations/aitod_train_v1.json
    root/annotations/aitod_val_v1.json
    root/train/images/<id>.png
    root/val/images/<id>.png

Each image is a textured, cluttered "aerial" background with many objects of 2-32 px (absolute size
sqrt(w*h), as AI-TOD measures it; elongated classes are longer than that along one side). The eight
classes are named like AI-TOD's; each has its own shape, colour and size range (``CLASS_STYLES``), and
un-annotated look-alike clutter (grey blobs, streaks) makes the background non-trivial. Everything is
deterministic from ``seed``: the same arguments give byte-identical json and images.

``generate_synthetic_tiny`` writes the data once (a ``_meta.json`` fingerprint makes later calls with
the same arguments a no-op), ``register_synthetic_tiny`` registers ``synthetic_tiny_train`` and
``synthetic_tiny_val`` in Detectron2's ``DatasetCatalog`` / ``MetadataCatalog``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

AITOD_CLASSES: Tuple[str, ...] = (
    "airplane",
    "bridge",
    "storage-tank",
    "ship",
    "swimming-pool",
    "vehicle",
    "person",
    "wind-mill",
)
SPLIT_NAMES: Tuple[str, ...] = ("train", "val")
DATASET_PREFIX = "synthetic_tiny"
_FORMAT_VERSION = 2


@dataclass(frozen=True)
class ClassStyle:
    """How one class is drawn: shape kind, BGR colour, object side range in pixels, aspect ratio range
    (long side / short side) and relative frequency."""

    shape: str
    color: Tuple[int, int, int]
    size_range: Tuple[float, float]
    aspect_range: Tuple[float, float]
    frequency: float


CLASS_STYLES: Dict[str, ClassStyle] = {
    "airplane": ClassStyle("cross", (235, 235, 240), (10.0, 32.0), (1.0, 1.2), 0.8),
    "bridge": ClassStyle("bar", (70, 120, 170), (8.0, 32.0), (2.5, 4.0), 0.6),
    "storage-tank": ClassStyle("ring", (200, 200, 200), (6.0, 26.0), (1.0, 1.05), 1.0),
    "ship": ClassStyle("ellipse", (150, 60, 40), (6.0, 28.0), (2.0, 3.0), 1.0),
    "swimming-pool": ClassStyle("rect", (230, 200, 40), (5.0, 22.0), (1.0, 1.8), 0.8),
    "vehicle": ClassStyle("rect", (40, 40, 220), (4.0, 14.0), (1.5, 2.2), 1.6),
    "person": ClassStyle("dot", (40, 230, 240), (2.5, 8.0), (1.0, 1.0), 1.2),
    "wind-mill": ClassStyle("tri", (250, 250, 250), (6.0, 24.0), (1.0, 1.0), 0.6),
}


@dataclass(frozen=True)
class SyntheticTinyConfig:
    """Arguments that determine the generated data (stored in ``_meta.json`` as a fingerprint)."""

    seed: int = 0
    image_size: int = 256
    num_train: int = 120
    num_val: int = 30
    objects_per_image: Tuple[int, int] = (12, 30)
    clutter_per_image: Tuple[int, int] = (15, 40)
    size_scale: float = 1.0
    format_version: int = _FORMAT_VERSION


def _annotation_file(root: str, split: str) -> str:
    return os.path.join(root, "annotations", f"aitod_{split}_v1.json")


def _image_dir(root: str, split: str) -> str:
    return os.path.join(root, split, "images")


def _textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency terrain colour + mid-frequency texture + pixel noise, as uint8 BGR."""
    base = rng.uniform(60, 140, size=3)
    coarse = rng.normal(0.0, 1.0, size=(max(size // 32, 2), max(size // 32, 2), 3)).astype(np.float32)
    coarse = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * 22.0
    mid = rng.normal(0.0, 1.0, size=(size // 4, size // 4, 1)).astype(np.float32)
    mid = cv2.resize(mid, (size, size), interpolation=cv2.INTER_LINEAR)[..., None] * 10.0
    fine = rng.normal(0.0, 6.0, size=(size, size, 1)).astype(np.float32)
    image = base[None, None, :] + coarse + mid + fine
    # a few straight "roads" across the scene
    for _ in range(int(rng.integers(1, 4))):
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        shade = float(rng.uniform(90, 160))
        cv2.line(image, p1, p2, (shade, shade, shade), int(rng.integers(2, 6)), cv2.LINE_AA)
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_clutter(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Un-annotated distractors: greyish blobs and short streaks of similar sizes to the objects."""
    size = image.shape[0]
    for _ in range(count):
        cx, cy = (float(v) for v in rng.uniform(0, size, 2))
        grey = float(rng.uniform(50, 200))
        tint = rng.uniform(-20, 20, size=3)
        color = tuple(float(np.clip(grey + t, 0, 255)) for t in tint)
        if rng.random() < 0.5:
            axes = (int(rng.uniform(1, 8)), int(rng.uniform(1, 8)))
            cv2.ellipse(
                image, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA
            )
        else:
            length = rng.uniform(4, 20)
            angle = rng.uniform(0, math.pi)
            p1 = (int(cx), int(cy))
            p2 = (int(cx + length * math.cos(angle)), int(cy + length * math.sin(angle)))
            cv2.line(image, p1, p2, color, 1, cv2.LINE_AA)


def _draw_object(
    image: np.ndarray,
    style: ClassStyle,
    cx: float,
    cy: float,
    w: float,
    h: float,
    color: Tuple[float, float, float],
) -> None:
    """Draw one object filling the axis-aligned box of size (w, h) centred at (cx, cy)."""
    x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    shift = 4  # sub-pixel drawing precision (2**4)

    def fx(v: float) -> int:
        return int(round(v * (1 << shift)))

    if style.shape in ("rect", "bar"):
        pts = np.array([[fx(x0), fx(y0)], [fx(x1), fx(y0)], [fx(x1), fx(y1)], [fx(x0), fx(y1)]], np.int32)
        cv2.fillPoly(image, [pts], color, cv2.LINE_AA, shift)
        if style.shape == "bar" and min(w, h) >= 4:  # dark centre line, like a deck
            dark = tuple(c * 0.5 for c in color)
            if w >= h:
                cv2.line(image, (fx(x0), fx(cy)), (fx(x1), fx(cy)), dark, 1, cv2.LINE_AA, shift)
            else:
                cv2.line(image, (fx(cx), fx(y0)), (fx(cx), fx(y1)), dark, 1, cv2.LINE_AA, shift)
    elif style.shape in ("ellipse", "dot", "ring"):
        cv2.ellipse(image, (fx(cx), fx(cy)), (fx(w / 2), fx(h / 2)), 0, 0, 360, color, -1, cv2.LINE_AA, shift)
        if style.shape == "ring" and min(w, h) >= 6:
            dark = tuple(c * 0.45 for c in color)
            cv2.ellipse(
                image, (fx(cx), fx(cy)), (fx(w / 4), fx(h / 4)), 0, 0, 360, dark, -1, cv2.LINE_AA, shift
            )
    elif style.shape == "cross":  # fuselage + wings
        t = max(w, h) * 0.22
        body = np.array(
            [
                [fx(cx - t / 2), fx(y0)],
                [fx(cx + t / 2), fx(y0)],
                [fx(cx + t / 2), fx(y1)],
                [fx(cx - t / 2), fx(y1)],
            ],
            np.int32,
        )
        wing_y = cy - h * 0.1
        wings = np.array(
            [
                [fx(x0), fx(wing_y - t / 2)],
                [fx(x1), fx(wing_y - t / 2)],
                [fx(x1), fx(wing_y + t / 2)],
                [fx(x0), fx(wing_y + t / 2)],
            ],
            np.int32,
        )
        cv2.fillPoly(image, [body, wings], color, cv2.LINE_AA, shift)
    elif style.shape == "tri":  # three blades from the hub
        thickness = max(1, int(round(min(w, h) / 8)))
        for k in range(3):
            angle = -math.pi / 2 + k * 2 * math.pi / 3
            tip = (cx + (w / 2) * math.cos(angle), cy + (h / 2) * math.sin(angle))
            cv2.line(image, (fx(cx), fx(cy)), (fx(tip[0]), fx(tip[1])), color, thickness, cv2.LINE_AA, shift)
    else:  # pragma: no cover - CLASS_STYLES is fixed
        raise ValueError(f"unknown shape {style.shape!r}")


def _tri_box(cx: float, cy: float, w: float, h: float) -> Tuple[float, float, float, float]:
    """Tight box of the three-blade drawing (blades at -90, 30 and 150 degrees)."""
    xs = [cx] + [cx + (w / 2) * math.cos(-math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    ys = [cy] + [cy + (h / 2) * math.sin(-math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    return min(xs), min(ys), max(xs), max(ys)


def _sample_objects(rng: np.random.Generator, cfg: SyntheticTinyConfig) -> List[dict]:
    """Sample non-overlapping objects: class, centre, size and colour jitter."""
    names = list(AITOD_CLASSES)
    freq = np.array([CLASS_STYLES[n].frequency for n in names])
    freq = freq / freq.sum()
    size = cfg.image_size
    count = int(rng.integers(cfg.objects_per_image[0], cfg.objects_per_image[1] + 1))
    placed: List[Tuple[float, float, float, float]] = []
    objects = []
    for _ in range(count * 4):
        if len(objects) == count:
            break
        cls = int(rng.choice(len(names), p=freq))
        style = CLASS_STYLES[names[cls]]
        # log-uniform side length: many more tiny objects than medium ones, like AI-TOD
        lo, hi = (v * cfg.size_scale for v in style.size_range)
        side = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        aspect = float(rng.uniform(*style.aspect_range))
        w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
        if rng.random() < 0.5:
            w, h = h, w
        if style.shape == "cross":
            w = h = side
        cx = float(rng.uniform(w / 2 + 1, size - w / 2 - 1))
        cy = float(rng.uniform(h / 2 + 1, size - h / 2 - 1))
        box = (
            _tri_box(cx, cy, w, h)
            if style.shape == "tri"
            else (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        )
        if any(
            box[0] < b[2] + 2 and b[0] < box[2] + 2 and box[1] < b[3] + 2 and b[1] < box[3] + 2
            for b in placed
        ):
            continue
        jitter = rng.uniform(-18, 18, size=3)
        color = tuple(float(np.clip(c + j, 0, 255)) for c, j in zip(style.color, jitter))
        placed.append(box)
        objects.append(
            {"category_index": cls, "center": (cx, cy), "size": (w, h), "box": box, "color": color}
        )
    return objects


def _render_image(rng: np.random.Generator, cfg: SyntheticTinyConfig) -> Tuple[np.ndarray, List[dict]]:
    image = _textured_background(rng, cfg.image_size)
    _draw_clutter(rng, image, int(rng.integers(cfg.clutter_per_image[0], cfg.clutter_per_image[1] + 1)))
    objects = _sample_objects(rng, cfg)
    for obj in objects:
        style = CLASS_STYLES[AITOD_CLASSES[obj["category_index"]]]
        _draw_object(image, style, *obj["center"], *obj["size"], obj["color"])
    return image, objects


def _coco_categories() -> List[dict]:
    return [{"id": i + 1, "name": name, "supercategory": "none"} for i, name in enumerate(AITOD_CLASSES)]


def _write_split(root: str, split: str, num_images: int, seed: int, cfg: SyntheticTinyConfig) -> None:
    image_dir = _image_dir(root, split)
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    # one independent stream per (split, image): regenerating a split never depends on another one
    split_seed = seed * 1000 + SPLIT_NAMES.index(split) if split in SPLIT_NAMES else seed
    for index in range(num_images):
        rng = np.random.default_rng([split_seed, index])
        image, objects = _render_image(rng, cfg)
        image_id = index + 1
        file_name = f"{split}_{image_id:05d}.png"
        cv2.imwrite(os.path.join(image_dir, file_name), image)
        images.append(
            {"id": image_id, "file_name": file_name, "width": cfg.image_size, "height": cfg.image_size}
        )
        for obj in objects:
            x0, y0, x1, y1 = obj["box"]
            w, h = x1 - x0, y1 - y0
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj["category_index"] + 1,
                    "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                    "ignore": 0,
                }
            )
    payload = {
        "info": {"description": f"synthetic tiny-object set ({split}), AI-TOD layout", "version": "1.0"},
        "images": images,
        "annotations": annotations,
        "categories": _coco_categories(),
    }
    os.makedirs(os.path.dirname(_annotation_file(root, split)), exist_ok=True)
    with open(_annotation_file(root, split), "w") as f:
        json.dump(payload, f)


def generate_synthetic_tiny(
    root: str,
    seed: int = 0,
    image_size: int = 256,
    num_train: int = 120,
    num_val: int = 30,
    objects_per_image: Sequence[int] = (12, 30),
    clutter_per_image: Sequence[int] = (15, 40),
    size_scale: float = 1.0,
) -> str:
    """Write the synthetic set under ``root`` (see the module docstring) and return ``root``.

    The data is a pure function of the arguments. When ``root/_meta.json`` records the same arguments
    the call returns immediately (cached); otherwise both splits are (re)written. ``size_scale``
    multiplies every class's side-length range (``CLASS_STYLES``; 1 = 2.5-32 px, mean about 10.9 px).
    """
    cfg = SyntheticTinyConfig(
        seed=seed,
        image_size=image_size,
        num_train=num_train,
        num_val=num_val,
        objects_per_image=tuple(objects_per_image),
        clutter_per_image=tuple(clutter_per_image),
        size_scale=float(size_scale),
    )
    if not (math.isfinite(size_scale) and 0.25 <= size_scale <= 2.0):
        raise ValueError(f"size_scale={size_scale} must be in [0.25, 2] (objects of 0.6-64 px)")
    if image_size < 64:
        raise ValueError(f"image_size={image_size} is too small for 2-32 px objects (need >= 64)")
    meta_path = os.path.join(root, "_meta.json")
    fingerprint = json.loads(json.dumps(asdict(cfg)))
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            try:
                if json.load(f) == fingerprint and all(
                    os.path.exists(_annotation_file(root, s)) for s in SPLIT_NAMES
                ):
                    return root
            except json.JSONDecodeError:
                pass
    _write_split(root, "train", num_train, seed, cfg)
    _write_split(root, "val", num_val, seed, cfg)
    with open(meta_path, "w") as f:
        json.dump(fingerprint, f)
    return root


def synthetic_tiny_split_files(root: str, split: str) -> Tuple[str, str]:
    """(annotation json, image directory) of one split under ``root``."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLIT_NAMES}")
    return _annotation_file(root, split), _image_dir(root, split)


def register_synthetic_tiny(root: str, prefix: str = DATASET_PREFIX) -> List[str]:
    """Register ``<prefix>_train`` / ``<prefix>_val`` (COCO json via detectron2's
    ``register_coco_instances``) with AI-TOD's class names; re-registering the same names is a no-op.
    Returns the registered names."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    names = []
    for split in SPLIT_NAMES:
        name = f"{prefix}_{split}"
        json_file, image_dir = synthetic_tiny_split_files(root, split)
        names.append(name)
        if name in DatasetCatalog.list():
            if MetadataCatalog.get(name).get("json_file") == json_file:
                continue
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_coco_instances(name, {"thing_classes": list(AITOD_CLASSES)}, json_file, image_dir)
    return names


def write_aitod_toolkit_tree(root: str, dest: str) -> str:
    """Copy the set generated under ``root`` into the tree the official AI-TOD toolkit
    (``generate_aitod_imgs.py``) writes: ``dest/annotations/aitod_<split>_v1.json`` and
    ``dest/images/<split>/<file>``. Returns ``dest``."""
    import shutil

    for split in SPLIT_NAMES:
        json_file, image_dir = synthetic_tiny_split_files(root, split)
        os.makedirs(os.path.join(dest, "annotations"), exist_ok=True)
        shutil.copyfile(json_file, os.path.join(dest, "annotations", os.path.basename(json_file)))
        shutil.copytree(image_dir, os.path.join(dest, "images", split), dirs_exist_ok=True)
    return dest


def _load_split(root: str, split: str) -> Tuple[dict, str]:
    json_file, image_dir = synthetic_tiny_split_files(root, split)
    with open(json_file) as f:
        return json.load(f), image_dir


def write_visdrone_release(root: str, dest: str, split: str = "train") -> str:
    """Write one split of the set under ``root`` in VisDrone2019-DET's release form:
    ``dest/images/<name>.jpg``
    and ``dest/annotations/<name>.txt``, one object per line ``x,y,w,h,score,category,truncation,occlusion``
    (category 1-10 = the classes, 0 = ignored region with score 0, 11 = "others"). Class ``k`` of the set
    becomes VisDrone category ``k % 10 + 1``; each image also gets one ignored region (its top-left 20 x 20
    px) and one "others" object. Returns ``dest``."""
    data, image_dir = _load_split(root, split)
    os.makedirs(os.path.join(dest, "images"), exist_ok=True)
    os.makedirs(os.path.join(dest, "annotations"), exist_ok=True)
    by_image: Dict[int, List[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for image in data["images"]:
        stem = os.path.splitext(image["file_name"])[0]
        picture = cv2.imread(os.path.join(image_dir, image["file_name"]))
        cv2.imwrite(os.path.join(dest, "images", stem + ".jpg"), picture)
        lines = []
        for ann in by_image.get(image["id"], []):
            x, y, w, h = (int(round(v)) for v in ann["bbox"])
            lines.append(f"{x},{y},{max(w, 1)},{max(h, 1)},1,{(ann['category_id'] - 1) % 10 + 1},0,0")
        lines.append("0,0,20,20,0,0,0,0")  # ignored region
        lines.append("40,40,6,6,1,11,0,1")  # "others"
        with open(os.path.join(dest, "annotations", stem + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return dest


SODAD_NAMES: Tuple[str, ...] = (
    "people",
    "rider",
    "bicycle",
    "motor",
    "vehicle",
    "traffic-sign",
    "traffic-light",
    "traffic-camera",
    "warning-cone",
)
SODAD_IGNORE_ID = 10  # category id of SODA-D's "ignore" regions


def _patch_starts(size: int, patch: int, overlap: int) -> List[int]:
    """Patch origins along one axis as SODA-D's split tool places them (the last one flush with the edge)."""
    starts, start = [], 0
    while True:
        if start + patch >= size:
            starts.append(max(size - patch, 0))
            return starts
        starts.append(start)
        start += patch - overlap


def write_sodad_release(
    root: str,
    dest: str,
    split: str = "val",
    patch: int = 128,
    overlap: int = 40,
    ignore_area_ratio: float = 0.4,
) -> str:
    """Write one split of the set under ``root`` as SODA-D ships it and as its split tool (tools/img_split/
    sodad_split.py of SODA-mmdetection) cuts it:

    * ``dest/rawData/Images/<name>.jpg``, ``dest/rawData/Annotations/<split>.json`` (objects of the 9 classes,
      class ``k`` of the set -> SODA-D category ``k % 9 + 1``, ``"ignore": false``; plus one ignore region of
      category 10 per image) and ``<split>_wo_ignore.json`` (without category 10, as generate_wo_ignore.py);
    * ``dest/divData/Images/<split>/<name>_<k>.jpg`` patches of ``patch`` px overlapping by ``overlap`` px and
      ``dest/divData/Annotations/<split>.json``: images carry ``ori_id`` and ``start_coord`` (x, y), objects
      are clipped to the patch and get ``"ignore": true`` when at most ``ignore_area_ratio`` of their area is
      inside it (or when they are an ignore region).

    Returns ``dest``."""
    data, image_dir = _load_split(root, split)
    raw_dir, patch_dir = os.path.join(dest, "rawData"), os.path.join(dest, "divData")
    for sub in (
        os.path.join(raw_dir, "Images"),
        os.path.join(raw_dir, "Annotations"),
        os.path.join(patch_dir, "Images", split),
        os.path.join(patch_dir, "Annotations"),
    ):
        os.makedirs(sub, exist_ok=True)
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(SODAD_NAMES)]
    categories.append({"id": SODAD_IGNORE_ID, "name": "ignore"})
    raw_images, raw_anns = [], []
    for image in data["images"]:
        name = os.path.splitext(image["file_name"])[0] + ".jpg"
        cv2.imwrite(
            os.path.join(raw_dir, "Images", name), cv2.imread(os.path.join(image_dir, image["file_name"]))
        )
        raw_images.append(
            {"id": image["id"], "file_name": name, "width": image["width"], "height": image["height"]}
        )
        raw_anns.append(
            {
                "id": 0,
                "image_id": image["id"],
                "category_id": SODAD_IGNORE_ID,
                "bbox": [0.0, 0.0, 12.0, 12.0],
                "area": 144.0,
                "iscrowd": 0,
                "ignore": True,
            }
        )
    for ann in data["annotations"]:
        raw_anns.append(
            {
                "id": 0,
                "image_id": ann["image_id"],
                "category_id": (ann["category_id"] - 1) % 9 + 1,
                "bbox": list(ann["bbox"]),
                "area": ann["area"],
                "iscrowd": 0,
                "ignore": False,
            }
        )
    for index, ann in enumerate(raw_anns, start=1):
        ann["id"] = index
    raw = {"images": raw_images, "annotations": raw_anns, "categories": categories}
    with open(os.path.join(raw_dir, "Annotations", f"{split}.json"), "w") as f:
        json.dump(raw, f)
    without = dict(raw, annotations=[a for a in raw_anns if a["category_id"] != SODAD_IGNORE_ID])
    with open(os.path.join(raw_dir, "Annotations", f"{split}_wo_ignore.json"), "w") as f:
        json.dump(without, f)
    patches, patch_anns = [], []
    for image in raw_images:
        picture = cv2.imread(os.path.join(raw_dir, "Images", image["file_name"]))
        objects = [a for a in raw_anns if a["image_id"] == image["id"]]
        k = 0
        for left in _patch_starts(image["width"], patch, overlap):
            for up in _patch_starts(image["height"], patch, overlap):
                pid = len(patches) + 1
                name = os.path.splitext(image["file_name"])[0] + f"_{k}.jpg"
                k += 1
                cv2.imwrite(
                    os.path.join(patch_dir, "Images", split, name),
                    picture[up : up + patch, left : left + patch],
                )
                patches.append(
                    {
                        "id": pid,
                        "file_name": name,
                        "width": patch,
                        "height": patch,
                        "ori_id": image["id"],
                        "start_coord": [left, up],
                    }
                )
                for obj in objects:
                    x, y, w, h = obj["bbox"]
                    x0, y0 = max(x, left), max(y, up)
                    x1, y1 = min(x + w, left + patch), min(y + h, up + patch)
                    if x1 <= x0 or y1 <= y0:
                        continue
                    inside = (x1 - x0) * (y1 - y0) / (w * h)
                    patch_anns.append(
                        {
                            "id": len(patch_anns) + 1,
                            "image_id": pid,
                            "category_id": obj["category_id"],
                            "bbox": [
                                round(x0 - left, 2),
                                round(y0 - up, 2),
                                round(x1 - x0, 2),
                                round(y1 - y0, 2),
                            ],
                            "area": round((x1 - x0) * (y1 - y0), 2),
                            "iscrowd": 0,
                            "ignore": bool(
                                inside <= ignore_area_ratio or obj["category_id"] == SODAD_IGNORE_ID
                            ),
                        }
                    )
    with open(os.path.join(patch_dir, "Annotations", f"{split}.json"), "w") as f:
        json.dump({"images": patches, "annotations": patch_anns, "categories": categories}, f)
    return dest
