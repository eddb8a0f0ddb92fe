"""Cross-process helpers that degrade to identities in a single process (no torch.distributed needed)."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.distributed as dist
from detectron2.utils import comm


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and comm.get_world_size() > 1


@torch.no_grad()
def concat_all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` [B, ...] of every process along dim 0 (no gradient); itself when alone."""
    if not _distributed():
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(comm.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


def all_gather_with_grad(tensor: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """Concatenate ``tensor`` of every process keeping gradients; returns (all, offset of this rank)."""
    if not _distributed():
        return tensor, 0
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0), comm.get_rank() * tensor.shape[0]


def shuffled_batch_forward(encoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``encoder(images)`` computed on a shuffled batch, returned in the original order (MoCo's
    shuffle-BN: batch statistics must not leak which key belongs to which query).

    Under DDP the whole global batch is permuted across processes (rank 0 draws the permutation and
    broadcasts it); in a single process the batch is permuted locally.
    """
    if not _distributed():
        permutation = torch.randperm(images.shape[0], device=images.device)
        out = encoder(images[permutation])
        return out[torch.argsort(permutation)]
    local = images.shape[0]
    everything = concat_all_gather(images)
    permutation = torch.randperm(everything.shape[0], device=images.device)
    dist.broadcast(permutation, src=0)
    rank = comm.get_rank()
    mine = permutation.view(-1, local)[rank]
    out = encoder(everything[mine])
    gathered = concat_all_gather(out)
    restore = torch.argsort(permutation).view(-1, local)[rank]
    return gathered[restore]
