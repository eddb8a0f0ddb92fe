#!/usr/bin/env python
"""`make demo`: IoU vs SimD label assignment in the RPN of a Faster R-CNN, on the synthetic tiny-object set.

1. generates the synthetic AI-TOD-style set if missing (cached in $DETECTRON2_DATASETS/synthetic_tiny,
   default ./datasets/synthetic_tiny);
2. trains two ResNet-18-FPN Faster R-CNNs from scratch on the CPU with the same schedule and seed,
   one with IoU and one with SimD anchor assignment in the RPN (mmdet MaxIoUAssigner semantics for both;
   SimD's m and n estimated from the training set);
3. evaluates both with the AI-TOD protocol and prints them side by side.

The two runs are independent processes with one thread each (on 2 cores this is faster than running
them one after the other with two threads each); ``--sequential`` runs them one after the other.
"""

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "synthetic")
VARIANTS = (("IoU", "faster_rcnn_R18_FPN_iou.yaml"), ("SimD", "faster_rcnn_R18_FPN_simd.yaml"))
COLUMNS = ("AP", "AP50", "AP75", "APvt", "APt", "APs", "APm")


def _train_and_evaluate(
    label: str, config_file: str, output_dir: str, iters: int, threads: int, seed: int = -1
) -> dict:
    """One variant: train, evaluate with the AI-TOD protocol, write and return the metrics."""
    import torch

    torch.set_num_threads(threads)
    import simd  # noqa: F401  (compat layer and registrations before detectron2)
    from detectron2.engine import HookBase
    from detectron2.utils.logger import setup_logger

    from shared.engine import build_cfg
    from simd.config import add_simd_config
    from simd.trainer import SimDTrainer, prepare_cfg

    setup_logger(output=os.path.join(output_dir, "log.txt"), name="detectron2", abbrev_name="d2")
    setup_logger(output=os.path.join(output_dir, "log.txt"), name="simd")
    for name in ("detectron2", "simd"):  # keep the console for the progress lines below
        for handler in __import__("logging").getLogger(name).handlers:
            if type(handler).__name__ == "StreamHandler":
                handler.setLevel("WARNING")
    from detectron2.utils.env import seed_all_rng

    overrides = ["OUTPUT_DIR", output_dir, "SOLVER.MAX_ITER", str(iters)] + (
        ["SEED", str(seed)] if seed >= 0 else []
    )
    cfg = prepare_cfg(build_cfg(add_simd_config, config_file, overrides))
    # seeded right before the model and the data loader are built (the normaliser estimation draws no random
    # numbers), so both variants start from the same weights (train_net.py seeds in default_setup)
    seed_all_rng(cfg.SEED)

    class Progress(HookBase):
        def __init__(self):
            self.start = time.time()

        def after_step(self):
            step = self.trainer.iter + 1
            if step % 25 == 0 or step == iters:
                losses = self.trainer.storage.latest()
                loss = losses.get("total_loss", (float("nan"),))[0]
                elapsed = time.time() - self.start
                eta = elapsed / step * (iters - step)
                print(
                    f"[{label:>4}] iter {step:4d}/{iters}  total_loss {loss:.3f}  "
                    f"elapsed {elapsed:5.0f}s  eta {eta:4.0f}s",
                    flush=True,
                )

    trainer = SimDTrainer(cfg)
    trainer.register_hooks([Progress()])
    trainer.resume_or_load(resume=False)
    start = time.time()
    trainer.train()  # ends with the evaluation on DATASETS.TEST (detectron2's EvalHook after the last step)
    seconds = time.time() - start
    results = trainer._last_eval_results
    bbox = results["bbox"] if "bbox" in results else results[cfg.DATASETS.TEST[0]]["bbox"]
    summary = {
        "label": label,
        "metrics": {k: bbox[k] for k in COLUMNS + ("AP25",)},
        "m": cfg.MODEL.SIMD.M,
        "n": cfg.MODEL.SIMD.N,
        "rpn_similarity": cfg.MODEL.RPN.SIMILARITY,
        "train_and_eval_seconds": seconds,
        "iters": iters,
    }
    with open(os.path.join(output_dir, "demo_metrics.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"[{label:>4}] done: train + eval {seconds:.0f}s, AP {bbox['AP']:.2f}", flush=True)
    return summary


def _worker(args):
    return _train_and_evaluate(*args)


def format_table(summaries) -> str:
    header = f"{'RPN assignment':<16}" + "".join(f"{c:>8}" for c in COLUMNS) + f"{'m':>8}{'n':>8}"
    lines = [header, "-" * len(header)]
    for s in summaries:
        m = f"{s['m']:.3f}" if s["rpn_similarity"] == "simd" else "-"
        n = f"{s['n']:.3f}" if s["rpn_similarity"] == "simd" else "-"
        values = "".join(
            f"{'n/a':>8}" if math.isnan(s["metrics"][c]) else f"{s['metrics'][c]:8.2f}" for c in COLUMNS
        )
        lines.append(f"{s['label']:<16}" + values + f"{m:>8}{n:>8}")
    lines.append("(n/a: no ground truth in that size range; the synthetic objects are at most 32 px)")
    return "\n".join(lines)


def _assignment_table(config_file: str, simd_output_dir: str) -> str:
    """The assignment-statistics table (IoU vs SimD) of the SimD variant's config, m and n from its run."""
    from shared.engine import build_cfg
    from simd.assignment_stats import format_table as format_stats
    from simd.assignment_stats import statistics_for_cfg
    from simd.config import add_simd_config
    from simd.trainer import prepare_cfg

    cfg = build_cfg(add_simd_config, config_file, ["OUTPUT_DIR", simd_output_dir])
    cfg = prepare_cfg(cfg, write_config=False)  # the run's config.yaml stays as training wrote it
    return format_stats(statistics_for_cfg(cfg, ["iou", "simd"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", default="./output/simd_demo")
    parser.add_argument("--iters", type=int, default=150, help="training iterations of each model")
    parser.add_argument("--sequential", action="store_true", help="train the two models one after the other")
    parser.add_argument(
        "--seed", type=int, default=-1, help="override the configs' SEED (1) to see the seed spread"
    )
    args = parser.parse_args(argv)
    wall = time.time()

    import shared  # noqa: F401
    from shared.datasets.synthetic_tiny import generate_synthetic_tiny
    from simd.datasets import synthetic_tiny_root

    root = synthetic_tiny_root()
    print(f"synthetic tiny-object set: {root} (generated if missing)", flush=True)
    generate_synthetic_tiny(root)
    jobs = [
        (
            label,
            os.path.join(CONFIG_DIR, name),
            os.path.join(args.output_dir, label.lower()),
            args.iters,
            2 if args.sequential else 1,
            args.seed,
        )
        for label, name in VARIANTS
    ]
    if args.sequential:
        summaries = [_worker(job) for job in jobs]
    else:
        with mp.get_context("spawn").Pool(len(jobs)) as pool:
            summaries = pool.map(_worker, jobs)

    print()
    print(
        f"Faster R-CNN R18-FPN from scratch, {args.iters} iterations, batch 4, 256 px, AI-TOD protocol "
        f"(AP at maxDets 1500) on {root}/val:"
    )
    print(format_table(summaries))
    stats = _assignment_table(os.path.join(CONFIG_DIR, VARIANTS[1][1]), os.path.join(args.output_dir, "simd"))
    print()
    print(
        "Why: RPN label assignment on the training set (projects/SimD/assignment_stats.py), same anchors and "
        "matcher, SimD with the m, n above:"
    )
    print(stats)
    print(f"total wall time {time.time() - wall:.0f}s")
    with open(os.path.join(args.output_dir, "demo_table.txt"), "w") as f:
        f.write(format_table(summaries) + "\n\n" + stats + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
