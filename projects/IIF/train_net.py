#!/usr/bin/env python
"""Train / evaluate Mask R-CNN with IIF (or the softmax baseline) with detectron2 conventions.

    python projects/IIF/train_net.py --config-file projects/IIF/configs/synthetic/iif_raw.yaml
    python projects/IIF/train_net.py --config-file projects/IIF/configs/LVIS-InstanceSegmentation/\
mask_rcnn_R_50_FPN_iif_raw_1x.yaml --num-gpus 4 MODEL.WEIGHTS /path/to/R-50.pkl
    python projects/IIF/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/.../model_final.pth
"""
import iif  # noqa: F401  (compat layer first; registers IIFROIHeads)
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser, default_setup
from detectron2.evaluation import verify_results

from iif.config import add_iif_config
from iif.data import prepare_datasets
from iif.trainer import IIFTrainer
from shared.engine import AtomicDetectionCheckpointer, launch_from_args, resolve_device


def setup(args):
    cfg = get_cfg()
    add_iif_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.DEVICE = resolve_device(cfg.MODEL.DEVICE)
    cfg.freeze()
    default_setup(cfg, args)
    prepare_datasets(list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST))
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = IIFTrainer.build_model(cfg)
        AtomicDetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = IIFTrainer.test(cfg, model)
        verify_results(cfg, results)
        return results
    trainer = IIFTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    launch_from_args(main, args)
