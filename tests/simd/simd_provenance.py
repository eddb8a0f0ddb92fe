"""Where every value of every SimD preset comes from: a file and line of an official repository, or "ours"
with the reason.

Repositories: the official SimD code (github.com/cszzshi/SimD, an mmdetection 3 fork; its only config is the
VisDrone run), mmdet-aitod (github.com/Chasel-Tsui/mmdet-aitod, folder ``mmdet-nwdrka/``: the AI-TOD Faster
R-CNN baseline; the paper does not publish its AI-TOD settings) and SODA-mmdetection
(github.com/shaunyuan22/SODA-mmdetection: the SODA-D benchmark). ``tests/simd/test_simd_provenance.py`` holds
each preset's resolved config against these rows, every key a preset changes from detectron2 + SimD defaults
must have a row, and every default of ``add_simd_config`` is held against :data:`ADDER_DEFAULTS`.
"""
from __future__ import annotations

from typing import Dict, List

from shared.engine.provenance import OURS, Row

V = "SimD configs/simd/visdrone/faster-rcnn_r50_fpn_1x_sim_visdrone.py"
SIMD_BOX = "SimD mmdet/structures/bbox/bbox_overlaps.py"
SIMD_README = "SimD README.md"
COCO_METRIC = "SimD mmdet/evaluation/metrics/coco_metric.py"
MAX_SIM = "SimD mmdet/models/task_modules/assigners/max_sim_assigner.py"
A = "mmdet-aitod configs_nwdrka/baseline/aitodv2_faster_rcnn_r50_baseline_1x.py"
A_DATA = "mmdet-aitod configs_nwdrka/_base_/datasets/aitod_detection.py"
A2_DATA = "mmdet-aitod configs_nwdrka/_base_/datasets/aitodv2_detection.py"
A_SCHED = "mmdet-aitod configs/_base_/schedules/schedule_1x.py"
A_CUSTOM = "mmdet-aitod mmdet/datasets/custom.py"
A_COCO = "mmdet-aitod mmdet/datasets/coco.py"
A_EVAL = "mmdet-aitod mmdet/datasets/aitod.py"
S = "SODA-mmdetection configs/sodad-benchmarks/faster_rcnn_r50_fpn_1x.py"
S_DATA = "SODA-mmdetection configs/_base_/datasets/sodad.py"
S_SCHED = "SODA-mmdetection configs/_base_/schedules/schedule_1x.py"
S_SET = "SODA-mmdetection mmdet/datasets/sodad.py"
S_CUSTOM = "SODA-mmdetection mmdet/datasets/custom.py"

P = ["p2", "p3", "p4", "p5"]
RES = ["res2", "res3", "res4", "res5"]

#: pretrained-weights keys: their values and sources are tabled with the weights catalog, not here
WEIGHTS_KEYS = ("MODEL.WEIGHTS", "MODEL.FROM_SCRATCH")

#: every default of add_simd_config (keys detectron2 does not have)
ADDER_DEFAULTS: List[Row] = [
    ("MODEL.SIMD.M", -1.0, OURS + "unset: a preset gives m or estimates it (the official code hard-codes the "
     f"VisDrone 6.13, {SIMD_BOX}:162)"),
    ("MODEL.SIMD.N", -1.0, OURS + f"unset, as M (official VisDrone 4.59, {SIMD_BOX}:163)"),
    ("MODEL.SIMD.EPS", 1e-6, f"{SIMD_BOX}:157-160 (eps added to the box sizes)"),
    ("MODEL.SIMD.NORM_MODE", "multiply", f"{SIMD_BOX}:165-166 (dx / ((w1 + w2) / m))"),
    ("MODEL.SIMD.ESTIMATE_NORMALISERS", False, OURS + "estimating m, n reads the training set; presets opt "
     "in"),
    ("MODEL.SIMD.ESTIMATE_MAX_IMAGES", 0, OURS + "0 = every training image, as the paper's definition"),
    ("MODEL.NWD.CONSTANT", 12.8, "NWD paper (Wang et al. 2021): C = AI-TOD's average absolute object size"),
    ("MODEL.DOTD.CONSTANT", 12.7, OURS + "the value mmdet-aitod passes to DotD (AI-TOD's average object "
     "size)"),
    ("MODEL.RPN.SIMILARITY", "iou", OURS + "detectron2's RPN labelling until a preset selects SimD"),
    ("MODEL.RPN.LOW_QUALITY_MODE", "mmdet", f"{V}:78-82 (MaxSiMAssigner, match_low_quality=True)"),
    ("MODEL.RPN.MIN_POS_SIM", 0.3, f"{V}:81 (min_pos_iou)"),
    ("MODEL.RPN.GT_MAX_ASSIGN_ALL", True, f"{MAX_SIM}:50-59 (gt_max_assign_all default True)"),
    ("MODEL.RPN.NMS_SIMILARITY", "iou", f"{V}:96 (nms type 'nms')"),
    ("MODEL.RPN.SIM_NMS_THRESH", 0.7, OURS + "used only with a non-IoU NMS similarity; no published value"),
    ("MODEL.ROI_HEADS.SIMILARITY", "iou", f"{V}:100 (the R-CNN assigner is MaxIoUAssigner)"),
    ("MODEL.ROI_HEADS.NMS_SIMILARITY", "iou", f"{V}:122 (nms type 'nms')"),
    ("MODEL.ROI_HEADS.SIM_NMS_THRESH_TEST", 0.5, OURS + "used only with a non-IoU NMS similarity"),
    ("MODEL.RETINANET.SIMILARITY", "iou", OURS + "experimental RetinaNet: detectron2's labelling by default"),
    ("MODEL.RETINANET.LOW_QUALITY_MODE", "detectron2", OURS + "stock detectron2 RetinaNet"),
    ("MODEL.RETINANET.MIN_POS_SIM", 0.0, OURS + "mmdet's RetinaNet min_pos_iou 0 for the mmdet mode"),
    ("MODEL.RETINANET.GT_MAX_ASSIGN_ALL", True, OURS + "as MODEL.RPN.GT_MAX_ASSIGN_ALL"),
    ("MODEL.RETINANET.NMS_SIMILARITY", "iou", OURS + "stock detectron2 RetinaNet NMS"),
    ("MODEL.RETINANET.SIM_NMS_THRESH_TEST", 0.5, OURS + "used only with a non-IoU NMS similarity"),
    ("DATASETS.DROP_INVALID_BOXES", False, OURS + "an invalid box is an error naming it "
     "(docs/reliability.md)"),
    ("SOLVER.EPOCHS", 0, OURS + "0 = MAX_ITER / STEPS as configured (detectron2's iteration schedule)"),
    ("SOLVER.STEP_EPOCHS", (8, 11), f"{A_SCHED}:10 (mmdet schedule_1x step=[8, 11])"),
    ("TEST.SIMD_EVAL.PROTOCOL", "aitod", OURS + "the AI-TOD protocol unless a preset names another"),
    ("TEST.SIMD_EVAL.MAX_DETS", [], OURS + "empty = the protocol's own maxDets"),
    ("TEST.EVAL_BACKEND", "faster_coco_eval", OURS + "shared.evaluation's faster back end (tested equal to "
     "the reference tools)"),
]

#: rows of every R50 Faster R-CNN preset (values of the official VisDrone run, Base-SimD-RCNN-FPN.yaml)
COMMON: List[Row] = [
    ("MODEL.META_ARCHITECTURE", "GeneralizedRCNN", f"{V}:15 (FasterRCNN)"),
    ("MODEL.DEVICE", "auto", OURS + "CUDA when available, else CPU"),
    ("MODEL.PIXEL_MEAN", [123.675, 116.28, 103.53], f"{V}:18"),
    ("MODEL.PIXEL_STD", [58.395, 57.12, 57.375], f"{V}:19"),
    ("INPUT.FORMAT", "RGB", f"{V}:20 (bgr_to_rgb=True)"),
    ("MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone_bn_eval", f"{V}:28-29 (BN requires_grad, norm_eval)"),
    ("MODEL.BACKBONE.FREEZE_AT", 2, f"{V}:27 (frozen_stages=1: stem and first stage)"),
    ("MODEL.RESNETS.DEPTH", 50, f"{V}:24"),
    ("MODEL.RESNETS.NORM", "BN", f"{V}:28"),
    ("MODEL.RESNETS.STRIDE_IN_1X1", False, f"{V}:30 (style='pytorch')"),
    ("MODEL.RESNETS.OUT_FEATURES", RES, f"{V}:26 (out_indices 0-3)"),
    ("MODEL.FPN.IN_FEATURES", RES, f"{V}:34"),
    ("MODEL.FPN.OUT_CHANNELS", 256, f"{V}:35"),
    ("MODEL.ANCHOR_GENERATOR.SIZES", [[32], [64], [128], [256], [512]],
     f"{V}:43,45 (scale 8 x strides 4-64)"),
    ("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", [[0.5, 1.0, 2.0]], f"{V}:44"),
    ("MODEL.ANCHOR_GENERATOR.OFFSET", 0.0, "mmdet AnchorGenerator center_offset default 0"),
    ("MODEL.PROPOSAL_GENERATOR.NAME", "SimilarityRPN", OURS + "detectron2's RPN with the similarity "
     f"assigner (MaxSiMAssigner, {V}:78)"),
    ("MODEL.RPN.IN_FEATURES", P + ["p6"], f"{V}:45 (strides 4-64)"),
    ("MODEL.RPN.LOW_QUALITY_MODE", "mmdet", f"{V}:82 (match_low_quality=True)"),
    ("MODEL.RPN.IOU_THRESHOLDS", [0.3, 0.7], f"{V}:79-80"),
    ("MODEL.RPN.MIN_POS_SIM", 0.3, f"{V}:81"),
    ("MODEL.RPN.BATCH_SIZE_PER_IMAGE", 256, f"{V}:86"),
    ("MODEL.RPN.POSITIVE_FRACTION", 0.5, f"{V}:87"),
    ("MODEL.RPN.PRE_NMS_TOPK_TRAIN", 3000, f"{V}:94"),
    ("MODEL.RPN.POST_NMS_TOPK_TRAIN", 3000, f"{V}:95"),
    ("MODEL.RPN.PRE_NMS_TOPK_TEST", 3000, f"{V}:116"),
    ("MODEL.RPN.POST_NMS_TOPK_TEST", 3000, f"{V}:117"),
    ("MODEL.RPN.NMS_THRESH", 0.7, f"{V}:96"),
    ("MODEL.RPN.BBOX_REG_WEIGHTS", (1.0, 1.0, 1.0, 1.0), f"{V}:49 (target_stds 1)"),
    ("MODEL.RPN.SMOOTH_L1_BETA", 0.0, f"{V}:52 (L1Loss)"),
    ("MODEL.ROI_HEADS.NAME", "SimilarityROIHeads", OURS + "detectron2's StandardROIHeads with the "
     "similarity matcher and NMS hooks (IoU in every preset)"),
    ("MODEL.ROI_HEADS.IN_FEATURES", P, f"{V}:59 (strides 4-32)"),
    ("MODEL.ROI_HEADS.SIMILARITY", "iou", f"{V}:100 (MaxIoUAssigner)"),
    ("MODEL.ROI_HEADS.IOU_THRESHOLDS", [0.5], f"{V}:101-104 (0.5 / 0.5, no low-quality matches)"),
    ("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 512, f"{V}:108"),
    ("MODEL.ROI_HEADS.POSITIVE_FRACTION", 0.25, f"{V}:109"),
    ("MODEL.ROI_HEADS.PROPOSAL_APPEND_GT", True, f"{V}:111"),
    ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.05, f"{V}:121"),
    ("MODEL.ROI_HEADS.NMS_THRESH_TEST", 0.5, f"{V}:122"),
    ("TEST.DETECTIONS_PER_IMAGE", 3000, f"{V}:123"),
    ("MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead", f"{V}:61 (Shared2FCBBoxHead)"),
    ("MODEL.ROI_BOX_HEAD.NUM_FC", 2, f"{V}:61 (Shared2FCBBoxHead)"),
    ("MODEL.ROI_BOX_HEAD.FC_DIM", 1024, f"{V}:63"),
    ("MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", 7, f"{V}:57"),
    ("MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS", (10.0, 10.0, 5.0, 5.0),
     f"{V}:69 (target_stds 0.1, 0.1, 0.2, 0.2)"),
    ("MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA", 0.0, f"{V}:73 (L1Loss)"),
    ("DATALOADER.FILTER_EMPTY_ANNOTATIONS", False, f"{V}:162 (filter_empty_gt=False)"),
    ("INPUT.MIN_SIZE_TRAIN", (800,), f"{V}:137 (scale 1333 x 800)"),
    ("INPUT.MAX_SIZE_TRAIN", 1333, f"{V}:137"),
    ("INPUT.MIN_SIZE_TEST", 800, f"{V}:143"),
    ("INPUT.MAX_SIZE_TEST", 1333, f"{V}:143"),
    ("SOLVER.IMS_PER_BATCH", 2, f"{V}:9 (2 images per GPU) x 1 GPU ({SIMD_README}:56)"),
    ("SOLVER.REFERENCE_WORLD_SIZE", 1, f"{SIMD_README}:56 (single GPU)"),
    ("SOLVER.BASE_LR", 0.005, f"{V}:234"),
    ("SOLVER.MOMENTUM", 0.9, f"{V}:234"),
    ("SOLVER.WEIGHT_DECAY", 0.0001, f"{V}:234"),
    ("SOLVER.WEIGHT_DECAY_NORM", 0.0001, f"{V}:232-234 (no paramwise_cfg: BatchNorm weights decayed too)"),
    ("SOLVER.WARMUP_ITERS", 0, f"{V}:219-229 (the LinearLR warm-up is commented out)"),
    ("SOLVER.AMP.ENABLED", False, f"{V} (no fp16 / AmpOptimWrapper)"),
]

VISDRONE: List[Row] = [
    ("MODEL.ROI_HEADS.NUM_CLASSES", 10, f"{V}:65"),
    ("DATASETS.TRAIN", ("visdrone2019_det_train",), f"{V}:159"),
    ("DATASETS.TEST", ("visdrone2019_det_val",), f"{V}:173,188,197 (its test/ folder: the release ships "
     f"train and val only, {SIMD_README}:50-52)"),
    ("SOLVER.MAX_ITER", 38832, f"{V}:7,212 (12 epochs) x 3,236 it/epoch (6,471 training images at batch 2; "
     "ours: every image kept, filter_empty_gt=False)"),
    ("SOLVER.STEPS", (25888, 35596), f"{V}:227 (milestones 8, 11) x 3,236"),
    ("SOLVER.CHECKPOINT_PERIOD", 3236, f"{V}:11 (every epoch)"),
    ("TEST.EVAL_PERIOD", 0, f"{V}:213 (val_begin 12: evaluated after the last epoch)"),
    ("TEST.SIMD_EVAL.PROTOCOL", "coco", f"{V}:196 (CocoMetric)"),
    ("TEST.SIMD_EVAL.MAX_DETS", [100, 300, 1000], f"{COCO_METRIC}:74 (proposal_nums default)"),
]
VISDRONE_SIMD: List[Row] = [
    ("MODEL.RPN.SIMILARITY", "simd", f"{V}:78 (MaxSiMAssigner)"),
    ("MODEL.SIMD.M", 6.13, f"{SIMD_BOX}:162"),
    ("MODEL.SIMD.N", 4.59, f"{SIMD_BOX}:163"),
]
IOU_RPN: List[Row] = [("MODEL.RPN.SIMILARITY", "iou", OURS + "the IoU baseline of the same run")]
ESTIMATED_SIMD: List[Row] = [
    ("MODEL.RPN.SIMILARITY", "simd", OURS + f"the official SimD assigner ({V}:78) on this dataset; the paper "
     "publishes no config for it"),
    ("MODEL.SIMD.ESTIMATE_NORMALISERS", True, OURS + "m, n estimated from the training set (the official "
     "code hard-codes only VisDrone's)"),
]


def _schedule_1x(schedule: str) -> List[Row]:
    """mmdet's schedule_1x (``schedule`` is its file): warm-up 500 iterations from 0.001, 12 epochs, steps
    8 and 11;
    the iterations are counted from the training set when training starts (``SOLVER.EPOCHS``)."""
    return [("SOLVER.WARMUP_ITERS", 500, f"{schedule}:8"), ("SOLVER.WARMUP_FACTOR", 0.001, f"{schedule}:9"),
            ("SOLVER.EPOCHS", 12, f"{schedule}:11"), ("SOLVER.STEP_EPOCHS", (8, 11), f"{schedule}:10")]


def _aitod(version: str) -> List[Row]:
    data = A_DATA if version == "aitod" else A2_DATA
    return [
        ("MODEL.ROI_HEADS.NUM_CLASSES", 8, f"{A}:12"),
        ("MODEL.RPN.PRE_NMS_TOPK_TRAIN", 3000, f"{A}:19"),
        ("MODEL.RPN.POST_NMS_TOPK_TRAIN", 3000, f"{A}:20"),
        ("MODEL.RPN.PRE_NMS_TOPK_TEST", 3000, f"{A}:28"),
        ("MODEL.RPN.POST_NMS_TOPK_TEST", 3000, f"{A}:29"),
        ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.05, f"{A}:33"),
        ("MODEL.ROI_HEADS.NMS_THRESH_TEST", 0.5, f"{A}:34"),
        ("TEST.DETECTIONS_PER_IMAGE", 3000, f"{A}:35"),
        ("DATASETS.TRAIN", (f"{version}_trainval",), f"{data}:35"),
        ("DATASETS.TEST", (f"{version}_test",), f"{data}:45"),
        ("DATALOADER.FILTER_EMPTY_ANNOTATIONS", True, f"{A_CUSTOM}:68 (filter_empty_gt=True by default), "
         f"{A_COCO}:137"),
        ("INPUT.MIN_SIZE_TRAIN", (800,), f"{data}:8 (800 x 800)"),
        ("INPUT.MAX_SIZE_TRAIN", 800, f"{data}:8"),
        ("INPUT.MIN_SIZE_TEST", 800, f"{data}:19"),
        ("INPUT.MAX_SIZE_TEST", 800, f"{data}:19"),
        ("SOLVER.BASE_LR", 0.01, f"{A}:42"),
        ("SOLVER.WEIGHT_DECAY_NORM", 0.0001, f"{A}:42 (no paramwise_cfg)"),
        ("TEST.EVAL_PERIOD", 0, f"{data}:48 (interval 12: after the last epoch)"),
    ] + _schedule_1x(A_SCHED) + [
        ("TEST.SIMD_EVAL.PROTOCOL", "aitod", f"{A_EVAL} (cocoapi-aitod area ranges)"),
        ("TEST.SIMD_EVAL.MAX_DETS", [100, 300, 1500], f"{A_EVAL}:29"),
    ]


SODAD: List[Row] = [
    ("MODEL.ANCHOR_GENERATOR.SIZES", [[8], [16], [32], [64], [128]], f"{S}:21,23 (scale 2 x strides 4-64)"),
    ("MODEL.RPN.PRE_NMS_TOPK_TRAIN", 2000, f"{S}:73"),
    ("MODEL.RPN.POST_NMS_TOPK_TRAIN", 1000, f"{S}:74-75"),
    ("MODEL.RPN.PRE_NMS_TOPK_TEST", 1000, f"{S}:97"),
    ("MODEL.RPN.POST_NMS_TOPK_TEST", 1000, f"{S}:99 (max_num)"),
    ("MODEL.ROI_HEADS.NUM_CLASSES", 9, f"{S}:43"),
    ("TEST.DETECTIONS_PER_IMAGE", 200, f"{S}:105"),
    ("DATASETS.TRAIN", ("sodad_train",), f"{S_DATA}:37"),
    ("DATASETS.TEST", ("sodad_test",), f"{S_DATA}:51,54 (test)"),
    ("DATALOADER.FILTER_EMPTY_ANNOTATIONS", True, f"{S_CUSTOM}:69 (filter_empty_gt=True), {S_SET}:115"),
    ("INPUT.MIN_SIZE_TRAIN", (1200,), f"{S_DATA}:9 (1200 x 1200)"),
    ("INPUT.MAX_SIZE_TRAIN", 1200, f"{S_DATA}:9"),
    ("INPUT.MIN_SIZE_TEST", 1200, f"{S_DATA}:20"),
    ("INPUT.MAX_SIZE_TEST", 1200, f"{S_DATA}:20"),
    ("SOLVER.IMS_PER_BATCH", 16, f"{S_DATA}:33 (2 per GPU) x 8 GPUs (mmdet's schedule_1x lr 0.02 is for "
     "8 x 2)"),
    ("SOLVER.REFERENCE_WORLD_SIZE", 8, f"{S_SCHED}:2 (lr 0.02 for 8 GPUs x 2 images)"),
    ("SOLVER.BASE_LR", 0.02, f"{S_SCHED}:2"),
    ("SOLVER.WEIGHT_DECAY_NORM", 0.0001, f"{S_SCHED}:2 (no paramwise_cfg)"),
    ("TEST.EVAL_PERIOD", 0, OURS + "one evaluation after training (the official merges patches in its test "
     "script)"),
    ("TEST.SIMD_EVAL.PROTOCOL", "sodad", f"{S_SET}:455 (evaluate: patches merged, SODA-D area ranges)"),
    ("TEST.SIMD_EVAL.MAX_DETS", [100, 300, 1000], f"{S_SET}:461"),
] + _schedule_1x(S_SCHED)


def _output(name: str) -> Row:
    return ("OUTPUT_DIR", f"./output/simd/{name}", OURS + "output folder")


def _merge(*parts: List[Row]) -> List[Row]:
    """Rows of the parts in order, a later row of the same key replacing the earlier one."""
    rows: Dict[str, Row] = {}
    for part in parts:
        for row in part:
            rows[row[0]] = row
    return list(rows.values())


#: preset (under projects/SimD/configs/) -> its rows
PRESETS: Dict[str, List[Row]] = {
    "visdrone/faster_rcnn_R_50_FPN_1x_iou.yaml": _merge(
        COMMON, VISDRONE, IOU_RPN, [_output("visdrone_faster_rcnn_R_50_FPN_1x_iou")]),
    "visdrone/faster_rcnn_R_50_FPN_1x_simd.yaml": _merge(
        COMMON, VISDRONE, VISDRONE_SIMD, [_output("visdrone_faster_rcnn_R_50_FPN_1x_simd")]),
    "aitod/faster_rcnn_R_50_FPN_1x_iou.yaml": _merge(
        COMMON, _aitod("aitod"), IOU_RPN, [_output("aitod_faster_rcnn_R_50_FPN_1x_iou")]),
    "aitod/faster_rcnn_R_50_FPN_1x_simd.yaml": _merge(
        COMMON, _aitod("aitod"), ESTIMATED_SIMD, [_output("aitod_faster_rcnn_R_50_FPN_1x_simd")]),
    "aitodv2/faster_rcnn_R_50_FPN_1x_iou.yaml": _merge(
        COMMON, _aitod("aitodv2"), IOU_RPN, [_output("aitodv2_faster_rcnn_R_50_FPN_1x_iou")]),
    "aitodv2/faster_rcnn_R_50_FPN_1x_simd.yaml": _merge(
        COMMON, _aitod("aitodv2"), ESTIMATED_SIMD, [_output("aitodv2_faster_rcnn_R_50_FPN_1x_simd")]),
    "sodad/faster_rcnn_R_50_FPN_1x_iou.yaml": _merge(
        COMMON, SODAD, IOU_RPN, [_output("sodad_faster_rcnn_R_50_FPN_1x_iou")]),
    "sodad/faster_rcnn_R_50_FPN_1x_simd.yaml": _merge(
        COMMON, SODAD, ESTIMATED_SIMD, [_output("sodad_faster_rcnn_R_50_FPN_1x_simd")]),
}

#: configs with no official counterpart at all (experimental detectors, the CPU demo): every value is ours
OURS_PRESETS = ("aitod/retinanet_R_50_FPN_1x_simd.yaml", "aitod/cascade_rcnn_R_50_FPN_1x_simd.yaml",
                "synthetic/faster_rcnn_R18_FPN_iou.yaml", "synthetic/faster_rcnn_R18_FPN_simd.yaml",
                "synthetic/demo_faster_rcnn_iou.yaml", "synthetic/demo_faster_rcnn_simd.yaml")
