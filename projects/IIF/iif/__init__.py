"""IIF: Inverse Image Frequency logit adjustment for long-tailed instance segmentation and classification.

Importing ``iif`` applies the shared compatibility layer first, then registers ``IIFROIHeads`` and
``NormedMaskRCNNConvUpsampleHead``.
"""
import shared  # noqa: F401  (applies the compatibility layer before detectron2/fastreid are imported)

from iif.config import add_iif_config
from iif.modeling import (
    IIFOutputLayers,
    IIFROIHeads,
    NormedConv2d,
    NormedLinear,
    NormedMaskRCNNConvUpsampleHead,
    iif_weights_from_cfg,
)
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
    "NormedConv2d",
    "NormedLinear",
    "NormedMaskRCNNConvUpsampleHead",
    "add_iif_config",
    "compute_iif_weights",
    "counts_from_dataset_dicts",
    "counts_from_lvis_json",
    "iif_weight_vector",
    "iif_weights_from_cfg",
    "valid_variant_names",
    "weights_from_csv",
]
