"""Long-tailed classification models of the official IIF classification code (kostas1515/iif,
classification/): SE-ResNet-32 for CIFAR, timm SE-ResNets for ImageNet-LT / Places-LT, the cosine
classifier heads, the IIF logit scaler, and :class:`LongTailClassifier`, the trainable module
(softmax cross-entropy with optional mixup and IIF-scaled logits)."""
from __future__ import annotations

import logging
import math
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from shared.registry import get_or_raise

__all__ = [
    "CLASSIFIER_HEADS",
    "CosNormClassifier",
    "IIFLogitScaler",
    "LongTailClassifier",
    "SEResNet32",
    "build_network",
    "classifier_layer",
    "load_pretrained",
    "mixup_batch",
]

logger = logging.getLogger(__name__)

SCALER_MODES = ("train_test", "posthoc", "off")


class IIFLogitScaler(nn.Module):
    """Multiply logits by per-class IIF weights ``w`` (shape (K,)).

    ``mode``: ``"train_test"`` scales always (IIF-CE training and IIF inference, the decoupled stage);
    ``"posthoc"`` scales only in eval mode (train with plain CE, apply IIF at test time); ``"off"`` never.
    """

    def __init__(self, weights: torch.Tensor, mode: str = "posthoc"):
        super().__init__()
        get_or_raise(dict.fromkeys(SCALER_MODES), mode, "IIFLogitScaler mode")
        weights = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
        if not torch.isfinite(weights).all():
            raise ValueError("IIF weights contain NaN/inf")
        self.register_buffer("weights", weights)
        self.mode = mode

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != self.weights.numel():
            raise ValueError(f"logits have {logits.shape[-1]} classes but the IIF weights "
                             f"{self.weights.numel()}")
        active = self.mode == "train_test" or (self.mode == "posthoc" and not self.training)
        return logits * self.weights if active else logits

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, num_classes={self.weights.numel()}"


class CosNormClassifier(nn.Module):
    """The official classification code's cosine classifier (``CosNorm_Classifier``, classification/
    resnet_cifar.py), without bias::

        z_k = s * |x| / (1 + |x|) * <x / |x|, W_k / |W_k|>

    ``s`` = 16 (``--classif_norm cosine``), or a learnable ``a`` with ``s = a^2``, ``a`` initialised to 5
    (``lr_cosine``). Weights start uniform in ``+-1/sqrt(in_features)``.
    """

    def __init__(self, in_features: int, out_features: int, scale: float = 16.0, learn_scale: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        self.learn_scale = learn_scale
        if learn_scale:
            self.scale = nn.Parameter(torch.full((1,), 5.0))
        else:
            self.register_buffer("scale", torch.tensor([float(scale)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.norm(dim=1, keepdim=True)
        squashed = norm / (1.0 + norm) * (x / norm)
        weight = self.weight / self.weight.norm(dim=1, keepdim=True)
        scale = self.scale ** 2 if self.learn_scale else self.scale
        return F.linear(scale * squashed, weight)


#: MODEL.CLS.HEAD -> fn(in_features, num_classes) -> classifier (official ``--classif_norm`` values)
CLASSIFIER_HEADS: Dict[str, Callable[[int, int], nn.Module]] = {
    "linear": lambda d, k: nn.Linear(d, k),
    "cosine": lambda d, k: CosNormClassifier(d, k, scale=16.0),
    "lr_cosine": lambda d, k: CosNormClassifier(d, k, learn_scale=True),
}


class _SqueezeExcite(nn.Module):
    """Channel gate ``x * sigmoid(W2 relu(W1 avgpool(x)))`` with reduction ``r`` and bias-free FCs."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction, bias=False)
        self.fc2 = nn.Linear(channels // reduction, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None]


class _SEBasicBlock(nn.Module):
    """3x3-3x3 residual block, SE gate before the addition, "option A" shortcut (stride-2 subsampling and
    zero-padded channels) when the shape changes -- the CIFAR ResNet of He et al. 2016."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = _SqueezeExcite(planes)
        self.pad = planes - in_planes if (stride != 1 or in_planes != planes) else None
        self.stride = stride

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is None:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class SEResNet32(nn.Module):
    """SE-ResNet-32 for 32x32 inputs (official ``se_resnet32``, classification/resnet_cifar.py): a 16-channel
    3x3 stem, three stages of five SE basic blocks (16, 32, 64 channels, strides 1, 2, 2), global average
    pooling and a classifier ``fc``. Convolutions and linear layers start kaiming-normal, as the official."""

    def __init__(self, num_classes: int, head: str = "linear"):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for s in [stride] + [1] * 4:
                blocks.append(_SEBasicBlock(in_planes, planes, s))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.num_features = 64
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
        self.fc = get_or_raise(CLASSIFIER_HEADS, head, "MODEL.CLS.HEAD")(64, num_classes)
        if isinstance(self.fc, nn.Linear):
            nn.init.kaiming_normal_(self.fc.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean(dim=(2, 3)))

    def last_block(self) -> nn.Module:
        return self.layer3[-1]


def build_network(backbone: str, num_classes: int, head: str = "linear") -> nn.Module:
    """``se_resnet32`` (ours, CIFAR) or a timm model (``pretrained=False``) whose ``fc`` is ``head``."""
    if backbone == "se_resnet32":
        return SEResNet32(num_classes, head)
    net = timm.create_model(backbone, pretrained=False, num_classes=num_classes)
    if head != "linear":
        in_features = classifier_layer(net).in_features
        net.reset_classifier(0)
        net.fc = get_or_raise(CLASSIFIER_HEADS, head, "MODEL.CLS.HEAD")(in_features, num_classes)
    return net


def classifier_layer(net: nn.Module) -> nn.Module:
    """The final classifier: ``fc`` of our SE-ResNet-32 / timm ResNets, else timm's ``get_classifier``."""
    layer = getattr(net, "fc", None)
    if layer is None or isinstance(layer, nn.Identity):
        layer = net.get_classifier()
    if not isinstance(layer, (nn.Linear, CosNormClassifier)):
        raise TypeError(f"expected a linear or cosine classifier, got {type(layer).__name__}")
    return layer


def last_block(net: nn.Module) -> nn.Module:
    """The final residual block (official Places-LT fine-tuning trains it with the classifier)."""
    if hasattr(net, "last_block"):
        return net.last_block()
    if hasattr(net, "layer4"):
        return net.layer4[-1]
    raise TypeError(f"{type(net).__name__} has no layer4; MODEL.CLS.TRAINABLE 'last_block' needs a ResNet")


def load_pretrained(net: nn.Module, path: str) -> None:
    """Load a local state dict (plain, or the official ``{"model": ...}`` checkpoint; ``module.`` prefixes
    stripped) into ``net``; entries whose shape differs (the ImageNet classifier) are skipped and logged."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"MODEL.CLS.PRETRAINED {path!r} is not a state dict")
    own = net.state_dict()
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not usable:
        raise ValueError(f"MODEL.CLS.PRETRAINED {path!r}: no entry matches the model "
                         f"(first keys: {list(state)[:3]} vs {list(own)[:3]})")
    skipped = sorted(set(state) - set(usable))
    net.load_state_dict(usable, strict=False)
    logger.info("loaded %d tensors from %s; skipped %d (shape or name differs): %s", len(usable), path,
                len(skipped), skipped[:8])


def mixup_batch(images: torch.Tensor, labels: torch.Tensor, alpha: float, generator: np.random.Generator):
    """Mixup (Zhang et al. 2018), as the official ``custom.Mixup``: ``lam ~ Beta(alpha, alpha)``,
    ``x = lam * x + (1 - lam) * x[perm]``; returns ``(x, labels, labels[perm], lam)``."""
    lam = float(generator.beta(alpha, alpha))
    perm = torch.randperm(images.shape[0], device=images.device)
    return lam * images + (1.0 - lam) * images[perm], labels, labels[perm], lam


class LongTailClassifier(nn.Module):
    """``net`` + the IIF weights: in training ``forward((images, labels))`` returns ``{"loss_cls": CE}`` on
    (IIF-scaled when ``iif_mode == "train_test"``) logits, with mixup when ``mixup_alpha > 0``; in eval mode
    it returns the raw logits (the evaluation applies the scalers)."""

    def __init__(self, net: nn.Module, iif_weights: torch.Tensor, class_counts: Sequence[int],
                 iif_mode: str = "posthoc", mixup_alpha: float = 0.0, seed: Optional[int] = None):
        super().__init__()
        self.net = net
        self.scaler = IIFLogitScaler(iif_weights, mode=iif_mode)
        self.register_buffer("class_counts", torch.as_tensor(np.asarray(class_counts), dtype=torch.int64))
        self.mixup_alpha = float(mixup_alpha)
        self._rng = np.random.default_rng(seed)

    @property
    def device(self) -> torch.device:
        return self.class_counts.device

    def forward(self, batch):
        images, labels = batch
        images = images.to(self.device, non_blocking=True)
        if not self.training:
            return self.net(images)
        labels = labels.to(self.device, non_blocking=True)
        if self.mixup_alpha > 0:
            images, labels_a, labels_b, lam = mixup_batch(images, labels, self.mixup_alpha, self._rng)
            logits = self.scaler(self.net(images))
            loss = lam * F.cross_entropy(logits, labels_a) + (1.0 - lam) * F.cross_entropy(logits, labels_b)
        else:
            loss = F.cross_entropy(self.scaler(self.net(images)), labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"classification loss became {loss.item()}")
        return {"loss_cls": loss}
