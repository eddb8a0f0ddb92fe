"""Compiled box ops (``shared._box_ops``, C++/CUDA) with pure-PyTorch fallbacks.

* :func:`batched_similarity_nms` – per-class greedy NMS by IoU, DIoU, NWD, DotD or SimD.
* the fused pairwise similarity kernels are used transparently by :mod:`shared.boxes`.
* :func:`extension_status` – "cpu+cuda kernels" | "cpu kernels" | "unavailable: <reason>".
"""
from shared.kernels import NMS_KINDS, cuda_kernels_compiled, extension_status
from shared.ops.nms import batched_similarity_nms, reference_batched_similarity_nms

__all__ = [
    "NMS_KINDS",
    "batched_similarity_nms",
    "reference_batched_similarity_nms",
    "cuda_kernels_compiled",
    "extension_status",
]

extension_status()  # load now, so the fallback line (if any) is logged once at import
