"""IIF: Inverse Image Frequency logit adjustment for long-tailed instance segmentation and classification.

Importing ``iif`` applies the shared compatibility layer first, then registers ``IIFROIHeads``.
"""
import shared  # noqa: F401  (applies the compatibility layer before detectron2/fastreid are imported)

from iif.config import add_iif_config
from iif.fast_rcnn import IIFOutputLayers, NormedLinear, iif_weights_from_cfg
from iif.roi_heads import IIFROIHeads
from iif.weights import (
    ClassCounts,
    compute_iif_weights,
    counts_from_dataset_dicts,
    counts_from_lvis_json,
    iif_weight_vector,
    valid_variant_names,
    weights_from_csv,
)

__all__ = [
    "ClassCounts",
    "IIFOutputLayers",
    "IIFROIHeads",
    "NormedLinear",
    "add_iif_config",
    "compute_iif_weights",
    "counts_from_dataset_dicts",
    "counts_from_lvis_json",
    "iif_weight_vector",
    "iif_weights_from_cfg",
    "valid_variant_names",
    "weights_from_csv",
]
