"""P×K class-balanced batch sampler (after the "class_random" sampler of the official DAS / Revisiting-DML
code, datasampler/class_random_sampler.py)."""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence

import numpy as np
from detectron2.utils import comm


class ClassBalancedBatchSampler:
    """Infinite stream of batches of ``classes_per_batch`` (P) distinct classes × ``samples_per_class`` (K)
    images.

    Each batch draws P classes uniformly without replacement among the classes, then K images of each class,
    without replacement when the class has at least K images and with replacement otherwise. Batches are
    deterministic given ``seed``. (The official sampler draws classes and images with replacement.)

    Distributed training: every shard (process) draws the same global batch from the same seed and yields
    only its ``shard``-th contiguous block of ``classes_per_batch / num_shards`` classes, so the union over
    the shards is exactly the batch a single process draws.
    """

    def __init__(self, labels: Sequence[int], classes_per_batch: int, samples_per_class: int,
                 seed: Optional[int] = None, num_shards: int = 1, shard: int = 0):
        labels = np.asarray(labels)
        if labels.size == 0:
            raise ValueError("ClassBalancedBatchSampler got an empty dataset")
        if samples_per_class < 1 or classes_per_batch < 1:
            raise ValueError(f"need P >= 1 and K >= 1, got P={classes_per_batch}, K={samples_per_class}")
        self.classes = np.unique(labels)
        if classes_per_batch > len(self.classes):
            raise ValueError(
                f"a batch needs {classes_per_batch} distinct classes (SOLVER.IMS_PER_BATCH / "
                f"DATALOADER.SAMPLES_PER_CLASS) but the training set has only {len(self.classes)}"
            )
        if classes_per_batch % num_shards or not 0 <= shard < num_shards:
            raise ValueError(
                f"a batch of {classes_per_batch} classes cannot be split into {num_shards} equal shards "
                f"(shard {shard}); SOLVER.IMS_PER_BATCH is the global batch"
            )
        self.indices_of = {c: np.flatnonzero(labels == c) for c in self.classes}
        self.classes_per_batch = classes_per_batch
        self.samples_per_class = samples_per_class
        if seed is None:
            seed = comm.shared_random_seed()
        self.seed = int(seed)
        self.num_shards, self.shard = num_shards, shard

    def __iter__(self) -> Iterator[List[int]]:
        rng = np.random.default_rng(self.seed)
        k = self.samples_per_class
        while True:
            batch: List[int] = []
            for c in rng.choice(self.classes, size=self.classes_per_batch, replace=False):
                pool = self.indices_of[c]
                batch.extend(rng.choice(pool, size=k, replace=len(pool) < k).tolist())
            share = len(batch) // self.num_shards
            yield batch[self.shard * share:(self.shard + 1) * share]
