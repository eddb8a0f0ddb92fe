#!/usr/bin/env python
"""`make demo-das`: the triplet loss with and without DAS, over several seeds, in the regime the DAS paper
targets.

DAS (Liu & Huang, "Densely-Anchored Sampling for Deep Metric Learning", ECCV 2022; official code
github.com/lizhaoliu-Lec/DAS) is for the sparsity of a deep-metric-learning batch: with 2 images per class in
a batch, every anchor has a single positive, and DFS / MTS generate embeddings around the real ones so that
more points can serve as anchors. The regime, fixed from the official runs before any result was seen:

* **The official batch composition and per-class counts, scaled down.** The official CUB-200-2011 Triplet [D]
  run (``table2.sh:14``, ``configs/CUB200/triplet_distance.yaml``) trains on 100 classes of ~59 images with
  batches of 112 = 56 classes × 2 images: 2 images per class in a batch, 56 % of the training classes in
  every batch. The demo keeps both: 32 training classes of 30 images (the synthetic CUB-form set of
  ``shared/datasets/synthetic_fine_grained.py``, 64 classes at 64 px: 1-32 train, 33-64 unseen test) and
  batches of 36 = 18 classes × 2 images (56 %). The demo prints these facts next to the official ones.
* **The official loss and DAS settings**: triplet loss (margin 0.2) with the distance-weighted miner, D = 128,
  L2-normalised embeddings, Adam with weight decay 4e-4, the learning rate × 0.3 at 2/3 and 5/6 of the run
  (the official epochs 200 and 250 of 300), and the CUB preset's DAS values (K = 4 dominant dimensions,
  3 generated copies, DFS range [0.99, 1.01), MTS β = 0.01, detach), all from
  ``configs/Synthetic/triplet_distance.yaml``.
* **Small and narrow enough to train to a plateau on a CPU** (ours): timm's narrow ResNet ``test_resnet``
  (16-channel deep stem, stages of 32 / 48 / 48×4 / 96 channels) from scratch on 64 px images, learning rate
  1e-3 (from scratch instead of the official ImageNet start at 1e-5), for ``--iters`` iterations, evaluated
  every ``--eval-period`` iterations on the unseen classes (the learning curve); the demo prints how much the
  mean R@1 still moved over the last quarter of the run.
* **Seeds**: both methods on the same seeds (``--seeds``, default 5, starting at ``--base-seed``); the same
  seed gives both methods the same initial weights and the same batches (the P×K sampler has its own
  generator); the crops and the miner's draws share the global generator and differ after the first step
  (the DAS batch is 4 times larger). The summary gives mean ±
  standard deviation per metric (R@1, R@2, NMI, F1 of the *last* evaluation, not the best one), the paired
  difference (DAS − baseline, same seed) and whether it is larger than the seed noise
  (``shared.engine.demo_stats``).

``--quick`` (or ``DEMO_QUICK=1``): a reduced run of the same pipeline (2 seeds, 20 iterations, 16 classes × 6
images, batches of 4 classes × 2) that finishes in about a minute; its numbers mean nothing.
Runs go two at a time in separate processes with one thread each (``--processes``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable, Dict, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "configs", "Synthetic", "triplet_distance.yaml")
#: method name -> MODEL.DAS.ENABLED
METHODS = {"baseline": False, "DAS": True}
METRICS = ("R@1", "R@2", "NMI", "F1")
CURVE_METRIC = "R@1"
#: the reduced set and batch of --quick (8 training classes, 4 of them in a batch: the pipeline only)
QUICK_OPTS = ("DATASETS.SYNTHETIC_FINE_GRAINED.NUM_CLASSES", "16",
              "DATASETS.SYNTHETIC_FINE_GRAINED.IMAGES_PER_CLASS", "6", "SOLVER.IMS_PER_BATCH", "8")
#: the official CUB-200-2011 runs the regime is scaled from (das.official_runs: table2.sh, parameters.py)
OFFICIAL_DATASET = "cub200"


def build_demo_cfg(method: str, seed: int, output_dir: str, iters: int, eval_period: int, quick: bool,
                   extra_opts: Sequence[str] = ()):
    """The frozen config of one run: the demo preset with the method, seed and schedule (the learning rate
    × 0.3 at 2/3 and 5/6 of ``iters``, as the official epochs 200 and 250 of 300)."""
    from das.config import add_das_config

    from shared.engine import build_cfg

    steps = sorted({s for s in (iters * 2 // 3, iters * 5 // 6) if 0 < s < iters})  # distinct (short runs)
    opts = ["MODEL.DAS.ENABLED", str(METHODS[method]), "SEED", str(seed), "OUTPUT_DIR", output_dir,
            "SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS", str(tuple(steps)),
            "SOLVER.CHECKPOINT_PERIOD", str(iters), "TEST.EVAL_PERIOD", str(eval_period),
            "TEST.RETRIEVAL.VIS_QUERIES", "0"]
    cfg = build_cfg(add_das_config, CONFIG, opts + (list(QUICK_OPTS) if quick else []) + list(extra_opts))
    cfg.freeze()
    return cfg


def demo_data(cfg) -> str:
    """Write (once; cached by the generator's fingerprint) the synthetic set ``cfg`` names; returns its
    folder."""
    from das.datasets import SYNTHETIC_PREFIX, prepare_synthetic_data

    from shared.datasets import dataset_root

    prepare_synthetic_data(cfg)
    return os.path.join(dataset_root(), SYNTHETIC_PREFIX)


def regime_facts(cfg) -> Dict[str, float]:
    """The per-class counts and batch composition of ``cfg`` (its training set must exist): training
    classes, images per training class, classes per batch, images per class in a batch, and the share of
    the training classes in each batch."""
    from das.datasets import get_records

    labels = [r["label"] for r in get_records(cfg.DATASETS.TRAIN)]
    classes = len(set(labels))
    per_batch = cfg.SOLVER.IMS_PER_BATCH // cfg.DATALOADER.SAMPLES_PER_CLASS
    return {"train classes": classes, "images per class": len(labels) / classes,
            "classes per batch": per_batch, "images per class in a batch": cfg.DATALOADER.SAMPLES_PER_CLASS,
            "share of classes per batch": per_batch / classes}


def official_regime_facts() -> Dict[str, float]:
    """The same facts for the official CUB-200-2011 runs (``--bs 112 --samples_per_class 2``)."""
    from das.official_runs import DEFAULTS, TRAIN_CLASSES, TRAIN_IMAGES

    classes, batch = TRAIN_CLASSES[OFFICIAL_DATASET], DEFAULTS["bs"][0]
    k = DEFAULTS["samples_per_class"][0]
    return {"train classes": classes, "images per class": TRAIN_IMAGES[OFFICIAL_DATASET] / classes,
            "classes per batch": batch // k, "images per class in a batch": k,
            "share of classes per batch": batch // k / classes}


def regime_lines(cfg) -> str:
    """The demo's regime next to the official CUB run's, one line each."""
    lines = []
    for who, facts in (("demo", regime_facts(cfg)), ("official CUB run", official_regime_facts())):
        lines.append(f"{who:>16}: {facts['train classes']} training classes × "
                     f"{facts['images per class']:.1f} images; batch {facts['classes per batch']} classes × "
                     f"{facts['images per class in a batch']} images "
                     f"({100 * facts['share of classes per batch']:.0f} % of the classes per batch)")
    return "\n".join(lines)


def run_one(job, report: Callable[[int], None]):
    """A study worker: train one method on one seed, evaluating every ``eval_period`` iterations."""
    import torch

    torch.set_num_threads(int(job.kwargs.get("threads", 1)))

    import das  # noqa: F401  (compat layer and registrations before detectron2)
    from das.trainer import DASTrainer
    from detectron2.engine import HookBase
    from detectron2.utils.env import seed_all_rng

    from shared.engine.demo_stats import RunResult, log_to_file_only

    output_dir = job.kwargs["output_dir"]
    log_to_file_only(output_dir, ("detectron2", "das", "shared", "fvcore"))
    cfg = build_demo_cfg(job.method, job.seed, output_dir, job.steps, int(job.kwargs["eval_period"]),
                         bool(job.kwargs["quick"]), job.kwargs.get("opts", ()))
    demo_data(cfg)
    # seeded right before the model and the loader are built, as train_net.py's default_setup does: both
    # methods start from the same weights on one seed
    seed_all_rng(cfg.SEED)

    class Report(HookBase):
        def after_step(self):
            if (self.trainer.iter + 1) % 10 == 0:
                report(self.trainer.iter + 1)

    cpu0, wall0 = time.process_time(), time.time()
    trainer = DASTrainer(cfg)
    trainer.register_hooks([Report()])
    trainer.resume_or_load(resume=False)
    trainer.train()  # ends with the evaluation on DATASETS.TEST (EvalHook.after_train)
    test_set = cfg.DATASETS.TEST[0]
    history = trainer.eval_history
    last, best = history.last(), history.best()
    curve = [(it, float(results[test_set][CURVE_METRIC])) for it, results in history.history]
    result = RunResult(
        method=job.method, seed=job.seed, metrics={k: float(last["results"][test_set][k]) for k in METRICS},
        curve=curve, seconds=time.time() - wall0,
        extra={"cpu_seconds": time.process_time() - cpu0, "best_iter": best["iter"],
               "best_R@1": float(best["results"][test_set][CURVE_METRIC]),
               "losses": [float(v) for v, _ in trainer.storage.history("total_loss").values()]},
    )
    with open(os.path.join(output_dir, "demo_metrics.json"), "w") as f:
        json.dump(result.__dict__, f, indent=2)
    return result


def per_seed_table(results, seeds: Sequence[int]) -> str:
    """R@1 of each method per seed and the paired difference."""
    final = {(r.method, r.seed): r.metrics[CURVE_METRIC] for r in results}
    header = (f"{'seed':>6}" + "".join(f"{f'{k} {CURVE_METRIC}':>16}" for k in METHODS)
              + f"{'DAS − baseline':>16}")
    lines = [header]
    for s in seeds:
        lines.append(f"{s:>6}" + "".join(f"{final[(k, s)]:>16.2f}" for k in METHODS)
                     + f"{final[('DAS', s)] - final[('baseline', s)]:>+16.2f}")
    return "\n".join(lines)


def curve_table(results) -> str:
    """The learning curve in text: mean ± sd of R@1 over the seeds at every evaluation, per method."""
    from shared.engine.demo_stats import curve_statistics

    stats = {k: curve_statistics(results, k) for k in METHODS}
    grid = stats["baseline"][0]
    lines = [f"{'iteration':>10}" + "".join(f"{k:>18}" for k in METHODS)]
    for i, it in enumerate(grid):
        lines.append(f"{it:>10}" + "".join(f"{f'{stats[k][1][i]:.2f} ± {stats[k][2][i]:.2f}':>18}"
                                           for k in METHODS))
    return "\n".join(lines)


def plateau_line(results, iters: int) -> str:
    """How much each method's mean R@1 moved over the last quarter of the run (the evaluation at or before
    75 % of ``iters`` to the last one): near 0 = the curve has flattened."""
    from shared.engine.demo_stats import curve_statistics

    parts = []
    for k in METHODS:
        grid, means, _ = curve_statistics(results, k)
        start = max((i for i, it in enumerate(grid) if it <= 0.75 * iters), default=0)
        parts.append(f"{k} {means[-1] - means[start]:+.2f} (iteration {grid[start]} → {grid[-1]})")
    return "Mean R@1 change over the last quarter of the run: " + ", ".join(parts)


def parse_args(argv=None) -> argparse.Namespace:
    from shared.engine.demo_stats import parse_study_args, study_argument_parser

    parser = study_argument_parser(
        __doc__, output_dir="./output/das_demo", seeds=5, base_seed=1, iters=600, eval_period=50,
        quick_help="reduced size (2 seeds, 20 iterations, 16 classes × 6 images): pipeline only")
    return parse_study_args(parser, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    wall, cpu = time.time(), time.process_time()
    import das  # noqa: F401
    from shared.engine.demo_stats import StudyJob, finish_study, plot_curves, run_study, summary_table

    seeds = list(range(args.base_seed, args.base_seed + args.seeds))
    cfg = build_demo_cfg("DAS", seeds[0], args.output_dir, args.iters, args.eval_period, args.quick,
                         args.opts)
    root = demo_data(cfg)  # written here once, before the runs start in parallel
    print(f"demo set {root}:\n{regime_lines(cfg)}", flush=True)
    jobs = [StudyJob(method, seed, args.iters, {
        "output_dir": os.path.join(args.output_dir, f"{method.lower()}_seed{seed}"), "quick": args.quick,
        "eval_period": args.eval_period, "opts": list(args.opts)}) for seed in seeds for method in METHODS]
    results = run_study(jobs, run_one, processes=args.processes)

    facts = regime_facts(cfg)
    das_cfg = cfg.MODEL.DAS
    lines = [
        f"DAS demo: triplet loss (margin {cfg.MODEL.LOSS.MARGIN}) + distance-weighted miner, baseline vs DAS "
        f"(K {das_cfg.DFS.NUM_SCALE} of {cfg.MODEL.EMBEDDING.DIM} dims, {das_cfg.NUM_PRODUCE} copies, "
        f"DFS range {tuple(das_cfg.DFS.RANGE)}, MTS β {das_cfg.MTS.SCALE}); {cfg.MODEL.EMBEDDING.BACKBONE} "
        f"from scratch at {cfg.INPUT.TRAIN_SIZE} px, {facts['train classes']} training classes, batch "
        f"{cfg.SOLVER.IMS_PER_BATCH} = {facts['classes per batch']} classes × "
        f"{facts['images per class in a batch']}, {args.iters} iterations; last evaluation on "
        f"{cfg.DATASETS.TEST[0]} (unseen classes)",
        summary_table(results, METRICS, "DAS", "baseline"),
        "",
        f"Final {CURVE_METRIC} per seed:",
        per_seed_table(results, seeds),
        "",
        f"Learning curve, {CURVE_METRIC} (mean ± sd over the seeds):",
        curve_table(results),
        plateau_line(results, args.iters),
    ]
    png = plot_curves(results, list(METHODS), os.path.join(args.output_dir, "learning_curve.png"),
                      f"DAS demo: triplet [D] with and without DAS, {len(seeds)} seeds",
                      f"{CURVE_METRIC} on the unseen classes")
    finish_study(lines, results, args.output_dir, [png], wall, cpu, args.processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
