"""The RDCD student, wired as the official ``get_encoder`` (RDCD ``rdcd/models/model.py``):

    raw = backbone(x)                     # [B, KD_DIM], not normalised
    feat = L2(raw)                        # the distillation space (compared with the teacher)
    q = L2(projector(raw))                # the compact descriptor [B, DIM]

The projector sees the *raw* backbone output, not ``feat``: with the projector's bias the two wirings give
different descriptors, so only this one reproduces the released students. Module names are the official ones
(``backbone.*``, ``projector.*``; ``projector.0.*`` for FastViT), so :func:`load_student_weights` loads an
official checkpoint's ``model.encoder_q.*`` tensors strictly.
"""

from __future__ import annotations

import logging
from typing import Dict, Mapping, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from rdcd.modeling.networks import (
    SEQUENTIAL_PROJECTOR,
    L2Norm,
    build_student_backbone,
    load_state_into,
    read_state_dict,
)

logger = logging.getLogger(__name__)


class Student(nn.Module):
    """``backbone`` (raw KD_DIM output) + ``projector`` (KD_DIM -> DIM); see the module docstring for the
    wiring. In eval mode ``forward`` returns q only."""

    def __init__(self, backbone: str, kd_dim: int, dim: int, gem_p: float = 3.0):
        super().__init__()
        self.backbone = build_student_backbone(backbone, kd_dim, gem_p)
        linear = nn.Linear(kd_dim, dim)
        self.projector = nn.Sequential(linear, L2Norm()) if backbone in SEQUENTIAL_PROJECTOR else linear

    def embed(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(feat [B, KD_DIM], q [B, DIM]): feat = L2(raw), q = L2(projector(raw))."""
        raw = self.backbone(images)
        return F.normalize(raw, dim=1), F.normalize(self.projector(raw), dim=1)

    def forward(self, images: torch.Tensor):
        feat, q = self.embed(images)
        return (feat, q) if self.training else q


#: where a whole student sits in the checkpoints we know, most specific first: the official Lightning
#: checkpoint (``RDCD.model`` is the MoCo wrapper, its query encoder ``encoder_q``), our trainer's checkpoints
#: (``student``), or a bare student state dict
_STUDENT_PREFIXES = ("model.encoder_q.", "encoder_q.", "student.", "")


def _student_prefix(state: Mapping[str, torch.Tensor]) -> str:
    for prefix in _STUDENT_PREFIXES:
        if any(k.startswith(prefix) and k[len(prefix) :].startswith("projector.") for k in state):
            return prefix
    return "-"  # no student in the file


def official_rdcd_to_ours(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename an official RDCD Lightning ``state_dict`` to our ``RDCD`` meta-architecture's keys.

    ``model.encoder_q.*`` -> ``student.*``, ``model.encoder_k.*`` -> ``key_encoder.*``, ``model.queue`` [DIM,
    K]
    -> ``key_queue.features`` [K, DIM], ``model.queue_ptr`` [1] -> ``key_queue.pointer`` [],
    ``teacher.backbone.*``
    -> ``teacher.*`` (torchvision ResNet names). The relational module's queue (``kld.*``, the never-published
    ``Pbank``) has no known layout and is left out, as is anything else.
    """
    out: Dict[str, torch.Tensor] = {}
    renames = (
        ("model.encoder_q.", "student."),
        ("model.encoder_k.", "key_encoder."),
        ("teacher.backbone.", "teacher."),
    )
    for key, value in state.items():
        for old, new in renames:
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            if key == "model.queue":
                out["key_queue.features"] = value.t().contiguous()
            elif key == "model.queue_ptr":
                out["key_queue.pointer"] = value.reshape(())
    return out


def is_official_rdcd_state(state: Mapping[str, torch.Tensor]) -> bool:
    """True for the official RDCD Lightning layout (``model.encoder_q.*`` keys)."""
    return any(k.startswith("model.encoder_q.") for k in state)


def load_student_weights(student: Student, path: str) -> None:
    """Load a local weights file into ``student`` (read with ``weights_only=True``).

    * a whole student -- an official RDCD checkpoint (``model.encoder_q.*``), a checkpoint of our trainer
      (``student.*``) or a bare student state dict (``backbone.*``, ``projector.*``): loaded strictly, every
      key must match;
    * otherwise ImageNet backbone weights (torchvision ``efficientnet_b0`` / ``mobilenet_v3_large`` / ResNet,
    or
      timm ``fastvit_t12``): loaded into the backbone with the 1000-class classifier skipped (our KD_DIM head
      is
      kept).
    """
    state = read_state_dict(path)
    prefix = _student_prefix(state)
    if prefix != "-":
        load_state_into(student, state, path, prefix=prefix)
        return
    load_state_into(student.backbone, state, path, drop_head=True)
