"""Loss functions of RDCD and SSCD as small pure functions (formulas in each docstring; official
RDCD ``rdcd/models/moco.py`` and SSCD ``sscd/models/loss.py``).

All inputs are L2-normalised descriptors, so inner products are cosine similarities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def moco_infonce_loss(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """MoCo InfoNCE: logits_i = [q_i·k_i, q_i·Queue_1, ..., q_i·Queue_K] / T; mean_i CE(logits_i, 0).

    ``q``, ``k``: [B, D]; ``queue``: [K, D] negatives (keys of earlier batches); ``k`` gets no gradient.
    """
    positive = (q * k.detach()).sum(dim=1, keepdim=True)
    negatives = q @ queue.detach().t()
    logits = torch.cat([positive, negatives], dim=1) / temperature
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)


def hard_negative_loss(q: torch.Tensor, queue: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """RDCD's hard-negative term: -mean_i log(clamp(1 - max_k q_i·Queue_k, min=eps)).

    Pushes every compact descriptor away from its nearest negative (the raw cosine, no temperature).
    """
    nearest = (q @ queue.detach().t()).max(dim=1).values
    return -torch.log((1.0 - nearest).clamp(min=eps)).mean()


def relational_kd_loss(
    student_similarities: torch.Tensor, teacher_similarities: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Relational distillation: mean_i KL(p_t,i ‖ p_s,i) with p = softmax(similarities / T) over the queue.

    KL(p_t ‖ p_s) = Σ_j p_t,j (log p_t,j - log p_s,j); the teacher side gets no gradient.
    """
    log_p_student = F.log_softmax(student_similarities / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_similarities.detach() / temperature, dim=1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def _non_trivial_match_masks(instance_ids: torch.Tensor):
    """(positives, negatives) boolean [N, N] masks: same instance (not self) / different instance."""
    same = instance_ids[:, None] == instance_ids[None, :]
    eye = torch.eye(len(instance_ids), dtype=torch.bool, device=instance_ids.device)
    return same & ~eye, ~same


def sscd_infonce_loss(
    embeddings: torch.Tensor, instance_ids: torch.Tensor, temperature: float
) -> torch.Tensor:
    """SSCD's InfoNCE over a batch of N augmented views (views of one image share an instance id).

    For every ordered positive pair (i, p), i ≠ p:
    -log[ e^{s_ip/τ} / (e^{s_ip/τ} + Σ_{n ∉ match(i)} e^{s_in/τ}) ], summed and divided by N.
    Other positives of i are left out of the denominator.
    """
    positives, negatives = _non_trivial_match_masks(instance_ids)
    logits = embeddings @ embeddings.t() / temperature
    # log Σ_{n ∉ match(i)} exp(s_in / τ), one value per anchor
    negative_lse = torch.logsumexp(logits.masked_fill(~negatives, float("-inf")), dim=1)
    pair_logits = logits[positives]
    anchor_negative_lse = negative_lse[positives.nonzero()[:, 0]]
    loss = -(pair_logits - torch.logaddexp(pair_logits, anchor_negative_lse))
    return loss.sum() / embeddings.shape[0]


def koleo_entropy_loss(
    embeddings: torch.Tensor, instance_ids: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """SSCD's KoLeo entropy term (without λ): -mean_i log sqrt(clamp(2 - 2 max_{n ∉ match(i)} s_in, eps)).

    sqrt(2 - 2 s) is the L2 distance between unit vectors, so this spreads nearest non-matching neighbours.
    """
    _, negatives = _non_trivial_match_masks(instance_ids)
    similarities = (embeddings @ embeddings.t()).masked_fill(~negatives, float("-inf"))
    nearest = similarities.max(dim=1).values
    return -0.5 * torch.log((2.0 - 2.0 * nearest).clamp(min=eps)).mean()
