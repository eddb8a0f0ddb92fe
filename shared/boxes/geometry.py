"""Box inputs → float tensors of per-box geometry (corners, centres, sizes) for the similarity formulas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

__all__ = ["BoxGeometry", "MAX_FLOAT32_COORDINATE", "as_xyxy_tensor", "compute_dtype"]

#: largest |coordinate| accepted for boxes computed in float32 (every dtype but float64). The formulas square
#: differences of coordinates (DIoU/CIoU diagonals, NWD) and multiply sides (areas): with |x| <= 1e18 every
#: such term stays below float32's 3.4e38, so the compiled kernels and the PyTorch path give the same finite
#: values; beyond it they would overflow differently (inf, NaN or 1.65e38 instead of ~0). Larger coordinates
#: need float64.
MAX_FLOAT32_COORDINATE = 1e18


def as_xyxy_tensor(boxes: Any, name: str = "boxes") -> Tensor:
    """Return the ``[N, 4]`` XYXY tensor of a detectron2 ``Boxes`` (anything with ``.tensor``) or a tensor.

    Raises ``TypeError`` for other types and ``ValueError`` for a wrong shape, a non-floating dtype,
    non-finite coordinates (a NaN box would otherwise become a silent NaN similarity) or, below float64,
    a coordinate beyond :data:`MAX_FLOAT32_COORDINATE` (where float32 arithmetic overflows).
    """
    tensor = getattr(boxes, "tensor", boxes)
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected detectron2 Boxes or a torch.Tensor, got {type(boxes).__name__}")
    if tensor.dim() != 2 or tensor.shape[-1] != 4:
        raise ValueError(f"{name}: expected shape [N, 4] (x1, y1, x2, y2), got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {tensor.dtype}")
    if tensor.numel() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name}: box coordinates contain NaN or Inf")
    if tensor.numel() and tensor.dtype != torch.float64:
        largest = float(tensor.detach().abs().max())
        if largest > MAX_FLOAT32_COORDINATE:
            raise ValueError(
                f"{name}: a coordinate of magnitude {largest:.3g} exceeds {MAX_FLOAT32_COORDINATE:.0e}, "
                "the largest computed exactly in float32 (squares and areas would overflow); "
                "pass float64 boxes"
            )
    return tensor


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype the similarities are computed and returned in: float64 stays float64, everything else
    (float16, bfloat16, float32) is computed in float32 and returned as float32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


@dataclass(frozen=True)
class BoxGeometry:
    """Per-box quantities, each a tensor of the same (broadcastable) shape.

    Widths and heights are ``max(x2 - x1, 0)`` / ``max(y2 - y1, 0)``: an inverted box (x2 < x1 or y2 < y1)
    is treated as a degenerate (zero-size) box at its centre, which every formula handles without NaN.
    """

    x1: Tensor
    y1: Tensor
    x2: Tensor
    y2: Tensor
    cx: Tensor
    cy: Tensor
    w: Tensor
    h: Tensor

    @classmethod
    def from_xyxy(cls, boxes: Tensor) -> "BoxGeometry":
        x1, y1, x2, y2 = boxes.unbind(-1)
        cx, cy = (x1 + x2) * 0.5, (y1 + y2) * 0.5
        # min/max with the centre: no-op for valid boxes, collapses an inverted box onto its centre
        return cls(
            x1=torch.minimum(x1, cx),
            y1=torch.minimum(y1, cy),
            x2=torch.maximum(x2, cx),
            y2=torch.maximum(y2, cy),
            cx=cx,
            cy=cy,
            w=(x2 - x1).clamp(min=0),
            h=(y2 - y1).clamp(min=0),
        )

    @property
    def area(self) -> Tensor:
        return self.w * self.h

    def rows(self, start: int, stop: int) -> "BoxGeometry":
        """Boxes ``start:stop`` as a column ``[k, 1]`` (the first operand of a pairwise block)."""
        return BoxGeometry(*(getattr(self, f)[start:stop, None] for f in self.__dataclass_fields__))

    def cols(self, start: int = 0, stop: Optional[int] = None) -> "BoxGeometry":
        """Boxes ``start:stop`` as a row ``[1, k]`` (the second operand of a pairwise block)."""
        return BoxGeometry(*(getattr(self, f)[None, start:stop] for f in self.__dataclass_fields__))
