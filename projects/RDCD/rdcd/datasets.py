"""Copy-detection datasets on disk and the loaders that read them.

Registry ``COPY_DETECTION_DATASETS`` (name -> builder ``cfg -> CopyDetectionSplit``), all under
``$DETECTRON2_DATASETS`` (default ``./datasets``):

====================  ========================================================================================
``disc21``            ``DISC21/images/{references,dev_queries,train}`` + ``DISC21/dev_ground_truth.csv``
(RDCD)
``disc21_final_queries``  the same, trained on ``DISC21/images/final_queries`` (the 50,000 final queries:
                      the training folder of RDCD's train.sh)
``disc21_sscd``       ``DISC21/{val_ref,val_query,training}``, ``DISC21/val_groundtruth_matches.csv`` (SSCD)
``ndec``              NDEC's official layout (RDCD ``rdcd/datasets/ndec.py``): ``NDEC/NDEC_test_query``,
                      ``NDEC/DISC/images/references``, ``NDEC/DISC/images/train``,
                      ``NDEC/public_ground_truth_h5.csv``
``cd10k``             ``CD10K/{references,queries,background}`` + ``CD10K/ground_truth.csv`` (ours; written
from
                      Copydays + distractors by ``tools/copydays_to_cd10k.py``)
``synthetic_disc21``  generated on first use (``shared.datasets.synthetic_copy_detection``), RDCD layout
====================  ========================================================================================

Ground truth: header ``query_id,reference_id``, ids = file names without extension, an empty reference for a
query without a copy, and one row per (query, reference) pair -- a CD10K "strong" query has a row for each
Copydays original it was made from. CD10K also reports SSCD's ``strong_mAP`` and ``overall_uAP``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

from detectron2.data.samplers import InferenceSampler, TrainingSampler
from detectron2.utils import comm
from fvcore.common.registry import Registry
import numpy as np
from torch.utils.data import DataLoader, Dataset

from shared.datasets import dataset_root, require_path
from shared.datasets.readers import open_rgb
from shared.datasets.synthetic_copy_detection import (
    LAYOUTS,
    CopyDetectionLayout,
    generate_synthetic_copy_detection,
    read_ground_truth_csv,
)
from shared.registry import get_or_raise
from shared.retrieval.copy_detection import copydays_metrics
from shared.retrieval.knn import knn_search

COPY_DETECTION_DATASETS = Registry("RDCD_COPY_DETECTION_DATASETS")
COPY_DETECTION_DATASETS.__doc__ = "Copy-detection datasets: builder(cfg) -> CopyDetectionSplit."

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: CD10K layout (ours, documented in the module docstring)
CD10K_LAYOUT = CopyDetectionLayout("references", "queries", "background", "ground_truth.csv")
#: NDEC's official layout (RDCD rdcd/datasets/ndec.py, NDECTestDataset)
NDEC_LAYOUT = CopyDetectionLayout(
    "DISC/images/references", "NDEC_test_query", "DISC/images/train", "public_ground_truth_h5.csv"
)
#: CD10K query names of the Copydays "strong" block start with this (tools/copydays_to_cd10k.py)
CD10K_STRONG_PREFIX = "strong_"
#: length of each query's ranked list in SSCD's Copydays evaluation (k=100)
CD10K_RANKED_LIST = 100


def list_images(folder: str) -> List[Tuple[str, str]]:
    """Sorted ``(image_id, path)`` of the images in ``folder``; the id is the file name without extension."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    return [(os.path.splitext(n)[0], os.path.join(folder, n)) for n in names]


@dataclass
class CopyDetectionSplit:
    """Folders of one copy-detection benchmark (queries, references, background/training) + GT CSV."""

    name: str
    query_dir: str
    reference_dir: str
    train_dir: str
    ground_truth_csv: str

    def images(self, part: str) -> List[Tuple[str, str]]:
        """``(id, path)`` of part ∈ {queries, references, train}; an empty folder raises ``ValueError``."""
        folder = {"queries": self.query_dir, "references": self.reference_dir, "train": self.train_dir}[part]
        items = list_images(folder)
        if not items:
            raise ValueError(
                f"dataset {self.name!r}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder!r}"
            )
        return items

    def ground_truth(self) -> List[Tuple[str, str]]:
        """(query_id, reference_id or "") rows; a malformed CSV raises ``ValueError`` naming file and line."""
        return read_ground_truth_csv(self.ground_truth_csv)

    def extra_metrics(
        self,
        queries: np.ndarray,
        references: np.ndarray,
        query_ids: List[str],
        reference_ids: List[str],
        k: int,
    ) -> Dict[str, float]:
        """Benchmark-specific numbers besides the DISC21 ones (CD10K: SSCD's strong_mAP and overall_uAP)."""
        if self.name != "cd10k":
            return {}
        depth = min(len(references), max(k, CD10K_RANKED_LIST))
        scores, idx = knn_search(queries, references, depth, metric="ip")
        positives: Dict[str, set] = {}
        for q, r in self.ground_truth():
            if r:
                positives.setdefault(q, set()).add(r)
        hits = np.array(
            [[reference_ids[j] in positives.get(q, ()) for j in row] for q, row in zip(query_ids, idx)]
        )
        counts = [max(1, len(positives.get(q, ()))) for q in query_ids]
        strong = np.array([q.startswith(CD10K_STRONG_PREFIX) for q in query_ids])
        return copydays_metrics(scores, hits, counts, strong)


def _split_from_layout(name: str, root: str, layout: CopyDetectionLayout) -> CopyDetectionSplit:
    require_path(root, name)
    paths = [
        require_path(os.path.join(root, rel), name)
        for rel in (layout.queries, layout.references, layout.train, layout.ground_truth)
    ]
    return CopyDetectionSplit(name, *paths)


@COPY_DETECTION_DATASETS.register()
def disc21(cfg) -> CopyDetectionSplit:
    return _split_from_layout("disc21", os.path.join(dataset_root(), "DISC21"), LAYOUTS["rdcd"])


@COPY_DETECTION_DATASETS.register()
def disc21_final_queries(cfg) -> CopyDetectionSplit:
    layout = dataclasses.replace(LAYOUTS["rdcd"], train="images/final_queries")
    return _split_from_layout("disc21_final_queries", os.path.join(dataset_root(), "DISC21"), layout)


@COPY_DETECTION_DATASETS.register()
def disc21_sscd(cfg) -> CopyDetectionSplit:
    return _split_from_layout("disc21_sscd", os.path.join(dataset_root(), "DISC21"), LAYOUTS["sscd"])


@COPY_DETECTION_DATASETS.register()
def cd10k(cfg) -> CopyDetectionSplit:
    return _split_from_layout("cd10k", os.path.join(dataset_root(), "CD10K"), CD10K_LAYOUT)


@COPY_DETECTION_DATASETS.register()
def ndec(cfg) -> CopyDetectionSplit:
    return _split_from_layout("ndec", os.path.join(dataset_root(), "NDEC"), NDEC_LAYOUT)


@COPY_DETECTION_DATASETS.register()
def synthetic_disc21(cfg) -> CopyDetectionSplit:
    s = cfg.DATASETS.SYNTHETIC_COPY_DETECTION
    root = os.path.join(dataset_root(), s.ROOT)
    generate_synthetic_copy_detection(
        root,
        num_references=s.NUM_REFERENCES,
        num_matching_queries=s.NUM_MATCHING_QUERIES,
        num_distractor_queries=s.NUM_DISTRACTOR_QUERIES,
        num_train=s.NUM_TRAIN,
        image_size=s.IMAGE_SIZE,
        seed=s.SEED,
        layout="rdcd",
    )
    return _split_from_layout("synthetic_disc21", root, LAYOUTS["rdcd"])


def get_copy_detection_dataset(name: str, cfg) -> CopyDetectionSplit:
    """The registered dataset ``name``; unknown names raise ``KeyError`` listing the registered ones."""
    return get_or_raise(COPY_DETECTION_DATASETS, name, "copy-detection dataset (DATASETS.TRAIN/TEST)")(cfg)


class ImageListDataset(Dataset):
    """``paths[i]`` opened as RGB and passed through ``transform``."""

    def __init__(self, paths: List[str], transform: Callable):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        return self.transform(open_rgb(self.paths[index]))


class TwoViewDataset(ImageListDataset):
    """Two independent augmentations of the same image: ``{"view1": x1, "view2": x2}``."""

    def __getitem__(self, index: int):
        image = open_rgb(self.paths[index])
        return {"view1": self.transform(image), "view2": self.transform(image)}


def build_train_loader(cfg, transform: Callable) -> DataLoader:
    """Infinite loader of two-view batches over the training images of every ``DATASETS.TRAIN`` entry.

    The per-process batch is ``SOLVER.IMS_PER_BATCH / world size`` (detectron2's ``TrainingSampler``
    shuffles and shards across processes); incomplete batches are dropped.
    """
    paths = [
        p for name in cfg.DATASETS.TRAIN for _, p in get_copy_detection_dataset(name, cfg).images("train")
    ]
    world = comm.get_world_size()
    if cfg.SOLVER.IMS_PER_BATCH % world:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH} is not divisible by {world} processes"
        )
    batch = cfg.SOLVER.IMS_PER_BATCH // world
    if batch > len(paths):
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH per process ({batch}) exceeds the {len(paths)} training images"
        )
    dataset = TwoViewDataset(paths, transform)
    sampler = TrainingSampler(len(dataset), seed=cfg.SEED if cfg.SEED >= 0 else None)
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        drop_last=True,
        persistent_workers=cfg.DATALOADER.NUM_WORKERS > 0,
    )


def build_inference_loader(
    paths: List[str], transform: Callable, batch_size: int, num_workers: int
) -> DataLoader:
    """Ordered loader over ``paths`` (sharded across processes by detectron2's ``InferenceSampler``)."""
    return DataLoader(
        ImageListDataset(paths, transform),
        batch_size=batch_size,
        sampler=InferenceSampler(len(paths)),
        num_workers=num_workers,
    )
