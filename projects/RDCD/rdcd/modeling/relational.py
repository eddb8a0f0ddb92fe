"""Relational self-supervised distillation (RSD) modules, registered by ``MODEL.RDCD.LOSS.KD_MODE``.

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
from fvcore.common.registry import Registry
from torch import nn

from rdcd.modeling.losses import relational_kd_loss
from rdcd.modeling.queue import DescriptorQueue

RELATIONAL_KD_REGISTRY = Registry("RDCD_RELATIONAL_KD")
RELATIONAL_KD_REGISTRY.__doc__ = "Relational distillation variants: cls(dim, queue_size, temperature)."


class OneQueueRelationalKD(nn.Module):
    """CompRess-1q: student and teacher similarity distributions over one queue of teacher embeddings."""

    def __init__(self, dim: int, queue_size: int, temperature: float):
        super().__init__()
        self.temperature = float(temperature)
        self.teacher_queue = DescriptorQueue(queue_size, dim)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(
                f"student distillation embedding is {student.shape[1]}-d but the teacher's is {teacher.shape[1]}-d; "
                "set MODEL.RDCD.KD_DIM to the teacher dimension"
            )
        bank = self.teacher_queue.features.clone()  # enqueue below modifies the buffer in place
        loss = relational_kd_loss(student @ bank.t(), teacher @ bank.t(), self.temperature)
        self.teacher_queue.enqueue(teacher)
        return loss


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
            student @ self.student_queue.features.clone().t(), teacher @ self.teacher_queue.features.t(), self.temperature
        )
        self.teacher_queue.enqueue(teacher)
        self.student_queue.enqueue(student)
        return loss


# registered under the config names (fvcore registers classes by __name__ otherwise)
RELATIONAL_KD_REGISTRY._do_register("one_queue", OneQueueRelationalKD)
RELATIONAL_KD_REGISTRY._do_register("two_queue", TwoQueueRelationalKD)


def build_relational_kd(mode: str, dim: int, queue_size: int, temperature: float) -> nn.Module:
    if mode not in RELATIONAL_KD_REGISTRY:
        raise KeyError(f"unknown MODEL.RDCD.LOSS.KD_MODE {mode!r}; choose one of {sorted(n for n, _ in RELATIONAL_KD_REGISTRY)}")
    return RELATIONAL_KD_REGISTRY.get(mode)(dim, queue_size, temperature)
