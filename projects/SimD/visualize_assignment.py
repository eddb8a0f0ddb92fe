#!/usr/bin/env python
"""Draw GT boxes, the RPN's positive anchors under IoU and SimD assignment, and optionally detections.

    python projects/SimD/visualize_assignment.py \\
        --config-file projects/SimD/configs/synthetic/faster_rcnn_R18_FPN_simd.yaml \\
        --index 0 --output assignment.png [--weights output/.../model_final.pth] \\
        [--similarities iou simd nwd] \\
        [KEY VALUE ...]

The image is taken from the first training dataset of the config, resized like training. SimD's m and n
come from the config (or its OUTPUT_DIR cache when MODEL.SIMD.ESTIMATE_NORMALISERS is on).
"""

import argparse

import simd  # noqa: F401  (compat layer + registrations)
from detectron2.data import DatasetCatalog

from shared.engine import build_cfg
from simd.config import add_simd_config
from simd.trainer import prepare_cfg
from simd.visualization import draw_assignment, save_png


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--index", type=int, default=0, help="index of the image in the training set")
    parser.add_argument("--dataset", default="", help="dataset name (default: the first of DATASETS.TRAIN)")
    parser.add_argument("--output", default="assignment.png")
    parser.add_argument("--weights", default="", help="checkpoint whose detections are drawn in a last panel")
    parser.add_argument("--similarities", nargs="+", default=["iou", "simd"])
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()

    cfg = prepare_cfg(build_cfg(add_simd_config, args.config_file, args.opts), write_config=False)
    name = args.dataset or cfg.DATASETS.TRAIN[0]
    records = DatasetCatalog.get(name)
    if not 0 <= args.index < len(records):
        raise SystemExit(f"--index {args.index} is out of range: {name} has {len(records)} images")
    picture = draw_assignment(cfg, records[args.index], name, args.similarities, args.weights or None)
    save_png(picture, args.output)
    print(f"wrote {args.output} ({records[args.index]['file_name']})")


if __name__ == "__main__":
    main()
