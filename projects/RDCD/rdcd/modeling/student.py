"""The RDCD student: descriptor network -> distillation embedding (KD_DIM) -> projector -> compact q (DIM)."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from rdcd.modeling.networks import build_network, load_state_into, read_state_dict


class Student(nn.Module):
    """``feat`` = L2-normalised ``KD_DIM`` output of the trunk head (the distillation space);
    ``q`` = L2(Linear(feat)) of ``dim`` (the compact descriptor). In eval mode ``forward`` returns q only."""

    def __init__(self, network: str, kd_dim: int, dim: int, gem_p: float = 3.0, dropout: float = 0.2):
        super().__init__()
        self.network = build_network(network, out_dim=kd_dim, gem_p=gem_p, dropout=dropout)
        self.projector = nn.Linear(kd_dim, dim)

    def embed(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(feat [B, KD_DIM], q [B, DIM]), both L2-normalised."""
        feat = self.network(images)
        return feat, F.normalize(self.projector(feat), dim=1)

    def forward(self, images: torch.Tensor):
        feat, q = self.embed(images)
        return (feat, q) if self.training else q


def load_student_weights(student: Student, path: str) -> None:
    """Load a local student file into ``student``.

    * a whole student -- any file with a ``...projector.weight`` key, e.g. a checkpoint of our RDCD trainer
      (``student.network.*``, ``student.projector.*``): everything under that prefix is loaded;
    * otherwise ImageNet trunk weights (torchvision ``efficientnet_b0`` layout, or a timm trunk for the timm
      students): loaded into the descriptor network, a 1000-class classifier skipped (our head is kept).
    """
    state = read_state_dict(path)
    for key in state:
        if key.endswith("projector.weight"):
            load_state_into(student, state, path, prefix=key[: -len("projector.weight")])
            return
    target = getattr(student.network, "trunk", student.network)  # timm students keep the trunk apart
    load_state_into(target, state, path, drop_head=True)
