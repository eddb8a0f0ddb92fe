#!/usr/bin/env python
"""Train / evaluate SimD detectors (Faster R-CNN, RetinaNet, Cascade R-CNN) with detectron2.

    python projects/SimD/train_net.py --config-file projects/SimD/configs/aitod/faster_rcnn_R_50_FPN_1x_simd.yaml
    python projects/SimD/train_net.py --config-file <cfg> --eval-only MODEL.WEIGHTS <output>/model_final.pth
    python projects/SimD/train_net.py --config-file <cfg> --resume            # continue from OUTPUT_DIR
    python projects/SimD/train_net.py --config-file <cfg> --num-gpus 8 SOLVER.IMS_PER_BATCH 16
"""
import simd  # noqa: F401  (compat layer + registers SimilarityRPN / heads / RetinaNet)

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from shared.engine import launch_from_args
from simd.engine import SimDTrainer, setup


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = SimDTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = SimDTrainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
        return results
    trainer = SimDTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch_from_args(main, args)
