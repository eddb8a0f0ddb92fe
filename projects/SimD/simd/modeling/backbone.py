"""ResNet-FPN backbones whose BatchNorm keeps its ImageNet statistics but trains its affine parameters.

The official SimD run (configs/simd/visdrone/faster-rcnn_r50_fpn_1x_sim_visdrone.py of the official SimD
repository) uses mmdet's ResNet with ``norm_cfg=dict(type='BN', requires_grad=True)``, ``norm_eval=True``
and ``frozen_stages=1``: the stem and the first stage are frozen completely, and in the later stages the
BN *statistics* stay fixed (BN always in eval mode) while its scale and shift are trained. detectron2's
``FrozenBN`` also freezes scale and shift, and ``BN`` updates the statistics; these builders give the
official behaviour: ``MODEL.RESNETS.NORM "BN"``, ``MODEL.BACKBONE.FREEZE_AT 2`` and
``MODEL.BACKBONE.NAME "build_resnet_fpn_backbone_bn_eval"`` (or the RetinaNet variant).
"""
from __future__ import annotations

import torch
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import Backbone
from detectron2.modeling.backbone.fpn import build_resnet_fpn_backbone, build_retinanet_resnet_fpn_backbone


class EvalModeBatchNorm2d(torch.nn.BatchNorm2d):
    """``BatchNorm2d`` that always normalises with its running statistics (mmdet's ``norm_eval=True``);
    weight and bias stay trainable. State-dict keys are those of ``BatchNorm2d``."""

    def train(self, mode: bool = True) -> "EvalModeBatchNorm2d":
        return super().train(False)


def freeze_bn_statistics_(module: torch.nn.Module) -> int:
    """Turn every plain ``BatchNorm2d`` under ``module`` into :class:`EvalModeBatchNorm2d` in place (its
    parameters and buffers unchanged); returns how many were turned."""
    count = 0
    for child in module.modules():
        if type(child) is torch.nn.BatchNorm2d:
            child.__class__ = EvalModeBatchNorm2d
            child.train(False)
            count += 1
    return count


def _bn_eval(cfg: CfgNode, backbone: Backbone) -> Backbone:
    if cfg.MODEL.RESNETS.NORM != "BN":
        raise ValueError(f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r} needs MODEL.RESNETS.NORM 'BN' "
                         f"(got {cfg.MODEL.RESNETS.NORM!r})")
    freeze_bn_statistics_(backbone.bottom_up)
    return backbone


@BACKBONE_REGISTRY.register()
def build_resnet_fpn_backbone_bn_eval(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """detectron2's ``build_resnet_fpn_backbone`` with BN statistics frozen and BN affine trainable."""
    return _bn_eval(cfg, build_resnet_fpn_backbone(cfg, input_shape))


@BACKBONE_REGISTRY.register()
def build_retinanet_resnet_fpn_backbone_bn_eval(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """detectron2's ``build_retinanet_resnet_fpn_backbone`` with BN statistics frozen, affine trainable."""
    return _bn_eval(cfg, build_retinanet_resnet_fpn_backbone(cfg, input_shape))
