"""``IIFROIHeads``: detectron2's StandardROIHeads with the IIF box predictor (detectron2 v0.6 has no
predictor registry)."""
from detectron2.modeling import ROI_HEADS_REGISTRY, StandardROIHeads

from iif.modeling.fast_rcnn import IIFOutputLayers

__all__ = ["IIFROIHeads"]


@ROI_HEADS_REGISTRY.register()
class IIFROIHeads(StandardROIHeads):
    """Select with ``MODEL.ROI_HEADS.NAME "IIFROIHeads"``; the RPN and the mask head are unchanged."""

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        ret["box_predictor"] = IIFOutputLayers(cfg, ret["box_head"].output_shape)
        return ret
