#!/usr/bin/env python
"""Train / evaluate AdaSP models with FastReID (``tools/train_net.py`` conventions).

    python projects/AdaSP/train_net.py --config-file projects/AdaSP/configs/Market1501/mgn_R50-ibn_adasp.yml
    python projects/AdaSP/train_net.py --config-file ... --resume
    python projects/AdaSP/train_net.py --config-file ... --eval-only MODEL.WEIGHTS path/to/model_final.pth
    python projects/AdaSP/train_net.py --config-file ... --num-gpus 4
"""
import adasp  # noqa: F401  (compat layer + registers AdaSPBaseline / AdaSPMGN / SyntheticMarket1501)
from adasp.config import build_adasp_cfg
from adasp.trainer import AdaSPTrainer, AtomicReidCheckpointer
from fastreid.engine import default_argument_parser, default_setup, launch


def setup(args):
    cfg = build_adasp_cfg(args.config_file, args.opts)
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = AdaSPTrainer.build_model(cfg)
        AtomicReidCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        return AdaSPTrainer.test(cfg, model)
    trainer = AdaSPTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
