"""Descriptor networks: image -> L2-normalised global descriptor (GeM pooling + linear projection).

Everything is built with ``pretrained=False`` (no download is possible here); weights come from a local
file through :func:`load_network_weights` when the config names one.

Registry ``NETWORK_REGISTRY`` (name -> builder ``(out_dim, gem_p, dropout) -> nn.Module``):

* ``sscd_r50`` / ``sscd_rx101``: SSCD's teachers -- torchvision ResNet-50 / ResNeXt-101 32x4d with the average
  pool replaced by GeM and ``fc`` -> ``out_dim``; module names are torchvision's, so SSCD's
  ``*.torchvision.pt`` weights load as they are.
* ``sscd_r18``: the same head on a ResNet-18 (ours: a small teacher for the CPU demo).
* ``dino_vitb8``: timm ``vit_base_patch8_224``; descriptor = [CLS token, GeM over the patch tokens] (1536-d).
  GeM over a *set* of tokens needs no spatial reshape, so any batch size and input size works (the
  official code reshapes to a hard-coded (256, 28, 28, C)).
* ``efficientnet_b0``: torchvision EfficientNet-B0 with GeM + Dropout + Linear (the official student, so
  RDCD student checkpoints and torchvision ImageNet weights load by name);
  ``mobilenetv3_large_100`` / ``fastvit_t12``: timm trunks + GeM + Dropout + Linear. These are the RDCD
  students (the projector to the compact dimension lives in :class:`rdcd.modeling.student.Student`).
"""
from __future__ import annotations

import logging
from typing import Dict, Mapping

import timm
import torch
import torch.nn.functional as F
import torchvision
from fvcore.common.registry import Registry
from torch import nn

from shared.registry import get_or_raise

logger = logging.getLogger(__name__)

NETWORK_REGISTRY = Registry("RDCD_NETWORK")
NETWORK_REGISTRY.__doc__ = "Descriptor networks: builder(out_dim, gem_p, dropout) -> nn.Module (L2-normalised output)."


def gem_pool(x: torch.Tensor, p: float, dim, eps: float = 1e-6) -> torch.Tensor:
    """Generalised mean over ``dim``: (mean clamp(x, eps)^p)^(1/p); p=1 is average, p->inf is max pooling."""
    return x.clamp(min=eps).pow(p).mean(dim=dim).pow(1.0 / p)


class GeM(nn.Module):
    """GeM pooling of a feature map [B, C, H, W] -> [B, C] with a fixed exponent (no state-dict entry)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = float(p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem_pool(x, self.p, dim=(-2, -1), eps=self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TorchvisionResNetDescriptor(nn.Module):
    """torchvision ResNet with GeM instead of average pooling, ``fc`` -> ``out_dim`` and L2 normalisation.

    The trunk's attributes (``conv1``, ``layer1`` ... ``fc``) stay at the top level, like in SSCD's
    torchvision export, so its state dict loads without renaming.
    """

    def __init__(self, resnet: torchvision.models.ResNet, gem_p: float):
        super().__init__()
        resnet.avgpool = GeM(gem_p)
        for name, child in resnet.named_children():
            self.add_module(name, child)
        self._order = [name for name, _ in resnet.named_children()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._order:
            x = getattr(self, name)(x)
            if name == "avgpool":
                x = torch.flatten(x, 1)
        return F.normalize(x, dim=1)


@NETWORK_REGISTRY.register()
def sscd_r50(out_dim: int = 512, gem_p: float = 3.0, dropout: float = 0.0) -> nn.Module:
    return TorchvisionResNetDescriptor(
        torchvision.models.resnet50(weights=None, num_classes=out_dim, zero_init_residual=True), gem_p
    )


@NETWORK_REGISTRY.register()
def sscd_rx101(out_dim: int = 512, gem_p: float = 3.0, dropout: float = 0.0) -> nn.Module:
    resnet = torchvision.models.ResNet(
        torchvision.models.resnet.Bottleneck, [3, 4, 23, 3], num_classes=out_dim, zero_init_residual=True,
        groups=32, width_per_group=4,
    )
    return TorchvisionResNetDescriptor(resnet, gem_p)


@NETWORK_REGISTRY.register()
def sscd_r18(out_dim: int = 512, gem_p: float = 3.0, dropout: float = 0.0) -> nn.Module:
    return TorchvisionResNetDescriptor(
        torchvision.models.resnet18(weights=None, num_classes=out_dim, zero_init_residual=True), gem_p
    )


class ViTClsGeMDescriptor(nn.Module):
    """DINO-style ViT descriptor: concat(CLS token, GeM over patch tokens), L2-normalised (2 x embed_dim).

    ``dynamic_img_size`` lets timm interpolate the position embedding, so any input size that is a
    multiple of the patch size works; the batch size is read from the tensor.
    """

    def __init__(self, arch: str = "vit_base_patch8_224", gem_p: float = 3.0):
        super().__init__()
        self.vit = timm.create_model(arch, pretrained=False, num_classes=0, dynamic_img_size=True)
        self.gem_p = float(gem_p)
        self.out_dim = 2 * self.vit.embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.vit.forward_features(x)  # [B, prefix + N, C], final norm applied
        prefix = getattr(self.vit, "num_prefix_tokens", 1)
        cls_token = tokens[:, 0]
        patch_gem = gem_pool(tokens[:, prefix:], self.gem_p, dim=1)
        return F.normalize(torch.cat([cls_token, patch_gem], dim=1), dim=1)


@NETWORK_REGISTRY.register()
def dino_vitb8(out_dim: int = 1536, gem_p: float = 3.0, dropout: float = 0.0) -> nn.Module:
    net = ViTClsGeMDescriptor("vit_base_patch8_224", gem_p)
    if out_dim != net.out_dim:
        raise ValueError(f"dino_vitb8 produces {net.out_dim}-d descriptors; set the dimension to {net.out_dim}")
    return net


class TimmGeMDescriptor(nn.Module):
    """timm trunk (its last feature map) + GeM + Dropout + Linear(C -> out_dim) + L2 normalisation."""

    def __init__(self, arch: str, out_dim: int, gem_p: float, dropout: float):
        super().__init__()
        self.trunk = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="")
        with torch.no_grad():  # channel count of the last map (differs from num_features for MobileNetV3)
            was_training = self.trunk.training
            channels = self.trunk.eval()(torch.zeros(1, 3, 64, 64)).shape[1]
            self.trunk.train(was_training)
        self.pool = GeM(gem_p)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(self.trunk(x))
        return F.normalize(self.fc(self.dropout(pooled)), dim=1)


def _register_timm(arch: str) -> None:
    def build(out_dim: int = 512, gem_p: float = 3.0, dropout: float = 0.2) -> nn.Module:
        return TimmGeMDescriptor(arch, out_dim, gem_p, dropout)

    build.__name__ = arch
    NETWORK_REGISTRY.register(build)


for _arch in ("mobilenetv3_large_100", "fastvit_t12"):
    _register_timm(_arch)


class TorchvisionEfficientNetDescriptor(nn.Module):
    """torchvision EfficientNet with GeM instead of average pooling, ``classifier`` = Dropout + Linear ->
    ``out_dim``, L2 normalisation: the official RDCD student, so its ``features.*`` / ``classifier.1.*``
    names match RDCD student checkpoints and torchvision's ImageNet files (``drop_head`` skips the
    1000-class classifier of the latter)."""

    def __init__(self, efficientnet: torchvision.models.EfficientNet, gem_p: float):
        super().__init__()
        self.features = efficientnet.features
        self.avgpool = GeM(gem_p)
        self.classifier = efficientnet.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(self.avgpool(self.features(x)), 1)
        return F.normalize(self.classifier(pooled), dim=1)


@NETWORK_REGISTRY.register()
def efficientnet_b0(out_dim: int = 512, gem_p: float = 3.0, dropout: float = 0.2) -> nn.Module:
    return TorchvisionEfficientNetDescriptor(
        torchvision.models.efficientnet_b0(weights=None, num_classes=out_dim, dropout=dropout), gem_p
    )


def build_network(name: str, out_dim: int, gem_p: float = 3.0, dropout: float = 0.0) -> nn.Module:
    """Build registered network ``name``; unknown names raise ``KeyError`` listing the registered ones."""
    return get_or_raise(NETWORK_REGISTRY, name, "descriptor network")(out_dim=out_dim, gem_p=gem_p, dropout=dropout)


_PREFIXES = ("module.", "model.", "backbone.", "network.", "teacher.", "encoder.")


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Tensors of a weights file: TorchScript module, plain state dict, ``{"model"|"state_dict": ...}``."""
    try:
        return dict(torch.jit.load(path, map_location="cpu").state_dict())
    except (RuntimeError, ValueError):
        pass
    obj = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, not a state dict or TorchScript module")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


_CLASSIFIER_PREFIXES = ("classifier.", "head.fc.", "fc.", "head.")


def load_network_weights(network: nn.Module, path: str, prefix: str = "", drop_head: bool = False) -> None:
    """Load the weights file ``path`` into ``network``: :func:`read_state_dict`, then :func:`load_state_into`."""
    load_state_into(network, read_state_dict(path), path, prefix=prefix, drop_head=drop_head)


def load_state_into(network: nn.Module, state: Mapping[str, torch.Tensor], source: str, prefix: str = "",
                    drop_head: bool = False) -> None:
    """Load ``state`` (read from ``source``) into ``network`` strictly, after keeping only keys under ``prefix``
    (stripped) and stripping wrapper prefixes such as ``module.`` / ``model.`` / ``backbone.``. ``drop_head``
    ignores ImageNet-classifier keys (``classifier.*``, ``head.fc.*``, ``fc.*``) that the network does not have
    or has with another shape (a 1000-class head), keeping the network's own head.

    Raises ``ValueError`` listing missing / unexpected keys when the layouts do not match.
    """
    state = dict(state)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    own = network.state_dict()
    expected = set(own)
    changed = True
    while changed and not set(state) <= expected:
        changed = False
        for p in _PREFIXES:
            if state and all(k.startswith(p) for k in state):
                state = {k[len(p):]: v for k, v in state.items()}
                changed = True
    if drop_head:  # an ImageNet classifier in the file: keep our own (randomly initialised) head instead
        for key in [k for k in state if k.startswith(_CLASSIFIER_PREFIXES)]:
            if key not in own:
                del state[key]
            elif state[key].shape != own[key].shape:
                state[key] = own[key]
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    mismatched = sorted(k for k in set(state) & expected if state[k].shape != own[k].shape)
    if missing or unexpected or mismatched:
        raise ValueError(
            f"weights {source!r} do not match {type(network).__name__}: {len(missing)} missing keys "
            f"{missing[:8]}, {len(unexpected)} unexpected keys {unexpected[:8]}, {len(mismatched)} shape "
            f"mismatches {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in mismatched[:4]]}"
        )
    network.load_state_dict(state)
    logger.info("loaded %d tensors from %s into %s", len(state), source, type(network).__name__)
