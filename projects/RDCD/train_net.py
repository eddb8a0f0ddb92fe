#!/usr/bin/env python
"""RDCD / SSCD training and evaluation (detectron2 conventions).

    python projects/RDCD/train_net.py --config-file projects/RDCD/configs/DISC21/rdcd_effb0_256.yaml
    python projects/RDCD/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/model_final.pth
    python projects/RDCD/train_net.py --config-file ... --num-gpus 2      # DDP
    python projects/RDCD/train_net.py --config-file ... --resume          # continue from OUTPUT_DIR/last_checkpoint
"""
import rdcd  # noqa: F401  (imports shared: compat layer before detectron2)
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from rdcd.config import get_rdcd_cfg
from rdcd.engine import RDCDTrainer
from shared.engine import launch_from_args


def setup(args):
    """Default config + ``--config-file`` + trailing ``KEY VALUE`` overrides; logging to OUTPUT_DIR."""
    cfg = get_rdcd_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="rdcd")
    return cfg


def main(args):
    return RDCDTrainer.train_or_evaluate(setup(args), eval_only=args.eval_only, resume=args.resume)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch_from_args(main, args)
