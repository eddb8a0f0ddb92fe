#!/usr/bin/env python
"""One Faster R-CNN training iteration with SimD vs IoU anchor assignment in the RPN (target ratio <= 1.05).

Both models share the same weights and the same batch from the synthetic tiny-object set; iterations
(forward + backward + SGD step on a throw-away copy of the weights) alternate between the two so that load
changes on the machine hit both alike. Warm-up, then the median of ``--repeat`` iterations each. Also
times the RPN labelling alone (``label_and_sample_anchors``), where the two differ.

    python benchmarks/bench_simd_training.py [--size 512] [--batch 2] [--repeat 15]
"""

import argparse
import copy
import os
import statistics
import time

import simd  # noqa: F401  (compat layer + registrations)
import torch
from detectron2.data import DatasetCatalog, DatasetMapper
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from shared.datasets.synthetic_tiny import generate_synthetic_tiny
from simd.datasets import register_synthetic, synthetic_tiny_root
from shared.engine import build_cfg
from simd.config import add_simd_config
from _common import load_line, pin_threads, verdict

CONFIG = os.path.join(
    os.path.dirname(__file__),
    "..",
    "projects",
    "SimD",
    "configs",
    "synthetic",
    "faster_rcnn_R18_FPN_iou.yaml",
)


def _cfg(size: int, similarity: str):
    return build_cfg(
        add_simd_config,
        CONFIG,
        [
            "INPUT.MIN_SIZE_TRAIN",
            f"({size},)",
            "INPUT.MAX_SIZE_TRAIN",
            str(size),
            "MODEL.RPN.SIMILARITY",
            similarity,
            "MODEL.SIMD.M",
            "4.4",
            "MODEL.SIMD.N",
            "4.4",
        ],
    )


def _step(model, batch, optimizer):
    with EventStorage(0):
        losses = model(batch)
        sum(losses.values()).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512, help="training resolution (images are upsampled)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch / OpenMP / BLAS threads")
    args = parser.parse_args()
    pin_threads(args.threads)
    print(load_line(), flush=True)

    register_synthetic(generate_synthetic_tiny(synthetic_tiny_root()))
    torch.manual_seed(0)
    cfg_iou, cfg_simd = _cfg(args.size, "iou"), _cfg(args.size, "simd")
    base_iou = build_model(cfg_iou).train()
    base_simd = build_model(cfg_simd).train()
    base_simd.load_state_dict(base_iou.state_dict())
    mapper = DatasetMapper(cfg_iou, is_train=True)
    batch = [mapper(d) for d in DatasetCatalog.get("synthetic_tiny_train")[: args.batch]]
    num_gt = sum(len(x["instances"]) for x in batch)

    models = {"iou": base_iou, "simd": base_simd}
    initial = copy.deepcopy(base_iou.state_dict())
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9) for k, m in models.items()}
    times = {"iou": [], "simd": []}
    for i in range(args.warmup + args.repeat):
        for name in ("iou", "simd") if i % 2 == 0 else ("simd", "iou"):
            models[name].load_state_dict(initial)
            start = time.perf_counter()
            _step(models[name], batch, optimizers[name])
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)

    # the part that differs: anchor labelling
    rpn_times = {"iou": [], "simd": []}
    with torch.no_grad():
        images = base_iou.preprocess_image(batch)
        features = base_iou.backbone(images.tensor)
        anchors = base_iou.proposal_generator.anchor_generator(
            [features[f] for f in cfg_iou.MODEL.RPN.IN_FEATURES]
        )
    gts = [x["instances"] for x in batch]
    for i in range(args.warmup + args.repeat * 3):
        for name in ("iou", "simd"):
            start = time.perf_counter()
            models[name].proposal_generator.label_and_sample_anchors(anchors, gts)
            if i >= args.warmup:
                rpn_times[name].append(time.perf_counter() - start)

    med = {k: statistics.median(v) for k, v in times.items()}
    rpn_med = {k: statistics.median(v) for k, v in rpn_times.items()}
    num_anchors = sum(len(a) for a in anchors)
    print(
        f"Faster R-CNN R18-FPN training iteration, batch {args.batch} at {args.size}px, {num_gt} GT boxes, "
        f"{num_anchors} anchors, torch threads {torch.get_num_threads()}, median of {args.repeat}:"
    )
    print(
        f"  IoU assignment : {med['iou'] * 1000:9.1f} ms/iter   "
        f"(RPN labelling {rpn_med['iou'] * 1000:7.2f} ms)"
    )
    print(
        f"  SimD assignment: {med['simd'] * 1000:9.1f} ms/iter   "
        f"(RPN labelling {rpn_med['simd'] * 1000:7.2f} ms)"
    )
    print(f"  ratio SimD / IoU, training iteration: {med['simd'] / med['iou']:.3f}   "
          f"({verdict(med['simd'] / med['iou'], '<=', 1.05)})")
    print(f"  ratio SimD / IoU, RPN labelling only: {rpn_med['simd'] / rpn_med['iou']:.3f}")


if __name__ == "__main__":
    main()
