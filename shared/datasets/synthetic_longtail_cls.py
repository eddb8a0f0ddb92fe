"""A small synthetic long-tailed image-classification set in the ImageNet-LT / Places-LT on-disk format.

Layout written under ``root``::

    root/train/<class_name>/<index>.png
    root/val/<class_name>/<index>.png
    root/test/<class_name>/<index>.png
    root/SyntheticLT_train.txt    lines "train/<class_name>/<index>.png <label>"  (ImageNet_LT_train style)
    root/SyntheticLT_val.txt
    root/SyntheticLT_test.txt

The training split follows the CIFAR-LT protocol: class c keeps ``n_max * imbalance_factor^(c / (K-1))``
images (exponential profile, class 0 the largest); val/test are balanced. Each class is a textured pattern:
a colour (shared by several classes) combined with a stripe orientation, so the rare classes have frequent
look-alikes that differ only by the orientation. Deterministic given ``seed``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["SyntheticLTSpec", "generate_synthetic_longtail", "longtail_class_sizes",
           "synthetic_longtail_paths"]

LIST_PREFIX = "SyntheticLT"


@dataclass(frozen=True)
class SyntheticLTSpec:
    num_classes: int = 10
    max_train_per_class: int = 200
    imbalance_factor: float = 0.02  # n_min / n_max (CIFAR-100-LT uses 0.01)
    val_per_class: int = 10
    test_per_class: int = 30
    image_size: int = 32
    noise_std: float = 90.0
    seed: int = 0


def longtail_class_sizes(max_per_class: int, num_classes: int, imbalance_factor: float) -> list[int]:
    """CIFAR-LT exponential profile: n_c = floor(n_max * IF^(c / (K - 1))), at least 1."""
    if not 0 < imbalance_factor <= 1:
        raise ValueError(f"imbalance factor must be in (0, 1], got {imbalance_factor}")
    denom = max(num_classes - 1, 1)
    return [max(1, int(max_per_class * imbalance_factor ** (c / denom))) for c in range(num_classes)]


def _class_pattern(c: int, num_classes: int) -> tuple[np.ndarray, float, float]:
    """Class c: colour ``c % 5`` and stripe angle ``(c // 5) * 0.15 pi``, so class c + 5 (rarer) differs
    from class c (more frequent) only by a 27-degree rotation of its stripes."""
    colours = np.array([[220, 60, 60], [60, 200, 60], [60, 90, 220], [220, 200, 50], [180, 60, 200]], float)
    colour = colours[c % len(colours)]
    angle = math.pi * (0.15 * (c // len(colours)) + 0.1)
    freq = 3.0
    return colour, angle, freq


def _render(rng, c: int, num_classes: int, size: int, noise_std: float) -> np.ndarray:
    colour, angle, freq = _class_pattern(c, num_classes)
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle += rng.normal(0, 0.08)
    phase = rng.uniform(0, 2 * math.pi)
    wave = 0.5 + 0.5 * np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
    img = wave[..., None] * colour + (1 - wave[..., None]) * 40.0
    img = img * rng.uniform(0.7, 1.2) + rng.normal(0, noise_std, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_longtail_paths(root: str) -> dict[str, str]:
    return {split: os.path.join(root, f"{LIST_PREFIX}_{split}.txt") for split in ("train", "val", "test")}


def generate_synthetic_longtail(root: str, spec: Optional[SyntheticLTSpec] = None,
                                overwrite: bool = False) -> dict:
    """Write the set under ``root`` unless its three list files exist; return the list-file paths."""
    from PIL import Image

    spec = spec or SyntheticLTSpec()
    paths = synthetic_longtail_paths(root)
    if not overwrite and all(os.path.exists(p) for p in paths.values()):
        return paths
    rng = np.random.default_rng(spec.seed)
    sizes = {
        "train": longtail_class_sizes(spec.max_train_per_class, spec.num_classes, spec.imbalance_factor),
        "val": [spec.val_per_class] * spec.num_classes,
        "test": [spec.test_per_class] * spec.num_classes,
    }
    for split, per_class in sizes.items():
        lines = []
        for c, count in enumerate(per_class):
            class_dir = os.path.join(root, split, f"class_{c:03d}")
            os.makedirs(class_dir, exist_ok=True)
            for i in range(count):
                rel = f"{split}/class_{c:03d}/{i:05d}.png"
                Image.fromarray(_render(rng, c, spec.num_classes, spec.image_size, spec.noise_std)).save(
                    os.path.join(root, rel))
                lines.append(f"{rel} {c}\n")
        tmp = paths[split] + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(lines)
        os.replace(tmp, paths[split])
    return paths
