"""Pairwise SimD (shared.boxes) vs detectron2's pairwise_iou on the same 200 GT × 200,000 anchor boxes.

Prints the median times and the ratio time(SimD) / time(detectron2 IoU) (target ≤ 1.5), for the default
backend (compiled kernel when ``shared._box_ops`` is built) and for the pure-PyTorch path.

    .venv/bin/python benchmarks/bench_box_similarity.py [--gt 200] [--anchors 200000] [--repeat 5]
        [--threads 2]
"""

import argparse

import torch

import shared.boxes as sb
from _common import median_time, random_boxes
import shared.ops as sops
from detectron2.structures import Boxes, pairwise_iou  # after shared (compat layer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=int, default=200)
    parser.add_argument("--anchors", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    gt, anchors = (
        random_boxes(args.gt, generator, 1333.0, 1333.0),
        random_boxes(args.anchors, generator, 1333.0, 1333.0),
    )
    gt_boxes, anchor_boxes = Boxes(gt), Boxes(anchors)

    print(
        f"shared._box_ops: {sops.extension_status()}; {args.gt} GT x {args.anchors} anchors, "
        f"{args.threads} threads, median of {args.repeat}"
    )
    t_d2 = median_time(lambda: pairwise_iou(gt_boxes, anchor_boxes), args.repeat)
    rows = [("detectron2 pairwise_iou", t_d2)]
    for backend in ("auto", "torch"):
        t_simd = median_time(
            lambda: sb.pairwise_simd(gt_boxes, anchor_boxes, 6.13, 4.59, backend=backend), args.repeat
        )
        rows.append((f"shared pairwise_simd (backend={backend})", t_simd))
    for name, seconds in rows:
        print(f"  {name:<42s} {seconds * 1000:9.1f} ms   ratio to detectron2 IoU: {seconds / t_d2:6.3f}")
    ratio = rows[1][1] / t_d2
    print(
        f"RATIO pairwise_simd(default backend) / detectron2 pairwise_iou = {ratio:.3f} "
        f"(target <= 1.5: {'PASS' if ratio <= 1.5 else 'FAIL'})"
    )


if __name__ == "__main__":
    main()
