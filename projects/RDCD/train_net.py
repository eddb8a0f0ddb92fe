#!/usr/bin/env python
"""RDCD / SSCD training and evaluation (detectron2 engine).

    python projects/RDCD/train_net.py --config-file projects/RDCD/configs/DISC21/rdcd_effb0_256.yaml
    python projects/RDCD/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/model_final.pth
    python projects/RDCD/train_net.py --config-file ... --num-gpus 2      # DDP
    python projects/RDCD/train_net.py --config-file ... --resume          # from OUTPUT_DIR/last_checkpoint
"""
import rdcd  # noqa: F401  (compat layer first; registers the RDCD / SSCD networks)
from rdcd.config import add_rdcd_config
from rdcd.trainer import RDCDTrainer

from shared.engine import default_argument_parser, launch_from_args, setup, train_or_evaluate


def main(args):
    cfg = setup(args, add_rdcd_config)
    return train_or_evaluate(RDCDTrainer, cfg, args)


if __name__ == "__main__":
    launch_from_args(main, default_argument_parser().parse_args())
