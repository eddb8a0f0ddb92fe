"""Discriminative Feature Scaling (DFS): per-class frequency of dominant dimensions, and the scaling it
drives.

The frequency matrix F ∈ ℕ^{C×D} counts, for each class c and dimension d, how often d was one of the K
largest coordinates of a real embedding of class c. It is a C×D int32 buffer updated with one ``scatter_add_``
per batch (the official code keeps a Python dict of lists updated per sample, which is slow for SOP's 11,318
classes).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn


def top_dimensions(counts: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest entries of each row of the integer matrix ``counts`` ([N, D] → [N, k]).

    Ties are broken towards the lower dimension index, so the result is deterministic for frequency rows,
    where ties are common: one ``topk`` on the unique key ``count · D + (D − 1 − d)``.
    """
    dim = counts.shape[1]
    tie_break = torch.arange(dim - 1, -1, -1, device=counts.device)
    return torch.topk(counts.long() * dim + tie_break, k, dim=1).indices


def scale_dimensions(
    embeddings: torch.Tensor,
    dims: torch.Tensor,
    low: float,
    high: float,
    generator: Optional[torch.Generator],
    inplace: bool = False,
) -> torch.Tensor:
    """ê = e except ê[i, dims[i, j]] = σ_ij · e[i, dims[i, j]], σ_ij ~ U[low, high) (differentiable in e).

    One factor is drawn per sample and per selected dimension. ``inplace`` overwrites ``embeddings`` (only for
    tensors that need no gradient).
    """
    sigma = torch.empty(dims.shape, dtype=embeddings.dtype, device=embeddings.device)
    sigma.uniform_(low, high, generator=generator)
    scaled = embeddings.gather(1, dims) * sigma
    return embeddings.scatter_(1, dims, scaled) if inplace else embeddings.scatter(1, dims, scaled)


class FrequencyRecorder(nn.Module):
    """The DFS frequency matrix ``F`` (``counts``, C×D int32) and its vectorised update.

    Args:
        num_classes: number of training classes C; labels must lie in [0, C).
        dim: embedding dimension D.
        num_scale: K, dimensions counted per embedding (and later scaled per generated embedding).
    """

    def __init__(self, num_classes: int, dim: int, num_scale: int):
        super().__init__()
        if num_classes <= 0 or dim <= 0:
            raise ValueError(f"FrequencyRecorder needs num_classes > 0 and dim > 0, got {num_classes}, {dim}")
        if not 0 < num_scale <= dim:
            raise ValueError(f"DFS NUM_SCALE must be in [1, {dim}] (the embedding dim), got {num_scale}")
        self.num_classes = num_classes
        self.dim = dim
        self.num_scale = num_scale
        self.register_buffer("counts", torch.zeros(num_classes, dim, dtype=torch.int32))

    @torch.no_grad()
    def update(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """F[y_i, d] += 1 for every d among the K largest coordinates of e_i."""
        dims = torch.topk(embeddings.detach(), self.num_scale, dim=1).indices  # [B, K]
        flat = (labels.long().unsqueeze(1) * self.dim + dims).reshape(-1)
        ones = torch.ones(flat.numel(), dtype=self.counts.dtype, device=self.counts.device)
        self.counts.view(-1).scatter_add_(0, flat.to(self.counts.device), ones)

    def dominant_dimensions(self, labels: torch.Tensor) -> torch.Tensor:
        """The K most frequently dominant dimensions of each label's class ([B] → [B, K]), computed once per
        distinct class of the batch."""
        classes, inverse = torch.unique(labels.long(), return_inverse=True)
        return top_dimensions(self.counts[classes], self.num_scale)[inverse]


def check_range(value_range: Tuple[float, float]) -> Tuple[float, float]:
    """Validate a DFS scale range ``(low, high)`` with 0 < low ≤ high."""
    if len(value_range) != 2:
        raise ValueError(f"DFS RANGE must be (low, high), got {value_range!r}")
    low, high = float(value_range[0]), float(value_range[1])
    if not 0 < low <= high:
        raise ValueError(f"DFS RANGE must satisfy 0 < low <= high, got {value_range!r}")
    return low, high
