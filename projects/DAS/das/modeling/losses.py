"""Metric losses and miners from pytorch-metric-learning, selected by name through registries.

Defaults follow the official DAS scripts (scripts/parameters.py of the official repository, on the
Revisiting-DML codebase):

* ``triplet``: ``TripletMarginLoss(margin=0.2)``
* ``contrastive``: ``ContrastiveLoss(pos_margin=0, neg_margin=1)`` on the L2 distance
* ``margin``: ``MarginLoss(margin=0.2, nu=0, beta=1.2, learn_beta=True)`` (β has its own LR, see the trainer)
* ``multi_similarity``: ``MultiSimilarityLoss(alpha=2, beta=40, base=0.5)`` with ``MultiSimilarityMiner(0.1)``
* ``lifted``: ``GeneralizedLiftedStructureLoss(neg_margin=1, pos_margin=0)`` on unnormalised L2 distances,
  + 0.005 · L2 embedding regulariser
* ``npair``: ``NPairsLoss`` on unnormalised dot products + 0.005 · L2 embedding regulariser

Miners: ``none``, ``semihard`` (``TripletMarginMiner(margin=0.2, type_of_triplets="semihard")``),
``distance_weighted`` (``DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)``), ``multi_similarity``.
"""
from __future__ import annotations

from typing import Optional

from fvcore.common.registry import Registry
from pytorch_metric_learning import distances, losses, miners, regularizers
from torch import nn

from shared.registry import get_or_raise, register_as

LOSS_REGISTRY = Registry("DAS_LOSS")
LOSS_REGISTRY.__doc__ = "Metric losses: fn(cfg) -> pytorch-metric-learning loss module."
MINER_REGISTRY = Registry("DAS_MINER")
MINER_REGISTRY.__doc__ = "Miners: fn(cfg) -> pytorch-metric-learning miner module, or None."


@LOSS_REGISTRY.register()
def triplet(cfg) -> nn.Module:
    return losses.TripletMarginLoss(margin=cfg.MODEL.LOSS.MARGIN)


@LOSS_REGISTRY.register()
def contrastive(cfg) -> nn.Module:
    return losses.ContrastiveLoss(pos_margin=cfg.MODEL.LOSS.POS_MARGIN, neg_margin=cfg.MODEL.LOSS.NEG_MARGIN)


@LOSS_REGISTRY.register()
def margin(cfg) -> nn.Module:
    c = cfg.MODEL.LOSS
    return losses.MarginLoss(margin=c.MARGIN, nu=c.MARGIN_NU, beta=c.MARGIN_BETA, learn_beta=c.LEARN_BETA)


@LOSS_REGISTRY.register()
def multi_similarity(cfg) -> nn.Module:
    c = cfg.MODEL.LOSS
    return losses.MultiSimilarityLoss(alpha=c.MS_ALPHA, beta=c.MS_BETA, base=c.MS_BASE)


@LOSS_REGISTRY.register()
def lifted(cfg) -> nn.Module:
    c = cfg.MODEL.LOSS
    return losses.GeneralizedLiftedStructureLoss(
        neg_margin=c.NEG_MARGIN,
        pos_margin=c.POS_MARGIN,
        distance=distances.LpDistance(normalize_embeddings=False),
        embedding_regularizer=regularizers.LpRegularizer(),
        embedding_reg_weight=c.L2_REG_WEIGHT,
    )


@LOSS_REGISTRY.register()
def npair(cfg) -> nn.Module:
    return losses.NPairsLoss(
        distance=distances.DotProductSimilarity(normalize_embeddings=False),
        embedding_regularizer=regularizers.LpRegularizer(), embedding_reg_weight=cfg.MODEL.LOSS.L2_REG_WEIGHT,
    )


@MINER_REGISTRY.register()
def none(cfg) -> Optional[nn.Module]:
    return None


@MINER_REGISTRY.register()
def semihard(cfg) -> nn.Module:
    return miners.TripletMarginMiner(margin=cfg.MODEL.MINER.MARGIN, type_of_triplets="semihard")


@MINER_REGISTRY.register()
def distance_weighted(cfg) -> nn.Module:
    c = cfg.MODEL.MINER
    return miners.DistanceWeightedMiner(cutoff=c.CUTOFF, nonzero_loss_cutoff=c.NONZERO_LOSS_CUTOFF)


@register_as(MINER_REGISTRY, "multi_similarity")
def multi_similarity_miner(cfg) -> nn.Module:
    return miners.MultiSimilarityMiner(epsilon=cfg.MODEL.MINER.MS_EPSILON)


def build_loss(cfg) -> nn.Module:
    """The loss named by ``MODEL.LOSS.NAME``."""
    return get_or_raise(LOSS_REGISTRY, cfg.MODEL.LOSS.NAME, "MODEL.LOSS.NAME")(cfg)


def build_miner(cfg) -> Optional[nn.Module]:
    """The miner named by ``MODEL.MINER.NAME``, or None for ``"none"``."""
    return get_or_raise(MINER_REGISTRY, cfg.MODEL.MINER.NAME, "MODEL.MINER.NAME")(cfg)
