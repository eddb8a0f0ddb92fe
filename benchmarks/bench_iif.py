#!/usr/bin/env python
"""IIF vs softmax-baseline Mask R-CNN training iteration time, side by side in one run.

One model is built from the IIF config and trained in alternating iterations (forward + backward + SGD step)
with its IIF multiply on and off: off, ``box_predictor.iif_weights`` is None, which is exactly the predictor
a baseline config builds (checked below: the baseline-built model has the same parameters and, from the same
weights and seed, the same losses as the IIF model with the multiply off). So both sides of each pair run the
same code on the same tensors in the same memory, apart from the one (R, K+1) multiply IIF adds; lr 0 keeps
the weights (hence RPN proposals, sampled RoIs and mask targets) identical from step to step. After warm-up
the median of the repeats is reported with the ratio IIF / baseline and a 95 % bootstrap interval over the
pairs. (Ours: two separately built models, the earlier form, gave per-iteration outliers of up to +30 % and
intervals of 0.98 … 1.08 on 2 idle cores, too wide to check a 2 % target.)

Each iteration is timed twice: wall clock, and the CPU time of the calling thread (``time.thread_time``).
At one torch thread (the default) every op, the backward included, runs on the calling thread, so the
CPU time is the iteration's work without the time the scheduler gave to other processes; the target is
checked on that ratio. At more threads only the wall ratio is meaningful and the target is checked on it.

    python benchmarks/bench_iif.py                       # synthetic preset: R18-FPN, 12 classes, 128 px
    python benchmarks/bench_iif.py --preset lvis         # R50-FPN, 1203 classes, 512 px (slow on CPU)
"""
import argparse
import os
import statistics
import time

import iif  # noqa: F401  (compat layer first; registers IIFROIHeads)
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage

from iif.config import add_iif_config
from _common import load_line, paired_ratio_interval, pin_threads, verdict

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "projects", "IIF", "configs")
PRESETS = {
    "synthetic": dict(config="synthetic/Base-IIF-Synthetic.yaml", num_classes=12, size=128, batch=8,
                      objects=3),
    "lvis": dict(config="Base-IIF-LVIS-R50-FPN-1x.yaml", num_classes=1203, size=512, batch=2, objects=8),
}
COUNTS_DATASET = "bench_iif_counts"


def make_cfg(preset: dict, iif_enabled: bool):
    cfg = get_cfg()
    add_iif_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, preset["config"]))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = preset["num_classes"]
    cfg.MODEL.ROI_BOX_HEAD.IIF.ENABLED = iif_enabled
    cfg.MODEL.ROI_BOX_HEAD.IIF.COUNT_SOURCE = "dicts"
    cfg.MODEL.ROI_BOX_HEAD.CLS_INIT = "default"  # same classifier init for both models
    cfg.MODEL.ROI_BOX_HEAD.IIF.DATASETS = (COUNTS_DATASET,)
    if preset["config"].startswith("Base-IIF-LVIS"):  # trainable BN so a random init does not matter
        cfg.MODEL.RESNETS.NORM = "BN"
        cfg.MODEL.BACKBONE.FREEZE_AT = 0
    return cfg


def make_batch(preset: dict, generator: torch.Generator) -> list[dict]:
    size, k = preset["size"], preset["num_classes"]
    batch = []
    for _ in range(preset["batch"]):
        inst = Instances((size, size))
        xy = torch.rand(preset["objects"], 2, generator=generator) * size * 0.7
        wh = size * (0.1 + 0.2 * torch.rand(preset["objects"], 2, generator=generator))
        boxes = torch.cat([xy, xy + wh], 1)
        inst.gt_boxes = Boxes(boxes)
        inst.gt_classes = torch.randint(0, k, (preset["objects"],), generator=generator)
        inst.gt_masks = PolygonMasks([[[b[0], b[1], b[2], b[1], b[2], b[3], b[0], b[3]]]
                                      for b in boxes.tolist()])
        batch.append({"image": torch.rand(3, size, size, generator=generator) * 255, "instances": inst,
                      "height": size, "width": size})
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="synthetic")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch / OpenMP / BLAS threads")
    args = parser.parse_args()
    pin_threads(args.threads)
    print(load_line(), flush=True)
    preset = PRESETS[args.preset]
    k = preset["num_classes"]
    # a long-tailed count set for the weights (class c in ~1000 / (c + 1) images)
    dicts = [{"image_id": i, "annotations": [{"category_id": c} for c in range(k) if i % (c + 1) == 0]}
             for i in range(1000)]
    DatasetCatalog.register(COUNTS_DATASET, lambda: dicts)

    models = {}
    for name, enabled in (("softmax baseline", False), ("IIF raw", True)):
        torch.manual_seed(0)
        models[name] = build_model(make_cfg(preset, enabled)).train()
    base, iif_model = models.values()
    missing = set(iif_model.state_dict()) - set(base.state_dict())
    assert missing == {"roi_heads.box_predictor.iif_weights"}, missing
    iif_model.load_state_dict({**base.state_dict(), "roi_heads.box_predictor.iif_weights":
                               iif_model.roi_heads.box_predictor.iif_weights})
    predictor = iif_model.roi_heads.box_predictor
    iif_weights = predictor.iif_weights
    batch = make_batch(preset, torch.Generator().manual_seed(0))

    def run(model, multiply: bool) -> dict:
        """One training iteration of ``model`` (IIF multiply on or off); its losses."""
        predictor.iif_weights = iif_weights if multiply else None
        losses = model(batch)
        sum(losses.values()).backward()
        return {k: v.item() for k, v in losses.items()}

    with EventStorage():  # the multiply off is the baseline: same losses as the baseline-built model
        torch.manual_seed(0)
        off = run(iif_model, False)
        torch.manual_seed(0)
        assert run(base, False) == off, "the IIF model with its multiply off is not the baseline"
    del models, base
    # lr 0: the step runs (same cost) and the weights stay as they are
    optim = torch.optim.SGD(iif_model.parameters(), lr=0.0, momentum=0.9)
    sides = {"softmax baseline": False, "IIF raw": True}
    times = {name: [] for name in sides}
    cpu_times = {name: [] for name in sides}
    with EventStorage():
        for step in range(args.warmup + args.repeats):
            order = list(sides) if step % 2 == 0 else list(reversed(sides))
            for name in order:
                torch.manual_seed(step)  # same proposal sampling for both sides
                start, cpu_start = time.perf_counter(), time.thread_time()
                optim.zero_grad(set_to_none=True)
                run(iif_model, sides[name])
                optim.step()
                elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
                if step >= args.warmup:
                    times[name].append(elapsed)
                    cpu_times[name].append(cpu)
    medians = {name: statistics.median(v) for name, v in times.items()}
    cpu_medians = {name: statistics.median(v) for name, v in cpu_times.items()}
    print(f"preset {args.preset}: {k} classes, batch {preset['batch']} x {preset['size']} px, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} repeats after {args.warmup} warm-up "
          "(alternating)")
    for name, med in medians.items():
        print(f"  {name:17s} median {med * 1000:8.1f} ms/iter wall (min {min(times[name]) * 1000:.1f}, "
              f"max {max(times[name]) * 1000:.1f}); {cpu_medians[name] * 1000:8.1f} ms/iter thread CPU")
    single = torch.get_num_threads() == 1
    rows = [("wall", times, medians, not single)]
    rows += [("thread CPU", cpu_times, cpu_medians, True)] if single else []
    for label, series, series_medians, checked in rows:
        ratio = series_medians["IIF raw"] / series_medians["softmax baseline"]
        low, high = paired_ratio_interval(series["IIF raw"], series["softmax baseline"])
        print(f"  ratio IIF / baseline, {label} = {ratio:.4f}  ({(ratio - 1) * 100:+.2f}%; 95% bootstrap "
              f"interval {low:.4f} .. {high:.4f}{'; ' + verdict(ratio, '<=', 1.02) if checked else ''})")

    # The only op IIF adds is the (R, K+1) logit multiply in the box predictor (+ its backward). Time the
    # predictor alone (forward, CE loss, backward) on the RoI count of one iteration, many repeats, and
    # express the extra time as a fraction of the baseline iteration: robust to machine-load noise.
    num_rois = preset["batch"] * make_cfg(preset, False).MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE
    feats = torch.randn(num_rois, predictor.cls_score.in_features)
    gt = torch.randint(0, k + 1, (num_rois,))
    predictor_times = {name: [] for name in sides}
    for step in range(20 + 200):
        for name, multiply in sides.items():
            predictor.iif_weights = iif_weights if multiply else None
            start = time.perf_counter()
            scores, _ = predictor(feats)
            torch.nn.functional.cross_entropy(scores, gt).backward()
            if step >= 20:
                predictor_times[name].append(time.perf_counter() - start)
    pmed = {name: statistics.median(v) for name, v in predictor_times.items()}
    extra = pmed["IIF raw"] - pmed["softmax baseline"]
    print(f"  box predictor alone ({num_rois} RoIs x {k + 1} logits, fwd + CE + bwd, median of 200): "
          f"baseline {pmed['softmax baseline'] * 1e3:.3f} ms, IIF {pmed['IIF raw'] * 1e3:.3f} ms, "
          f"extra {extra * 1e3:+.3f} ms = {extra / medians['softmax baseline'] * 100:+.3f}% of a baseline "
          "iteration")


if __name__ == "__main__":
    main()
