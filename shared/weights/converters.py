"""Converters from published weight formats into the layouts our models load (registered in
:data:`shared.weights.convert.CONVERTERS`)."""
from __future__ import annotations

import re
from typing import Any, Dict

import numpy as np
import torch

from shared.weights.convert import register_converter

__all__ = ["bninception_to_das", "sscd_torchscript_to_rdcd", "torchvision_resnet_to_detectron2",
           "torchvision_to_detectron2_name"]


def _state_dict(obj: Any) -> Dict[str, torch.Tensor]:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"expected a state_dict (dict of tensors), got {type(obj).__name__}")
    return obj


def torchvision_to_detectron2_name(name: str) -> str:
    """detectron2's ResNet name of a torchvision ResNet parameter: ``conv1``/``bn1`` -> ``stem.conv1``/
    ``stem.conv1.norm``; ``layer<k>.<i>`` -> ``res<k+1>.<i>``; ``bn<j>`` -> ``conv<j>.norm``;
    ``downsample.0``/``downsample.1`` -> ``shortcut``/``shortcut.norm``."""
    name = re.sub(r"^conv1\.", "stem.conv1.", name)
    name = re.sub(r"^bn1\.", "stem.conv1.norm.", name)
    name = re.sub(r"^layer(\d)\.", lambda m: f"res{int(m.group(1)) + 1}.", name)
    name = re.sub(r"\.bn(\d)\.", r".conv\1.norm.", name)
    return name.replace(".downsample.0.", ".shortcut.").replace(".downsample.1.", ".shortcut.norm.")


@register_converter("torchvision-resnet", "detectron2", suffix=".pkl")
def torchvision_resnet_to_detectron2(obj: Any) -> Dict[str, Any]:
    """A torchvision ResNet ``state_dict`` as a detectron2 weights ``.pkl`` payload: detectron2 names, numpy
    arrays, without the classifier ``fc.*`` and BN's ``num_batches_tracked`` counters. The payload is marked
    ``__author__: torchvision`` with ``matching_heuristics`` so detectron2 adds the ``backbone.bottom_up.``
    prefix of FPN backbones itself."""
    state = _state_dict(obj)
    if not any(k.startswith("layer1.") for k in state):
        raise ValueError("not a torchvision ResNet state_dict: no 'layer1.*' keys "
                         f"(first keys: {sorted(state)[:5]})")
    model = {torchvision_to_detectron2_name(k): v.detach().cpu().numpy() for k, v in state.items()
             if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    return {"model": {k: np.ascontiguousarray(v) for k, v in model.items()}, "__author__": "torchvision",
            "matching_heuristics": True}


@register_converter("cadene-bninception", "das")
def bninception_to_das(obj: Any) -> Dict[str, torch.Tensor]:
    """pretrainedmodels' BN-Inception ``state_dict`` as the state dict of DAS's ``BNInception`` (the same
    parameter names, ``conv1_7x7_s2``, ``inception_3a_1x1_bn``, ...): the 1000-class ``last_linear.*`` is left
    out, and BatchNorm tensors stored as ``[1, C]`` (the Caffe conversion's shape) become ``[C]``:
    ``v[0]`` for every 2-D tensor of a ``*_bn.*`` key with a leading dimension of 1."""
    state = _state_dict(obj)
    if "conv1_7x7_s2.weight" not in state:
        raise ValueError("not a pretrainedmodels BN-Inception state_dict: no 'conv1_7x7_s2.weight' "
                         f"(first keys: {sorted(state)[:5]})")
    out = {}
    for key, value in state.items():
        if key.startswith("last_linear."):
            continue
        if "_bn." in key and value.dim() == 2 and value.shape[0] == 1:
            value = value[0]
        out[key] = value.detach().clone().contiguous()
    return out


@register_converter("torchscript-sscd", "rdcd")
def sscd_torchscript_to_rdcd(obj: Any) -> Dict[str, torch.Tensor]:
    """SSCD's TorchScript descriptor (its ``state_dict``: ``backbone.<torchvision ResNet name>``) as the state
    dict of RDCD's SSCD teacher (``rdcd.modeling.networks.TorchvisionResNetDescriptor``: torchvision names at
    the top level, GeM has no tensor): ``backbone.<k>`` -> ``<k>``; a key outside ``backbone.`` is an
    error."""
    state = _state_dict(obj)
    others = sorted(k for k in state if not k.startswith("backbone."))
    if not state or others:
        raise ValueError(f"not an SSCD descriptor state_dict: keys outside 'backbone.*': {others[:5]}")
    return {k[len("backbone."):]: v.detach().clone().contiguous() for k, v in state.items()}
