"""Sparse pairwise losses: SP-H, SP-LH and AdaSP (Zhou et al., CVPR 2023), computed from label masks.

Notation (``S = normalize(F) @ normalize(F).T``, temperature ``tau``, ``A`` the index set of class ``a``):

* negative similarity of the ordered class pair (a, b), a soft maximum over every cross pair::

      s_neg[a, b] = tau * log sum_{i in A, j in B} exp(S_ij / tau)

* per-anchor soft minimum over its own class (the self-pair i = j is included, as in the official code)::

      h_i = -tau * log sum_{j in A} exp(-S_ij / tau)

* hardest positive ``s_H[a] = -tau * log sum_{i in A} exp(-h_i / tau)`` (= soft min over all pairs of A);
  least-hard positive ``s_LH[a] = tau * log sum_{i in A} exp(h_i / tau)`` (~ max_i min_j S_ij);
* AdaSP weight ``w_a = stopgrad(2 s_H s_LH / (s_H + s_LH + eps))``, ``w_a = 0`` when ``s_H < 0``, and
  positive ``s_ada = w s_H + (1 - w) s_LH``;
* loss ``L = mean_a log(1 + sum_{b != a} exp((s_neg[a, b] - s_pos[a]) / tau))``.

Unlike the official implementation (Kronecker-product masks over contiguous, equal-size identity blocks,
hard-coded ``.cuda()``), everything here is built from the label vector, so any batch order and any number
of images per identity work, on any device. Every log-sum-exp is shifted by its maximum, so no
``exp`` overflows even at ``tau = 0.04`` with similarities near 1 (``exp(25)``) or much smaller ``tau``.

Degenerate batches (documented behaviour, each covered by a test):

* a class with a single image: its only pair is the self-pair, so ``s_H = s_LH = 1`` (logged once);
* a batch in which *every* identity has a single image (``DATALOADER.NUM_INSTANCE 1``, or a sampler that does
  not draw P identities x K images): ``ValueError`` -- there is no positive pair at all, every positive is the
  self-pair (= 1) and the loss falls to ~1e-8 without learning anything;
* a batch with a single identity: there are no negatives, the loss is exactly 0 with zero gradients
  (logged once) -- the batch carries no pairwise information;
* an empty batch, mismatched shapes or non-finite features raise ``ValueError`` / ``FloatingPointError``.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from shared.registry import get_or_raise

__all__ = [
    "POSITIVE_RULES",
    "adaptive_weight",
    "class_pair_similarities",
    "sparse_pair_loss",
    "SparsePairLoss",
]

logger = logging.getLogger(__name__)

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def _segment_logsumexp(values: Tensor, membership: Tensor) -> Tensor:
    """``out[c] = log sum_{i: membership[c, i]} exp(values[i])`` for a boolean ``membership`` [C, N]."""
    masked = torch.where(membership, values.unsqueeze(0), values.new_tensor(float("-inf")))
    return torch.logsumexp(masked, dim=1)


def class_pair_similarities(features: Tensor, labels: Tensor,
                            temperature: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Soft class-level similarities of a batch.

    Returns ``(s_neg, s_h, s_lh)``: ``s_neg`` [C, C] is the soft maximum (LSE at ``temperature``) of
    ``S_ij`` over ``i`` in class ``a`` and ``j`` in class ``b`` (its diagonal is unused), ``s_h`` [C] the soft
    minimum over all intra-class pairs and ``s_lh`` [C] the soft max over anchors of the per-anchor soft
    minimum. Classes are ordered like ``torch.unique(labels)``.
    """
    tau = float(temperature)
    compute_dtype = torch.promote_types(features.dtype, torch.float32)  # fp16/bf16 -> fp32, fp64 stays
    feats = F.normalize(features.to(compute_dtype), dim=1)
    sim = feats @ feats.t()  # [B, B]
    _, class_index = torch.unique(labels, return_inverse=True)
    num_classes = int(class_index.max().item()) + 1
    membership = F.one_hot(class_index, num_classes).t().bool()  # [C, B]
    same_class = class_index.unsqueeze(0) == class_index.unsqueeze(1)  # [B, B]

    # Negatives: shift every (class a, class b) block by its own maximum, so that each block sum holds
    # a term exp(0) = 1 and neither overflows nor underflows to log(0); the shift is a constant (no grad).
    with torch.no_grad():
        batch = sim.shape[0]
        row_block_max = sim.new_full((batch, num_classes), float("-inf")).scatter_reduce(
            1, class_index.unsqueeze(0).expand(batch, batch), sim, reduce="amax")  # [B, C]
        block_max = sim.new_full((num_classes, num_classes), float("-inf")).scatter_reduce(
            0, class_index.unsqueeze(1).expand(batch, num_classes), row_block_max, reduce="amax")  # [C, C]
        shift = block_max[class_index][:, class_index]  # [B, B]
    one_hot = membership.to(sim.dtype)
    block_sums = one_hot @ torch.exp((sim - shift) / tau) @ one_hot.t()  # [C, C], every entry >= 1
    s_neg = block_max + tau * torch.log(block_sums)

    # Positives: per-anchor soft minimum over its own class, then soft min / soft max over the anchors.
    neg_sim_scaled = torch.where(same_class, -sim / tau, sim.new_tensor(float("-inf")))
    anchor_soft_min = -tau * torch.logsumexp(neg_sim_scaled, dim=1)  # h_i, [B]
    s_h = -tau * _segment_logsumexp(-anchor_soft_min / tau, membership)
    s_lh = tau * _segment_logsumexp(anchor_soft_min / tau, membership)
    return s_neg, s_h, s_lh


def adaptive_weight(s_h: Tensor, s_lh: Tensor, eps: float = 1e-12) -> Tensor:
    """AdaSP mixing weight ``w = 2 s_H s_LH / (s_H + s_LH + eps)`` (harmonic mean), 0 where ``s_H < 0``;
    detached from the graph."""
    s_h, s_lh = s_h.detach(), s_lh.detach()
    harmonic = 2.0 * s_h * s_lh / (s_h + s_lh + eps)
    return torch.where(s_h < 0, torch.zeros_like(harmonic), harmonic)


def sp_h(s_h: Tensor, s_lh: Tensor, eps: float) -> Tensor:
    """SP-H: ``s_pos = s_H``."""
    return s_h


def sp_lh(s_h: Tensor, s_lh: Tensor, eps: float) -> Tensor:
    """SP-LH: ``s_pos = s_LH``."""
    return s_lh


def adasp(s_h: Tensor, s_lh: Tensor, eps: float) -> Tensor:
    """AdaSP: ``s_pos = w s_H + (1 - w) s_LH`` with the detached weight of :func:`adaptive_weight`."""
    weight = adaptive_weight(s_h, s_lh, eps)
    return weight * s_h + (1.0 - weight) * s_lh


#: ``MODEL.LOSSES.ADASP.TYPE`` -> how a class's single positive similarity is chosen; each rule is called as
#: ``rule(s_h, s_lh, eps)`` with the per-class hardest / least-hard positive similarities (official spellings,
#: AdaSP repository, fastreid/modeling/losses/adasp_loss.py).
POSITIVE_RULES: Dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {"sp-h": sp_h, "sp-lh": sp_lh,
                                                                       "adasp": adasp}


def positive_rule(loss_type: str) -> Callable[[Tensor, Tensor, float], Tensor]:
    """The positive rule for ``loss_type`` (case-insensitive); an unknown type is a ``KeyError`` naming
    ``MODEL.LOSSES.ADASP.TYPE`` and the known types."""
    return get_or_raise(POSITIVE_RULES, str(loss_type).lower(), "MODEL.LOSSES.ADASP.TYPE")


def _check_inputs(features: Tensor, labels: Tensor, temperature: float) -> None:
    if features.dim() != 2:
        raise ValueError(f"features must be [batch, dim], got shape {tuple(features.shape)}")
    if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"labels must be [batch] matching features {tuple(features.shape)}, got {tuple(labels.shape)}")
    if features.shape[0] == 0:
        raise ValueError("sparse pair loss on an empty batch")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not bool(torch.isfinite(features.detach()).all()):
        bad = int((~torch.isfinite(features.detach())).any(dim=1).sum())
        raise FloatingPointError(
            f"sparse pair loss received non-finite features ({bad}/{features.shape[0]} rows hold NaN/Inf); "
            "the network diverged before the loss (lower SOLVER.BASE_LR or check the input data)")


def sparse_pair_loss(features: Tensor, labels: Tensor, temperature: float = 0.04,
                     loss_type: str = "adasp", eps: float = 1e-12) -> Tensor:
    """Sparse pairwise loss of a labelled batch (see the module docstring for the formulas).

    ``loss = mean_a [ logsumexp([s_pos[a], s_neg[a, b != a]] / tau) - s_pos[a] / tau ]``, i.e. a softmax
    cross-entropy per class whose target logit is the class's positive similarity.

    Args:
        features: [B, D] embeddings (normalised inside).
        labels: [B] integer identity labels, in any order, any number of images per identity.
        temperature: ``tau``.
        loss_type: ``"adasp"``, ``"sp-h"`` or ``"sp-lh"``.
        eps: added to the denominator of the AdaSP weight.
    """
    _check_inputs(features, labels, temperature)
    rule = positive_rule(loss_type)
    with torch.autocast(device_type=features.device.type, enabled=False):
        s_neg, s_h, s_lh = class_pair_similarities(features, labels, temperature)
        num_classes = s_h.shape[0]
        if num_classes == 1:
            _warn_once("single_identity", "sparse pair loss: the batch holds a single identity, so there are "
                                          "no negative pairs; the loss is 0 for this batch")
            return (s_h * 0.0).sum()
        counts = torch.bincount(torch.unique(labels, return_inverse=True)[1])
        if bool((counts == 1).all()):
            raise ValueError(
                f"sparse pair loss: each of the {num_classes} identities of the batch has a single image, so "
                "there is no positive pair (every positive would be the self-pair and the loss ~0 without "
                "learning anything); sample P identities x K >= 2 images (DATALOADER.SAMPLER_TRAIN an "
                "identity sampler, DATALOADER.NUM_INSTANCE >= 2)")
        if bool((counts == 1).any()):
            _warn_once("singleton_class", "sparse pair loss: some identities have one image in the batch; "
                                          "their positive similarity is the self-pair (= 1)")
        s_pos = rule(s_h, s_lh, eps)
        diagonal = torch.eye(num_classes, dtype=torch.bool, device=s_neg.device)
        logits = torch.where(diagonal, s_pos.unsqueeze(1).expand_as(s_neg), s_neg) / float(temperature)
        target = torch.arange(num_classes, device=logits.device)
        loss = F.cross_entropy(logits, target)
    if not bool(torch.isfinite(loss.detach())):
        raise FloatingPointError(f"sparse pair loss is not finite ({loss.item()}) with tau={temperature}, "
                                 f"type={loss_type}, batch={features.shape[0]}, classes={num_classes}")
    return loss


class SparsePairLoss(torch.nn.Module):
    """Module wrapper of :func:`sparse_pair_loss` with fixed ``temperature`` and ``loss_type``."""

    def __init__(self, temperature: float = 0.04, loss_type: str = "adasp", eps: float = 1e-12):
        super().__init__()
        positive_rule(loss_type)  # fail at construction on an unknown type
        self.temperature = float(temperature)
        self.loss_type = loss_type.lower()
        self.eps = eps

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        return sparse_pair_loss(features, labels, self.temperature, self.loss_type, self.eps)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, loss_type={self.loss_type!r}"
