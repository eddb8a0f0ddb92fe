"""IIF models: the detection box predictor and ROI heads, the normalised mask predictor, and the
long-tailed classification models."""
from iif.modeling.fast_rcnn import IIFOutputLayers, NormedLinear, iif_weights_from_cfg
from iif.modeling.mask_head import NormedConv2d, NormedMaskRCNNConvUpsampleHead
from iif.modeling.roi_heads import IIFROIHeads

__all__ = [
    "IIFOutputLayers",
    "IIFROIHeads",
    "NormedConv2d",
    "NormedLinear",
    "NormedMaskRCNNConvUpsampleHead",
    "iif_weights_from_cfg",
]
