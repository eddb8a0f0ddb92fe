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
from detectron2.modeling.backbone.fpn import (
    FPN,
    LastLevelMaxPool,
    build_resnet_fpn_backbone,
    build_retinanet_resnet_fpn_backbone,
)
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, ResNet


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


def narrow_basic_resnet(cfg: CfgNode, input_shape: ShapeSpec) -> ResNet:
    """ResNet-18/34 (``BasicBlock`` stages of 2-2-2-2 / 3-4-6-3 blocks) at any width: the stem has
    ``RESNETS.STEM_OUT_CHANNELS`` channels and stage k (k = 2..5) has ``RES2_OUT_CHANNELS * 2**(k-2)``.
    detectron2's ``build_resnet_backbone`` insists on 64 for R18/R34; the CPU demo uses a quarter of that."""
    depth = cfg.MODEL.RESNETS.DEPTH
    if depth not in (18, 34):
        raise ValueError(f"build_narrow_resnet_fpn_backbone needs MODEL.RESNETS.DEPTH 18 or 34, got {depth}")
    norm = cfg.MODEL.RESNETS.NORM
    stem = BasicStem(input_shape.channels, cfg.MODEL.RESNETS.STEM_OUT_CHANNELS, norm=norm)
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}[depth]
    in_channels, out_channels = cfg.MODEL.RESNETS.STEM_OUT_CHANNELS, cfg.MODEL.RESNETS.RES2_OUT_CHANNELS
    stages = []
    for index, count in enumerate(blocks):
        first_stride = 1 if index == 0 else 2
        strides = [first_stride] + [1] * (count - 1)
        stages.append(ResNet.make_stage(BasicBlock, count, stride_per_block=strides, in_channels=in_channels,
                                        out_channels=out_channels, norm=norm))
        in_channels, out_channels = out_channels, out_channels * 2
    return ResNet(
        stem, stages, out_features=cfg.MODEL.RESNETS.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT
    )


@BACKBONE_REGISTRY.register()
def build_narrow_resnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """:func:`narrow_basic_resnet` under detectron2's FPN (``MODEL.FPN.*``, P6 by max-pooling P5), as
    ``build_resnet_fpn_backbone`` builds it for a full-width ResNet."""
    return FPN(
        bottom_up=narrow_basic_resnet(cfg, input_shape),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
