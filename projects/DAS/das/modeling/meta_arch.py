"""The embedding network (backbone → global pooling → linear → optional L2) and the DAS meta-architecture.

``DASEmbeddingModel`` is registered in detectron2's ``META_ARCH_REGISTRY`` (``MODEL.META_ARCHITECTURE``). In
training its ``forward(batch)`` returns the metric loss of the (DAS-enlarged) batch; in eval mode it returns
the embeddings.

Distributed training: each process embeds its share of the global batch; the shares are all-gathered (with a
backward that sums every process's gradient for its own rows) and every process runs the DAS producer, the
miner and the loss on the whole global batch, as one process would. DDP then averages the identical
gradients, so N processes compute the single-process loss and gradient, and the DAS state (frequency matrix,
banks) stays identical on every process.
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import timm
import torch
import torch.nn.functional as F
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from torch import nn

from das.modeling.bninception import build_bninception
from das.modeling.losses import build_loss, build_miner
from das.modeling.producer import DASEmbeddingProducer, build_das_producer
from shared.engine.gather import gather_no_grad, gather_rows
from shared.registry import get_or_raise


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """GAP: mean over the spatial positions, [B, C, H, W] → [B, C]."""
    return x.mean(dim=(2, 3))


def global_avg_max_pool(x: torch.Tensor) -> torch.Tensor:
    """GAP + GMP summed (the "double" pooling of the Revisiting-DML ResNet), [B, C, H, W] → [B, C]."""
    return x.mean(dim=(2, 3)) + x.amax(dim=(2, 3))


POOLINGS = {"avg": global_avg_pool, "avg+max": global_avg_max_pool}


#: backbones built here rather than by timm (name -> builder(weights))
LOCAL_BACKBONES = {"bninception": build_bninception}


def build_backbone(name: str, weights: str = "") -> nn.Module:
    """A feature extractor without classifier or pooling (``forward_features``, ``num_features``): one of
    :data:`LOCAL_BACKBONES` or a timm model, optionally loaded from a local weight file."""
    if name in LOCAL_BACKBONES:
        return LOCAL_BACKBONES[name](weights)
    if weights and not os.path.isfile(weights):
        raise FileNotFoundError(f"MODEL.EMBEDDING.BACKBONE_WEIGHTS={weights!r} does not exist")
    kwargs = dict(num_classes=0, global_pool="")
    if weights:
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=weights))
    try:
        return timm.create_model(name, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise KeyError(f"unknown MODEL.EMBEDDING.BACKBONE {name!r} (not a timm model name)") from e
        raise


class EmbeddingNet(nn.Module):
    """x ↦ normalize?(W · pool(backbone(x)) + b) ∈ ℝ^D."""

    def __init__(self, backbone: str, dim: int, pooling: str = "avg", normalize: bool = True,
                 freeze_bn: bool = True, weights: str = ""):
        super().__init__()
        self.pool = get_or_raise(POOLINGS, pooling, "MODEL.EMBEDDING.POOLING")
        self.backbone = build_backbone(backbone, weights)
        self.head = nn.Linear(self.backbone.num_features, dim)
        self.normalize = normalize
        self.freeze_bn = freeze_bn

    def train(self, mode: bool = True) -> "EmbeddingNet":
        super().train(mode)
        if self.freeze_bn:  # running statistics stay fixed; affine parameters are still trained
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.head(self.pool(self.backbone.forward_features(x)))
        return F.normalize(e, p=2, dim=1) if self.normalize else e


@META_ARCH_REGISTRY.register()
class DASEmbeddingModel(nn.Module):
    """Embedding network + (optional) DAS producer + pytorch-metric-learning miner and loss.

    Training loss: L(miner(cat[e, ê…]), …), or L(e) + w · L(cat[e, ê…]) with ``MODEL.DAS.AUX_LOSS_WEIGHT``
    w > 0.
    """

    def __init__(self, cfg):
        super().__init__()
        c = cfg.MODEL.EMBEDDING
        self.net = EmbeddingNet(c.BACKBONE, c.DIM, c.POOLING, c.NORMALIZE, c.FREEZE_BN, c.BACKBONE_WEIGHTS)
        self.criterion = build_loss(cfg)
        self.miner = build_miner(cfg)
        self.producer: Optional[DASEmbeddingProducer] = None
        if cfg.MODEL.DAS.ENABLED:
            if cfg.MODEL.DAS.NUM_CLASSES <= 0:
                raise ValueError(
                    "MODEL.DAS.NUM_CLASSES must be set (the trainer fills it from DATASETS.TRAIN)"
                )
            seed = cfg.SEED if cfg.SEED >= 0 else None
            self.producer = build_das_producer(cfg, cfg.MODEL.DAS.NUM_CLASSES, seed=seed)
        self.aux_loss_weight = float(cfg.MODEL.DAS.AUX_LOSS_WEIGHT)
        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(1, -1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(1, -1, 1, 1), False)
        self.input_scale = float(cfg.MODEL.INPUT_SCALE)
        self.bgr = cfg.INPUT.FORMAT == "BGR"
        self.to(torch.device(cfg.MODEL.DEVICE))

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings of RGB images given in [0, 1] ([B, 3, H, W] → [B, D]); with ``INPUT.FORMAT BGR`` the
        channels are reversed first (PIXEL_MEAN / PIXEL_STD are then in BGR order)."""
        x = images.to(self.device)
        if self.bgr:
            x = x.flip(1)
        x = (x * self.input_scale - self.pixel_mean) / self.pixel_std
        return self.net(x)

    def metric_loss(self, embeddings: torch.Tensor, labels: torch.Tensor, name: str) -> torch.Tensor:
        tuples = self.miner(embeddings, labels) if self.miner is not None else None
        if tuples is not None:
            _put_scalar(f"{name}/mined_tuples", float(len(tuples[0])))
        return self.criterion(embeddings, labels, tuples)

    def losses(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.producer is None:
            return {"loss_metric": self.metric_loss(embeddings, labels, "real")}
        enlarged, enlarged_labels = self.producer(embeddings, labels)
        out = {"loss_metric": self.metric_loss(enlarged, enlarged_labels, "das")}
        if self.aux_loss_weight > 0:
            out["loss_metric"] = self.aux_loss_weight * out["loss_metric"]
            out["loss_metric_real"] = self.metric_loss(embeddings, labels, "real")
        return out

    def forward(self, batch: Dict[str, torch.Tensor]):
        embeddings = self.embed(batch["images"])
        if not self.training:
            return embeddings
        labels = batch["labels"].to(self.device)
        if labels.numel() == 0:
            raise ValueError("empty training batch")
        if comm.get_world_size() > 1:
            embeddings, labels = gather_batch(embeddings, labels)
        return self.losses(embeddings, labels)


def gather_batch(embeddings: torch.Tensor, labels: torch.Tensor):
    """The global batch, in rank order, from every process's share (equal shares, see ``das.sampler``).

    The gradient reaching a process's own rows is the sum over processes of the gradient of their losses,
    i.e. N × the single-process gradient when all processes compute the same loss; DDP's averaging over the
    N processes then gives exactly the single-process gradient (``shared.engine.gather``).
    """
    return gather_rows(embeddings, check_sizes=False), gather_no_grad(labels)


def _put_scalar(name: str, value: float) -> None:
    try:
        get_event_storage().put_scalar(name, value, smoothing_hint=True)
    except AssertionError:  # no EventStorage outside a trainer
        pass
