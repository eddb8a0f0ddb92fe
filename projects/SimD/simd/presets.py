"""Backbone presets: the input format, normalisation and ResNet stride placement each kind of ImageNet
weights expects. A preset that does not match its weights trains from badly scaled inputs without any error
(e.g. torchvision's std with MSRA's ``R-50.pkl``, which expects std 1: inputs ~58x too small).

* ``torchvision`` (the default of ``configs/Base-SimD-*.yaml``, equal to the official SimD run): a torchvision
  ResNet-50 (``torchvision://resnet50`` in the official config) as
  ``weights://torchvision/resnet50-0676ba61#detectron2`` (downloaded, verified, converted); RGB input,
  mean [123.675, 116.28, 103.53], std [58.395, 57.12, 57.375],
  stride in the 3x3 conv (``STRIDE_IN_1X1 False``), BN statistics frozen with trainable affine.
* ``msra``: detectron2's ImageNet ``R-50.pkl`` (MSRA / Caffe2 weights,
  ``detectron2://ImageNetPretrained/MSRA/R-50.pkl``): BGR input, mean
  [103.53, 116.28, 123.675], std 1, stride in the 1x1 conv, ``FrozenBN``.

``preset_opts(name)`` gives the ``KEY VALUE`` overrides, e.g. for the command line of ``train_net.py``.
"""

from __future__ import annotations

from typing import Any, Dict, List

from shared.registry import get_or_raise

BACKBONE_PRESETS: Dict[str, Dict[str, Any]] = {
    "torchvision": {
        "MODEL.WEIGHTS": "weights://torchvision/resnet50-0676ba61#detectron2",
        "INPUT.FORMAT": "RGB",
        "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
        "MODEL.PIXEL_STD": [58.395, 57.12, 57.375],
        "MODEL.RESNETS.STRIDE_IN_1X1": False,
        "MODEL.RESNETS.NORM": "BN",
        "MODEL.BACKBONE.NAME": "build_resnet_fpn_backbone_bn_eval",
    },
    "msra": {
        "MODEL.WEIGHTS": "detectron2://ImageNetPretrained/MSRA/R-50.pkl",
        "INPUT.FORMAT": "BGR",
        "MODEL.PIXEL_MEAN": [103.53, 116.28, 123.675],
        "MODEL.PIXEL_STD": [1.0, 1.0, 1.0],
        "MODEL.RESNETS.STRIDE_IN_1X1": True,
        "MODEL.RESNETS.NORM": "FrozenBN",
        "MODEL.BACKBONE.NAME": "build_resnet_fpn_backbone",
    },
}

#: which weights each preset is for (the README's preset table)
PRESET_WEIGHTS = {
    "torchvision": "torchvision ResNet-50 (resnet50-0676ba61.pth), downloaded and converted on first use "
                   "(weights://torchvision/resnet50-0676ba61#detectron2)",
    "msra": "detectron2's ImageNet R-50.pkl (MSRA, Caffe2 names)",
}


def preset_opts(name: str) -> List[str]:
    """``["KEY", "VALUE", ...]`` of preset ``name`` (for ``cfg.merge_from_list`` or the command line)."""
    opts: List[str] = []
    for key, value in get_or_raise(BACKBONE_PRESETS, name, "backbone preset").items():
        opts += [key, str(value)]
    return opts
