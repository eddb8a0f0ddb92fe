"""Descriptor networks (image -> L2-normalised descriptor) and the RDCD student backbones.

Everything is built with ``pretrained=False``; weights come from the file the config names (a local path,
or a ``weights://`` entry that :mod:`shared.weights` resolves to one) through :func:`load_network_weights`.
Weight files are read with ``torch.load(weights_only=True)`` (or ``torch.jit.load`` for TorchScript): a file
that carries code is refused.

Registry ``NETWORK_REGISTRY`` (name -> builder ``(out_dim, gem_p) -> nn.Module``, L2-normalised output;
teachers and the networks the ``SSCD`` meta-architecture trains):

* ``sscd_r50`` / ``sscd_rx101``: SSCD's teachers -- torchvision ResNet-50 / ResNeXt-101 32x4d with the average
  pool replaced by GeM and ``fc`` -> ``out_dim`` (SSCD ``sscd/models/model.py``); module names are
  torchvision's, so SSCD's ``*.torchvision.pt`` weights load (their ``backbone.`` prefix is stripped).
* ``sscd_r18``: the same head on a ResNet-18 (ours: a small teacher for the CPU demo).
* ``dino_vitb8``: timm ``vit_base_patch8_224``; descriptor = [CLS token, GeM over the patch tokens] (1536-d).
  GeM over a *set* of tokens needs no spatial reshape, so any batch size and input size works (the
  official code reshapes to a hard-coded (256, 28, 28, C)).
* every student backbone below, L2-normalised (the SSCD baselines of the students).

Registry ``STUDENT_BACKBONE_REGISTRY`` (name -> builder ``(kd_dim, gem_p) -> nn.Module``, raw, un-normalised
``kd_dim`` output), exactly the official RDCD ``get_encoder`` backbones (``rdcd/models/model.py``), so the
official checkpoints' ``encoder_q.backbone.*`` keys load unchanged:

* ``efficientnet_b0``: torchvision ``efficientnet_b0(num_classes=kd_dim)`` (classifier Dropout 0.2 + Linear
  1280 -> kd_dim), ``avgpool`` = GeM;
* ``mobilenet_v3_large``: torchvision ``mobilenet_v3_large(num_classes=kd_dim)``, ``avgpool`` = GeM: GeM on
the
  960-channel map, then the classifier 960 -> 1280 (Hardswish, Dropout 0.2) -> kd_dim;
* ``fastvit_t12``: timm ``fastvit_t12(num_classes=0)`` (no dropout), ``head.global_pool`` = GeM, ``head.fc`` =
  Linear(1024 -> kd_dim);
* ``resnet18`` / ``resnet50``: torchvision ResNet (``zero_init_residual``), ``avgpool`` = GeM (the official
  "student cnn" path with another ``base_encoder``; ``resnet18`` is the CPU demo's student).
"""

from __future__ import annotations

import argparse
import logging
import pickle
from typing import Dict, Mapping

import timm
import torch
import torch.nn.functional as F
import torchvision
from fvcore.common.registry import Registry
from torch import nn

from shared.registry import get_or_raise, register_as

logger = logging.getLogger(__name__)

NETWORK_REGISTRY = Registry("RDCD_NETWORK")
NETWORK_REGISTRY.__doc__ = "Descriptor networks: builder(out_dim, gem_p) -> nn.Module (L2-normalised output)."

STUDENT_BACKBONE_REGISTRY = Registry("RDCD_STUDENT_BACKBONE")
STUDENT_BACKBONE_REGISTRY.__doc__ = (
    "RDCD student backbones: builder(kd_dim, gem_p) -> nn.Module (raw output)."
)


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
        # SSCD's initialisation of the projection with GeM pooling (sscd/models/model.py)
        nn.init.xavier_uniform_(resnet.fc.weight)
        nn.init.zeros_(resnet.fc.bias)
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
def sscd_r50(out_dim: int = 512, gem_p: float = 3.0) -> nn.Module:
    return TorchvisionResNetDescriptor(
        torchvision.models.resnet50(weights=None, num_classes=out_dim, zero_init_residual=True), gem_p
    )


@NETWORK_REGISTRY.register()
def sscd_rx101(out_dim: int = 512, gem_p: float = 3.0) -> nn.Module:
    resnet = torchvision.models.ResNet(
        torchvision.models.resnet.Bottleneck,
        [3, 4, 23, 3],
        num_classes=out_dim,
        zero_init_residual=True,
        groups=32,
        width_per_group=4,
    )
    return TorchvisionResNetDescriptor(resnet, gem_p)


@NETWORK_REGISTRY.register()
def sscd_r18(out_dim: int = 512, gem_p: float = 3.0) -> nn.Module:
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
def dino_vitb8(out_dim: int = 1536, gem_p: float = 3.0) -> nn.Module:
    net = ViTClsGeMDescriptor("vit_base_patch8_224", gem_p)
    if out_dim != net.out_dim:
        raise ValueError(
            f"dino_vitb8 produces {net.out_dim}-d descriptors; set the dimension to {net.out_dim}"
        )
    return net


class L2Norm(nn.Module):
    """Row-wise L2 normalisation (a module, to sit in ``nn.Sequential`` as in the official code)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1)


def _gem_avgpool(model: nn.Module, gem_p: float) -> nn.Module:
    model.avgpool = GeM(gem_p)  # torchvision's forward flattens after avgpool; GeM already returns [B, C]
    return model


@STUDENT_BACKBONE_REGISTRY.register()
def efficientnet_b0(kd_dim: int = 512, gem_p: float = 3.0) -> nn.Module:
    return _gem_avgpool(torchvision.models.efficientnet_b0(weights=None, num_classes=kd_dim), gem_p)


@STUDENT_BACKBONE_REGISTRY.register()
def mobilenet_v3_large(kd_dim: int = 512, gem_p: float = 3.0) -> nn.Module:
    return _gem_avgpool(torchvision.models.mobilenet_v3_large(weights=None, num_classes=kd_dim), gem_p)


@STUDENT_BACKBONE_REGISTRY.register()
def fastvit_t12(kd_dim: int = 512, gem_p: float = 3.0) -> nn.Module:
    model = timm.create_model("fastvit_t12", pretrained=False, num_classes=0)
    model.head.global_pool = GeM(gem_p)
    model.head.fc = nn.Linear(model.num_features, kd_dim)
    return model


@register_as(STUDENT_BACKBONE_REGISTRY, "resnet18")
def _resnet18(kd_dim: int = 512, gem_p: float = 3.0) -> nn.Module:
    return _gem_avgpool(
        torchvision.models.resnet18(weights=None, num_classes=kd_dim, zero_init_residual=True), gem_p
    )


@register_as(STUDENT_BACKBONE_REGISTRY, "resnet50")
def _resnet50(kd_dim: int = 512, gem_p: float = 3.0) -> nn.Module:
    return _gem_avgpool(
        torchvision.models.resnet50(weights=None, num_classes=kd_dim, zero_init_residual=True), gem_p
    )


#: student backbones whose official projector is ``nn.Sequential(Linear, L2Norm)`` (keys ``projector.0.*``)
#: rather than a bare ``Linear`` (keys ``projector.*``): the official FastViT branch of ``get_encoder``
SEQUENTIAL_PROJECTOR = frozenset({"fastvit_t12"})


def build_student_backbone(name: str, kd_dim: int, gem_p: float = 3.0) -> nn.Module:
    """The raw (un-normalised) student backbone ``name``; unknown names raise ``KeyError``."""
    return get_or_raise(STUDENT_BACKBONE_REGISTRY, name, "MODEL.RDCD.STUDENT")(kd_dim=kd_dim, gem_p=gem_p)


def _l2_normalize_output(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    return F.normalize(output, dim=1)


def _register_student_descriptor(name: str) -> None:
    """``NETWORK_REGISTRY[name]`` = the student backbone with its output L2-normalised by a forward hook, so
    its
    state-dict keys stay the backbone's own (``features.*``, ``classifier.*``, ...)."""

    def build(out_dim: int = 512, gem_p: float = 3.0) -> nn.Module:
        model = build_student_backbone(name, out_dim, gem_p)
        model.register_forward_hook(_l2_normalize_output)
        return model

    register_as(NETWORK_REGISTRY, name)(build)


for _name in ("efficientnet_b0", "mobilenet_v3_large", "fastvit_t12"):
    _register_student_descriptor(_name)


def build_network(name: str, out_dim: int, gem_p: float = 3.0) -> nn.Module:
    """Build registered network ``name``; unknown names raise ``KeyError`` listing the registered ones."""
    return get_or_raise(NETWORK_REGISTRY, name, "descriptor network")(out_dim=out_dim, gem_p=gem_p)


_PREFIXES = ("module.", "model.", "backbone.", "network.", "teacher.", "encoder.")


#: the one class besides tensors and plain containers that a weights file may hold: the ``argparse.Namespace``
#: of hyper-parameters PyTorch Lightning stores in its checkpoints (the official RDCD checkpoints are
# Lightning
#: ``.ckpt`` files). It only carries attributes; no code runs when it is unpickled.
SAFE_GLOBALS = (argparse.Namespace,)


def load_weights_file(path: str):
    """``torch.load(path, weights_only=True)`` on the CPU (with :data:`SAFE_GLOBALS` allowed).

    A file that would run code when unpickled (a pickled callable, a whole pickled ``nn.Module``, any other
    class) is refused with a ``ValueError`` naming the file and the refused object.
    """
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"refused to load {path!r}: it holds objects other than tensors and plain containers, and "
            f"loading them could run code ({reason}). Save only the state dict "
            "(torch.save(model.state_dict(), path)) "
            "or export TorchScript (torch.jit.save)."
        ) from exc


def _is_torchscript(path: str) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Tensors of a weights file: TorchScript module (``torch.jit.load``), plain state dict, or a dict holding
    it under ``"model"`` / ``"state_dict"`` (detectron2 and Lightning checkpoints); see
    :func:`load_weights_file`."""
    if _is_torchscript(path):
        return dict(torch.jit.load(path, map_location="cpu").state_dict())
    obj = load_weights_file(path)
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, not a state dict or TorchScript module")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


_CLASSIFIER_PREFIXES = ("classifier.", "head.fc.", "fc.", "head.")


def load_network_weights(network: nn.Module, path: str, prefix: str = "", drop_head: bool = False) -> None:
    """Load the weights file ``path`` into ``network`` (:func:`read_state_dict`, :func:`load_state_into`)."""
    load_state_into(network, read_state_dict(path), path, prefix=prefix, drop_head=drop_head)


def load_state_into(
    network: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    prefix: str = "",
    drop_head: bool = False,
) -> None:
    """Load ``state`` (read from ``source``) into ``network`` strictly, after keeping only keys under
    ``prefix``
    (stripped) and stripping wrapper prefixes such as ``module.`` / ``model.`` / ``backbone.``. ``drop_head``
    ignores ImageNet-classifier keys (``classifier.*``, ``head.fc.*``, ``fc.*``) that the network does not
    have
    or has with another shape (a 1000-class head), keeping the network's own head.

    Raises ``ValueError`` listing missing / unexpected keys when the layouts do not match.
    """
    state = dict(state)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    own = network.state_dict()
    expected = set(own)
    changed = True
    while changed and not set(state) <= expected:
        changed = False
        for p in _PREFIXES:
            if state and all(k.startswith(p) for k in state):
                state = {k[len(p) :]: v for k, v in state.items()}
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
