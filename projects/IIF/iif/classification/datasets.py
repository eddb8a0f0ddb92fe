"""Long-tailed classification data: ImageNet-LT / Places-LT text lists, CIFAR-100-LT, the synthetic set,
their transforms, class counts, shot groups, and the epoch-to-iteration schedule."""
from __future__ import annotations

import logging
import math
import os
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision import transforms

from shared.datasets import dataset_root, require_path
from shared.datasets.readers import open_rgb
from shared.datasets.synthetic_longtail_cls import generate_synthetic_longtail, longtail_class_sizes

__all__ = ["Cutout", "TextListDataset", "build_cls_datasets", "build_transforms", "class_counts",
           "dataset_directory",
           "longtail_indices", "prepare_cls_cfg", "shot_groups"]

logger = logging.getLogger(__name__)


class TextListDataset(Dataset):
    """Images listed in a text file of ``"<relative path> <integer label>"`` lines (ImageNet-LT format)."""

    def __init__(self, root: str, list_file: str, num_classes: int, transform: Optional[Callable] = None):
        self.root = root
        self.transform = transform
        list_path = list_file if os.path.isabs(list_file) else os.path.join(root, list_file)
        if not os.path.exists(list_path):
            raise FileNotFoundError(f"classification list file {list_path!r} does not exist "
                                    f"(DATA.ROOT={root!r})")
        self.samples: list[tuple[str, int]] = []
        with open(list_path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rsplit(maxsplit=1)
                try:
                    label = int(parts[1])
                except (IndexError, ValueError):
                    raise ValueError(f"{list_path}:{lineno}: expected '<path> <label>', "
                                     f"got {line.strip()!r}") from None
                if not 0 <= label < num_classes:
                    raise ValueError(f"{list_path}:{lineno}: label {label} outside [0, {num_classes}) "
                                     "(DATA.NUM_CLASSES)")
                self.samples.append((parts[0], label))
        if not self.samples:
            raise ValueError(f"classification list file {list_path!r} is empty")
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        img = open_rgb(os.path.join(self.root, path))
        return (self.transform(img) if self.transform else img), label


def class_counts(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """Training images per class, n_c (a classification image holds exactly one class)."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes]


def shot_groups(train_counts: np.ndarray, many_shot: int = 100,
                few_shot: int = 20) -> dict[str, torch.Tensor]:
    """Boolean class masks: many (n_c > many_shot), few (n_c < few_shot), medium (the rest)."""
    counts = torch.as_tensor(np.asarray(train_counts))
    many = counts > many_shot
    few = counts < few_shot
    return {"many": many, "medium": ~many & ~few, "few": few}


def longtail_indices(labels: Sequence[int], num_classes: int, imbalance_factor: float) -> list[int]:
    """CIFAR-LT subsampling: keep the first ``n_c = n_max * IF^(c / (K-1))`` images of class c (dataset
    order, so deterministic), with ``n_max`` the size of the largest class of the balanced source set."""
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


class Cutout:
    """Zero one ``length`` x ``length`` square at a uniformly drawn centre (clipped at the border) of a CHW
    tensor (DeVries & Taylor 2017; the official CIFAR-LT recipe uses one hole of 16 px)."""

    def __init__(self, length: int, generator: Optional[np.random.Generator] = None):
        self.length = int(length)
        self.rng = generator or np.random.default_rng()

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        cy, cx = int(self.rng.integers(h)), int(self.rng.integers(w))
        half = self.length // 2
        img = img.clone()
        img[..., max(cy - half, 0):min(cy + half, h), max(cx - half, 0):min(cx + half, w)] = 0
        return img


_AUGMENTS = {
    "none": lambda: None,
    "autoaugment_cifar10": lambda: transforms.AutoAugment(transforms.AutoAugmentPolicy.CIFAR10),
    "autoaugment_imagenet": lambda: transforms.AutoAugment(transforms.AutoAugmentPolicy.IMAGENET),
    "randaugment": lambda: transforms.RandAugment(),
}


def build_transforms(cfg, is_train: bool) -> Callable:
    """Training: crop ("pad" or "resized"), horizontal flip, optional ColorJitter / AutoAugment /
    RandAugment, tensor, optional Cutout, normalisation. Test: optional Resize + CenterCrop, tensor,
    normalisation (the order of the official classification/initialisers.py and imbalanced_dataset.py)."""
    c = cfg.INPUT.CLS
    normalize = transforms.Normalize(list(c.MEAN), list(c.STD))
    if not is_train:
        steps = [transforms.Resize(c.TEST_RESIZE), transforms.CenterCrop(c.SIZE)] if c.TEST_RESIZE > 0 else []
        return transforms.Compose(steps + [transforms.ToTensor(), normalize])
    if c.TRAIN_CROP == "pad":
        steps = [transforms.RandomCrop(c.SIZE, padding=c.PAD)]
    else:
        steps = [transforms.RandomResizedCrop(c.SIZE)]
    steps.append(transforms.RandomHorizontalFlip())
    if c.COLOR_JITTER > 0:
        steps.append(transforms.ColorJitter(c.COLOR_JITTER, c.COLOR_JITTER, c.COLOR_JITTER, 0.0))
    augment = _AUGMENTS[c.AUGMENT]()
    if augment is not None:
        steps.append(augment)
    steps.append(transforms.ToTensor())
    if c.CUTOUT > 0:
        steps.append(Cutout(c.CUTOUT))
    return transforms.Compose(steps + [normalize])


def _cifar100_lt(cfg, root: str, train_tf, test_tf):
    from torchvision.datasets import CIFAR100

    require_path(os.path.join(root, "cifar-100-python"), "CIFAR-100 (DATA.ROOT)")
    full = CIFAR100(root, train=True, transform=train_tf, download=False)
    train = Subset(full, longtail_indices(full.targets, cfg.DATA.NUM_CLASSES, cfg.DATA.IMBALANCE_FACTOR))
    train.targets = [full.targets[i] for i in train.indices]
    return train, CIFAR100(root, train=False, transform=test_tf, download=False)


_DEFAULT_ROOTS = {"synthetic": "synthetic_longtail", "cifar100_lt": "cifar100", "textlist": "ImageNet_LT"}


def dataset_directory(cfg) -> str:
    """``DATA.ROOT``; a relative path (or the source's default when empty) lies under $DETECTRON2_DATASETS."""
    root = cfg.DATA.ROOT or _DEFAULT_ROOTS[cfg.DATA.SOURCE]
    return root if os.path.isabs(root) else os.path.join(dataset_root(), root)


def build_cls_datasets(cfg, train_tf: Optional[Callable] = None, test_tf: Optional[Callable] = None):
    """(train, test) datasets of ``DATA.SOURCE``; the train set has a ``targets`` list."""
    root = dataset_directory(cfg)
    if cfg.DATA.SOURCE == "synthetic":
        generate_synthetic_longtail(root)
    elif cfg.DATA.SOURCE == "cifar100_lt":
        return _cifar100_lt(cfg, root, train_tf, test_tf)
    else:  # textlist (validated by the config check)
        require_path(root, "long-tailed classification (DATA.ROOT)")
    return (TextListDataset(root, cfg.DATA.TRAIN_LIST, cfg.DATA.NUM_CLASSES, train_tf),
            TextListDataset(root, cfg.DATA.TEST_LIST, cfg.DATA.NUM_CLASSES, test_tf))


def iterations_per_epoch(num_images: int, batch_size: int) -> int:
    """``ceil(N / batch)``: the official loaders keep the last, partial batch."""
    return max(math.ceil(num_images / batch_size), 1)


def prepare_cls_cfg(cfg):
    """``setup``'s project step: make the data available and turn the epoch schedule into iterations.

    With ``E = ceil(N_train / IMS_PER_BATCH)`` iterations per epoch: ``MAX_ITER = EPOCHS * E``,
    ``STEPS = MILESTONES * E`` (milestones ``>= EPOCHS`` dropped), ``WARMUP_ITERS = min(1000, E - 1)``
    (the official first-epoch warm-up) and
    a checkpoint every epoch (``CHECKPOINT_PERIOD = E``).
    """
    if cfg.MODEL.CLS.TRAINABLE == "last_block" and not (cfg.MODEL.CLS.PRETRAINED or cfg.MODEL.WEIGHTS):
        raise ValueError("MODEL.CLS.TRAINABLE 'last_block' fine-tunes a pretrained network: set "
                         "MODEL.CLS.PRETRAINED to a local ImageNet state dict (Places-LT: SE-ResNet-152)")
    train, _ = build_cls_datasets(cfg)
    per_epoch = iterations_per_epoch(len(train.targets), cfg.SOLVER.IMS_PER_BATCH)
    cfg.SOLVER.MAX_ITER = int(cfg.SOLVER.EPOCHS * per_epoch)
    # a milestone at or after the last epoch never fires (torch's MultiStepLR in the official code)
    cfg.SOLVER.STEPS = tuple(int(m * per_epoch) for m in cfg.SOLVER.MILESTONES if m < cfg.SOLVER.EPOCHS)
    cfg.SOLVER.WARMUP_ITERS = min(1000, per_epoch - 1)
    cfg.SOLVER.CHECKPOINT_PERIOD = per_epoch
    logger.info("%d training images, %d iterations per epoch: MAX_ITER %d, STEPS %s", len(train.targets),
                per_epoch, cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS)
    return cfg
