#!/usr/bin/env python
"""Estimate SimD's m and n for a config (its training datasets, training resolution and anchor layout),
print them, and cache them in OUTPUT_DIR/simd_normalisers.json (which training then reuses).

    python projects/SimD/estimate_normalisers.py \\
        --config-file projects/SimD/configs/aitod/faster_rcnn_R_50_FPN_1x_simd.yaml
    # -> then train with the cached values, or pass them explicitly: MODEL.SIMD.M <m> MODEL.SIMD.N <n>
"""

import argparse
import logging

import simd  # noqa: F401  (compat layer + registrations)
from detectron2.utils.logger import setup_logger

from simd.datasets import register_datasets_for
from shared.engine import build_cfg
from simd.config import add_simd_config
from simd.normalisers import CACHE_FILE, cached_estimate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args()
    setup_logger(name="simd")
    logging.getLogger("simd").setLevel(logging.INFO)
    cfg = build_cfg(add_simd_config, args.config_file, args.opts)
    register_datasets_for(list(cfg.DATASETS.TRAIN), cfg.DATASETS.DROP_INVALID_BOXES)
    estimate = cached_estimate(cfg, cfg.OUTPUT_DIR)
    print(
        f"datasets {list(cfg.DATASETS.TRAIN)} at {max(cfg.INPUT.MIN_SIZE_TRAIN)}/"
        f"{cfg.INPUT.MAX_SIZE_TRAIN} px, "
        f"anchors {cfg.MODEL.ANCHOR_GENERATOR.SIZES}: {estimate.num_images} images, "
        f"{estimate.num_gt} GT boxes, "
        f"{estimate.num_pairs} (GT, anchor) pairs"
    )
    print(
        f"MODEL.SIMD.M {estimate.m:.4f} MODEL.SIMD.N {estimate.n:.4f}   "
        f"(cached in {cfg.OUTPUT_DIR}/{CACHE_FILE})"
    )


if __name__ == "__main__":
    main()
