"""Memorized Transformation Shifting (MTS): per-class FIFO banks of intra-class differences, as tensors.

Each class c owns a ring buffer of ``bank_size`` difference vectors t = e_j − e_k (j ≠ k, y_j = y_k = c,
all-zero rows dropped). A batch pushes its differences in row-major pair order (j, then k, both in batch
order); when it brings more than ``bank_size`` for a class only the last ``bank_size`` survive, exactly as
pushing them one by one into a FIFO. The whole update is vectorised: one sort by class and one indexed write
per batch.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


def intra_class_differences(embeddings: torch.Tensor, labels: torch.Tensor):
    """All t = e_j − e_k over ordered same-class pairs j ≠ k, in row-major (j, k) order, zero rows removed.

    Returns ``(differences [P, D], classes [P])``.
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    same.fill_diagonal_(False)
    j, k = same.nonzero(as_tuple=True)  # row-major order
    differences = embeddings[j] - embeddings[k]
    classes = labels[j]
    nonzero = differences.ne(0).any(dim=1)
    if not bool(nonzero.all()):  # identical embeddings in a class (rare): drop their zero differences
        differences, classes = differences[nonzero], classes[nonzero]
    return differences, classes


class TransformationBank(nn.Module):
    """C ring buffers of capacity S over D-dim vectors (``bank`` C×S×D; ``write_ptr``, ``count`` per class).

    ``write_ptr[c]`` is the slot the next vector of class c goes to; ``count[c]`` how many slots hold data.
    All three are buffers, so they are saved in checkpoints.
    """

    def __init__(self, num_classes: int, dim: int, bank_size: int):
        super().__init__()
        if bank_size <= 0:
            raise ValueError(f"MTS BANK_SIZE must be positive, got {bank_size}")
        self.num_classes = num_classes
        self.dim = dim
        self.bank_size = bank_size
        self.register_buffer("bank", torch.zeros(num_classes, bank_size, dim))
        self.register_buffer("write_ptr", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.long))

    @torch.no_grad()
    def push(self, vectors: torch.Tensor, classes: torch.Tensor) -> None:
        """Append ``vectors[i]`` to the bank of ``classes[i]``, in order, with FIFO eviction."""
        if vectors.numel() == 0:
            return
        classes = classes.long()
        # rank of each vector among the vectors of its class (push order), without moving the vectors
        sorted_classes, order = torch.sort(classes, stable=True)
        unique, pushed = torch.unique_consecutive(sorted_classes, return_counts=True)
        starts = torch.cumsum(pushed, 0) - pushed
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device) - torch.repeat_interleave(
            starts, pushed
        )
        slot = (self.write_ptr[classes] + rank) % self.bank_size
        if int(pushed.max()) > self.bank_size:  # only the last S vectors of a class survive
            pushed_of_item = pushed[torch.searchsorted(unique, classes)]
            keep = rank >= pushed_of_item - self.bank_size
            classes, slot, vectors = classes[keep], slot[keep], vectors[keep]
        self.bank[classes, slot] = vectors.detach().to(self.bank.dtype)
        self.write_ptr[unique] = (self.write_ptr[unique] + pushed) % self.bank_size
        self.count[unique] = torch.clamp(self.count[unique] + pushed, max=self.bank_size)

    def entries(self, class_id: int) -> torch.Tensor:
        """The stored vectors of one class, oldest first ([count, D])."""
        n = int(self.count[class_id])
        if n < self.bank_size:
            return self.bank[class_id, :n]
        ptr = int(self.write_ptr[class_id])
        return torch.cat([self.bank[class_id, ptr:], self.bank[class_id, :ptr]])

    def sample(self, labels: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One uniformly drawn stored vector per label ([B] → [B, D]); zero when the bank is empty."""
        labels = labels.long()
        count = self.count[labels]
        u = torch.rand(labels.shape, generator=generator, device=self.bank.device)
        slot = torch.clamp((u * count).long(), max=self.bank_size - 1)
        drawn = self.bank[labels, slot]
        empty = count == 0
        if empty.any():  # slot 0 of a never-written bank is zero already; enforce it for loaded states too
            drawn = drawn.masked_fill(empty.unsqueeze(1), 0.0)
        return drawn
