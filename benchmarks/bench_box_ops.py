"""Compiled box ops (shared._box_ops) against torchvision / detectron2 / the pure-PyTorch reference.

Ratios measured side by side in one run (median of --repeat after a warm-up):
  1. SimD-NMS CPU kernel vs torchvision batched_nms (IoU), same 20,000 boxes / 8 classes   (target ≤ 2.0)
  2. fused pairwise SimD and IoU kernels vs detectron2 pairwise_iou, 200 × 200,000 boxes   (target ≤ 0.25),
     and their ratio to a plain fill_ of the [200, 200,000] output
  3. SimD-NMS CPU kernel vs the pure-PyTorch reference at 20,000 boxes            (target ≥ 20× faster)
     and the kernel's peak memory growth next to the size of a dense N×N float32 matrix
  4. one row per CPU target of the compiled loops ("default", "avx2", "avx2+fma": each one this CPU runs,
     forced with shared.kernels.use_cpu_target): pairwise SimD / NWD / IoU and SimD-NMS, interleaved
     rounds (A, B, C, A, B, C, ...), median, and the ratio to the automatic choice

    .venv/bin/python benchmarks/bench_box_ops.py [--threads 2] [--repeat 5]
"""
import argparse
import resource

import torch

import shared.boxes as sb
import shared.ops as sops
from shared import kernels
from _common import interleaved_medians, load_line, median_time, pin_threads, random_boxes, verdict
import torchvision  # after shared (compat layer)
from detectron2.structures import Boxes, pairwise_iou

SIMD = {"m": 6.13, "n": 4.59}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nms-boxes", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--gt", type=int, default=200)
    parser.add_argument("--anchors", type=int, default=200_000)
    args = parser.parse_args()
    pin_threads(args.threads)
    status = sops.extension_status()
    print(f"shared._box_ops: {status}; torch threads: {args.threads}; median of {args.repeat}; {load_line()}")
    if status.startswith("unavailable"):
        print("the compiled kernels are not built: nothing to compare (build with `pip install -e .`)")
        return
    generator = torch.Generator().manual_seed(0)
    n = args.nms_boxes
    boxes = random_boxes(n, generator)
    scores = torch.rand(n, generator=generator)
    classes = torch.randint(0, args.classes, (n,), generator=generator)

    # 3b. memory first, while the process peak is still low
    before = peak_rss_mb()
    kept = sops.batched_similarity_nms(boxes, scores, classes, "simd", 0.5, backend="kernel", **SIMD)
    growth = peak_rss_mb() - before
    dense_mb = n * n * 4 / 2 ** 20

    # 1. SimD-NMS kernel vs torchvision IoU batched_nms
    t_tv = median_time(lambda: torchvision.ops.batched_nms(boxes, scores, classes, 0.5), args.repeat)
    t_simd_nms = median_time(
        lambda: sops.batched_similarity_nms(boxes, scores, classes, "simd", 0.5, backend="kernel", **SIMD),
        args.repeat)
    t_iou_nms = median_time(
        lambda: sops.batched_similarity_nms(boxes, scores, classes, "iou", 0.5, backend="kernel"),
        args.repeat)
    print(f"\n[1] NMS, {n} boxes / {args.classes} classes (threshold 0.5; SimD keeps {len(kept)})")
    print(f"  torchvision batched_nms (IoU)        {t_tv * 1000:9.1f} ms")
    print(f"  shared kernel, IoU                   {t_iou_nms * 1000:9.1f} ms   "
          f"ratio {t_iou_nms / t_tv:6.2f}")
    print(f"  shared kernel, SimD                  {t_simd_nms * 1000:9.1f} ms   "
          f"ratio {t_simd_nms / t_tv:6.2f}")
    print(f"RATIO SimD-NMS kernel / torchvision batched_nms = {t_simd_nms / t_tv:.2f} "
          f"({verdict(t_simd_nms / t_tv, '<=', 2.0)})")

    # 2. fused pairwise kernels vs detectron2 pairwise_iou and fill_
    gt = Boxes(random_boxes(args.gt, generator))
    anchors = Boxes(random_boxes(args.anchors, generator))
    out = torch.empty(args.gt, args.anchors)
    t_fill = median_time(lambda: out.fill_(0.5), args.repeat)
    t_d2 = median_time(lambda: pairwise_iou(gt, anchors), args.repeat)
    t_pw_simd = median_time(lambda: sb.pairwise_simd(gt, anchors, backend="kernel", **SIMD), args.repeat)
    t_pw_iou = median_time(lambda: sb.pairwise_iou(gt, anchors, backend="kernel"), args.repeat)
    print(f"\n[2] pairwise, {args.gt} x {args.anchors}")
    print(f"  fill_ of the output                  {t_fill * 1000:9.1f} ms")
    print(f"  detectron2 pairwise_iou              {t_d2 * 1000:9.1f} ms")
    for name, seconds in (("IoU", t_pw_iou), ("SimD", t_pw_simd)):
        print(f"  shared fused kernel, {name:<5s}           {seconds * 1000:9.1f} ms   ratio to detectron2 "
              f"{seconds / t_d2:6.3f}   ratio to fill_ {seconds / t_fill:6.1f}")
    for name, seconds in (("SimD", t_pw_simd), ("IoU", t_pw_iou)):
        print(f"RATIO pairwise {name} kernel / detectron2 pairwise_iou = {seconds / t_d2:.3f} "
              f"({verdict(seconds / t_d2, '<=', 0.25)}); ratio to fill_ = {seconds / t_fill:.1f}")

    # 3. kernel vs pure-PyTorch reference
    t_ref = median_time(
        lambda: sops.reference_batched_similarity_nms(boxes, scores, classes, "simd", 0.5, **SIMD),
        1, warmup=0)
    speedup = t_ref / t_simd_nms
    print(f"\n[3] SimD-NMS at {n} boxes: pure-PyTorch reference {t_ref * 1000:.0f} ms, "
          f"kernel {t_simd_nms * 1000:.1f} ms")
    print(f"RATIO SimD-NMS reference / kernel = {speedup:.1f}x faster "
          f"({verdict(speedup, '>=', 20)})")
    print(f"MEMORY SimD-NMS kernel peak RSS growth = {growth:.1f} MB "
          f"(dense N x N float32 matrix: {dense_mb:.0f} MB)")

    # 4. every CPU target of the row loops, interleaved
    targets = kernels.cpu_targets()
    print(f"\n[4] CPU targets of the row loops ({', '.join(targets)}; automatic: {targets[-1]}), pairwise "
          f"{args.gt} x {args.anchors} and SimD-NMS at {n} boxes, {args.repeat} interleaved rounds; "
          f"{load_line()}")
    cases = {
        "pairwise SimD": lambda: sb.pairwise_simd(gt, anchors, backend="kernel", **SIMD),
        "pairwise NWD": lambda: sb.pairwise_nwd(gt, anchors, 12.8, backend="kernel"),
        "pairwise IoU": lambda: sb.pairwise_iou(gt, anchors, backend="kernel"),
        "SimD-NMS": lambda: sops.batched_similarity_nms(boxes, scores, classes, "simd", 0.5, backend="kernel",
                                                        **SIMD),
    }
    for case, fn in cases.items():
        def forced(target, fn=fn):
            with kernels.use_cpu_target(target):
                fn()
        fns = {target: (lambda target=target: forced(target)) for target in targets}
        fns["automatic"] = fn
        times = interleaved_medians(fns, args.repeat)
        for target in targets:
            print(f"  {case:<14s} target {target:<9s} {times[target] * 1000:9.1f} ms   "
                  f"ratio to automatic {times[target] / times['automatic']:6.2f}")


if __name__ == "__main__":
    main()
