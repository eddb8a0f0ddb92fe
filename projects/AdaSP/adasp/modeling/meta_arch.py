"""FastReID meta-architectures that add the sparse pairwise (AdaSP) loss to an unmodified fastreid.

fastreid 1.4.0 has no loss registry: ``Baseline.losses`` / ``MGN.losses`` test ``MODEL.LOSSES.NAME`` with
an if-chain and silently ignore names they do not know. The subclasses here call the parent's ``losses``,
add ``loss_adasp*`` when ``"AdaSPLoss"`` is listed, and refuse (at build time) any name that neither they
nor fastreid handle, so a typo such as ``"AdaSpLoss"`` fails loudly instead of training without it.

Select them with ``MODEL.META_ARCHITECTURE: "AdaSPBaseline"`` or ``"AdaSPMGN"`` (registered in fastreid's
``META_ARCH_REGISTRY`` on ``import adasp``).

``MODEL.HEADS.CLS_ENABLE False`` (a key of the official AdaSP fork, used by its VeRi / VehicleID metric-only
presets) gives ``AdaSPBaseline`` a head without identity classifier: :class:`FeatureOnlyEmbeddingHead`.
"""
from __future__ import annotations

from typing import Dict, Iterable

import torch
from fastreid.modeling.heads import EmbeddingHead
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY, MGN, Baseline

from adasp.modeling.loss import SparsePairLoss
from shared.engine.gather import gather_no_grad, gather_rows

__all__ = ["ADASP_LOSS_NAME", "FASTREID_LOSS_NAMES", "AdaSPBaseline", "AdaSPMGN", "FeatureOnlyEmbeddingHead",
           "check_loss_names"]

ADASP_LOSS_NAME = "AdaSPLoss"
# Names that fastreid's Baseline.losses / MGN.losses act on (fastreid 1.4.0, meta_arch/baseline.py, mgn.py).
FASTREID_LOSS_NAMES = ("CrossEntropyLoss", "TripletLoss", "CircleLoss", "Cosface")
# MGN weighs each of its five metric-loss features by 0.2 (its triplet weights; the official AdaSP MGN too).
MGN_METRIC_FEATURE_WEIGHT = 0.2


def check_loss_names(loss_names: Iterable[str], supported: Iterable[str]) -> None:
    """Raise ``ValueError`` listing every name of ``MODEL.LOSSES.NAME`` that no code path handles."""
    names = [loss_names] if isinstance(loss_names, str) else list(loss_names)
    supported = tuple(supported)
    unknown = [name for name in names if name not in supported]
    if unknown:
        raise ValueError(f"MODEL.LOSSES.NAME contains unknown loss name(s) {unknown}; "
                         f"supported: {list(supported)} (names are case-sensitive)")
    if not names:
        raise ValueError("MODEL.LOSSES.NAME is empty: the model would train without any loss")


def gather_outputs(outputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Every tensor of a head's training outputs gathered over the processes (rows in rank order, gradient
    to the own rows); the identity in a single process."""
    return {key: gather_rows(value) if torch.is_tensor(value) else value for key, value in outputs.items()}


def _adasp_loss_kwargs(cfg) -> Dict[str, object]:
    adasp_cfg = cfg.MODEL.LOSSES.ADASP
    return {"scale": float(adasp_cfg.SCALE), "temp": float(adasp_cfg.TEMP), "type": str(adasp_cfg.TYPE)}


class _SparsePairLossMixin:
    """Shared by both architectures (listed before the fastreid class): adds ``loss_kwargs['adasp']`` in
    ``from_config``, then validates the loss names and builds the loss module after the parent's
    ``__init__``."""

    loss_kwargs: dict

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        check_loss_names(self.loss_kwargs["loss_names"], FASTREID_LOSS_NAMES + (ADASP_LOSS_NAME,))
        self.uses_adasp = ADASP_LOSS_NAME in self.loss_kwargs["loss_names"]
        adasp_kwargs = self.loss_kwargs.get("adasp")
        if self.uses_adasp and adasp_kwargs is None:
            raise KeyError("loss_kwargs lacks 'adasp' (build the model from a config that went through "
                           "add_adasp_config)")
        self.global_batch = bool(self.loss_kwargs.get("global_batch", False))
        if adasp_kwargs is not None:
            self.adasp_scale = adasp_kwargs["scale"]
            self.sparse_pair_loss = SparsePairLoss(temperature=adasp_kwargs["temp"],
                                                   loss_type=adasp_kwargs["type"])

    @classmethod
    def from_config(cls, cfg):
        kwargs = super().from_config(cfg)
        kwargs["loss_kwargs"]["adasp"] = _adasp_loss_kwargs(cfg)
        kwargs["loss_kwargs"]["global_batch"] = bool(cfg.MODEL.LOSSES.GLOBAL_BATCH)
        return kwargs


class FeatureOnlyEmbeddingHead(EmbeddingHead):
    """fastreid's ``EmbeddingHead`` without the identity classifier (``MODEL.HEADS.CLS_ENABLE False``): the
    same pooling and BNNeck; in training it returns only ``{"features": ...}`` (``NECK_FEAT`` before/after),
    as the official fork's head does with ``CLS_ENABLE False``, so metric-only checkpoints carry no unused
    classifier matrix."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.weight  # the [num_classes, dim] classifier
        del self.cls_layer

    def forward(self, features, targets=None):
        pool_feat = self.pool_layer(features)
        neck_feat = self.bottleneck(pool_feat)[..., 0, 0]
        if not self.training:
            return neck_feat
        if self.neck_feat == "before":
            return {"features": pool_feat[..., 0, 0]}
        if self.neck_feat == "after":
            return {"features": neck_feat}
        raise KeyError(f"{self.neck_feat} is invalid for MODEL.HEADS.NECK_FEAT")


@META_ARCH_REGISTRY.register()
class AdaSPBaseline(_SparsePairLossMixin, Baseline):
    """fastreid ``Baseline`` + ``loss_adasp = SCALE * SparsePair(outputs["features"], labels)``.

    ``outputs["features"]`` is the pooled feature with ``HEADS.NECK_FEAT "before"`` and the BNNeck output with
    ``"after"``. Metric-only training keeps the classifier (fastreid always builds it and logs its accuracy)
    and simply leaves ``CrossEntropyLoss`` out of ``MODEL.LOSSES.NAME``, unless ``MODEL.HEADS.CLS_ENABLE`` is
    False: then the head has no classifier (:class:`FeatureOnlyEmbeddingHead`) and ``AdaSPLoss`` must be the
    only loss (checked when the config is built).
    """

    @classmethod
    def from_config(cls, cfg):
        kwargs = super().from_config(cfg)
        if not cfg.MODEL.HEADS.CLS_ENABLE:
            kwargs["heads"] = FeatureOnlyEmbeddingHead(cfg)
        return kwargs

    def losses(self, outputs, gt_labels):
        if self.global_batch:  # MODEL.LOSSES.GLOBAL_BATCH: every loss on the batch of all processes
            outputs, gt_labels = gather_outputs(outputs), gather_no_grad(gt_labels)
        if isinstance(self.heads, FeatureOnlyEmbeddingHead):
            loss_dict = {}  # no logits: fastreid's losses (and its accuracy log) need the classifier
        else:
            loss_dict = super().losses(outputs, gt_labels)
        if self.uses_adasp:
            loss_dict["loss_adasp"] = self.sparse_pair_loss(outputs["features"], gt_labels) * self.adasp_scale
        return loss_dict


@META_ARCH_REGISTRY.register()
class AdaSPMGN(_SparsePairLossMixin, MGN):
    """fastreid ``MGN`` + the sparse pairwise loss on its five pooled features (b1, b2, b3, cat(b21, b22),
    cat(b31, b32, b33)), each weighted ``SCALE * 0.2``; CE stays on the 8 branch logits (x 0.125 each)."""

    def losses(self, b1_outputs, b2_outputs, b21_outputs, b22_outputs,
               b3_outputs, b31_outputs, b32_outputs, b33_outputs, gt_labels):
        if self.global_batch:  # MODEL.LOSSES.GLOBAL_BATCH: every loss on the batch of all processes
            b1_outputs, b2_outputs, b21_outputs, b22_outputs, b3_outputs, b31_outputs, b32_outputs, \
                b33_outputs = (gather_outputs(o) for o in (b1_outputs, b2_outputs, b21_outputs, b22_outputs,
                                                           b3_outputs, b31_outputs, b32_outputs, b33_outputs))
            gt_labels = gather_no_grad(gt_labels)
        loss_dict = super().losses(b1_outputs, b2_outputs, b21_outputs, b22_outputs,
                                   b3_outputs, b31_outputs, b32_outputs, b33_outputs, gt_labels)
        if self.uses_adasp:
            metric_features = {
                "b1": b1_outputs["features"],
                "b2": b2_outputs["features"],
                "b3": b3_outputs["features"],
                "b22": torch.cat((b21_outputs["features"], b22_outputs["features"]), dim=1),
                "b33": torch.cat((b31_outputs["features"], b32_outputs["features"], b33_outputs["features"]),
                                 dim=1),
            }
            weight = self.adasp_scale * MGN_METRIC_FEATURE_WEIGHT
            for branch, features in metric_features.items():
                loss_dict[f"loss_adasp_{branch}"] = self.sparse_pair_loss(features, gt_labels) * weight
        return loss_dict
