"""The cosine (normalised) mask predictor of the official "all enhancements" IIF run.

Official: ``mask_head=dict(predictor_cfg=dict(type='NormedConv2d', tempearture=20))`` in
configs/fasa/fasa_iof_base10_r50_rfs_cos_norm_4x4_2x.py of the IIF repository (kostas1515/iif); the layer is
defined in instance_segmentation/mmdet/models/utils/normed_predictor.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling.roi_heads.mask_head import ROI_MASK_HEAD_REGISTRY, MaskRCNNConvUpsampleHead
from torch import nn

__all__ = ["NormedConv2d", "NormedMaskRCNNConvUpsampleHead"]


class NormedConv2d(nn.Conv2d):
    """Cosine convolution: at every pixel the input feature vector and every filter are L2-normalised over
    the channels, the input is multiplied by the temperature ``T``::

        y_k(p) = sum_ij < T * x(p + ij) / (|x(p + ij)| + eps), W_k[:, i, j] / (|W_k[:, i, j]| + eps) > + b_k

    For the 1x1 mask predictor this is ``T * cos(x(p), W_k) + b_k``. The official layer has no init of its
    own; mmdet's FCNMaskHead initialises ``conv_logits`` with kaiming-normal (fan_out, relu), bias 0, and so
    does this one.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, scale: float = 20.0,
                 eps: float = 1e-6, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        self.scale = float(scale)
        self.eps = eps
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        if self.bias is not None:
            nn.init.constant_(self.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / (x.norm(dim=1, keepdim=True) + self.eps) * self.scale
        weight = self.weight / (self.weight.norm(dim=1, keepdim=True) + self.eps)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


@ROI_MASK_HEAD_REGISTRY.register()
class NormedMaskRCNNConvUpsampleHead(MaskRCNNConvUpsampleHead):
    """detectron2's mask head with its final 1x1 predictor replaced by :class:`NormedConv2d`
    (``MODEL.ROI_MASK_HEAD.NAME "NormedMaskRCNNConvUpsampleHead"``, temperature
    ``MODEL.ROI_MASK_HEAD.COSINE_SCALE``)."""

    @configurable
    def __init__(self, input_shape, *, cosine_scale: float = 20.0, **kwargs):
        super().__init__(input_shape, **kwargs)
        old = self.predictor
        self.predictor = NormedConv2d(old.in_channels, old.out_channels, kernel_size=1, scale=cosine_scale)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["cosine_scale"] = cfg.MODEL.ROI_MASK_HEAD.COSINE_SCALE
        return ret
