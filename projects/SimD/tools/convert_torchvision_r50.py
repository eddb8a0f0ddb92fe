#!/usr/bin/env python
"""Convert a torchvision ResNet-50 ``state_dict`` (``.pth``) into a detectron2 weights file (``.pkl``).

    python projects/SimD/tools/convert_torchvision_r50.py resnet50-0676ba61.pth R-50-torchvision.pkl
    python projects/SimD/train_net.py --config-file <cfg> MODEL.WEIGHTS R-50-torchvision.pkl

The result is for the ``torchvision`` preset (the configs' default: RGB, torchvision mean/std,
``STRIDE_IN_1X1 False``). Names: ``conv1``/``bn1`` -> ``stem.conv1``/``stem.conv1.norm``; ``layer<k>.<i>`` ->
``res<k+1>.<i>``; ``bn<j>`` -> ``conv<j>.norm``; ``downsample.0``/``downsample.1`` -> ``shortcut``/
``shortcut.norm``; the classifier ``fc`` and BN's ``num_batches_tracked`` counters are left out.
"""

from __future__ import annotations

import argparse
import pickle
import re
from typing import Dict

import numpy as np
import torch


def torchvision_to_detectron2_name(name: str) -> str:
    """The detectron2 ResNet name of a torchvision ResNet parameter name (see the module docstring)."""
    name = re.sub(r"^conv1\.", "stem.conv1.", name)
    name = re.sub(r"^bn1\.", "stem.conv1.norm.", name)
    name = re.sub(r"^layer(\d)\.", lambda m: f"res{int(m.group(1)) + 1}.", name)
    name = re.sub(r"\.bn(\d)\.", r".conv\1.norm.", name)
    name = name.replace(".downsample.0.", ".shortcut.").replace(".downsample.1.", ".shortcut.norm.")
    return name


def convert_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, np.ndarray]:
    """detectron2 names -> numpy arrays, without ``fc.*`` and ``*.num_batches_tracked``."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not any(k.startswith("layer1.") for k in state):
        raise ValueError(
            f"not a torchvision ResNet state_dict: no 'layer1.*' keys (first keys: {sorted(state)[:5]})"
        )
    out = {}
    for name, value in state.items():
        if name.startswith("fc.") or name.endswith("num_batches_tracked"):
            continue
        out[torchvision_to_detectron2_name(name)] = value.detach().cpu().numpy()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", help="torchvision ResNet-50 state_dict (.pth)")
    parser.add_argument("output", help="detectron2 weights file to write (.pkl)")
    args = parser.parse_args(argv)
    state = torch.load(args.input, map_location="cpu", weights_only=True)
    model = convert_state_dict(state)
    with open(args.output, "wb") as f:
        pickle.dump({"model": model, "__author__": "torchvision", "matching_heuristics": True}, f)
    print(f"wrote {len(model)} tensors to {args.output}")


if __name__ == "__main__":
    main()
