#!/usr/bin/env python
"""DAS demo: train a small backbone with and without DAS on the synthetic CUB-layout set and compare them.

    python projects/DAS/demo.py                       # (= make demo-das) a few minutes on 2 CPU cores
    python projects/DAS/demo.py --iters 100 SOLVER.BASE_LR 0.001

Steps: write the synthetic set to ``$DETECTRON2_DATASETS/synthetic_birds`` if missing (40 classes × 20 images,
64 px, ``DATASETS.SYNTHETIC_FINE_GRAINED``; classes 1-20 train, 21-40 test), train
``configs/Synthetic/triplet_distance.yaml`` twice with the same seed (``MODEL.DAS.ENABLED`` False / True),
evaluate on the unseen test classes and print R@1/R@2/NMI/F1 side by side (last evaluation, and the best-R@1
evaluation). Retrieval grids are saved next to the checkpoints.
"""
import argparse
import os
import time

import das  # noqa: F401  (applies the compatibility layer before detectron2 is imported)
from das.config import add_das_config
from das.datasets import SYNTHETIC_PREFIX, prepare_synthetic_data
from das.trainer import DASTrainer
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from shared.datasets import dataset_root
from shared.engine import build_cfg

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONFIG = os.path.join(HERE, "configs", "Synthetic", "triplet_distance.yaml")
TABLE_METRICS = ("R@1", "R@2", "NMI", "F1")


def run_variant(config_file: str, use_das: bool, output_dir: str, iters: int, opts):
    """Train and evaluate one variant; returns the trainer's EvalHistory (last / best evaluations)."""
    overrides = ["MODEL.DAS.ENABLED", str(use_das), "OUTPUT_DIR", output_dir] + list(opts)
    if iters > 0:
        overrides += ["SOLVER.MAX_ITER", str(iters)]
    cfg = prepare_synthetic_data(build_cfg(add_das_config, config_file, overrides))
    cfg.freeze()
    seed_all_rng(cfg.SEED)  # both variants start from the same weights (train_net.py seeds in default_setup)
    trainer = DASTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    return trainer.eval_history, cfg


def format_table(rows, columns):
    """Plain-text table: ``rows`` = [(label, {column: value})]."""
    header = f"{'':<24}" + "".join(f"{c:>10}" for c in columns)
    lines = [header, "-" * len(header)]
    for label, values in rows:
        lines.append(f"{label:<24}" + "".join(f"{values[c]:>10.2f}" for c in columns))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", default=DEFAULT_CONFIG)
    parser.add_argument("--output-dir", default="./output/das_demo")
    parser.add_argument("--iters", type=int, default=0, help="override SOLVER.MAX_ITER (0 = config value)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="trailing KEY VALUE config overrides")
    args = parser.parse_args()
    setup_logger(name="das")
    setup_logger()
    start = time.perf_counter()
    print(f"synthetic CUB-form set: {os.path.join(dataset_root(), SYNTHETIC_PREFIX)} (written on first use)")

    results = {}
    for name, use_das in (("baseline", False), ("DAS", True)):
        t0 = time.perf_counter()
        history, cfg = run_variant(args.config_file, use_das, os.path.join(args.output_dir, name), args.iters,
                                   args.opts)
        results[name] = (history, time.perf_counter() - t0)
    test_set = cfg.DATASETS.TEST[0]
    rows = []
    for which in ("last", "best"):
        for name, (history, _) in results.items():
            record = getattr(history, which)()
            rows.append((f"{name} ({which}, it {record['iter']})", record["results"][test_set]))
    print()
    print(f"DAS demo on {test_set} (unseen classes), {cfg.MODEL.EMBEDDING.BACKBONE} from scratch at "
          f"{cfg.INPUT.TEST_SIZE} px, {cfg.MODEL.LOSS.NAME} + {cfg.MODEL.MINER.NAME} miner, "
          f"{cfg.SOLVER.MAX_ITER} iterations; 'best' = evaluation with the highest R@1")
    print(format_table(rows, TABLE_METRICS))
    for name, (_, seconds) in results.items():
        grid = os.path.join(args.output_dir, name, f"retrieval_{test_set}.png")
        print(f"{name}: {seconds:.0f} s; retrieval grid: {grid}")
    print(f"total demo time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
