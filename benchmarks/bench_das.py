#!/usr/bin/env python
"""DAS producer speed at SOP scale: batch 112 (56 classes × 2) × 512-d embeddings, 11,318 classes.

Measured side by side in one run (warm-up, then interleaved repeats, median per step):

1. ``producer``: DASEmbeddingProducer forward (frequency update, bank update, 3 generated copies) with the SOP
   preset (range [0.5, 2), β 0.1, K 4).
2. ``loss+miner``: pytorch-metric-learning miner + loss, forward and backward, on the real batch only (what a
   training step spends on the metric loss without DAS), and on the DAS-enlarged batch (448 rows, what the
   loss costs inside a DAS step). Two pairs: triplet + distance-weighted miner, multi-similarity loss + miner.
3. ``dict recorder``: the official algorithm's per-sample Python-dict frequency recorder (top-K per sample,
   dict counts updated one ``.item()`` at a time; per generated copy and sample, the class row → tensor →
   top-K) vs this project's tensor recorder (one ``scatter_add_`` + one ``topk`` on the batch's class rows),
   same inputs.

Printed: producer / (loss+miner) overhead in percent (target ≤ 10 %) and dict-recorder / tensor-recorder
speed-up (target ≥ 20×). Usage: ``python benchmarks/bench_das.py [--repeats 30] [--threads 1]``.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import das  # noqa: F401  (compat layer)
from das.dfs import FrequencyRecorder
from das.modeling.producer import DASEmbeddingProducer
from pytorch_metric_learning import losses, miners
from _common import load_line, pin_threads, verdict

NUM_CLASSES, DIM, CLASSES_PER_BATCH, PER_CLASS, NUM_SCALE = 11318, 512, 56, 2, 4


class DictFrequencyRecorder:
    """Per-sample Python frequency recorder, the algorithm of the official code (re-written here): a dict of
    per-class count lists; each sample's top-K dimensions are counted one ``.item()`` at a time, and for each
    of the ``num_produce`` generated copies each sample's class row is turned into a tensor and top-K'ed."""

    def __init__(self, num_classes: int, dim: int, num_scale: int, num_produce: int):
        self.num_scale, self.num_produce = num_scale, num_produce
        self.freq = {c: [0] * dim for c in range(num_classes)}

    def update(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        for e, y in zip(embeddings, labels):
            for d in torch.topk(e, self.num_scale).indices:
                self.freq[y.item()][d.item()] += 1

    def dominant_dimensions(self, labels: torch.Tensor):
        return [
            torch.stack(
                [torch.topk(torch.tensor(self.freq[y.item()]), self.num_scale).indices for y in labels]
            )
            for _ in range(self.num_produce)
        ]


def make_batch(generator: torch.Generator):
    classes = torch.randperm(NUM_CLASSES, generator=generator)[:CLASSES_PER_BATCH]
    labels = classes.repeat_interleave(PER_CLASS)
    embeddings = F.normalize(torch.randn(len(labels), DIM, generator=generator), dim=1)
    return embeddings, labels


def timed(fn):
    """(wall seconds, CPU seconds of this thread) of one call. On a loaded machine the wall time includes the
    time the process waits for a core; the thread CPU time does not, so ratios are also computed from it."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - wall, time.thread_time() - cpu


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 = least noise)")
    args = parser.parse_args()
    pin_threads(args.threads)
    print(load_line(), flush=True)
    g = torch.Generator().manual_seed(0)
    batches = [make_batch(g) for _ in range(args.repeats + args.warmup)]

    producer = DASEmbeddingProducer(
        NUM_CLASSES,
        DIM,
        num_produce=3,
        num_scale=NUM_SCALE,
        scale_range=(0.5, 2.0),
        bank_size=10,
        shift_scale=0.1,
        seed=0,
    )
    pairs = {
        "triplet + distance-weighted": (losses.TripletMarginLoss(margin=0.2),
                                        miners.DistanceWeightedMiner(cutoff=0.5, nonzero_loss_cutoff=1.4)),
        "multi-similarity + MS miner": (losses.MultiSimilarityLoss(alpha=2, beta=40, base=0.5),
                                        miners.MultiSimilarityMiner(epsilon=0.1)),
    }
    tensor_recorder = FrequencyRecorder(NUM_CLASSES, DIM, NUM_SCALE)
    dict_recorder = DictFrequencyRecorder(NUM_CLASSES, DIM, NUM_SCALE, num_produce=3)

    def loss_step(loss_fn, miner, e, y):
        e = e.clone().requires_grad_(True)
        loss_fn(e, y, miner(e, y)).backward()

    def producer_step(e, y):
        with torch.no_grad():
            producer(e, y)

    def tensor_recorder_step(e, y):
        tensor_recorder.update(e, y)
        tensor_recorder.dominant_dimensions(y)

    def dict_recorder_step(e, y):
        dict_recorder.update(e, y)
        dict_recorder.dominant_dimensions(y)

    enlarged = [producer(e, y) for e, y in batches[:1]][0]
    steps = {
        "producer": producer_step,
        "tensor recorder": tensor_recorder_step,
        "dict recorder": dict_recorder_step,
    }
    for name, (loss_fn, miner) in pairs.items():
        steps[name] = lambda e, y, loss_fn=loss_fn, miner=miner: loss_step(loss_fn, miner, e, y)
        steps[name + " (448)"] = lambda e, y, loss_fn=loss_fn, miner=miner: loss_step(
            loss_fn, miner, *enlarged
        )
    times = {name: [] for name in steps}
    for i, (e, y) in enumerate(batches):  # interleaved, so that load changes hit every variant alike
        for name, step in steps.items():
            t = timed(lambda: step(e, y))
            if i >= args.warmup:
                times[name].append(t)
    for clock, column in (("wall-clock", 0), ("thread CPU time", 1)):
        median = {name: statistics.median(t[column] for t in ts) for name, ts in times.items()}
        report(clock, median, pairs, args)


def report(clock, median, pairs, args):
    print(
        f"DAS producer benchmark: batch {CLASSES_PER_BATCH * PER_CLASS} "
        f"({CLASSES_PER_BATCH} classes x {PER_CLASS}) x "
        f"{DIM}-d, {NUM_CLASSES} classes, K={NUM_SCALE}, 3 generated copies; torch threads {args.threads}; "
        f"median of {args.repeats} steps after {args.warmup} warm-up; {clock}"
    )
    for name, value in median.items():
        print(f"  {name:<32} {value * 1e3:9.3f} ms/step")
    for name in pairs:
        # the target is for the batch the loss really sees: DAS enlarges 112 embeddings to 448
        real = 100 * median['producer'] / median[name]
        enlarged = 100 * median['producer'] / median[name + " (448)"]
        print(f"  producer / ({name} on real batch 112): {real:6.1f} %  (print)")
        print(f"  producer / ({name} on enlarged batch 448): {enlarged:6.1f} %  "
              f"({verdict(enlarged, '<=', 10)})")
    speedup = median['dict recorder'] / median['tensor recorder']
    print(f"  dict recorder / tensor recorder speed-up        {speedup:8.1f} x  "
          f"({verdict(speedup, '>=', 20)})")


if __name__ == "__main__":
    main()
