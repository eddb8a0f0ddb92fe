"""Meta-architectures, registered in detectron2's ``META_ARCH_REGISTRY`` (``MODEL.META_ARCHITECTURE``).

Both take a training batch ``{"view1": [B,3,H,W], "view2": [B,3,H,W]}`` (two augmentations of the same B
images) and return a dict of weighted losses; in eval mode they take an image tensor and return the
L2-normalised descriptors used for retrieval.

* ``RDCD``: frozen teacher + student + MoCo key encoder; L = λ_moco (L_InfoNCE + λ_hn L_HN) + λ_kd L_RSD.
  The teacher and the student see view1, the key encoder view2.
* ``SSCD``: one descriptor network trained with InfoNCE (τ) + λ KoLeo over both views (the teacher /
  baseline recipe); under DDP embeddings are all-gathered with gradients.
"""

from __future__ import annotations

import copy
import logging
from typing import Dict, Union

import torch
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from rdcd.modeling.distributed import all_gather_with_grad, concat_all_gather, shuffled_batch_forward
from rdcd.modeling.losses import hard_negative_loss, koleo_entropy_loss, moco_infonce_loss, sscd_infonce_loss
from rdcd.modeling.networks import build_network, load_network_weights
from rdcd.modeling.queue import DescriptorQueue
from rdcd.modeling.relational import build_relational_kd
from rdcd.modeling.student import Student, load_student_weights
from shared.registry import get_or_raise
from shared.weights import resolve as resolve_weights

logger = logging.getLogger(__name__)

Batch = Dict[str, torch.Tensor]


def _views(batch: Batch, device: torch.device):
    if not isinstance(batch, dict) or "view1" not in batch or "view2" not in batch:
        raise TypeError("a training batch must be a dict with 'view1' and 'view2' image tensors")
    view1, view2 = batch["view1"].to(device), batch["view2"].to(device)
    if view1.shape[0] == 0:
        raise ValueError("empty training batch")
    return view1, view2


#: students the official RDCD code starts from ImageNet weights (the others it builds without weights)
PRETRAINED_STUDENTS = {
    "fastvit_t12": "timm fastvit_t12.apple_in1k (RDCD rdcd/models/model.py:66, pretrained=True)",
}


def check_student_weights(student: str, weights: str, from_scratch: bool) -> None:
    """A student the official run starts from ImageNet weights (:data:`PRETRAINED_STUDENTS`) needs
    ``MODEL.RDCD.STUDENT_WEIGHTS`` unless ``MODEL.FROM_SCRATCH`` asks for random initialisation."""
    if student in PRETRAINED_STUDENTS and not weights and not from_scratch:
        raise ValueError(
            f"MODEL.RDCD.STUDENT {student!r} starts from {PRETRAINED_STUDENTS[student]} in the official run: "
            "set MODEL.RDCD.STUDENT_WEIGHTS to a local copy (or MODEL.FROM_SCRATCH True for random weights)")


@META_ARCH_REGISTRY.register()
class RDCD(nn.Module):
    """Relational self-supervised distillation with compact descriptors."""

    def __init__(self, cfg):
        super().__init__()
        rc = cfg.MODEL.RDCD
        self.teacher = build_network(rc.TEACHER, out_dim=rc.KD_DIM, gem_p=rc.GEM_P)
        if rc.TEACHER_WEIGHTS:
            load_network_weights(self.teacher, resolve_weights(rc.TEACHER_WEIGHTS))
        else:
            logger.warning(
                "MODEL.RDCD.TEACHER_WEIGHTS is empty: distilling from a randomly initialised teacher"
            )
        self.teacher.requires_grad_(False)
        self.teacher_bn = rc.TEACHER_BN
        self.student = Student(rc.STUDENT, rc.KD_DIM, rc.DIM, rc.GEM_P)
        check_student_weights(rc.STUDENT, rc.STUDENT_WEIGHTS, bool(cfg.MODEL.get("FROM_SCRATCH", False)))
        if rc.STUDENT_WEIGHTS:
            load_student_weights(self.student, resolve_weights(rc.STUDENT_WEIGHTS))
        self.key_encoder = copy.deepcopy(self.student).requires_grad_(False)
        self.key_queue = DescriptorQueue(rc.MOCO.QUEUE, rc.DIM)
        self.relational_kd = build_relational_kd(
            rc.LOSS.KD_MODE, rc.KD_DIM, rc.LOSS.KD_QUEUE, rc.LOSS.KD_TEMP
        )
        self.momentum = rc.MOCO.MOMENTUM
        self.moco_temperature = rc.MOCO.TEMP
        self.shuffle_bn = rc.MOCO.SHUFFLE_BN
        self.moco_weight, self.hn_weight, self.kd_weight = rc.LOSS.MOCO_W, rc.LOSS.HN_W, rc.LOSS.KD_W
        self.hn_eps = rc.LOSS.HN_EPS

    @property
    def device(self) -> torch.device:
        return self.key_queue.features.device

    def train(self, mode: bool = True) -> "RDCD":
        super().train(mode)
        # "frozen": BN running statistics (and no dropout) in training too; "batch": the teacher follows the
        # module's mode like in the official Lightning code (its weights stay frozen either way)
        if self.teacher_bn == "frozen":
            self.teacher.eval()
        return self

    @torch.no_grad()
    def _momentum_update(self) -> None:
        """θ_k ← m θ_k + (1 − m) θ_q for parameters; buffers (BN statistics) are copied."""
        for key_param, param in zip(self.key_encoder.parameters(), self.student.parameters()):
            key_param.mul_(self.momentum).add_(param.detach(), alpha=1.0 - self.momentum)
        for key_buffer, buffer in zip(self.key_encoder.buffers(), self.student.buffers()):
            key_buffer.copy_(buffer)

    def forward(self, batch: Union[Batch, torch.Tensor]):
        if not self.training:
            return self.student(batch.to(self.device))
        view1, view2 = _views(batch, self.device)
        with torch.no_grad():
            teacher = self.teacher(view1)
            self._momentum_update()
            encode_keys = lambda x: self.key_encoder.embed(x)[1]  # noqa: E731
            keys = shuffled_batch_forward(encode_keys, view2) if self.shuffle_bn else encode_keys(view2)
        feat, q = self.student.embed(view1)
        negatives = self.key_queue.features.clone()  # enqueue below modifies the buffer in place
        losses = {
            "loss_infonce": self.moco_weight * moco_infonce_loss(q, keys, negatives, self.moco_temperature),
            "loss_hard_negative": self.moco_weight
            * self.hn_weight
            * hard_negative_loss(q, negatives, self.hn_eps),
            "loss_relational_kd": self.kd_weight * self.relational_kd(feat, teacher),
        }
        self.key_queue.enqueue(keys)
        return losses


@META_ARCH_REGISTRY.register()
class SSCD(nn.Module):
    """SSCD's self-supervised descriptor learning (InfoNCE + KoLeo entropy), for teachers and baselines."""

    def __init__(self, cfg):
        super().__init__()
        sc = cfg.MODEL.SSCD
        self.network = build_network(sc.NETWORK, out_dim=sc.DIM, gem_p=sc.GEM_P)
        self.temperature = sc.INFONCE_TEMP
        self.entropy_weight = sc.ENTROPY_W

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, batch: Union[Batch, torch.Tensor]):
        if not self.training:
            return self.network(batch.to(self.device))
        view1, view2 = _views(batch, self.device)
        embeddings = self.network(torch.cat([view1, view2]))
        local = view1.shape[0]
        ids = torch.arange(local, device=self.device).repeat(2)
        embeddings, offset = all_gather_with_grad(embeddings)
        if embeddings.shape[0] != ids.shape[0]:  # gathered from several processes
            ids = concat_all_gather(ids + offset)
        return {
            "loss_infonce": sscd_infonce_loss(embeddings, ids, self.temperature),
            "loss_entropy": self.entropy_weight * koleo_entropy_loss(embeddings, ids),
        }


def build_model(cfg) -> nn.Module:
    """The meta-architecture named by ``MODEL.META_ARCHITECTURE``, moved to ``MODEL.DEVICE`` (resolved by
    :func:`shared.engine.build_cfg`)."""
    model = get_or_raise(META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE, "MODEL.META_ARCHITECTURE")(cfg)
    return model.to(torch.device(cfg.MODEL.DEVICE))
