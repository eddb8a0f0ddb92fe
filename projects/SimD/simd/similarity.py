"""Config -> pairwise box-similarity function used for matching (the box maths lives in ``shared.boxes``).

``build_similarity(cfg, kind)`` returns ``f(gt: Boxes, boxes: Boxes) -> Tensor[G, N]`` with values in
[0, 1], ready for a detectron2-style matcher:

* ``iou``: detectron2's ``pairwise_iou`` (bit-identical to the stock heads);
* ``giou`` / ``diou`` / ``ciou``: mapped from (-1, 1] to [0, 1] by (x + 1) / 2, so thresholds apply to
  the mapped value;
* ``nwd`` (``MODEL.NWD.CONSTANT``), ``dotd`` (``MODEL.DOTD.CONSTANT``), ``simd`` (``MODEL.SIMD.M/N/EPS/
  NORM_MODE``): already in (0, 1].

A similarity name is validated in one place, :func:`similarity_kind` (used by the config checks of
:mod:`simd.config` and by every builder).
"""

from __future__ import annotations

import functools
from typing import Callable, Dict

import torch
from detectron2.config import CfgNode
from detectron2.structures import Boxes, pairwise_iou

from shared.boxes import needs_unit_interval_mapping, pairwise_similarity, to_unit_interval
from shared.engine.validation import ConfigValueError
from shared.registry import get_or_raise

SimilarityFn = Callable[[Boxes, Boxes], torch.Tensor]
#: MODEL.SIMD.NORM_MODE choices: "multiply" (official code: m * dx / (w_a + w_b)) or "divide"
NORM_MODES = ("multiply", "divide")
UNSET = -1.0  # value of MODEL.SIMD.M / N that means "not given"


def _no_params(cfg: CfgNode) -> Dict[str, float]:
    return {}


def simd_normalisers_are_set(cfg: CfgNode) -> bool:
    return cfg.MODEL.SIMD.M != UNSET and cfg.MODEL.SIMD.N != UNSET


def _simd_params(cfg: CfgNode) -> Dict[str, float]:
    if not simd_normalisers_are_set(cfg):
        raise ValueError(
            "SimD is configured but MODEL.SIMD.M / MODEL.SIMD.N are not set: give them "
            "(e.g. the VisDrone preset `MODEL.SIMD.M 6.13 MODEL.SIMD.N 4.59`), or estimate them from the "
            "training set with `MODEL.SIMD.ESTIMATE_NORMALISERS True` / projects/SimD/estimate_normalisers.py"
        )
    m, n = float(cfg.MODEL.SIMD.M), float(cfg.MODEL.SIMD.N)
    if not (m > 0 and n > 0):
        raise ValueError(f"MODEL.SIMD.M / N must be positive, got m={m}, n={n}")
    get_or_raise(dict.fromkeys(NORM_MODES), cfg.MODEL.SIMD.NORM_MODE, "MODEL.SIMD.NORM_MODE")
    return {"m": m, "n": n, "eps": float(cfg.MODEL.SIMD.EPS), "norm_mode": cfg.MODEL.SIMD.NORM_MODE}


#: similarity name -> its keyword parameters of ``shared.boxes.pairwise_similarity`` read from the config
SIMILARITY_PARAMS: Dict[str, Callable[[CfgNode], Dict[str, float]]] = {
    "iou": _no_params,
    "giou": _no_params,
    "diou": _no_params,
    "ciou": _no_params,
    "nwd": lambda cfg: {"constant": float(cfg.MODEL.NWD.CONSTANT)},
    "dotd": lambda cfg: {"constant": float(cfg.MODEL.DOTD.CONSTANT)},
    "simd": _simd_params,
}


def similarity_kind(name: str, key: str) -> str:
    """``name`` if it is a known similarity; otherwise :class:`ConfigValueError` naming the config ``key``
    and the choices. The one place a similarity name is validated."""
    if name not in SIMILARITY_PARAMS:
        raise ConfigValueError(key, name, f"unknown similarity; choose one of {sorted(SIMILARITY_PARAMS)}")
    return name


def similarity_params(cfg: CfgNode, kind: str, key: str = "similarity") -> Dict[str, float]:
    """Keyword parameters of ``shared.boxes.pairwise_similarity`` for ``kind`` taken from ``cfg``."""
    return SIMILARITY_PARAMS[similarity_kind(kind, key)](cfg)


def valid_gt_mask(gt_boxes: Boxes) -> torch.Tensor:
    """GT boxes that can be matched: finite coordinates and positive width and height."""
    t = gt_boxes.tensor
    return torch.isfinite(t).all(dim=1) & (t[:, 2] > t[:, 0]) & (t[:, 3] > t[:, 1])


def _shared_similarity(gt: Boxes, boxes: Boxes, kind: str, params: Dict[str, float]) -> torch.Tensor:
    quality = pairwise_similarity(kind, gt, boxes, **params)
    if needs_unit_interval_mapping(kind):
        quality = to_unit_interval(kind, quality)
    return quality


def build_similarity(cfg: CfgNode, kind: str, key: str = "similarity") -> SimilarityFn:
    """The matching similarity ``kind`` with its parameters from ``cfg`` (see the module docstring).

    An unknown kind raises ``ConfigValueError`` naming ``key``; SimD without normalisers raises ``ValueError``
    naming the missing keys, at build time rather than at the first training step.
    """
    kind = similarity_kind(kind, key)
    if kind == "iou":
        return pairwise_iou
    return functools.partial(_shared_similarity, kind=kind, params=similarity_params(cfg, kind))


def checked_quality(similarity: SimilarityFn, gt: Boxes, boxes: Boxes, what: str) -> torch.Tensor:
    """``similarity(gt, boxes)``, raising ``FloatingPointError`` naming ``what`` and the culprit (instead of a
    silent NaN loss or an assert deep inside detectron2's Matcher) when an input or the result is not
    finite."""
    for name, b in (("ground-truth boxes", gt), ("boxes being matched (anchors / proposals)", boxes)):
        finite = torch.isfinite(b.tensor).all(dim=1)
        if not bool(finite.all()):
            raise FloatingPointError(f"{what}: {int((~finite).sum())} of the {name} contain NaN/Inf")
    quality = similarity(gt, boxes)
    if quality.numel() and not bool(torch.isfinite(quality).all()):
        raise FloatingPointError(f"{what}: the match-quality matrix has NaN/Inf entries")
    return quality
