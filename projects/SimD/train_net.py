#!/usr/bin/env python
"""Train / evaluate SimD detectors (Faster R-CNN, RetinaNet, Cascade R-CNN) with detectron2.

python projects/SimD/train_net.py --config-file projects/SimD/configs/aitod/faster_rcnn_R_50_FPN_1x_simd.yaml
python projects/SimD/train_net.py --config-file <cfg> --eval-only MODEL.WEIGHTS <output>/model_final.pth
python projects/SimD/train_net.py --config-file <cfg> --resume            # continue from OUTPUT_DIR
python projects/SimD/train_net.py --config-file <cfg> --num-gpus 8
"""

import simd  # noqa: F401  (compat layer first; registers SimilarityRPN / heads / RetinaNet)
from simd.config import add_simd_config
from simd.trainer import SimDTrainer, prepare_cfg

from shared.engine import default_argument_parser, launch_from_args, setup, train_or_evaluate


def main(args):
    cfg = setup(args, add_simd_config, prepare=prepare_cfg)
    return train_or_evaluate(SimDTrainer, cfg, args)


if __name__ == "__main__":
    launch_from_args(main, default_argument_parser().parse_args())
