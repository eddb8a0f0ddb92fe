#!/usr/bin/env python
"""RDCD on the CPU in minutes: teacher vs distilled compact students on a synthetic DISC21-style set.

1. generate the synthetic set if missing ($DETECTRON2_DATASETS/synthetic_disc21, default ./datasets);
2. train the demo teacher -- a ResNet-18 (ours; the paper's teacher is SSCD ResNet-50) -- with SSCD's
   InfoNCE + KoLeo objective (configs/synthetic/sscd_r18_teacher.yaml);
3. distil a student to 64-d and to 256-d descriptors from it with RDCD -- by default a ResNet-18 trunk
   trained from scratch (configs/synthetic/rdcd_r18_{64,256}.yaml); ``--student effb0`` picks the paper's
   EfficientNet-B0 (configs/synthetic/rdcd_effb0_*.yaml), which needs ImageNet weights
   (``--student-weights``) to learn in a CPU budget;
4. print µAP / µAPsn / recall@P90 / accuracy@1 of the teacher and of every student before and after
   distillation side by side; ``--ablation`` also trains each student without the relational loss
   (MoCo InfoNCE + hard negatives only, MODEL.RDCD.LOSS.KD_W 0) to show what the distillation adds.

    python projects/RDCD/demo.py [--teacher-iters 100] [--student-iters 100] [--student r18|effb0] \
        [--ablation]
"""

import argparse
import os
import time

import rdcd  # noqa: F401  (imports shared: compat layer before detectron2)
import torch
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger
from tabulate import tabulate

from rdcd.config import add_rdcd_config
from rdcd.trainer import RDCDTrainer
from shared.engine import build_cfg

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "synthetic")
DATASET = "synthetic_disc21"
# --student choice -> (config file prefix, network name printed in the table)
STUDENTS = {"r18": ("rdcd_r18", "ResNet-18"), "effb0": ("rdcd_effb0", "EfficientNet-B0")}


def _cfg(config: str, output_dir: str, max_iter: int, *overrides):
    opts = ["OUTPUT_DIR", output_dir, "SOLVER.MAX_ITER", str(max_iter), *map(str, overrides)]
    return build_cfg(add_rdcd_config, os.path.join(CONFIGS, config), opts)


def _row(name: str, network: str, dim: int, metrics: dict, seconds: float) -> list:
    def fmt(key):
        return f"{metrics[key]:.1f}" if key in metrics else "n/a"

    return [
        name,
        network,
        dim,
        fmt("uAP"),
        fmt("uAP_sn"),
        fmt("recall_at_p90_sn"),
        fmt("accuracy_at_1"),
        f"{seconds:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", default="output/rdcd_demo")
    parser.add_argument("--teacher-iters", type=int, default=100)
    parser.add_argument("--student-iters", type=int, default=100)
    parser.add_argument(
        "--student",
        choices=sorted(STUDENTS),
        default="r18",
        help="student trunk: r18 (learns from scratch) or effb0 (the paper's; give --student-weights)",
    )
    parser.add_argument("--student-weights", default="", help="local ImageNet weights of the student trunk")
    parser.add_argument(
        "--ablation", action="store_true", help="also train each student without the relational loss (KD_W 0)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setup_logger(name="detectron2")
    setup_logger(name="rdcd")
    start = time.perf_counter()
    rows = []

    teacher_cfg = _cfg("sscd_r18_teacher.yaml", os.path.join(args.output_dir, "teacher"), args.teacher_iters)
    seed_all_rng(teacher_cfg.SEED)
    t0 = time.perf_counter()
    untrained = RDCDTrainer.build_model(teacher_cfg)  # also generates the dataset on first use
    rows.append(
        _row(
            "SSCD teacher, untrained init",
            "ResNet-18",
            512,
            RDCDTrainer.test(teacher_cfg, untrained)[DATASET],
            time.perf_counter() - t0,
        )
    )
    del untrained

    t0 = time.perf_counter()
    trainer = RDCDTrainer(teacher_cfg)
    trainer.resume_or_load(resume=False)
    metrics = trainer.train()[DATASET]
    rows.append(
        _row(f"SSCD teacher, {args.teacher_iters} it", "ResNet-18", 512, metrics, time.perf_counter() - t0)
    )
    teacher_weights = os.path.join(args.output_dir, "teacher", "model_final.pth")
    del trainer

    prefix, network = STUDENTS[args.student]
    # (row name, output-folder suffix, extra config overrides)
    variants = [("RDCD", "", [])]
    if args.ablation:
        variants.append(("no relational KD", "_no_kd", ["MODEL.RDCD.LOSS.KD_W", 0.0]))
    for dim in (64, 256):
        overrides = [
            "MODEL.RDCD.TEACHER_WEIGHTS",
            teacher_weights,
            "MODEL.RDCD.STUDENT_WEIGHTS",
            args.student_weights,
        ]
        cfg = _cfg(
            f"{prefix}_{dim}.yaml",
            os.path.join(args.output_dir, f"student_{dim}"),
            args.student_iters,
            *overrides,
        )
        seed_all_rng(cfg.SEED)
        t0 = time.perf_counter()
        rows.append(
            _row(
                "student, before distillation",
                network,
                dim,
                RDCDTrainer.test(cfg, RDCDTrainer.build_model(cfg))[DATASET],
                time.perf_counter() - t0,
            )
        )
        for name, tag, extra in variants:
            cfg = _cfg(
                f"{prefix}_{dim}.yaml",
                os.path.join(args.output_dir, f"student_{dim}{tag}"),
                args.student_iters,
                *overrides,
                *extra,
            )
            seed_all_rng(cfg.SEED)
            t0 = time.perf_counter()
            trainer = RDCDTrainer(cfg)
            trainer.resume_or_load(resume=False)
            metrics = trainer.train()[DATASET]
            rows.append(
                _row(
                    f"{name} student, {args.student_iters} it",
                    network,
                    dim,
                    metrics,
                    time.perf_counter() - t0,
                )
            )
            del trainer

    headers = ["model", "network", "dim", "µAP", "µAPsn", "recall@P90 (sn)", "acc@1", "time (s)"]
    print()
    print(
        f"RDCD demo on the synthetic DISC21-style set ({DATASET}); metrics in percent, 64 px images, "
        f"score normalisation against the {int(metrics['num_background'])} background images"
    )
    print(tabulate(rows, headers=headers, tablefmt="github"))
    print(f"total time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
