#!/usr/bin/env python
"""RDCD / SSCD training and evaluation (detectron2 conventions).

    python projects/RDCD/train_net.py --config-file projects/RDCD/configs/DISC21/rdcd_effb0_256.yaml
    python projects/RDCD/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/model_final.pth
    python projects/RDCD/train_net.py --config-file ... --num-gpus 2      # DDP
    python projects/RDCD/train_net.py --config-file ... --resume          # continue from OUTPUT_DIR/last_checkpoint
"""
import rdcd  # noqa: F401  (imports shared: compat layer before detectron2)
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from rdcd.config import get_rdcd_cfg
from rdcd.engine import RDCDTrainer
from shared.engine import AtomicDetectionCheckpointer


def setup(args):
    cfg = get_rdcd_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="rdcd")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = RDCDTrainer.build_model(cfg)
        AtomicDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return RDCDTrainer.test(cfg, model)
    trainer = RDCDTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
