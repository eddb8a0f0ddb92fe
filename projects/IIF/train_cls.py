#!/usr/bin/env python
"""Long-tailed classification with IIF (CIFAR-100-LT, ImageNet-LT, Places-LT, the synthetic set).

    python projects/IIF/train_cls.py --config-file projects/IIF/configs/classification/synthetic_lt.yaml
    python projects/IIF/train_cls.py --config-file projects/IIF/configs/classification/\
cifar100_lt_se_resnet32_decoupled.yaml MODEL.WEIGHTS output/iif_cls/cifar100_lt/model_final.pth
    python projects/IIF/train_cls.py --config-file ... --eval-only MODEL.WEIGHTS .../model_final.pth
"""
import iif  # noqa: F401  (compat layer first)
from iif.classification import IIFClsTrainer, add_iif_cls_config, prepare_cls_cfg

from shared.engine import default_argument_parser, launch_from_args, setup, train_or_evaluate


def main(args):
    cfg = setup(args, add_iif_cls_config, prepare=prepare_cls_cfg)
    return train_or_evaluate(IIFClsTrainer, cfg, args)


if __name__ == "__main__":
    launch_from_args(main, default_argument_parser().parse_args())
