#!/usr/bin/env python
"""Train / evaluate AdaSP models with FastReID.

    python projects/AdaSP/train_net.py --config-file projects/AdaSP/configs/Market1501/mgn_R50-ibn_adasp.yml
    python projects/AdaSP/train_net.py --config-file ... --resume
    python projects/AdaSP/train_net.py --config-file ... --eval-only MODEL.WEIGHTS path/to/model_final.pth
    python projects/AdaSP/train_net.py --config-file ... --num-gpus 4
"""
import adasp  # noqa: F401  (compat layer first; registers AdaSPBaseline / AdaSPMGN / SyntheticMarket1501)
from adasp.config import add_adasp_config
from adasp.trainer import AdaSPTrainer

from shared.engine import default_argument_parser, launch_from_args, setup, train_or_evaluate


def main(args):
    cfg = setup(args, add_adasp_config, framework="fastreid")
    return train_or_evaluate(AdaSPTrainer, cfg, args)


if __name__ == "__main__":
    launch_from_args(main, default_argument_parser().parse_args())
