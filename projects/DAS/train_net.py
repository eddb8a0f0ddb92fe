#!/usr/bin/env python
"""DAS training / evaluation (detectron2 engine, pytorch-metric-learning losses).

    python projects/DAS/train_net.py --config-file projects/DAS/configs/CUB200/triplet_distance.yaml
    python projects/DAS/train_net.py --config-file ... MODEL.DAS.ENABLED False           # baseline
    python projects/DAS/train_net.py --config-file ... --eval-only MODEL.WEIGHTS out/model_final.pth
    python projects/DAS/train_net.py --config-file ... --resume                          # continue a run
    python projects/DAS/train_net.py --config-file ... --num-gpus 4    # DDP: SOLVER.IMS_PER_BATCH is the
    global batch

Configs that name ``synthetic_birds_*`` datasets get the synthetic set written first
(``prepare_synthetic_data``).
"""
import das  # noqa: F401  (compat layer first; registers the DAS model)
from das.config import add_das_config
from das.datasets import prepare_synthetic_data
from das.trainer import DASTrainer

from shared.engine import default_argument_parser, launch_from_args, setup, train_or_evaluate


def main(args):
    cfg = setup(args, add_das_config, prepare=prepare_synthetic_data)
    return train_or_evaluate(DASTrainer, cfg, args)


if __name__ == "__main__":
    launch_from_args(main, default_argument_parser().parse_args())
