#!/usr/bin/env python
"""Train / evaluate Mask R-CNN with IIF (or the softmax baseline) with detectron2.

    python projects/IIF/train_net.py --config-file projects/IIF/configs/synthetic/iif_raw.yaml
    python projects/IIF/train_net.py --config-file projects/IIF/configs/LVIS-InstanceSegmentation/\
mask_rcnn_R_50_FPN_iif_raw_1x.yaml --num-gpus 4
    (the presets name their ImageNet R-50, downloaded on first use; configs/LVIS-InstanceSegmentation-MSRA/:
    the same runs on detectron2's MSRA R-50.pkl)
    python projects/IIF/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/.../model_final.pth
"""
import iif  # noqa: F401  (compat layer first; registers IIFROIHeads)
from iif.config import add_iif_config
from iif.datasets import prepare_cfg
from iif.trainer import IIFTrainer

from shared.engine import default_argument_parser, launch_from_args, setup, train_or_evaluate


def main(args):
    cfg = setup(args, add_iif_config, prepare=prepare_cfg)
    return train_or_evaluate(IIFTrainer, cfg, args)


if __name__ == "__main__":
    launch_from_args(main, default_argument_parser().parse_args())
