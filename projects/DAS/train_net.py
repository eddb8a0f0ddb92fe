#!/usr/bin/env python
"""DAS training / evaluation script (detectron2 conventions).

    python projects/DAS/train_net.py --config-file projects/DAS/configs/CUB200/triplet_distance.yaml
    python projects/DAS/train_net.py --config-file ... MODEL.DAS.ENABLED False           # baseline
    python projects/DAS/train_net.py --config-file ... --eval-only MODEL.WEIGHTS out/model_final.pth
    python projects/DAS/train_net.py --config-file ... --resume                          # continue a run
"""
import das  # noqa: F401  (applies the compatibility layer before detectron2 is imported)
from das.trainer import DASTrainer, get_das_cfg
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from shared.engine import launch_from_args


def setup(args):
    cfg = get_das_cfg(args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="das")
    return cfg


def main(args):
    return DASTrainer.train_or_evaluate(setup(args), eval_only=args.eval_only, resume=args.resume)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch_from_args(main, args)
