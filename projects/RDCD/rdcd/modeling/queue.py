"""A FIFO queue of descriptors kept as module buffers (so checkpoints save and restore it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rdcd.modeling.distributed import concat_all_gather


class DescriptorQueue(nn.Module):
    """``size`` x ``dim`` ring buffer of L2-normalised descriptors.

    It starts filled with random unit vectors (as MoCo and CompRess do), so losses are defined from the
    first step. :meth:`enqueue` gathers the batch of every process first under DDP and overwrites the
    oldest rows, wrapping around the end (any batch size works, also one that does not divide ``size``).
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size <= 0 or dim <= 0:
            raise ValueError(f"queue size and dim must be positive, got size={size}, dim={dim}")
        self.register_buffer("features", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def enqueue(self, batch: torch.Tensor) -> None:
        batch = concat_all_gather(batch.detach())
        if batch.shape[0] > self.size:  # only the newest `size` rows can be kept
            batch = batch[-self.size :]
        rows = (int(self.pointer) + torch.arange(batch.shape[0], device=batch.device)) % self.size
        self.features[rows] = batch.to(self.features.dtype)
        self.pointer.fill_((int(self.pointer) + batch.shape[0]) % self.size)
