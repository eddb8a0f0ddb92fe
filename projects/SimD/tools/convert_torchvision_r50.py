#!/usr/bin/env python
"""Convert a local torchvision ResNet-50 ``state_dict`` (``.pth``) into a detectron2 weights file (``.pkl``).

    python projects/SimD/tools/convert_torchvision_r50.py resnet50-0676ba61.pth R-50-torchvision.pkl
    python projects/SimD/train_net.py --config-file <cfg> MODEL.WEIGHTS R-50-torchvision.pkl

The configs do this themselves: ``MODEL.WEIGHTS: weights://torchvision/resnet50-0676ba61#detectron2``
downloads, verifies and converts the published file on first use (:mod:`shared.weights`). This tool is for a
file you already have (another torchvision ResNet-50, your own ImageNet run). The conversion is
:func:`shared.weights.converters.torchvision_resnet_to_detectron2` (names and the left-out tensors are in its
docstring); the result is for the ``torchvision`` preset (RGB, torchvision mean/std, ``STRIDE_IN_1X1 False``).
"""

from __future__ import annotations

import argparse
import pickle

import torch

from shared.weights.converters import torchvision_resnet_to_detectron2


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", help="torchvision ResNet-50 state_dict (.pth)")
    parser.add_argument("output", help="detectron2 weights file to write (.pkl)")
    args = parser.parse_args(argv)
    state = torch.load(args.input, map_location="cpu", weights_only=True)
    payload = torchvision_resnet_to_detectron2(state)
    with open(args.output, "wb") as f:
        pickle.dump(payload, f, protocol=4)
    print(f"wrote {len(payload['model'])} tensors to {args.output}")


if __name__ == "__main__":
    main()
