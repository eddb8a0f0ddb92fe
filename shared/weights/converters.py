"""Converters from published weight formats into the layouts our models load (registered in
:data:`shared.weights.convert.CONVERTERS`)."""
from __future__ import annotations

import re
from typing import Any, Dict

import numpy as np
import torch

from shared.weights.convert import register_converter

__all__ = ["torchvision_resnet_to_detectron2", "torchvision_to_detectron2_name"]


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
