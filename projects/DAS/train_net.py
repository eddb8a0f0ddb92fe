#!/usr/bin/env python
"""DAS training / evaluation (detectron2 engine, pytorch-metric-learning losses).

    python projects/DAS/train_net.py --config-file projects/DAS/configs/CUB200/triplet_distance.yaml
    python projects/DAS/train_net.py --config-file ... MODEL.DAS.ENABLED False           # baseline
    python projects/DAS/train_net.py --config-file ... --eval-only MODEL.WEIGHTS out/model_final.pth
    python projects/DAS/train_net.py --config-file ... --resume                          # continue a run
"""
import das  # noqa: F401  (compat layer first; registers the DAS model)
from das.config import add_das_config
from das.trainer import DASTrainer

from shared.engine import default_argument_parser, launch_from_args, setup, train_or_evaluate


def main(args):
    cfg = setup(args, add_das_config)
    return train_or_evaluate(DASTrainer, cfg, args)


if __name__ == "__main__":
    launch_from_args(main, default_argument_parser().parse_args())
