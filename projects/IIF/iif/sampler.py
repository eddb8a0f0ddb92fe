"""mmdetection's class-balanced repeat (``ClassBalancedDataset``) as a detectron2 training sampler.

Both mmdetection and detectron2 give image ``I`` the repeat factor of LVIS' repeat-factor sampling,
``r(I) = max_{c in I} max(1, sqrt(t / f(c)))`` with ``f(c)`` the fraction of training images containing class
``c`` and ``t = DATALOADER.REPEAT_THRESHOLD``. They differ in how a fractional factor becomes repeats:

* mmdetection (the official IIF runs) lists every image ``ceil(r(I))`` times in each epoch, deterministically;
* detectron2's ``RepeatFactorTrainingSampler`` repeats it ``floor(r(I))`` times plus once more with
  probability ``r(I) - floor(r(I))``, drawn anew every epoch.

An image with ``r = 1.1`` is thus seen twice per epoch by mmdetection and 1.1 times on average by detectron2,
one with ``r = 2.2`` three times vs 2.2 times. ``DATALOADER.SAMPLER_TRAIN "ClassBalancedRepeatSampler"`` is
the mmdetection rule; ``"RepeatFactorTrainingSampler"`` keeps detectron2's.
"""
from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Dict, Iterator, List, Optional, Sequence

import torch
from detectron2.utils import comm
from torch.utils.data import Sampler

__all__ = ["CLASS_BALANCED_REPEAT", "ClassBalancedRepeatSampler", "repeat_counts", "repeat_factors"]

#: the DATALOADER.SAMPLER_TRAIN name of :class:`ClassBalancedRepeatSampler`
CLASS_BALANCED_REPEAT = "ClassBalancedRepeatSampler"


def repeat_factors(dataset_dicts: Sequence[dict], repeat_thresh: float) -> List[float]:
    """``r(I) = max_{c in I} max(1, sqrt(t / f(c)))`` per image (1 for an image without annotations), in
    float64; ``f(c)`` = images containing ``c`` / all images."""
    if not dataset_dicts:
        raise ValueError("repeat factors of an empty training set")
    images_with: Dict[int, int] = defaultdict(int)
    classes = [{ann["category_id"] for ann in record.get("annotations", [])} for record in dataset_dicts]
    for present in classes:
        for c in present:
            images_with[c] += 1
    n = len(dataset_dicts)
    per_class = {c: max(1.0, math.sqrt(repeat_thresh / (count / n))) for c, count in images_with.items()}
    return [max((per_class[c] for c in present), default=1.0) for present in classes]


def repeat_counts(dataset_dicts: Sequence[dict], repeat_thresh: float) -> List[int]:
    """mmdetection's repeats per image and epoch: ``ceil(r(I))``."""
    return [math.ceil(r) for r in repeat_factors(dataset_dicts, repeat_thresh)]


class ClassBalancedRepeatSampler(Sampler):
    """Infinite stream of dataset indices: each epoch lists image ``i`` exactly ``counts[i]`` times, shuffled
    (one permutation per epoch from ``seed``), and the stream is split over the processes as detectron2's
    ``TrainingSampler`` does (process ``k`` takes items ``k, k + N, ...``)."""

    def __init__(self, counts: Sequence[int], *, shuffle: bool = True, seed: Optional[int] = None):
        if any(int(c) < 1 for c in counts) or not counts:
            raise ValueError("every image needs a repeat count >= 1 (and the set must not be empty)")
        self._epoch = torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(counts))
        self._shuffle = shuffle
        self._seed = int(comm.shared_random_seed() if seed is None else seed)
        self._rank, self._world_size = comm.get_rank(), comm.get_world_size()

    def __len__(self) -> int:
        """Indices in one epoch (all processes together)."""
        return len(self._epoch)

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from self._epoch[torch.randperm(len(self._epoch), generator=generator)].tolist()
            else:
                yield from self._epoch.tolist()
