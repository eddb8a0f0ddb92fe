"""A small synthetic fine-grained image set, written in the release form of a deep-metric-learning dataset.

``layout`` chooses the form written under ``root`` (each the form its authors release, so that the real
parsers read it):

* ``"cub"`` -- CUB-200-2011 (``CUB_200_2011.tgz``)::

      root/images/001.synthetic_bird_001/synthetic_bird_001_0000.jpg
      root/images.txt               <image id> <path under images/>
      root/image_class_labels.txt   <image id> <class id>
      root/classes.txt              <class id> <class folder>
      root/train_test_split.txt     <image id> <is_training_image>  (the release's per-image split, unused in
      DML)

* ``"cars"`` -- Stanford Cars (``car_ims.tgz`` + ``cars_annos.mat``): ``root/car_ims/000001.jpg`` and a MATLAB
  file with ``annotations`` (``relative_im_path``, ``bbox_x1..y2``, ``class``, ``test``) and ``class_names``;
* ``"cars_devkit"`` -- Stanford Cars in its devkit form (what ``torchvision.datasets.StanfordCars`` reads
  under ``stanford_cars/``): ``root/cars_train/00001.jpg``, ``root/cars_test/00001.jpg``,
  ``root/devkit/cars_train_annos.mat`` and ``root/cars_test_annos_withlabels.mat`` (``annotations`` with
  ``bbox_x1..y2``, ``class``, ``fname``), ``root/devkit/cars_meta.mat`` (``class_names``); every other
  image of a class goes to ``cars_test``;
* ``"sop"`` -- Stanford Online Products: ``root/Ebay_{train,test}.txt`` (``image_id class_id super_class_id
  path`` after a header line) and ``root/<super class>_final/<product>_<n>.JPG``;
* ``"inshop"`` -- DeepFashion In-Shop: ``root/Eval/list_eval_partition.txt`` (count line, header line, then
  ``image_name item_id evaluation_status``) and
  ``root/Img/img/<GENDER>/<category>/id_XXXXXXXX/NN_K_front.jpg``.

As in the DML protocol, the first half of the classes is for training and the second half for testing
(classes never seen in training); In-Shop splits each test class's images into query and gallery. Every image
shows one stylised "bird" on a textured background: an elliptic body, a head, a wing with a pattern and a
tail. A class is a combination of body hue, head hue, wing pattern (stripes / dots / bar / plain) and body
elongation; classes share the same structure and differ in these details (fine-grained), while pose, position,
size, lighting and background vary inside a class.

Everything is deterministic from ``seed``: the same arguments give the same images. A ``_meta.json``
fingerprint makes a second call with the same arguments a no-op.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import List, Tuple

import cv2
import numpy as np

_FORMAT_VERSION = 2
WING_PATTERNS: Tuple[str, ...] = ("stripes", "dots", "bar", "plain")


@dataclass(frozen=True)
class BirdStyle:
    """The class-defining attributes of one synthetic bird species."""

    body_hue: int  # OpenCV hue, 0-179
    head_hue: int
    wing_pattern: str
    elongation: float  # body length / body height


def class_folder_name(index: int) -> str:
    """CUB-style folder name of class ``index`` (0-based): ``"001.synthetic_bird_001"``."""
    return f"{index + 1:03d}.synthetic_bird_{index + 1:03d}"


def class_styles(num_classes: int, seed: int) -> List[BirdStyle]:
    """Distinct styles for ``num_classes`` classes (hues spread around the colour circle, patterns cycled)."""
    rng = np.random.RandomState(seed)
    hue_offsets = rng.permutation(num_classes)
    styles = []
    for c in range(num_classes):
        body_hue = int(round(180.0 * hue_offsets[c] / num_classes)) % 180
        head_hue = (body_hue + int(rng.randint(30, 150))) % 180
        pattern = WING_PATTERNS[c % len(WING_PATTERNS)]
        elongation = float(rng.uniform(1.3, 2.2))
        styles.append(BirdStyle(body_hue, head_hue, pattern, elongation))
    return styles


def _hsv_to_bgr(hue: float, sat: float, val: float) -> Tuple[int, int, int]:
    pixel = np.uint8([[[int(hue) % 180, int(np.clip(sat, 0, 255)), int(np.clip(val, 0, 255))]]])
    b, g, r = cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _background(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Smooth random colour field plus pixel noise (sky / foliage-like)."""
    coarse = rng.randint(60, 200, size=(4, 4, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    image += rng.normal(0.0, 8.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def render_bird(style: BirdStyle, rng: np.random.RandomState, size: int) -> np.ndarray:
    """One BGR ``size``×``size`` image of a bird of ``style`` with random pose, lighting and background."""
    # draw at 4× and downsample for anti-aliasing
    scale = 4
    big = size * scale
    image = cv2.resize(_background(rng, size), (big, big), interpolation=cv2.INTER_LINEAR)
    cx = big * rng.uniform(0.38, 0.62)
    cy = big * rng.uniform(0.4, 0.6)
    body_h = big * rng.uniform(0.16, 0.22)
    body_w = body_h * style.elongation * rng.uniform(0.9, 1.1)
    angle = rng.uniform(-30, 30)
    facing = 1 if rng.rand() < 0.5 else -1
    light = rng.uniform(0.75, 1.15)
    hue_jitter = rng.randint(-4, 5)
    body = _hsv_to_bgr(style.body_hue + hue_jitter, 200 * rng.uniform(0.85, 1.0), 220 * light)
    head = _hsv_to_bgr(style.head_hue + hue_jitter, 210, 230 * light)
    dark = _hsv_to_bgr(style.body_hue, 120, 70 * light)
    rot = math.radians(angle)
    ux, uy = math.cos(rot), math.sin(rot)

    def point(along: float, across: float) -> Tuple[int, int]:
        return (int(cx + along * ux - across * uy), int(cy + along * uy + across * ux))

    tail = np.array([point(-body_w * 0.9, 0), point(-body_w * 1.5, -body_h * 0.5),
                     point(-body_w * 1.5, body_h * 0.5)], dtype=np.int32)
    cv2.fillPoly(image, [tail], dark, lineType=cv2.LINE_AA)
    cv2.ellipse(image, (int(cx), int(cy)), (int(body_w), int(body_h)), angle, 0, 360, body, -1, cv2.LINE_AA)
    head_r = int(body_h * 0.75)
    head_c = point(body_w * 0.95, -body_h * 0.55)
    cv2.circle(image, head_c, head_r, head, -1, cv2.LINE_AA)
    beak = np.array([point(body_w * 0.95 + head_r * 0.8, -body_h * 0.7), point(body_w * 0.95 + head_r * 1.7,
                     -body_h * 0.45), point(body_w * 0.95 + head_r * 0.8, -body_h * 0.3)], dtype=np.int32)
    cv2.fillPoly(image, [beak], (40, 160, 230), lineType=cv2.LINE_AA)
    cv2.circle(image, point(body_w * 1.1, -body_h * 0.75), max(2, head_r // 4), (20, 20, 20), -1, cv2.LINE_AA)
    # wing with the class pattern
    wing_c = point(-body_w * 0.1, 0)
    wing_axes = (int(body_w * 0.6), int(body_h * 0.55))
    mask = np.zeros((big, big), np.uint8)
    cv2.ellipse(mask, wing_c, wing_axes, angle, 0, 360, 255, -1)
    wing = np.zeros_like(image)
    wing[:] = dark
    if style.wing_pattern == "stripes":
        stripe = (240, 240, 240)
        for k in range(-3, 4):
            a = point(-body_w * 0.1 + k * body_w * 0.18, -body_h)
            b = point(-body_w * 0.1 + k * body_w * 0.18, body_h)
            cv2.line(wing, a, b, stripe, max(2, int(body_h * 0.12)), cv2.LINE_AA)
    elif style.wing_pattern == "dots":
        for k in range(12):
            p = point(rng.uniform(-0.6, 0.4) * body_w, rng.uniform(-0.5, 0.5) * body_h)
            cv2.circle(wing, p, max(2, int(body_h * 0.1)), (245, 245, 245), -1, cv2.LINE_AA)
    elif style.wing_pattern == "bar":
        cv2.line(wing, point(-body_w * 0.7, 0), point(body_w * 0.5, 0), head, max(3, int(body_h * 0.3)),
                 cv2.LINE_AA)
    image[mask > 0] = wing[mask > 0]
    if facing < 0:
        image = cv2.flip(image, 1)
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    small += rng.normal(0.0, 4.0, size=small.shape)
    return np.clip(small, 0, 255).astype(np.uint8)


LAYOUTS: Tuple[str, ...] = ("cub", "cars", "cars_devkit", "sop", "inshop")
SOP_SUPER_CLASSES: Tuple[str, ...] = (
    "bicycle",
    "cabinet",
    "chair",
    "coffee_maker",
    "fan",
    "kettle",
    "lamp",
    "mug",
    "sofa",
    "stapler",
    "table",
    "toaster",
)


def _render_all(styles: List[BirdStyle], images_per_class: int, image_size: int, seed: int):
    """Yield ``(class index, image index, BGR image)`` for every image, deterministic from ``seed``."""
    for c, style in enumerate(styles):
        rng = np.random.RandomState([seed, c])
        for i in range(images_per_class):
            yield c, i, render_bird(style, rng, image_size)


def _write_image(path: str, image: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 95])


def _write_lines(path: str, lines: List[str]) -> None:
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _write_cub(root: str, styles, images_per_class: int, image_size: int, seed: int) -> None:
    images, labels, split = [], [], []
    for c, i, image in _render_all(styles, images_per_class, image_size, seed):
        rel = f"{class_folder_name(c)}/synthetic_bird_{c + 1:03d}_{i:04d}.jpg"
        _write_image(os.path.join(root, "images", rel), image)
        image_id = len(images) + 1
        images.append(f"{image_id} {rel}")
        labels.append(f"{image_id} {c + 1}")
        split.append(f"{image_id} {int(i % 2 == 0)}")
    _write_lines(os.path.join(root, "images.txt"), images)
    _write_lines(os.path.join(root, "image_class_labels.txt"), labels)
    _write_lines(
        os.path.join(root, "classes.txt"), [f"{c + 1} {class_folder_name(c)}" for c in range(len(styles))]
    )
    _write_lines(os.path.join(root, "train_test_split.txt"), split)


def _write_cars(root: str, styles, images_per_class: int, image_size: int, seed: int) -> None:
    from scipy.io import savemat

    fields = [("relative_im_path", object), ("bbox_x1", object), ("bbox_y1", object), ("bbox_x2", object),
              ("bbox_y2", object), ("class", object), ("test", object)]
    rows = []
    for c, i, image in _render_all(styles, images_per_class, image_size, seed):
        rel = f"car_ims/{len(rows) + 1:06d}.jpg"
        _write_image(os.path.join(root, rel), image)
        rows.append((rel, 1, 1, image_size, image_size, c + 1, int(i % 2)))
    annotations = np.zeros((1, len(rows)), dtype=fields)
    for j, (rel, x1, y1, x2, y2, cls, test) in enumerate(rows):
        boxes = [np.array([[v]], dtype=np.uint16) for v in (x1, y1, x2, y2)]
        annotations[0, j] = (
            rel,
            *boxes,
            np.array([[cls]], dtype=np.uint8),
            np.array([[test]], dtype=np.uint8),
        )
    class_names = np.empty((1, len(styles)), dtype=object)
    for c in range(len(styles)):
        class_names[0, c] = f"Synthetic Car {c + 1:03d}"
    savemat(os.path.join(root, "cars_annos.mat"), {"annotations": annotations, "class_names": class_names})


def _write_cars_devkit(root: str, styles, images_per_class: int, image_size: int, seed: int) -> None:
    from scipy.io import savemat

    fields = [(name, object) for name in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    rows: dict = {"train": [], "test": []}
    for c, i, image in _render_all(styles, images_per_class, image_size, seed):
        split = "test" if i % 2 else "train"
        name = f"{len(rows[split]) + 1:05d}.jpg"
        _write_image(os.path.join(root, f"cars_{split}", name), image)
        rows[split].append((c + 1, name))
    for split, mat in (("train", os.path.join("devkit", "cars_train_annos.mat")),
                       ("test", "cars_test_annos_withlabels.mat")):
        annotations = np.zeros((1, len(rows[split])), dtype=fields)
        for j, (cls, name) in enumerate(rows[split]):
            box = [np.array([[v]], dtype=np.uint16) for v in (1, 1, image_size, image_size)]
            annotations[0, j] = (*box, np.array([[cls]], dtype=np.uint8), name)
        os.makedirs(os.path.dirname(os.path.join(root, mat)), exist_ok=True)
        savemat(os.path.join(root, mat), {"annotations": annotations})
    class_names = np.empty((1, len(styles)), dtype=object)
    for c in range(len(styles)):
        class_names[0, c] = f"Synthetic Car {c + 1:03d}"
    savemat(os.path.join(root, "devkit", "cars_meta.mat"), {"class_names": class_names})


def _write_sop(root: str, styles, images_per_class: int, image_size: int, seed: int) -> None:
    half = len(styles) // 2
    lists = {
        "train": ["image_id class_id super_class_id path"],
        "test": ["image_id class_id super_class_id path"],
    }
    for c, i, image in _render_all(styles, images_per_class, image_size, seed):
        super_id = c % len(SOP_SUPER_CLASSES)
        rel = f"{SOP_SUPER_CLASSES[super_id]}_final/{100000000000 + c}_{i}.JPG"
        _write_image(os.path.join(root, rel), image)
        split = "train" if c < half else "test"
        lists[split].append(f"{len(lists[split])} {c + 1} {super_id + 1} {rel}")
    for split, lines in lists.items():
        _write_lines(os.path.join(root, f"Ebay_{split}.txt"), lines)


def _write_inshop(root: str, styles, images_per_class: int, image_size: int, seed: int) -> None:
    half = len(styles) // 2
    rows = []
    for c, i, image in _render_all(styles, images_per_class, image_size, seed):
        gender, category = ("WOMEN", "Dresses") if c % 2 == 0 else ("MEN", "Denim")
        item = f"id_{c + 1:08d}"
        rel = f"img/{gender}/{category}/{item}/{i // 4 + 1:02d}_{i % 4 + 1}_front.jpg"
        _write_image(os.path.join(root, "Img", rel), image)
        status = "train" if c < half else ("query" if i < images_per_class // 2 else "gallery")
        rows.append(f"{rel} {item} {status}")
    os.makedirs(os.path.join(root, "Eval"), exist_ok=True)
    _write_lines(os.path.join(root, "Eval", "list_eval_partition.txt"),
                 [str(len(rows)), "image_name item_id evaluation_status"] + rows)


_WRITERS = {"cub": _write_cub, "cars": _write_cars, "cars_devkit": _write_cars_devkit, "sop": _write_sop,
            "inshop": _write_inshop}


def generate_synthetic_fine_grained(
    root: str, num_classes: int = 20, images_per_class: int = 20, image_size: int = 64, seed: int = 0,
    layout: str = "cub",
) -> str:
    """Write the synthetic set under ``root`` in the release form ``layout`` (see the module docstring) and
    return ``root``. A second call with the same arguments returns at once; different arguments rewrite it."""
    if num_classes < 2 or images_per_class < 2:
        raise ValueError(
            "need at least 2 classes and 2 images per class for a train/test metric-learning split"
        )
    if layout not in _WRITERS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {list(LAYOUTS)}")
    meta = {"version": _FORMAT_VERSION, "num_classes": num_classes, "images_per_class": images_per_class,
            "image_size": image_size, "seed": seed, "layout": layout}
    meta_path = os.path.join(root, "_meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            if json.load(f) == meta:
                return root
        os.remove(meta_path)
    os.makedirs(root, exist_ok=True)
    styles = class_styles(num_classes, seed)
    _WRITERS[layout](root, styles, images_per_class, image_size, seed)
    with open(os.path.join(root, "styles.json"), "w") as f:
        json.dump({class_folder_name(c): asdict(s) for c, s in enumerate(styles)}, f, indent=1)
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    return root
