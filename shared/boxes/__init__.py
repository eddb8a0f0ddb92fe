"""Shared box-similarity library: IoU, GIoU, DIoU, CIoU, NWD, DotD and SimD, pairwise and aligned.

    from shared.boxes import pairwise_similarity, to_unit_interval
    quality = pairwise_similarity("simd", gt_boxes, anchors, m=6.13, n=4.59)   # [G, A]

See ``shared/README.md`` ("Box similarities and compiled box ops") for conventions.
"""

from shared.boxes.geometry import BoxGeometry, as_xyxy_tensor, compute_dtype
from shared.boxes.pairwise import (
    aligned_similarity,
    pairwise_ciou,
    pairwise_diou,
    pairwise_dotd,
    pairwise_giou,
    pairwise_iou,
    pairwise_nwd,
    pairwise_similarity,
    pairwise_simd,
)
from shared.boxes.similarity import (
    SIMILARITY_REGISTRY,
    SimilarityKind,
    get_similarity,
    needs_unit_interval_mapping,
    register_similarity,
    similarity_names,
    to_unit_interval,
)

__all__ = [
    "BoxGeometry", "as_xyxy_tensor", "compute_dtype",
    "aligned_similarity", "pairwise_ciou", "pairwise_diou", "pairwise_dotd", "pairwise_giou", "pairwise_iou",
    "pairwise_nwd", "pairwise_similarity", "pairwise_simd",
    "SIMILARITY_REGISTRY", "SimilarityKind", "get_similarity", "needs_unit_interval_mapping",
    "register_similarity",
    "similarity_names", "to_unit_interval",
]
