"""BN-Inception (Inception v2 with batch normalisation; Ioffe & Szegedy, ICML 2015), the "IBN" backbone of
Table 1 of the DAS paper.

The official DAS code (backbone/bninception.py) takes it from the ``pretrainedmodels`` package, which is not
installed here and whose weights cannot be downloaded; timm has no BN-Inception. This module builds the same
network from a table of its blocks, with the parameter names of ``pretrainedmodels.bninception``
(``conv1_7x7_s2``, ``inception_3a_double_3x3_reduce_bn``, ...), so that its ImageNet file
(``bn_inception-*.pth``) loads with :func:`load_bninception_weights` from a local path.

Every convolution is followed by BatchNorm and an in-place ReLU; an Inception block concatenates
[1x1, 3x3-reduce -> 3x3, double-3x3-reduce -> 3x3 -> 3x3, pool (-> 1x1 projection)] along channels. The
stride-2 blocks 3c and 4e have no 1x1 branch and an unprojected max pool. ``forward_features`` maps
[B, 3, 224, 224] to [B, 1024, 7, 7]; inputs are BGR, 0-255 scale minus the mean (104, 117, 128), which the
official data code obtains from [0, 1] RGB images with mean (0.502, 0.4588, 0.4078), std 0.0039 and a flip to
BGR (official dataset/basic_dataset_scaffold.py) -- the ``bninception`` preset yaml sets exactly that.
"""
from __future__ import annotations

import os
from typing import Dict, NamedTuple, Optional

import torch
from torch import nn


class InceptionBlock(NamedTuple):
    """Output channels of the branches of one block; ``c1x1 = 0`` means no 1x1 branch; ``proj = 0`` an
    unprojected pool; ``stride`` applies to the two 3x3 branches and the pool."""

    c1x1: int
    c3x3_reduce: int
    c3x3: int
    double_reduce: int
    double: int
    pool: str  # "avg" or "max"
    proj: int
    stride: int = 1


#: block name -> branch widths (Ioffe & Szegedy 2015, Table "Inception architecture"; pretrainedmodels names)
BLOCKS: Dict[str, InceptionBlock] = {
    "3a": InceptionBlock(64, 64, 64, 64, 96, "avg", 32),
    "3b": InceptionBlock(64, 64, 96, 64, 96, "avg", 64),
    "3c": InceptionBlock(0, 128, 160, 64, 96, "max", 0, stride=2),
    "4a": InceptionBlock(224, 64, 96, 96, 128, "avg", 128),
    "4b": InceptionBlock(192, 96, 128, 96, 128, "avg", 128),
    "4c": InceptionBlock(160, 128, 160, 128, 160, "avg", 128),
    "4d": InceptionBlock(96, 128, 192, 160, 192, "avg", 128),
    "4e": InceptionBlock(0, 128, 192, 192, 256, "max", 0, stride=2),
    "5a": InceptionBlock(352, 192, 320, 160, 224, "avg", 128),
    "5b": InceptionBlock(352, 192, 320, 192, 224, "max", 128),
}


def block_out_channels(block: InceptionBlock, in_channels: int) -> int:
    """Channels of the concatenated output: c1x1 + c3x3 + double + (proj or in_channels)."""
    return block.c1x1 + block.c3x3 + block.double + (block.proj or in_channels)


class BNInception(nn.Module):
    """BN-Inception feature extractor (no classifier): ``forward_features(x)`` -> [B, 1024, H/32, W/32]."""

    num_features = 1024

    def __init__(self) -> None:
        super().__init__()
        self._conv("conv1_7x7_s2", 3, 64, 7, stride=2, padding=3)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._conv("conv2_3x3_reduce", 64, 64, 1)
        self._conv("conv2_3x3", 64, 192, 3, padding=1)
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        channels = 192
        for name, block in BLOCKS.items():
            p = f"inception_{name}"
            if block.c1x1:
                self._conv(f"{p}_1x1", channels, block.c1x1, 1)
            self._conv(f"{p}_3x3_reduce", channels, block.c3x3_reduce, 1)
            self._conv(f"{p}_3x3", block.c3x3_reduce, block.c3x3, 3, stride=block.stride, padding=1)
            self._conv(f"{p}_double_3x3_reduce", channels, block.double_reduce, 1)
            self._conv(f"{p}_double_3x3_1", block.double_reduce, block.double, 3, padding=1)
            self._conv(f"{p}_double_3x3_2", block.double, block.double, 3, stride=block.stride, padding=1)
            if block.pool == "avg":
                pool: nn.Module = nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True, count_include_pad=True)
            elif block.stride == 2:
                pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            else:
                pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
            setattr(self, f"{p}_pool", pool)
            if block.proj:
                self._conv(f"{p}_pool_proj", channels, block.proj, 1)
            channels = block_out_channels(block, channels)
        assert channels == self.num_features

    def _conv(self, name: str, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        setattr(self, name, nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding))
        setattr(self, f"{name}_bn", nn.BatchNorm2d(cout, eps=1e-5, momentum=0.9))

    def _unit(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """conv -> BN -> ReLU."""
        return torch.relu_(getattr(self, f"{name}_bn")(getattr(self, name)(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1_3x3_s2(self._unit("conv1_7x7_s2", x))
        x = self._unit("conv2_3x3", self._unit("conv2_3x3_reduce", x))
        x = self.pool2_3x3_s2(x)
        for name, block in BLOCKS.items():
            p = f"inception_{name}"
            branches = []
            if block.c1x1:
                branches.append(self._unit(f"{p}_1x1", x))
            branches.append(self._unit(f"{p}_3x3", self._unit(f"{p}_3x3_reduce", x)))
            double = self._unit(f"{p}_double_3x3_1", self._unit(f"{p}_double_3x3_reduce", x))
            branches.append(self._unit(f"{p}_double_3x3_2", double))
            pooled = getattr(self, f"{p}_pool")(x)
            branches.append(self._unit(f"{p}_pool_proj", pooled) if block.proj else pooled)
            x = torch.cat(branches, dim=1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def load_bninception_weights(model: BNInception, path: str) -> BNInception:
    """Load a ``pretrainedmodels`` BN-Inception file (its 1000-class ``last_linear`` is dropped). Every
    parameter and running statistic of ``model`` must be in the file (``num_batches_tracked``, absent from
    the old files, is the only exception); anything else is an error naming the keys."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.EMBEDDING.BACKBONE_WEIGHTS={path!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("last_linear.")}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(f"{path} is not a BN-Inception weight file: missing {missing[:5]} "
                         f"({len(missing)} keys), unexpected {unexpected[:5]} ({len(unexpected)} keys)")
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        raise ValueError(f"{path}: shapes differ from BN-Inception for {bad[:5]}")
    model.load_state_dict(state, strict=False)
    return model


def build_bninception(weights: Optional[str] = "") -> BNInception:
    """A BN-Inception feature extractor, loaded from the local ``weights`` file when one is given."""
    model = BNInception()
    if weights:
        load_bninception_weights(model, weights)
    return model
