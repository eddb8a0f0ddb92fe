#!/usr/bin/env python
"""`make demo-adasp`: AdaSP against SP-H (and optionally batch-hard triplet), metric-only, over several seeds,
in the regime the AdaSP paper targets.

The regime, fixed from the paper's setting before any result was seen:

* **Identities whose appearance varies strongly within the class.** AdaSP (Zhou et al., "Adaptive Sparse
  Pairwise Loss for Object Re-Identification", CVPR 2023) starts from the observation that in ReID some
  positive pairs of an identity are "harmful": front and back views, heavy occlusion, misaligned detections.
  Pulling every positive pair together (dense pairwise losses) or the hardest one (SP-H) spends the loss on
  pairs that cannot be made similar; a *sparse* set of pairs per class is enough, and the adaptive weight
  ``w = 2 s_H s_LH / (s_H + s_LH)`` moves the positive of each class from the hardest pair (compact classes)
  towards the least-hard one (classes with a large intra-class variation, small s_H). The mechanism only
  matters when classes differ in how much they vary, so the demo's set (``shared/datasets/synthetic_reid.py``
  with ``varied_id_fraction=0.5``) makes half of the identities, train and test alike, vary strongly: each of
  their images is seen from behind with probability 0.5 (hair instead of face, a backpack over the torso, no
  shirt pattern, the bag on the other side), is hidden by a large occluder (the lower half, or one side) with
  probability 0.3, and is badly cropped (scaled 0.65-1.0, shifted up to 15 % of the width). The other half
  varies only as the default set does (camera colour, pose, small occluders). The demo prints the counts.
* **Baseline: SP-H** (metric-only, as AdaSP), the paper's own ablation of the positive mining: AdaSP is SP-H
  plus the adaptive weight, so AdaSP − SP-H on the same seeds isolates the weight, the one thing the regime
  above is designed to exercise. ``--baselines SP-H Triplet`` adds the batch-hard triplet loss (Hermans et
  al., 2017; fastreid's ``TripletLoss``, margin 0.3, hard mining), the standard pairwise loss of the paper's
  comparison of losses; each baseline gets its own summary table. The default leaves it out to stay in the
  time budget.
* **Small enough to train to a plateau on a CPU**: ResNet-18 (fastreid's smallest ResNet) from scratch on
  64x32 crops with last stride 2 (a 2x1 final map), P=8 identities x K=4 images, Adam 1e-3 with a
  20-iteration warm-up and cosine decay, for ``--iters`` iterations (rounded to whole epochs of the
  training set), evaluated every ``--eval-period`` iterations (the learning curve, mAP); the default, 272
  (16 epochs), is what 3 seeds x 2 losses afford in the budget, where a pilot's curve was slowing down but
  not yet flat (README: ``--iters 408`` trains longer). The narrower OSNet x0.25 (fastreid's
  ``build_osnet_backbone``) was tried first and dropped: from scratch it had not started to learn after 254
  iterations (mAP 3). The model and schedule are ours (``configs/Synthetic/demo_R18_*.yml``).
* **Seeds**: AdaSP and its baseline(s) on the same seeds (``--seeds``, default 3, starting at
  ``--base-seed``); a seed fixes the initial weights and the sampled batches, identical for every loss. For
  each baseline the summary gives mean ± standard deviation of mAP, Rank-1 and mINP, the paired difference
  (AdaSP − baseline, same seed) and whether it is larger than the seed noise (``shared.engine.demo_stats``).
  After it: the final metrics per seed, the mean learning curve and, as the "why", the hardest and
  least-hard positive similarities and AdaSP's weight on the regular and on the varied training identities.

``--quick`` (or ``DEMO_QUICK=1``): a reduced run of the same pipeline (2 seeds, 2 epochs, 16 training and 8
test identities) that finishes in a minute or two; its numbers mean nothing.
Runs go two at a time in separate processes with one thread each (``--processes``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from typing import Callable, Dict, Iterator, List, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(HERE, "configs", "Synthetic")
CONFIGS = {"AdaSP": "demo_R18_adasp.yml", "SP-H": "demo_R18_sp-h.yml",
           "Triplet": "demo_R18_triplet.yml"}
METHOD = "AdaSP"
#: the baselines ``--baselines`` can name, and the default study's (module docstring)
BASELINES, DEFAULT_BASELINES = ("SP-H", "Triplet"), ("SP-H",)
#: the demo's metric name -> the evaluator's key (percent)
METRICS = {"mAP": "mAP", "R1": "Rank-1", "mINP": "mINP"}
#: the demo's sets, each under its own dataset root ($FASTREID_DATASETS/<folder>/synthetic_reid/...), so the
#: default synthetic set other commands read is never overwritten
DATA_FOLDER = {False: "adasp_demo_varied", True: "adasp_demo_varied_quick"}
#: half of the identities vary strongly (module docstring); the rest is the generator's default
DATA_SPEC = dict(num_train_ids=64, num_test_ids=64, num_distractors=16, num_junk=8, seed=0,
                 varied_id_fraction=0.5, back_view_prob=0.5, large_occlusion_prob=0.3, misalignment=0.15)
QUICK_DATA_SPEC = dict(DATA_SPEC, num_train_ids=16, num_test_ids=8, num_distractors=4, num_junk=2)
QUICK_EPOCHS = 2


def data_spec(quick: bool):
    """The :class:`~shared.datasets.synthetic_reid.SyntheticReIDSpec` of the demo's set."""
    from shared.datasets.synthetic_reid import SyntheticReIDSpec

    return SyntheticReIDSpec(**(QUICK_DATA_SPEC if quick else DATA_SPEC))


def data_root(quick: bool) -> str:
    """The dataset root of the demo's set (the ``$FASTREID_DATASETS`` its runs see)."""
    from shared.datasets.paths import FASTREID_ENV, dataset_root

    return os.path.join(dataset_root(FASTREID_ENV), DATA_FOLDER[bool(quick)])


@contextlib.contextmanager
def demo_dataset_root(root: str) -> Iterator[None]:
    """``$FASTREID_DATASETS`` = ``root`` inside the block (the trainer reads it at call time), then the
    previous value."""
    from shared.datasets.paths import FASTREID_ENV

    saved = os.environ.get(FASTREID_ENV)
    os.environ[FASTREID_ENV] = root
    try:
        yield
    finally:
        if saved is None:
            del os.environ[FASTREID_ENV]
        else:
            os.environ[FASTREID_ENV] = saved


def demo_data(quick: bool) -> Dict[str, object]:
    """Generate (cached) the demo's set; returns the generator's summary (image counts, varied ids)."""
    from adasp.datasets import SYNTHETIC_SUBDIR
    from shared.datasets.synthetic_reid import generate_synthetic_market1501

    return generate_synthetic_market1501(os.path.join(data_root(quick), SYNTHETIC_SUBDIR), data_spec(quick))


def describe_data(summary: Dict[str, object]) -> str:
    """One line: identities, images per split and how many identities vary strongly."""
    counts = summary["num_images"]
    varied = summary.get("varied_pids", [])
    num_train = summary["num_train_ids"]
    varied_train = sum(1 for pid in varied if pid <= num_train)
    return (f"{num_train} training identities ({counts['bounding_box_train']} images), "
            f"{summary['num_test_ids']} test identities ({counts['query']} queries, "
            f"{counts['bounding_box_test']} gallery files incl. distractors and junk); strongly varying "
            f"(back views, large occluders, bad crops): {varied_train} of the training and "
            f"{len(varied) - varied_train} of the test identities")


def epochs_for(iters: int, iters_per_epoch: int, minimum: int = 1) -> int:
    """FastReID trains whole epochs: the number of epochs closest to ``iters`` iterations (at least
    ``minimum``)."""
    return max(minimum, int(round(iters / iters_per_epoch)))


def build_demo_cfg(method: str, seed: int, output_dir: str, epochs: int, eval_epochs: int,
                   extra_opts: Sequence[str] = ()):
    """The frozen config of one run."""
    from adasp.config import add_adasp_config

    from shared.engine import build_cfg

    opts = ["OUTPUT_DIR", output_dir, "SEED", str(seed), "SOLVER.MAX_EPOCH", str(epochs),
            "TEST.EVAL_PERIOD", str(eval_epochs)]
    cfg = build_cfg(add_adasp_config, os.path.join(CONFIG_DIR, CONFIGS[method]), opts + list(extra_opts),
                    framework="fastreid")
    cfg.freeze()
    return cfg


def _log_to_file(output_dir: str) -> None:
    """The runs' logs go to ``output_dir/log.txt``; the console keeps the study's progress (and warnings)."""
    from fastreid.utils.logger import setup_logger

    for name in ("fastreid", "adasp", "shared"):
        setup_logger(output=os.path.join(output_dir, "log.txt"), name=name, abbrev_name=name)
        for handler in logging.getLogger(name).handlers:
            if type(handler).__name__ == "StreamHandler":
                handler.setLevel("WARNING")


def positive_statistics(cfg, model, varied_pids: Sequence[int]) -> Dict[str, Dict[str, float]]:
    """Where the three losses differ, measured on a trained model: per training identity, over all its
    training images (test transform), the hardest positive similarity s_H, the least-hard s_LH and AdaSP's
    weight w at the config's temperature (``adasp.modeling.loss``); means over the regular and the varied
    identities."""
    import torch
    from fastreid.data import build_reid_test_loader
    from fastreid.data.common import CommDataset
    from fastreid.data.transforms import build_transforms

    from adasp.datasets import load_reid_dataset
    from adasp.modeling.loss import adaptive_weight, class_pair_similarities

    items = load_reid_dataset(cfg.DATASETS.NAMES[0]).train
    test_set = CommDataset(items, build_transforms(cfg, is_train=False), relabel=False)
    loader, _ = build_reid_test_loader(test_set, cfg.TEST.IMS_PER_BATCH, 0, num_workers=0)
    features, pids = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in loader:
            features.append(model(batch))
            pids += [int(os.path.basename(path).split("_")[0]) for path in batch["img_paths"]]
    model.train(was_training)
    labels = torch.tensor(pids)
    _, s_h, s_lh = class_pair_similarities(torch.cat(features), labels, cfg.MODEL.LOSSES.ADASP.TEMP)
    weight = adaptive_weight(s_h, s_lh)
    varied = torch.tensor([pid in set(varied_pids) for pid in torch.unique(labels).tolist()])
    return {group: {"s_H": float(s_h[mask].mean()), "s_LH": float(s_lh[mask].mean()),
                    "w": float(weight[mask].mean())}
            for group, mask in (("regular", ~varied), ("varied", varied))}


def positive_table(results) -> str:
    """:func:`positive_statistics` of each loss, mean over its seeds."""
    from shared.engine.demo_stats import mean_sd

    header = f"{'loss':<8}" + "".join(f"{f'{q} {g}':>13}" for q in ("s_H", "s_LH", "w")
                                      for g in ("regular", "varied"))
    lines = [header, "-" * len(header)]
    for method in _methods(results):
        runs = [r.extra["positives"] for r in results if r.method == method]
        cells = [mean_sd([run[g][q] for run in runs])[0] for q in ("s_H", "s_LH", "w")
                 for g in ("regular", "varied")]
        lines.append(f"{method:<8}" + "".join(f"{c:>13.3f}" for c in cells))
    return "\n".join(lines)


def run_one(job, report: Callable[[int], None]):
    """A study worker: train one loss on one seed, evaluating every ``eval_epochs`` epochs."""
    import torch

    torch.set_num_threads(int(job.kwargs.get("threads", 1)))
    import adasp  # noqa: F401  (compat layer + fastreid registrations)
    from fastreid.engine.train_loop import HookBase

    from adasp.trainer import AdaSPTrainer
    from shared.engine.demo_stats import RunResult

    output_dir = job.kwargs["output_dir"]
    os.makedirs(output_dir, exist_ok=True)
    _log_to_file(output_dir)
    curve: List[tuple] = []
    evaluations: List[dict] = []

    class Record(HookBase):
        """Runs after the evaluation hook: reports progress and keeps every evaluation (the curve)."""

        seen = None

        def after_step(self):
            step = self.trainer.iter + 1
            if step % 10 == 0:
                report(step)

        def after_epoch(self):
            results = getattr(self.trainer, "_last_eval_results", None)
            if results is not None and results is not self.seen:
                self.seen = results
                curve.append((self.trainer.iter, float(results["mAP"])))
                evaluations.append({"iteration": self.trainer.iter,
                                    **{k: float(results[v]) for k, v in METRICS.items()}})

    with demo_dataset_root(job.kwargs["data_root"]):
        cfg = build_demo_cfg(job.method, job.seed, output_dir, int(job.kwargs["epochs"]),
                             int(job.kwargs["eval_epochs"]), job.kwargs.get("opts", ()))
        cpu0, wall0 = time.process_time(), time.time()
        trainer = AdaSPTrainer(cfg)  # seeds Python, numpy and torch with SEED before the model and loader
        trainer.register_hooks([Record()])
        trainer.resume_or_load(resume=False)
        results = trainer.train()  # the last evaluation ran at the end of the last epoch
        positives = positive_statistics(cfg, trainer.model, job.kwargs.get("varied_pids", ()))
    if trainer.max_iter != job.steps:
        raise RuntimeError(f"{job.method} seed {job.seed}: trained {trainer.max_iter} iterations, the study "
                           f"expected {job.steps} (epochs x iterations per epoch)")
    result = RunResult(
        method=job.method, seed=job.seed, metrics={k: float(results[v]) for k, v in METRICS.items()},
        curve=curve, seconds=time.time() - wall0,
        extra={"cpu_seconds": time.process_time() - cpu0, "evaluations": evaluations, "positives": positives},
    )
    with open(os.path.join(output_dir, "demo_metrics.json"), "w") as f:
        json.dump(result.__dict__, f, indent=2)
    return result


def _methods(results) -> List[str]:
    """The losses present in ``results``, in the order of :data:`CONFIGS`."""
    return [k for k in CONFIGS if any(r.method == k for r in results)]


def per_seed_and_curve(results, seeds: Sequence[int]) -> str:
    """The final metrics of each loss per seed, then each loss's mean mAP per evaluation (the curve)."""
    from shared.engine.demo_stats import curve_statistics

    final = {(r.method, r.seed): r.metrics for r in results}
    lines = ["Final mAP / R1 / mINP per seed:"]
    for s in seeds:
        lines.append(f"  seed {s}: " + "; ".join(
            f"{k} " + " / ".join(f"{final[(k, s)][m]:.2f}" for m in METRICS) for k in _methods(results)))
    lines.append("Mean mAP over the seeds per evaluation (iteration: mAP):")
    for k in _methods(results):
        grid, means, _ = curve_statistics(results, k)
        lines.append(f"  {k} " + ", ".join(f"{it}: {mean:.2f}" for it, mean in zip(grid, means)))
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    from shared.engine.demo_stats import parse_study_args, study_argument_parser

    parser = study_argument_parser(
        __doc__, output_dir="./output/adasp_demo", seeds=3, base_seed=1, iters=272, eval_period=68,
        runs="every loss",
        quick_help=f"reduced size (2 seeds, {QUICK_EPOCHS} epochs, 16 + 8 identities): the pipeline only")
    parser.add_argument("--baselines", nargs="+", choices=BASELINES, default=list(DEFAULT_BASELINES),
                        help="the losses AdaSP is compared with (each gets its own summary table)")
    # iterations are rounded to whole epochs (FastReID counts epochs); --quick sets the epochs itself
    return parse_study_args(parser, argv, quick=(2, None, None))


def main(argv=None) -> int:
    args = parse_args(argv)
    wall, cpu = time.time(), time.process_time()
    import adasp  # noqa: F401
    from shared.engine.demo_stats import StudyJob, finish_study, plot_curves, run_study, summary_table

    root = data_root(args.quick)
    summary = demo_data(args.quick)
    print(f"demo set {summary['dataset_dir']}: {describe_data(summary)}", flush=True)
    cfg = build_demo_cfg(METHOD, 0, args.output_dir, 2, 1, args.opts)  # for the batch and the warm-up
    iters_per_epoch = summary["num_images"]["bounding_box_train"] // cfg.SOLVER.IMS_PER_BATCH
    opts = list(args.opts)
    if args.quick:  # the warm-up shortened to one epoch, so that the cosine schedule has epochs left
        epochs, eval_epochs = QUICK_EPOCHS, 1
        opts += ["SOLVER.WARMUP_ITERS", str(iters_per_epoch)]
    else:  # fastreid's cosine schedule needs an epoch after the warm-up epochs
        warmup_epochs = -(-cfg.SOLVER.WARMUP_ITERS // iters_per_epoch)
        epochs = epochs_for(args.iters, iters_per_epoch, minimum=warmup_epochs + 1)
        eval_epochs = epochs_for(args.eval_period, iters_per_epoch)
    iters = epochs * iters_per_epoch
    print(f"{iters} iterations per run ({epochs} epochs of {iters_per_epoch}), evaluated every "
          f"{eval_epochs * iters_per_epoch} iterations", flush=True)
    seeds = list(range(args.base_seed, args.base_seed + args.seeds))
    jobs = [StudyJob(method, seed, iters, {
        "output_dir": os.path.join(args.output_dir, f"{method.lower()}_seed{seed}"), "data_root": root,
        "epochs": epochs, "eval_epochs": eval_epochs, "opts": opts,
        "varied_pids": list(summary.get("varied_pids", []))})
        for seed in seeds for method in (METHOD, *args.baselines)]
    results = run_study(jobs, run_one, processes=args.processes)

    lines = [
        f"Metric-only losses, ResNet-18 from scratch, {iters} iterations, P=8 x K=4, 64x32 crops; "
        f"FastReID protocol (mAP / Rank-1 / mINP in %) on the synthetic test split with strongly varying "
        f"identities",
    ]
    for baseline in args.baselines:
        lines += ["", f"AdaSP vs {baseline}:", summary_table(results, list(METRICS), METHOD, baseline)]
    lines += ["", per_seed_and_curve(results, seeds), "",
              "Why: positive pairs of the training identities at the end of training (all their images; mean "
              "over identities and seeds; w = AdaSP's weight on s_H, 1 - w on s_LH):",
              positive_table(results)]
    title = f"AdaSP demo: metric-only losses, {len(seeds)} seeds"
    png = plot_curves(results, _methods(results), os.path.join(args.output_dir, "learning_curve.png"), title,
                      "mAP (%, synthetic test split)")
    finish_study(lines, results, args.output_dir, [png], wall, cpu, args.processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
