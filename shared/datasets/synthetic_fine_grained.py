"""A small synthetic fine-grained image set in CUB-200-2011's folder layout (deep metric learning).

Layout written under ``root`` (the layout the Revisiting-DML codebase reads for CUB200 and CARS196)::

    root/images/001.synthetic_bird_001/synthetic_bird_001_0000.jpg
    root/images/001.synthetic_bird_001/synthetic_bird_001_0001.jpg
    ...
    root/images/020.synthetic_bird_020/...

As for CUB, the sorted first half of the class folders is the training split and the second half the test
split (classes never seen in training). Every image shows one stylised "bird" on a textured background: an
elliptic body, a head, a wing with a pattern and a tail. A class is a combination of body hue, head hue, wing
pattern (stripes / dots / bar / plain) and body elongation; classes share the same structure and differ in
these details (fine-grained), while pose, position, size, lighting and background vary inside a class.

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

_FORMAT_VERSION = 1
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


def generate_synthetic_fine_grained(
    root: str, num_classes: int = 20, images_per_class: int = 20, image_size: int = 64, seed: int = 0
) -> str:
    """Write the synthetic set under ``root`` (CUB layout, see the module docstring) and return ``root``.

    A second call with the same arguments returns at once; different arguments rewrite the set.
    """
    if num_classes < 2 or images_per_class < 2:
        raise ValueError("need at least 2 classes and 2 images per class for a train/test metric-learning split")
    meta = {"version": _FORMAT_VERSION, "num_classes": num_classes, "images_per_class": images_per_class,
            "image_size": image_size, "seed": seed}
    meta_path = os.path.join(root, "_meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            if json.load(f) == meta:
                return root
        os.remove(meta_path)
    styles = class_styles(num_classes, seed)
    for c, style in enumerate(styles):
        folder = os.path.join(root, "images", class_folder_name(c))
        os.makedirs(folder, exist_ok=True)
        rng = np.random.RandomState([seed, c])
        for i in range(images_per_class):
            image = render_bird(style, rng, image_size)
            name = f"synthetic_bird_{c + 1:03d}_{i:04d}.jpg"
            cv2.imwrite(os.path.join(folder, name), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    with open(os.path.join(root, "classes.json"), "w") as f:
        json.dump({class_folder_name(c): asdict(s) for c, s in enumerate(styles)}, f, indent=1)
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    return root
