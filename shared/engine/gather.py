"""Losses over the global batch: gather every process's rows, keep the gradient of the own rows.

With ``N`` processes each holding ``B`` rows, :func:`gather_rows` returns the ``N * B`` rows in rank order.
Every process then computes the same loss ``L`` on the same global batch; the backward pass sums over the
processes the gradient that reaches each process's own rows, i.e. ``N * dL/dx_own``, and DDP's averaging
over the ``N`` processes gives exactly the gradient of the single-process run on the whole batch.
In a single process (or without an initialised process group) both functions return their input.
"""
from __future__ import annotations

from typing import List

import torch
import torch.distributed as dist

__all__ = ["gather_rows", "gather_no_grad", "world_size"]


def world_size() -> int:
    """Number of processes of the default group; 1 without torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _check_equal_rows(x: torch.Tensor) -> None:
    """The row blocks must have one size on every process (all_gather needs equal shapes)."""
    rows = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes: List[torch.Tensor] = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, rows)
    counts = [int(s.item()) for s in sizes]
    if len(set(counts)) != 1:
        raise ValueError(f"gathering a global batch needs the same batch size on every process, got rows "
                         f"per rank {counts} (use an IMS_PER_BATCH divisible by the number of processes)")


class _GatherRows(torch.autograd.Function):
    """all_gather of equally sized row blocks; backward: all_reduce (sum) of the gradient, own rows kept."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # reduced in place; the incoming gradient is left untouched
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_rows(x: torch.Tensor, check_sizes: bool = True) -> torch.Tensor:
    """``cat([x_rank0, x_rank1, ...])`` with gradient to the own rows (sum over processes, see the module).

    ``check_sizes`` first compares the row counts of all processes and raises ``ValueError`` naming them
    when they differ (one extra small collective)."""
    if world_size() == 1:
        return x
    if check_sizes:
        _check_equal_rows(x)
    return _GatherRows.apply(x)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """``cat([x_rank0, x_rank1, ...])`` of equally sized blocks (labels, ids): no gradient."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)
