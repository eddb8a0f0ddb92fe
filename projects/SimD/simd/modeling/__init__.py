"""The SimD model components, registered in detectron2's registries on import:
``SimilarityRPN`` (proposal generator), ``SimilarityROIHeads`` / ``SimilarityCascadeROIHeads`` (ROI heads),
``SimilarityRetinaNet`` (meta-architecture), ``build_resnet_fpn_backbone_bn_eval`` and its RetinaNet variant
(backbones, BN statistics frozen with trainable affine as the official SimD run),
``build_narrow_resnet_fpn_backbone`` (a ResNet-18/34 of any width under FPN, for the CPU demo)."""

from simd.modeling.backbone import (
    build_narrow_resnet_fpn_backbone,
    build_resnet_fpn_backbone_bn_eval,
    build_retinanet_resnet_fpn_backbone_bn_eval,
)
from simd.modeling.retinanet import SimilarityRetinaNet
from simd.modeling.roi_heads import SimilarityCascadeROIHeads, SimilarityROIHeads
from simd.modeling.rpn import SimilarityRPN

__all__ = [
    "build_narrow_resnet_fpn_backbone",
    "build_resnet_fpn_backbone_bn_eval",
    "build_retinanet_resnet_fpn_backbone_bn_eval",
    "SimilarityCascadeROIHeads",
    "SimilarityRetinaNet",
    "SimilarityROIHeads",
    "SimilarityRPN",
]
