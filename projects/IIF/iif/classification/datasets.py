"""Long-tailed classification data: ImageNet-LT / Places-LT text lists, class counts, shot groups."""
from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = ["TextListDataset", "class_counts", "longtail_indices", "shot_groups"]


class TextListDataset(Dataset):
    """Images listed in a text file of ``"<relative path> <integer label>"`` lines (ImageNet-LT format)."""

    def __init__(self, root: str, list_file: str, num_classes: int, transform: Optional[Callable] = None):
        self.root = root
        self.transform = transform
        list_path = list_file if os.path.isabs(list_file) else os.path.join(root, list_file)
        if not os.path.exists(list_path):
            raise FileNotFoundError(f"classification list file {list_path!r} does not exist (DATA.ROOT={root!r})")
        self.samples: list[tuple[str, int]] = []
        with open(list_path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rsplit(maxsplit=1)
                try:
                    label = int(parts[1])
                except (IndexError, ValueError):
                    raise ValueError(f"{list_path}:{lineno}: expected '<path> <label>', got {line.strip()!r}") from None
                if not 0 <= label < num_classes:
                    raise ValueError(f"{list_path}:{lineno}: label {label} outside [0, {num_classes}) (DATA.NUM_CLASSES)")
                self.samples.append((parts[0], label))
        if not self.samples:
            raise ValueError(f"classification list file {list_path!r} is empty")
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        with Image.open(os.path.join(self.root, path)) as img:
            img = img.convert("RGB")
        return (self.transform(img) if self.transform else img), label


def class_counts(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """Training images per class, n_c (a classification image holds exactly one class)."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes]


def shot_groups(train_counts: np.ndarray, many_shot: int = 100, few_shot: int = 20) -> dict[str, torch.Tensor]:
    """Boolean class masks: many (n_c > many_shot), few (n_c < few_shot), medium (the rest)."""
    counts = torch.as_tensor(np.asarray(train_counts))
    many = counts > many_shot
    few = counts < few_shot
    return {"many": many, "medium": ~many & ~few, "few": few}


def longtail_indices(labels: Sequence[int], num_classes: int, imbalance_factor: float) -> list[int]:
    """CIFAR-LT subsampling: keep the first ``n_c = n_max * IF^(c / (K-1))`` images of class c (dataset
    order, so deterministic), with ``n_max`` the size of the largest class of the balanced source set."""
    from shared.datasets.synthetic_longtail_cls import longtail_class_sizes

    labels = np.asarray(labels, dtype=np.int64)
    n_max = int(np.bincount(labels, minlength=num_classes).max())
    keep = longtail_class_sizes(n_max, num_classes, imbalance_factor)
    taken = np.zeros(num_classes, dtype=np.int64)
    indices = []
    for i, label in enumerate(labels):
        if taken[label] < keep[label]:
            taken[label] += 1
            indices.append(i)
    return indices
