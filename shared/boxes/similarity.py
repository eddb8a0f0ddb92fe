"""Box-similarity formulas and the registry that selects them by name.

Every formula takes two :class:`~shared.boxes.geometry.BoxGeometry` operands whose tensors broadcast
against each other (``[k, 1]`` against ``[1, M]`` for a pairwise block, ``[N]`` against ``[N]`` for the
aligned form) and returns the similarity with the broadcast shape. All formulas are symmetric in their
two operands. ``eps`` values follow the reference code of each method (official SimD repository for SimD,
mmdet-aitod for NWD and DotD).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Tuple

import torch
from torch import Tensor

from shared.boxes.geometry import BoxGeometry

__all__ = [
    "SimilarityKind",
    "SIMILARITY_REGISTRY",
    "register_similarity",
    "get_similarity",
    "similarity_names",
    "needs_unit_interval_mapping",
    "to_unit_interval",
    "SIMD_MIN_VALUE",
]

#: torchvision's ``eps`` in DIoU/CIoU (added to the squared enclosing diagonal and to CIoU's alpha
#: denominator).
TORCHVISION_EPS = 1e-7
#: SimD output floor (official code: the similarity is clamped to ≥ 1e-6).
SIMD_MIN_VALUE = 1e-6
#: exp() arguments are clamped to ≥ this (exp(-87) ≈ 1.6e-38, the float32 normal range): far-apart boxes
#: would otherwise produce subnormal results, which are ~50× slower on x86 and carry no information.
MIN_EXP_ARGUMENT = -87.0


@dataclass(frozen=True)
class SimilarityKind:
    """One registered similarity.

    Attributes:
        name: registry key.
        formula: ``formula(a, b, **params) -> Tensor`` on broadcastable geometries.
        required: parameter names that must be given.
        defaults: optional parameters and their defaults.
        lower_bound: infimum of the raw values (0 for kinds already in [0, 1]); used by
            :func:`to_unit_interval`.
        kernel_params: encodes the resolved parameters as the float list of the compiled
            ``shared._box_ops`` op.
        validate: raises ``ValueError`` for out-of-range parameter values.
    """

    name: str
    formula: Callable[..., Tensor]
    required: Tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    lower_bound: float = 0.0
    kernel_params: Callable[[Mapping[str, Any]], list] = lambda params: []
    validate: Callable[[Mapping[str, Any]], None] = lambda params: None

    def resolve(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        """Check ``params`` against this kind (unknown/missing names, values) and add the defaults."""
        allowed = set(self.required) | set(self.defaults)
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise TypeError(
                f"similarity '{self.name}' got unexpected parameter(s) {unknown}; "
                f"accepted: {sorted(allowed) or 'none'}"
            )
        missing = [p for p in self.required if params.get(p) is None]
        if missing:
            raise ValueError(
                f"similarity '{self.name}' needs parameter(s) {missing} (required: {list(self.required)}; "
                "they are dataset constants, there is no default)"
            )
        resolved = {**self.defaults, **params}
        self.validate(resolved)
        return resolved


#: name -> :class:`SimilarityKind`. Add new kinds with :func:`register_similarity`.
SIMILARITY_REGISTRY: Dict[str, SimilarityKind] = {}


def register_similarity(kind: SimilarityKind) -> SimilarityKind:
    if kind.name in SIMILARITY_REGISTRY:
        raise KeyError(f"similarity '{kind.name}' is already registered")
    SIMILARITY_REGISTRY[kind.name] = kind
    return kind


def similarity_names() -> Tuple[str, ...]:
    return tuple(SIMILARITY_REGISTRY)


def get_similarity(name: str) -> SimilarityKind:
    """The registered kind ``name`` (case-insensitive); ``ValueError`` listing the valid names otherwise."""
    key = name.lower() if isinstance(name, str) else name
    if key not in SIMILARITY_REGISTRY:
        raise ValueError(f"unknown box similarity {name!r}; valid names: {', '.join(similarity_names())}")
    return SIMILARITY_REGISTRY[key]


def needs_unit_interval_mapping(kind: str) -> bool:
    """True if the raw values of ``kind`` can be negative (GIoU, DIoU, CIoU), i.e. they must go through
    :func:`to_unit_interval` before detectron2's ``Matcher`` (which asserts a match quality ≥ 0)."""
    return get_similarity(kind).lower_bound < 0


def to_unit_interval(kind: str, values: Tensor) -> Tensor:
    """Map raw similarities of ``kind`` monotonically onto [0, 1]: ``(x - lo) / (1 - lo)``.

    ``lo`` is the kind's lower bound: -1 for GIoU and DIoU (so the map is ``(x + 1) / 2``), -2 for CIoU
    (DIoU > -1 minus the aspect-ratio penalty alpha·v ≤ 1, so ``(x + 2) / 3``), 0 for the kinds already in
    [0, 1] (identity). The result is clamped to [0, 1] against rounding. Thresholds chosen for the raw
    values must be mapped with the same function.
    """
    lower = get_similarity(kind).lower_bound
    if lower == 0:
        return values
    return ((values - lower) / (1.0 - lower)).clamp_(0.0, 1.0)


# ------------------------------------------------------------------------------------------------
# formulas
# ------------------------------------------------------------------------------------------------
def _tiny(t: Tensor) -> float:
    return torch.finfo(t.dtype).tiny


def intersection_and_union(a: BoxGeometry, b: BoxGeometry) -> Tuple[Tensor, Tensor]:
    """inter = max(0, min(x2) − max(x1)) · max(0, min(y2) − max(y1));  union = area_a + area_b − inter."""
    inter_w = (torch.minimum(a.x2, b.x2) - torch.maximum(a.x1, b.x1)).clamp(min=0)
    inter_h = (torch.minimum(a.y2, b.y2) - torch.maximum(a.y1, b.y1)).clamp(min=0)
    inter = inter_w * inter_h
    union = (a.area + b.area) - inter
    return inter, union


def _enclosing_size(a: BoxGeometry, b: BoxGeometry) -> Tuple[Tensor, Tensor]:
    """Width and height of the smallest box enclosing both operands."""
    width = (torch.maximum(a.x2, b.x2) - torch.minimum(a.x1, b.x1)).clamp(min=0)
    height = (torch.maximum(a.y2, b.y2) - torch.minimum(a.y1, b.y1)).clamp(min=0)
    return width, height


def iou(a: BoxGeometry, b: BoxGeometry) -> Tensor:
    """IoU = inter / union (0 where the union is empty, so degenerate boxes give 0, never NaN)."""
    inter, union = intersection_and_union(a, b)
    return inter / union.clamp(min=_tiny(union))


def giou(a: BoxGeometry, b: BoxGeometry) -> Tensor:
    """GIoU = IoU − (|C| − union) / |C|, C the smallest enclosing box (|C| = 0 → penalty 0). Range (−1, 1]."""
    inter, union = intersection_and_union(a, b)
    width, height = _enclosing_size(a, b)
    enclosing = width * height
    penalty = (enclosing - union) / enclosing.clamp(min=_tiny(enclosing))
    return inter / union.clamp(min=_tiny(union)) - penalty


def _diou_and_iou(a: BoxGeometry, b: BoxGeometry) -> Tuple[Tensor, Tensor]:
    value = iou(a, b)
    width, height = _enclosing_size(a, b)
    diagonal_sq = width.square() + height.square() + TORCHVISION_EPS
    centre_dist_sq = (a.cx - b.cx).square() + (a.cy - b.cy).square()
    return value - centre_dist_sq / diagonal_sq, value


def diou(a: BoxGeometry, b: BoxGeometry) -> Tensor:
    """DIoU = IoU − ρ²(c_a, c_b) / (c² + 1e-7), c the diagonal of the enclosing box. Range (−1, 1]."""
    return _diou_and_iou(a, b)[0]


def _aspect_angle(g: BoxGeometry) -> Tensor:
    """atan(w / h), written as atan2(w, h) so that zero-height boxes give π/2 (and 0×0 boxes give 0)."""
    return torch.atan2(g.w, g.h)


def ciou(a: BoxGeometry, b: BoxGeometry) -> Tensor:
    """CIoU = DIoU − α·v with v = 4/π² (atan(w_a/h_a) − atan(w_b/h_b))², α = v / (1 − IoU + v + 1e-7)
    (α without gradient, as in torchvision). Range (−2, 1]."""
    value_diou, value_iou = _diou_and_iou(a, b)
    v = (_aspect_angle(a) - _aspect_angle(b)).square() * (4.0 / math.pi ** 2)
    with torch.no_grad():
        alpha = v / (1.0 - value_iou + v + TORCHVISION_EPS)
    return value_diou - alpha * v


def nwd(a: BoxGeometry, b: BoxGeometry, constant: float, eps: float) -> Tensor:
    """NWD = exp(−W2 / C), W2 = sqrt(‖c_a − c_b‖² + ((w_a − w_b)² + (h_a − h_b)²) / 4 + eps) (≥ exp(−87))."""
    shape_sq = ((a.w - b.w).square() + (a.h - b.h).square()) * 0.25
    dist_sq = (a.cx - b.cx).square() + (a.cy - b.cy).square() + shape_sq + eps
    return torch.exp((dist_sq.sqrt() * (-1.0 / constant)).clamp(min=MIN_EXP_ARGUMENT))


def dotd(a: BoxGeometry, b: BoxGeometry, constant: float, eps: float) -> Tensor:
    """DotD = exp(−sqrt(‖c_a − c_b‖² + eps) / S) (≥ exp(−87))."""
    dist_sq = (a.cx - b.cx).square() + (a.cy - b.cy).square() + eps
    return torch.exp((dist_sq.sqrt() * (-1.0 / constant)).clamp(min=MIN_EXP_ARGUMENT))


def simd_factors(m: float, n: float, norm_mode: str) -> Tuple[float, float]:
    """The factors that multiply the normalised offsets: (m, n) for "multiply", (1/m, 1/n) for "divide"."""
    return (m, n) if norm_mode == "multiply" else (1.0 / m, 1.0 / n)


def _records_grad(a: BoxGeometry, b: BoxGeometry) -> bool:
    """True when autograd records the formula (grad mode on and an input that requires grad)."""
    return torch.is_grad_enabled() and (a.w.requires_grad or b.w.requires_grad or a.cx.requires_grad
                                        or b.cx.requires_grad)


def _simd_in_place(a: BoxGeometry, b: BoxGeometry, fx: float, fy: float, eps: float) -> Tensor:
    """:func:`simd` without autograd: the same operations in the same order (bit-identical results; Python's
    ``fx / t`` is ``t.reciprocal() * fx``), done in place on six broadcast temporaries instead of ~20, which
    removes most of the allocation and cache traffic of the PyTorch path (benchmarks/bench_box_similarity.py:
    0.28 -> 0.22 of ``pairwise_iou`` at one thread)."""
    scale_x = (a.w + b.w).add_(2 * eps).reciprocal_().mul_(fx)
    scale_y = (a.h + b.h).add_(2 * eps).reciprocal_().mul_(fy)
    loc = (a.cx - b.cx).mul_(scale_x).square_().add_((a.cy - b.cy).mul_(scale_y).square_())
    shape = (a.w - b.w).mul_(scale_x).square_().add_((a.h - b.h).mul_(scale_y).square_())
    out = loc.sqrt_().add_(shape.sqrt_()).neg_()
    return out.clamp_(min=MIN_EXP_ARGUMENT).exp_().clamp_(min=SIMD_MIN_VALUE)


def simd(a: BoxGeometry, b: BoxGeometry, m: float, n: float, eps: float, norm_mode: str) -> Tensor:
    """SimD = max(exp(−(loc + shape)), 1e-6) with (widths/heights get +eps, as in the official code)

        loc   = sqrt((m·(x_a − x_b)/(w_a + w_b))² + (n·(y_a − y_b)/(h_a + h_b))²)
        shape = sqrt((m·(w_a − w_b)/(w_a + w_b))² + (n·(h_a − h_b)/(h_a + h_b))²)

    ``norm_mode="divide"`` uses 1/m and 1/n instead of m and n (an ambiguity of the SimD paper, Eq. 3).
    """
    fx, fy = simd_factors(m, n, norm_mode)
    if not _records_grad(a, b):
        return _simd_in_place(a, b, fx, fy, eps)
    scale_x = fx / (a.w + b.w + 2 * eps)
    scale_y = fy / (a.h + b.h + 2 * eps)
    loc = ((a.cx - b.cx) * scale_x).square() + ((a.cy - b.cy) * scale_y).square()
    shape = ((a.w - b.w) * scale_x).square() + ((a.h - b.h) * scale_y).square()
    return torch.exp((-(loc.sqrt() + shape.sqrt())).clamp(min=MIN_EXP_ARGUMENT)).clamp(min=SIMD_MIN_VALUE)


# ------------------------------------------------------------------------------------------------
# registrations
# ------------------------------------------------------------------------------------------------
def _positive(*names: str) -> Callable[[Mapping[str, Any]], None]:
    def check(params: Mapping[str, Any]) -> None:
        for name in names:
            value = params[name]
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"parameter {name} must be a finite number > 0, got {value!r}")
        if "eps" in params and not (isinstance(params["eps"], (int, float)) and params["eps"] >= 0):
            raise ValueError(f"parameter eps must be a number ≥ 0, got {params['eps']!r}")
        if "norm_mode" in params and params["norm_mode"] not in ("multiply", "divide"):
            raise ValueError(f"norm_mode must be 'multiply' or 'divide', got {params['norm_mode']!r}")
    return check


register_similarity(SimilarityKind("iou", iou))
register_similarity(SimilarityKind("giou", giou, lower_bound=-1.0))
register_similarity(SimilarityKind("diou", diou, lower_bound=-1.0))
register_similarity(SimilarityKind("ciou", ciou, lower_bound=-2.0))
register_similarity(SimilarityKind(
    "nwd", nwd, required=("constant",), defaults={"eps": 1e-6},
    kernel_params=lambda p: [float(p["constant"]), float(p["eps"])], validate=_positive("constant"),
))
register_similarity(SimilarityKind(
    "dotd", dotd, required=("constant",), defaults={"eps": 1e-6},
    kernel_params=lambda p: [float(p["constant"]), float(p["eps"])], validate=_positive("constant"),
))
register_similarity(SimilarityKind(
    "simd", simd, required=("m", "n"), defaults={"eps": 1e-6, "norm_mode": "multiply"},
    kernel_params=lambda p: [*simd_factors(float(p["m"]), float(p["n"]), p["norm_mode"]), float(p["eps"])],
    validate=_positive("m", "n"),
))
