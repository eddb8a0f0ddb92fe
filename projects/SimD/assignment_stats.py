#!/usr/bin/env python
"""Label-assignment statistics per GT size bin: share of GTs with >= 1 positive RPN anchor and mean positive
anchors per GT, for each similarity, with the config's anchor generator and matcher; then the same for the
ROI head's proposal matcher, with the clipped anchors plus the GT boxes (PROPOSAL_APPEND_GT) standing in for
the RPN's proposals (see simd/assignment_stats.py).

    python projects/SimD/assignment_stats.py \\
        --config-file projects/SimD/configs/synthetic/faster_rcnn_R18_FPN_simd.yaml
    python projects/SimD/assignment_stats.py \\
        --config-file projects/SimD/configs/aitod/faster_rcnn_R_50_FPN_1x_simd.yaml \\
        --similarities iou simd nwd --max-images 500

SimD's m and n come from the config, else from OUTPUT_DIR's cache or an estimate on the training set (as in
training).
"""

import argparse
import logging
import time

import simd  # noqa: F401  (compat layer + registrations)
from detectron2.utils.logger import setup_logger

from shared.engine import build_cfg
from simd.assignment_stats import format_table, has_roi_heads, stage_statistics_for_cfg
from simd.config import add_simd_config
from simd.trainer import prepare_cfg


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--similarities", nargs="+", default=["iou", "simd"])
    parser.add_argument(
        "--max-images", type=int, default=0, help="at most this many training images (0 = all)"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = parser.parse_args(argv)
    setup_logger(name="simd")
    logging.getLogger("simd").setLevel(logging.WARNING)
    cfg = build_cfg(add_simd_config, args.config_file, args.opts)
    if "simd" in args.similarities:
        cfg.MODEL.SIMD.ESTIMATE_NORMALISERS = True  # used only when M / N are not given
    cfg = prepare_cfg(cfg, write_config=False)
    start = time.time()
    stages = ("rpn", "roi") if has_roi_heads(cfg) else ("rpn",)
    counts = stage_statistics_for_cfg(cfg, args.similarities, args.max_images, stages)
    append_gt = bool(cfg.MODEL.ROI_HEADS.PROPOSAL_APPEND_GT)
    anchors = [s[0] for s in cfg.MODEL.ANCHOR_GENERATOR.SIZES]
    print(
        f"RPN label assignment on {list(cfg.DATASETS.TRAIN)} at {max(cfg.INPUT.MIN_SIZE_TRAIN)}/"
        f"{cfg.INPUT.MAX_SIZE_TRAIN} px, anchors {anchors}, thresholds {list(cfg.MODEL.RPN.IOU_THRESHOLDS)}, "
        f"{cfg.MODEL.RPN.LOW_QUALITY_MODE} matcher (min_pos {cfg.MODEL.RPN.MIN_POS_SIM})"
        + (f", SimD m={cfg.MODEL.SIMD.M:.3f} n={cfg.MODEL.SIMD.N:.3f}" if "simd" in args.similarities else "")
    )
    rpn_table = format_table(counts["rpn"], "rpn")
    print(rpn_table)
    print()
    if "roi" not in counts:
        print(f"(no ROI table: {cfg.MODEL.META_ARCHITECTURE} has no ROI heads)")
        print(f"({time.time() - start:.1f} s)")
        return rpn_table
    heads = cfg.MODEL.ROI_HEADS
    thresholds = (
        list(cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS[:1])
        if "Cascade" in heads.NAME
        else list(heads.IOU_THRESHOLDS)
    )
    print(
        f"ROI label assignment ({heads.NAME}), thresholds {thresholds}, no low-quality matches; proposals = "
        f"the anchors clipped to the image{' + the GT boxes' if append_gt else ' (no GT boxes appended)'}"
    )
    roi_table = format_table(counts["roi"], "roi", append_gt)
    print(roi_table)
    print(f"({time.time() - start:.1f} s)")
    return rpn_table + "\n\n" + roi_table


if __name__ == "__main__":
    main()
