"""The SimD model components, registered in detectron2's registries on import:
``SimilarityRPN`` (proposal generator), ``SimilarityROIHeads`` / ``SimilarityCascadeROIHeads`` (ROI heads),
``SimilarityRetinaNet`` (meta-architecture)."""
from simd.modeling.retinanet import SimilarityRetinaNet
from simd.modeling.roi_heads import SimilarityCascadeROIHeads, SimilarityROIHeads
from simd.modeling.rpn import SimilarityRPN

__all__ = ["SimilarityCascadeROIHeads", "SimilarityRetinaNet", "SimilarityROIHeads", "SimilarityRPN"]
