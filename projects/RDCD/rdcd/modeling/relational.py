"""Relational self-supervised distillation (RSD) modules, chosen by ``MODEL.RDCD.LOSS.KD_MODE``.

The official ``Pbank(teacher_feats_dim=512, queue_size=65536, T=0.04)`` module was never committed;
its signature matches CompRess (Abbasi Koohpayegani et al., NeurIPS 2020), which we implement:

* ``one_queue`` (default, CompRess-1q): one queue Q_t of teacher embeddings;
  p_t = softmax(t · Q_tᵀ / T), p_s = softmax(s · Q_tᵀ / T), loss = mean_i KL(p_t ‖ p_s).
  The student's 512-d distillation embedding s lives in the teacher's space.
* ``two_queue`` (CompRess-2q): the student is compared with a queue Q_s of its *own* past embeddings
  (same samples as Q_t, same order): p_s = softmax(s · Q_sᵀ / T).

Order of operations in both: similarities first, then enqueue the current batch.
"""

from __future__ import annotations

import torch
from torch import nn

from rdcd.modeling.losses import relational_kd_loss
from rdcd.modeling.queue import DescriptorQueue
from shared.registry import get_or_raise, register_as

#: MODEL.RDCD.LOSS.KD_MODE -> cls(dim, queue_size, temperature)
RELATIONAL_KD_MODES = {}


@register_as(RELATIONAL_KD_MODES, "one_queue")
class OneQueueRelationalKD(nn.Module):
    """CompRess-1q: student and teacher similarity distributions over one queue of teacher embeddings."""

    def __init__(self, dim: int, queue_size: int, temperature: float):
        super().__init__()
        self.temperature = float(temperature)
        self.teacher_queue = DescriptorQueue(queue_size, dim)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(
                f"student distillation embedding is {student.shape[1]}-d but the teacher's is "
                f"{teacher.shape[1]}-d; "
                "set MODEL.RDCD.KD_DIM to the teacher dimension"
            )
        bank = self.teacher_queue.features.clone()  # enqueue below modifies the buffer in place
        loss = relational_kd_loss(student @ bank.t(), teacher @ bank.t(), self.temperature)
        self.teacher_queue.enqueue(teacher)
        return loss


@register_as(RELATIONAL_KD_MODES, "two_queue")
class TwoQueueRelationalKD(nn.Module):
    """CompRess-2q: the student's similarities are taken against a queue of its own past embeddings."""

    def __init__(self, dim: int, queue_size: int, temperature: float):
        super().__init__()
        self.temperature = float(temperature)
        self.teacher_queue = DescriptorQueue(queue_size, dim)
        self.student_queue = DescriptorQueue(queue_size, dim)
        self.student_queue.features.copy_(self.teacher_queue.features)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        loss = relational_kd_loss(
            student @ self.student_queue.features.clone().t(),
            teacher @ self.teacher_queue.features.t(),
            self.temperature,
        )
        self.teacher_queue.enqueue(teacher)
        self.student_queue.enqueue(student)
        return loss


def build_relational_kd(mode: str, dim: int, queue_size: int, temperature: float) -> nn.Module:
    """The relational loss module of ``MODEL.RDCD.LOSS.KD_MODE``; unknown modes raise ``KeyError``."""
    return get_or_raise(RELATIONAL_KD_MODES, mode, "MODEL.RDCD.LOSS.KD_MODE")(dim, queue_size, temperature)
