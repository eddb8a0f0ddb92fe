"""Image transforms and data loaders (training: P×K batches forever; test: one pass in order).

Batches are dicts ``{"images": float tensor [B, 3, H, W] in [0, 1], "labels": long [B], "file_names": list}``;
pixel normalisation happens in the model (``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` / ``INPUT_SCALE``).
"""
from __future__ import annotations

import itertools
from typing import Dict, List, Sequence

import torch
from detectron2.data import DatasetCatalog
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from das.sampler import ClassBalancedBatchSampler


def build_transform(cfg, is_train: bool) -> T.Compose:
    """Train: RandomResizedCrop(TRAIN_SIZE, CROP_SCALE) + horizontal flip. Test: resize TEST_RESIZE, centre crop."""
    if is_train:
        ops = [T.RandomResizedCrop(cfg.INPUT.TRAIN_SIZE, scale=tuple(cfg.INPUT.CROP_SCALE)), T.RandomHorizontalFlip()]
    else:
        ops = [T.Resize(cfg.INPUT.TEST_RESIZE), T.CenterCrop(cfg.INPUT.TEST_SIZE)]
    return T.Compose(ops + [T.ToTensor()])


class ImageRecords(Dataset):
    """Records ``{"file_name", "label"}`` → ``(image tensor, label, file name)``."""

    def __init__(self, records: Sequence[Dict], transform: T.Compose):
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        try:
            with Image.open(record["file_name"]) as img:
                image = img.convert("RGB")
        except (OSError, ValueError) as e:
            raise OSError(f"cannot read image {record['file_name']!r}: {e}") from e
        return self.transform(image), int(record["label"]), record["file_name"]


def collate_batch(samples) -> Dict[str, object]:
    images, labels, names = zip(*samples)
    return {"images": torch.stack(images), "labels": torch.tensor(labels, dtype=torch.long),
            "file_names": list(names)}


def get_records(names: Sequence[str]) -> List[Dict]:
    """Concatenated records of registered datasets; a multi-set training list must keep labels disjoint."""
    if not names:
        raise ValueError("no dataset given (DATASETS.TRAIN / DATASETS.TEST is empty)")
    return list(itertools.chain.from_iterable(DatasetCatalog.get(n) for n in names))


def build_train_loader(cfg) -> DataLoader:
    """Infinite P×K loader over ``DATASETS.TRAIN`` (P = IMS_PER_BATCH / SAMPLES_PER_CLASS)."""
    records = get_records(cfg.DATASETS.TRAIN)
    k = cfg.DATALOADER.SAMPLES_PER_CLASS
    if cfg.SOLVER.IMS_PER_BATCH % k:
        raise ValueError(f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH} is not a multiple of "
                         f"DATALOADER.SAMPLES_PER_CLASS={k}")
    if cfg.DATALOADER.SAMPLER_TRAIN != "ClassBalancedSampler":
        raise ValueError(f"unknown DATALOADER.SAMPLER_TRAIN {cfg.DATALOADER.SAMPLER_TRAIN!r}; "
                         "available: 'ClassBalancedSampler'")
    seed = cfg.SEED if cfg.SEED >= 0 else None
    sampler = ClassBalancedBatchSampler([r["label"] for r in records], cfg.SOLVER.IMS_PER_BATCH // k, k, seed)
    return DataLoader(ImageRecords(records, build_transform(cfg, True)), batch_sampler=sampler,
                      num_workers=cfg.DATALOADER.NUM_WORKERS, collate_fn=collate_batch)


def build_test_loader(cfg, records: Sequence[Dict], batch_size: int = 64) -> DataLoader:
    """One ordered pass over ``records`` with the test transform."""
    return DataLoader(ImageRecords(records, build_transform(cfg, False)), batch_size=batch_size, shuffle=False,
                      num_workers=cfg.DATALOADER.NUM_WORKERS, collate_fn=collate_batch)


def num_train_classes(cfg) -> int:
    """Rows of the DAS state for ``DATASETS.TRAIN``: 1 + the largest training label."""
    return 1 + max(int(r["label"]) for r in get_records(cfg.DATASETS.TRAIN))
